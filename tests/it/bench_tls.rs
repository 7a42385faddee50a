//! The test tools over TLS: shoal-bench's `https://` runs against
//! shoal-origin's TLS listeners (TLS 1.3, and TLS 1.2 resuming by session
//! ID), every count checked against what the origin itself saw; and the
//! origin's TLS side alone (its byte-stream modes, `--tls12`,
//! `--tls-client-ca`, surviving failed handshakes) from a plain rustls
//! client, since the proxy's TLS tests lean on all of it.

use crate::pki::{Leaf, Pki};
use crate::support::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

/// The origin's `request ...` lines so far, and the distinct connection
/// numbers (`conn=N`) among `lines[from..]`.
fn requests_and_conns(origin: &Origin, from: usize) -> (usize, usize) {
    let lines: Vec<String> = origin.proc.lines().into_iter().filter(|l| l.starts_with("request ")).collect();
    let conns: BTreeSet<&str> =
        lines[from..].iter().filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("conn="))).collect();
    (lines.len(), conns.len())
}

/// One origin, three bench runs: keepalive (a handshake per connection),
/// a new connection per request (a handshake per request, nearly all of
/// them resumed from the bench's shared session cache), and a bench that
/// does not trust the origin's CA (every connection fails its handshake,
/// and the origin goes on serving).
fn bench_against(version: &[&str]) {
    let _heavy = heavy();
    let certs = TempDir::new();
    let pki = Pki::new(&certs.0, "bench-tls");
    let leaf = pki.server("origin", &["localhost", "127.0.0.1"]);
    let mut args = vec!["--log-requests", "--tls-cert", p(&leaf.cert), "--tls-key", p(&leaf.key)];
    args.extend_from_slice(version);
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &args);
    // By IP address: the name verified is the certificate's IP SAN.
    let url = format!("https://{}/t?size=64", origin.addr("a"));
    let ca = p(&pki.ca);

    let (r, ok) = bench_json(&["-c", "4", "-k", "-n", "200", "--ca", ca, &url]);
    assert!(ok, "{r}");
    assert_eq!(r["requests"], 200, "{r}");
    assert_eq!(r["statuses"]["200"], 200, "{r}");
    assert_eq!(r["body_bytes"], 200 * 64, "{r}");
    assert_eq!(r["errors"]["total"], 0, "{r}");
    assert_eq!(r["connections"], 4, "{r}");
    assert_eq!(r["tls_handshakes"], 4, "one handshake per keepalive connection: {r}");
    origin.proc.wait_count(200, STARTUP, |l| l.starts_with("request "));
    assert_eq!(requests_and_conns(&origin, 0), (200, 4), "the origin saw 200 requests on 4 connections");

    let (r, ok) = bench_json(&["-c", "2", "-n", "200", "--ca", ca, &url]);
    assert!(ok, "{r}");
    assert_eq!(r["keepalive"], false);
    assert_eq!(r["requests"], 200, "{r}");
    assert_eq!(r["errors"]["total"], 0, "{r}");
    assert_eq!(r["connections"], 200, "{r}");
    assert_eq!(r["tls_handshakes"], r["connections"], "one handshake per connection: {r}");
    // Only each connection task's first handshake can be a full one (they
    // start together, with an empty cache); the rest offer a session.
    let resumed = r["tls_resumed"].as_u64().unwrap();
    assert!(resumed >= 180, "reconnections resume: {r}");
    origin.proc.wait_count(400, STARTUP, |l| l.starts_with("request "));
    assert_eq!(
        requests_and_conns(&origin, 200),
        (400, 200),
        "the origin saw 200 more requests, each on its own connection"
    );

    // The test CA is in no system bundle: every handshake fails, each
    // counted once (-n counts attempts), and the run fails.
    let (r, ok) = bench_json(&["-c", "2", "-n", "20", &url]);
    assert!(!ok, "errors fail the run: {r}");
    assert_eq!(r["requests"], 0, "{r}");
    assert_eq!((r["errors"]["tls"].as_u64(), r["errors"]["total"].as_u64()), (Some(20), Some(20)), "{r}");
    assert_eq!((r["connections"].as_u64(), r["tls_handshakes"].as_u64()), (Some(20), Some(0)), "{r}");
    // Each failure dropped only its connection: the origin still serves.
    let (r, ok) = bench_json(&["-c", "1", "-n", "10", "--ca", ca, &url]);
    assert!(ok && r["requests"] == 10, "{r}");
    origin.proc.wait_count(410, STARTUP, |l| l.starts_with("request "));
}

#[test]
fn bench_https_tls13_handshakes_and_resumptions() {
    bench_against(&[]);
}

/// `--tls12` origin: no ticket keys, so the bench's resumptions are by
/// session ID.
#[test]
fn bench_https_tls12_resumes_by_session_id() {
    bench_against(&["--tls12"]);
}

