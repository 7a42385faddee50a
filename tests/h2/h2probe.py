#!/usr/bin/env python3
"""A raw HTTP/2 frame writer for shoal's defence tests (tests/it/http2.rs).

Each attack sends frames that a well-behaved client would not (hyperframe
encodes them, hpack compresses header blocks), reads what shoal answers,
and prints one JSON object: the GOAWAY code and last stream if one came,
the RST_STREAM codes by stream, the response statuses by stream, whether
the connection closed, and how long it took.

usage: h2probe.py ATTACK HOST PORT [N]
"""
import json
import socket
import sys
import time

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
    RstStreamFrame, SettingsFrame, WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Probe:
    def __init__(self, host, port, settings=None):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.enc = Encoder()
        self.buf = b""
        self.goaway = None
        self.last_stream = None
        self.rst = {}
        self.status = {}
        self.data = {}
        self.ended = set()
        self.closed = False
        self.send_failed = False
        self.started = time.monotonic()
        s = SettingsFrame(0)
        for k, v in (settings or {}).items():
            s.settings[k] = v
        self.send(PREFACE + s.serialize())

    def send(self, data):
        """Send `data`; False once shoal stopped taking bytes (what it
        sent before, its GOAWAY, is still read)."""
        if self.send_failed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.send_failed = True
            return False

    def headers(self, sid, path="/", method="GET", end_stream=True, extra=(), end_headers=True):
        block = self.enc.encode([(":method", method), (":scheme", "http"), (":path", path),
                                 (":authority", "probe")] + list(extra))
        f = HeadersFrame(sid)
        f.data = block
        if end_headers:
            f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return f.serialize()

    def read(self, seconds, until=None):
        """Read frames for up to `seconds`, or until `until()` holds or the
        connection closes. SETTINGS are acknowledged; nothing else is."""
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            if until and until():
                return
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            self.buf += chunk
            while len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                self.frame(f)

    def frame(self, f):
        if isinstance(f, GoAwayFrame):
            self.goaway = f.error_code
            self.last_stream = f.last_stream_id
        elif isinstance(f, RstStreamFrame):
            self.rst[f.stream_id] = f.error_code
        elif isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(f, PingFrame) and "ACK" not in f.flags:
            self.send(PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]).serialize())
        elif isinstance(f, HeadersFrame):
            # Status only: the first field of shoal's header blocks is
            # :status, sent indexed or as a literal; decoding the whole
            # block needs the decoder's state, kept here.
            from hpack import Decoder
            if not hasattr(self, "dec"):
                self.dec = Decoder()
                self.dec.max_allowed_table_size = 65536
            for k, v in self.dec.decode(f.data):
                if k == ":status" or k == b":status":
                    self.status[f.stream_id] = int(v)
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)
        elif isinstance(f, DataFrame):
            self.data[f.stream_id] = self.data.get(f.stream_id, 0) + len(f.data)
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)

    def report(self):
        return {
            "goaway": self.goaway,
            "last_stream": self.last_stream,
            "rst": {str(k): v for k, v in sorted(self.rst.items())},
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "data": {str(k): v for k, v in sorted(self.data.items())},
            "ended": sorted(self.ended),
            "closed": self.closed,
            "seconds": round(time.monotonic() - self.started, 3),
        }


def flood(p, frame, n, batch=200):
    sent = 0
    while sent < n and not p.closed and not p.send_failed:
        k = min(batch, n - sent)
        if not p.send(frame * k):
            break
        sent += k
        p.read(0.001)
        if p.goaway is not None:
            break
    return sent


