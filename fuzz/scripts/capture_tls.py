#!/usr/bin/env python3
"""Capture real TLS hellos on loopback as seeds for the tls_hello target.

ClientHellos: a one-shot listener records the first bytes that
`openssl s_client`, `curl` and Python's ssl module send (TLS 1.2 and 1.3,
with and without SNI, and a TLS 1.2 resumption offering a session ID).
ServerHellos: a recorded ClientHello is replayed to `openssl s_server`
(TLS 1.2, TLS 1.3, and a HelloRetryRequest) and its first flight recorded.

Usage: python3 fuzz/scripts/capture_tls.py fuzz/seeds/tls_hello
Needs openssl and curl on PATH; writes only into the given directory.
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_first(conn, quiet=0.5, limit=65536):
    """Bytes the peer sends until it is quiet for `quiet` seconds."""
    conn.settimeout(quiet)
    data = b""
    while len(data) < limit:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def capture_client(cmd_for_port):
    """Run a client against a one-shot listener; its first bytes."""
    port = free_port()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    got = {}

    def accept():
        conn, _ = srv.accept()
        got["data"] = read_first(conn)
        conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    client = cmd_for_port(port)
    t.join(10)
    srv.close()
    if isinstance(client, subprocess.Popen):
        client.kill()
        client.wait()
    return got.get("data", b"")


def run(cmd):
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def server(cmd):
    """s_server quits at the end of its input: keep a pipe open."""
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def python_client(port, sni, version):
    def go():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = version
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                with ctx.wrap_socket(s, server_hostname=sni):
                    pass
        except OSError:
            pass

    threading.Thread(target=go, daemon=True).start()


def server_reply(tmp, args, client_hello):
    """Replay a ClientHello to `openssl s_server args`; its first flight."""
    port = free_port()
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    srv = server(["openssl", "s_server", "-accept", str(port), "-cert", cert, "-key", key, "-naccept", "1"] + args)
    try:
        for _ in range(50):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        conn.sendall(client_hello)
        data = read_first(conn)
        conn.close()
        return data
    finally:
        srv.kill()
        srv.wait()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem"),
             "-days", "1", "-subj", "/CN=media.example.com"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s_client = lambda *a: lambda p: run(["openssl", "s_client", "-connect", f"127.0.0.1:{p}", *a])
        clients = {
            "client_openssl_tls13_sni": s_client("-tls1_3", "-servername", "Media.Example.com"),
            "client_openssl_tls13_nosni": s_client("-tls1_3", "-noservername"),
            "client_openssl_tls12_sni": s_client("-tls1_2", "-servername", "media.example.com"),
            "client_openssl_tls12_nosni": s_client("-tls1_2", "-noservername"),
            "client_openssl_any_sni": s_client("-servername", "a.test"),
            "client_curl_sni": lambda p: run(["curl", "-sk", "--max-time", "3", f"https://localhost:{p}/"]),
            "client_curl_ip_nosni": lambda p: run(["curl", "-sk", "--max-time", "3", f"https://127.0.0.1:{p}/"]),
            "client_curl_tls12_sni": lambda p: run(
                ["curl", "-sk", "--max-time", "3", "--tlsv1.2", "--tls-max", "1.2", f"https://localhost:{p}/"]),
            "client_python_tls13_sni": lambda p: python_client(p, "py.example.net", ssl.TLSVersion.TLSv1_3),
            "client_python_tls12_nosni": lambda p: python_client(p, None, ssl.TLSVersion.TLSv1_2),
        }
        hellos = {}
        for name, cmd in clients.items():
            data = capture_client(cmd)
            hellos[name] = data
            print(f"{name}: {len(data)} bytes")
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)

        # TLS 1.2 resumption by session ID: a full handshake saves the
        # session, the second ClientHello offers its ID.
        port = free_port()
        sess = os.path.join(tmp, "sess.pem")
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        srv = server(["openssl", "s_server", "-accept", str(port), "-cert", cert, "-key", key, "-tls1_2", "-no_ticket"])
        time.sleep(0.5)
        subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-no_ticket",
                        "-servername", "media.example.com", "-sess_out", sess],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        srv.kill()
        srv.wait()
        data = capture_client(s_client("-tls1_2", "-no_ticket", "-servername", "media.example.com", "-sess_in", sess))
        print(f"client_openssl_tls12_resume_session_id: {len(data)} bytes")
        with open(os.path.join(out, "client_openssl_tls12_resume_session_id"), "wb") as f:
            f.write(data)

        servers = {
            "server_openssl_tls13": (["-tls1_3"], "client_openssl_tls13_sni"),
            "server_openssl_tls12": (["-tls1_2"], "client_openssl_tls12_sni"),
            "server_openssl_tls12_no_ticket": (["-tls1_2", "-no_ticket"], "client_openssl_tls12_nosni"),
            # The client's key share is X25519; a P-256-only server asks again.
            "server_openssl_tls13_hello_retry": (["-tls1_3", "-groups", "P-256"], "client_openssl_tls13_sni"),
        }
        for name, (args, hello) in servers.items():
            data = server_reply(tmp, args, hellos[hello])
            print(f"{name}: {len(data)} bytes")
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