/// A blocking rustls client: trusts `ca`, offers TLS 1.2 or 1.3 only when
/// asked, presents `cert` if given; its session cache lets a second
/// connection resume.
fn client(
    ca: &std::path::Path,
    version: Option<&'static rustls::SupportedProtocolVersion>,
    cert: Option<&Leaf>,
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let versions = match version {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match cert {
        Some(l) => {
            let chain = CertificateDer::pem_file_iter(&l.cert).unwrap().map(Result::unwrap).collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(&l.key).unwrap()).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS connection to `addr` (name `localhost`), handshake done.
fn tls_connect(cfg: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> std::io::Result<Tls> {
    let conn = rustls::ClientConnection::new(cfg.clone(), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, connect(addr));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// GET / on a new connection: the response, or the error that ended it
/// (a client certificate is refused only after a TLS 1.3 client thinks
/// the handshake is done, so the failure can show on the first read).
fn get(cfg: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> std::io::Result<Resp> {
    let mut s = tls_connect(cfg, addr)?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    s.flush()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(read_response(&mut &raw[..], false))
}

/// The origin's byte-stream modes over TLS: the handshake first, then the
/// mode (server-first modes write after it; ends of stream are
/// close_notify), and WebSocket over TLS.
#[test]
fn origin_tls_modes() {
    let certs = TempDir::new();
    let pki = Pki::new(&certs.0, "modes");
    let leaf = pki.server("origin", &["localhost"]);
    let tls = ["--tls-cert", p(&leaf.cert), "--tls-key", p(&leaf.key)];
    let cfg = client(&pki.ca, None, None);
    let start = |mode: &str| Origin::start_with(mode, &[("n", "127.0.0.1:0".parse().unwrap())], &tls);

    let o = start("name-echo");
    let mut s = tls_connect(&cfg, o.addr("n")).unwrap();
    s.write_all(b"hello\n").unwrap();
    assert_eq!(read_line(&mut s), "n");
    assert_eq!(read_line(&mut s), "hello");
    s.write_all(b"again\n").unwrap();
    assert_eq!(read_line(&mut s), "again");

    let o = start("echo");
    let mut s = tls_connect(&cfg, o.addr("n")).unwrap();
    let data = pattern(300_000, 7);
    for c in data.chunks(16 * 1024) {
        s.write_all(c).unwrap();
        let mut back = vec![0; c.len()];
        s.read_exact(&mut back).unwrap();
        assert!(back == c, "echo changed the bytes");
    }
    // Our close_notify ends the echo, which answers with its own.
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the node's close_notify, not a bare end of stream");
    assert!(rest.is_empty(), "{} bytes after the echo", rest.len());

    let o = start("banner");
    let mut s = tls_connect(&cfg, o.addr("n")).unwrap();
    assert_eq!(read_line(&mut s), "220 n ready");

    let o = start("oneshot");
    let mut s = tls_connect(&cfg, o.addr("n")).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).expect("the node ends the session with close_notify");
    assert_eq!(all, "n\n");

    let o = start("websocket");
    let s = tls_connect(&cfg, o.addr("n")).unwrap();
    let (mut ws, resp) = tungstenite::client("wss://localhost/chat", s).expect("WebSocket handshake over TLS");
    assert_eq!(resp.headers().get("x-node").map(|v| v.to_str().unwrap()), Some("n"));
    ws.send(tungstenite::Message::text("over tls")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "over tls");

    // blackhole never accepts, so TLS cannot apply: refused up front.
    let out =
        Command::new(origin_bin()).args(["--mode", "blackhole", "--listen", "127.0.0.1:0"]).args(tls).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `--tls12` and `--tls-client-ca`: refused handshakes drop only their
/// connection; `X-TLS` and `X-TLS-Resumed` tell the version and whether
/// the session was resumed (by session ID, the origin having no ticket
/// keys).
#[test]
fn origin_tls_versions_and_client_certificates() {
    let certs = TempDir::new();
    let pki = Pki::new(&certs.0, "versions");
    let leaf = pki.server("origin", &["localhost"]);
    let (cert, key) = (p(&leaf.cert), p(&leaf.key));

    let o12 = Origin::start_with(
        "http",
        &[("a", "127.0.0.1:0".parse().unwrap())],
        &["--tls-cert", cert, "--tls-key", key, "--tls12"],
    );
    let tls13_only = client(&pki.ca, Some(&rustls::version::TLS13), None);
    assert!(get(&tls13_only, o12.addr("a")).is_err(), "a TLS 1.3-only client is refused");
    let cfg = client(&pki.ca, None, None);
    let first = get(&cfg, o12.addr("a")).expect("the origin survives a refused handshake");
    assert_eq!((first.status, first.header("x-tls"), first.header("x-tls-resumed")), (200, Some("TLSv1.2"), Some("0")));
    let second = get(&cfg, o12.addr("a")).unwrap();
    assert_eq!(second.header("x-tls-resumed"), Some("1"), "TLS 1.2 resumes by session ID");

    let o13 = Origin::start_with(
        "http",
        &[("a", "127.0.0.1:0".parse().unwrap())],
        &["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", p(&pki.ca)],
    );
    assert!(get(&cfg, o13.addr("a")).is_err(), "no client certificate: refused");
    let stranger = Pki::new(&certs.0.join("other"), "other").client("stranger", "stranger");
    assert!(
        get(&client(&pki.ca, None, Some(&stranger)), o13.addr("a")).is_err(),
        "a certificate from another CA: refused"
    );
    let member = pki.client("member", "member");
    let with_cert = client(&pki.ca, None, Some(&member));
    let r = get(&with_cert, o13.addr("a")).expect("a certificate from the CA is accepted");
    assert_eq!((r.status, r.header("x-tls"), r.header("x-tls-resumed")), (200, Some("TLSv1.3"), Some("0")));
    let r = get(&with_cert, o13.addr("a")).unwrap();
    assert_eq!(r.header("x-tls-resumed"), Some("1"), "TLS 1.3 resumes by stateful ticket");
}