def main():
    attack, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4].isdigit() else 0
    out = {}
    if attack == "get":
        # A well-behaved request: the control.
        p = Probe(host, port)
        p.send(p.headers(1, sys.argv[5] if len(sys.argv) > 5 else "/"))
        p.read(10, until=lambda: 1 in p.ended or 1 in p.rst)
    elif attack == "get-until-closed":
        # A request, then reading on until shoal ends the connection (its
        # idle timeout, a reload or a stop): the GOAWAY it sends.
        p = Probe(host, port)
        p.send(p.headers(1, sys.argv[5] if len(sys.argv) > 5 else "/"))
        p.read(15)
    elif attack == "ping":
        p = Probe(host, port)
        out["sent"] = flood(p, PingFrame(0, opaque_data=b"12345678").serialize(), n)
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "settings":
        p = Probe(host, port)
        s = SettingsFrame(0)
        s.settings[SettingsFrame.ENABLE_PUSH] = 0
        out["sent"] = flood(p, s.serialize(), n)
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "empty-data":
        p = Probe(host, port)
        p.send(p.headers(1, "/?echo=1", method="POST", end_stream=False))
        out["sent"] = flood(p, DataFrame(1).serialize(), n)
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "window-tiny":
        p = Probe(host, port)
        out["sent"] = flood(p, WindowUpdateFrame(0, window_increment=1).serialize(), n)
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "window-overflow":
        p = Probe(host, port)
        p.send(WindowUpdateFrame(0, window_increment=2**31 - 1).serialize())
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "rapid-reset":
        p = Probe(host, port)
        sid, sent = 1, 0
        while sent < n and not p.closed and not p.send_failed and p.goaway is None:
            chunk = b""
            for _ in range(min(100, n - sent)):
                chunk += p.headers(sid, "/?delay=200") + RstStreamFrame(sid, error_code=8).serialize()
                sid += 2
                sent += 1
            p.send(chunk)
            p.read(0.001)
        out["sent"] = sent
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "continuation":
        # One header block that never ends: each CONTINUATION adds a
        # literal field, past any header list limit.
        p = Probe(host, port)
        p.send(p.headers(1, end_headers=False))
        f = ContinuationFrame(1)
        f.data = Encoder().encode([("x-flood", "v" * 100)])
        out["sent"] = flood(p, f.serialize(), n, batch=50)
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "empty-continuation":
        p = Probe(host, port)
        p.send(p.headers(1, end_headers=False))
        out["sent"] = flood(p, ContinuationFrame(1).serialize(), n)
        p.read(5, until=lambda: p.goaway is not None)
    elif attack == "hpack-bomb":
        # A 4 KB field enters the dynamic table, then N references to it
        # (one byte each) decode to N * 4 KB.
        p = Probe(host, port)
        big = "b" * 4000
        first = p.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                              (":authority", "probe"), ("x-big", big)])
        f = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
        f.data = first
        p.send(f.serialize())
        p.read(5, until=lambda: 1 in p.ended or 1 in p.rst)
        again = p.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                              (":authority", "probe")] + [("x-big", big)] * n)
        f = HeadersFrame(3, flags=["END_HEADERS", "END_STREAM"])
        f.data = again
        out["block_bytes"] = len(again)
        p.send(f.serialize())
        p.read(5, until=lambda: 3 in p.ended or 3 in p.rst or p.goaway is not None)
    elif attack == "big-header":
        p = Probe(host, port)
        p.send(p.headers(1, extra=[("x-big", "h" * n)]))
        p.read(5, until=lambda: 1 in p.ended or 1 in p.rst or p.goaway is not None)
    elif attack == "streams":
        # N streams at once, each waiting for its body (never sent).
        p = Probe(host, port)
        chunk = b"".join(p.headers(2 * i + 1, "/?echo=1", method="POST", end_stream=False) for i in range(n))
        p.send(chunk)
        p.read(2)
    elif attack == "slow-reader":
        # A window of 0: shoal may send no DATA; N streams each ask for a
        # large body and are never given window.
        p = Probe(host, port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        path = sys.argv[5] if len(sys.argv) > 5 else "/?size=1000000"
        p.send(b"".join(p.headers(2 * i + 1, path) for i in range(n)))
        seconds = float(sys.argv[6]) if len(sys.argv) > 6 else 10
        p.read(seconds, until=lambda: len(p.rst) >= n)
    else:
        sys.exit("unknown attack " + attack)
    out.update(p.report())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
