//! shoal-origin: a test node for shoal's tests and benchmarks.
//!
//! One process can play several nodes: every `--listen [NAME=]ADDR` is a
//! node, named NAME (default: its address). Once bound, each prints
//! `listening NAME ADDR` on stdout, so callers can use port 0 and learn the
//! port. Modes (`--mode`):
//!
//! - `echo`: echo bytes back; end of stream from the client is answered with
//!   end of stream (half-close mirrored).
//! - `name-echo`: on the first bytes from the client, write `NAME\n`, then echo.
//! - `banner`: write `220 NAME ready\r\n` at once (or `--banner TEXT`), then echo.
//! - `oneshot`: write `NAME\n` and close (a TIME-like server-first protocol).
//! - `stall`: accept and never answer (input is swallowed); hold until the peer closes.
//! - `close`: accept and close at once.
//! - `blackhole`: listen with a full backlog and never accept, so connects
//!   hang (for connect-timeout tests).
//! - `websocket`: accept a WebSocket handshake (adding `X-Node: NAME`) and
//!   echo every message.
//! - `http`: HTTP/1.1 with keepalive, steered by query parameters:
//!   `status=N`, `size=N` (body bytes), `chunked=1`, `close=1`, `delay=MS`
//!   (before the response), `slow=MS` (between 1 KiB body pieces),
//!   `cut=N` (close after N body bytes, short of the declared size),
//!   `pattern=mix` (incompressible bytes) or `pattern=text` (words, which
//!   compress as prose does) instead of the alphabet,
//!   `echo=1` (body = request body), `head=1` (body = request head as
//!   received). Every response carries `X-Node: NAME`, `X-Conn: N` (the
//!   process's connection number), `X-Seq: N` (request number on that
//!   connection), and `X-Body-Len`/`X-Body-Sha256` of the request body.
//!   `cookie=NAME` sets cookie NAME to `NODE-CONN-SEQ` (`cookie_age=N`
//!   adds `Max-Age=N`); `backend=self` sets `X-Zeus-Backend` to the
//!   address the connection was accepted on.
//!   `--log-requests` prints `request NAME METHOD TARGET id=X-Request-Id
//!   conn=N len=BODY at=UNIX_MS inflight=N` on stdout for every request;
//!   `--status N` answers every request with status N (unless it asks
//!   for another with `status=`);
//!   `--delay MS` delays every response (a uniformly slow node).
//!   `--expect-proxy`: every connection starts with a PROXY protocol v1 or
//!   v2 header; HTTP responses then carry `X-Proxy-Src: ip:port`.
//!   `--stall-every MS --stall-for MS`: the node stalls for the last
//!   `stall-for` ms of every `stall-every` ms period, counted from its
//!   start; requests arriving then are answered when the stall ends.
//!
//! TLS (every mode but `blackhole`, which never accepts): `--tls-cert FILE
//! --tls-key FILE` make every listener speak TLS (rustls over the accepted
//! socket; TLS 1.2 and 1.3, or 1.2 only with `--tls12`). The handshake
//! comes first, then the mode runs over the decrypted stream: `banner` and
//! `oneshot` write after it, `stall` holds a completed session, `close`
//! closes one (close_notify), and ends of stream are sent as close_notify
//! then FIN. Sessions resume by session ID (TLS 1.2) or stateful ticket
//! (TLS 1.3) from a per-process cache; no ticket keys, so a TLS 1.2 session
//! can only be resumed on the node that issued it, like a server behind an
//! SSL-session-ID-persistent balancer. `--tls-client-ca FILE` requires a
//! client certificate from that CA. HTTP responses on TLS connections carry
//! `X-TLS: TLSv1.2|TLSv1.3` and `X-TLS-Resumed: 0|1`. A failed handshake
//! drops that connection only (`TLS handshake failed` on stderr). A PROXY
//! header (`--expect-proxy`) comes before the handshake, as a balancer
//! sends it.

mod http;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Echo,
    NameEcho,
    Banner,
    Oneshot,
    Stall,
    Close,
    Blackhole,
    Http,
    WebSocket,
}

struct Opts {
    mode: Mode,
    listen: Vec<(String, SocketAddr)>,
    banner: Option<String>,
    log_requests: bool,
    delay_ms: u64,
    /// Every HTTP response's status, unless the request asks for another.
    status: Option<u64>,
    expect_proxy: bool,
    /// (every, for) in ms: HTTP responses wait out a stall of `for` ms at
    /// the end of each `every` ms period.
    stall: Option<(u64, u64)>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

const USAGE: &str = "\
usage: shoal-origin --mode MODE --listen [NAME=]ADDR [--listen ...] [OPTIONS]

modes: echo, name-echo, banner, oneshot, stall, close, blackhole, http, websocket

options:
  --banner TEXT             banner mode: the greeting [220 NAME ready]
  --log-requests            http: print `request NAME METHOD TARGET ...` per request
  --delay MS                http: delay every response
  --expect-proxy            connections start with a PROXY v1 or v2 header
  --stall-every MS --stall-for MS
                            http: stall for the last `for` ms of every period
  --tls-cert FILE --tls-key FILE
                            speak TLS on every listener (all modes but blackhole);
                            http responses add X-TLS and X-TLS-Resumed
  --tls12                   with TLS: TLS 1.2 only [1.2 and 1.3]
  --tls-client-ca FILE      with TLS: require a client certificate from this CA
";

fn parse() -> Result<Opts, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut mode = None;
    let mut listen = Vec::new();
    let mut banner = None;
    let mut log_requests = false;
    let mut delay_ms = 0;
    let mut status = None;
    let mut expect_proxy = false;
    let (mut stall_every, mut stall_for) = (0u64, 0u64);
    let (mut tls_cert, mut tls_key, mut tls12, mut client_ca) = (None, None, false, None);
    while let Some(a) = p.next().map_err(|e| e.to_string())? {
        let val = |p: &mut lexopt::Parser| -> Result<String, String> {
            p.value().map_err(|e| e.to_string())?.string().map_err(|e| e.to_string())
        };
        match a {
            Long("mode") => {
                mode = Some(match val(&mut p)?.as_str() {
                    "echo" => Mode::Echo,
                    "name-echo" => Mode::NameEcho,
                    "banner" => Mode::Banner,
                    "oneshot" => Mode::Oneshot,
                    "stall" => Mode::Stall,
                    "close" => Mode::Close,
                    "blackhole" => Mode::Blackhole,
                    "http" => Mode::Http,
                    "websocket" => Mode::WebSocket,
                    m => return Err(format!("unknown mode {m}\n{USAGE}")),
                })
            }
            Long("listen") => {
                let v = val(&mut p)?;
                let (name, addr) = match v.split_once('=') {
                    Some((n, a)) => (n.to_string(), a.to_string()),
                    None => (v.clone(), v),
                };
                listen.push((name, addr.parse().map_err(|e| format!("bad address {addr}: {e}"))?));
            }
            Long("banner") => banner = Some(val(&mut p)?),
            Long("log-requests") => log_requests = true,
            Long("expect-proxy") => expect_proxy = true,
            Long("stall-every") => {
                stall_every = val(&mut p)?.parse().map_err(|_| "--stall-every takes milliseconds".to_string())?
            }
            Long("stall-for") => {
                stall_for = val(&mut p)?.parse().map_err(|_| "--stall-for takes milliseconds".to_string())?
            }
            Long("tls-cert") => tls_cert = Some(val(&mut p)?),
            Long("tls-key") => tls_key = Some(val(&mut p)?),
            Long("tls12") => tls12 = true,
            Long("tls-client-ca") => client_ca = Some(val(&mut p)?),
            Long("status") => {
                status = Some(val(&mut p)?.parse().map_err(|_| "--status takes a status code".to_string())?)
            }
            Long("delay") => delay_ms = val(&mut p)?.parse().map_err(|_| "--delay takes milliseconds".to_string())?,
            Long("help") | Short('h') => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            a => return Err(format!("{}\n{USAGE}", a.unexpected())),
        }
    }
    if listen.is_empty() {
        return Err(USAGE.into());
    }
    let stall = (stall_every > 0 && stall_for > 0).then_some((stall_every, stall_for.min(stall_every)));
    let mode = mode.ok_or(USAGE)?;
    let tls = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => {
            if mode == Mode::Blackhole {
                return Err("TLS does not apply to the blackhole mode (it never accepts)".into());
            }
            Some(tls_config(&c, &k, tls12, client_ca.as_deref())?)
        }
        (None, None) if tls12 || client_ca.is_some() => {
            return Err("--tls12 and --tls-client-ca need --tls-cert and --tls-key".into())
        }
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(Opts { mode, listen, banner, log_requests, delay_ms, status, expect_proxy, stall, tls })
}

fn tls_config(
    cert: &str,
    key: &str,
    tls12: bool,
    client_ca: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls12 { &[&rustls::version::TLS12] } else { &[&rustls::version::TLS12, &rustls::version::TLS13] };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
                roots.add(c.map_err(|e| format!("{ca}: {e}"))?).map_err(|e| format!("{ca}: {e}"))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| e.to_string())?;
    // Session IDs (TLS 1.2) and stateful tickets (TLS 1.3) only: no ticket
    // keys, so sessions resume on this node alone.
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(Arc::new(cfg))
}

fn main() {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shoal-origin: {e}");
            std::process::exit(2);
        }
    };
    let banner = Arc::new(opts.banner);
    http::start_clock();
    let mut handles = Vec::new();
    for (name, addr) in opts.listen {
        let (listener, actual) = match bind(opts.mode, addr) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("shoal-origin: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        };
        println!("listening {name} {actual}");
        let name: Arc<str> = name.into();
        let banner = banner.clone();
        let mode = opts.mode;
        let log_requests = opts.log_requests;
        let delay_ms = opts.delay_ms;
        let status = opts.status;
        let expect_proxy = opts.expect_proxy;
        let stall = opts.stall;
        let tls = opts.tls.clone();
        handles.push(thread::spawn(move || {
            if mode == Mode::Blackhole {
                // Hold the listener (and the connections filling its
                // backlog) forever; never accept.
                let _keep = listener;
                loop {
                    thread::park();
                }
            }
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                let (name, banner, tls) = (name.clone(), banner.clone(), tls.clone());
                thread::spawn(move || {
                    let _ = stream.set_nodelay(true);
                    let mut stream = stream;
                    let proxy_src = if expect_proxy {
                        match read_proxy_header(&mut stream) {
                            Ok(src) => Some(src),
                            Err(e) => {
                                eprintln!("shoal-origin {name}: bad PROXY header: {e}");
                                return;
                            }
                        }
                    } else {
                        None
                    };
                    let mut b = http::Behaviour {
                        log_requests,
                        delay_ms,
                        status,
                        proxy_src: proxy_src.as_deref(),
                        stall,
                        tls: None,
                        local: stream.local_addr().ok(),
                    };
                    // Errors after the start (a peer gone mid-request) end
                    // that connection quietly, as a real server would; only
                    // a failed handshake is worth a line, since it usually
                    // means a test's certificates are wrong.
                    match tls {
                        None => {
                            let _ = serve(mode, &name, banner.as_deref(), stream, b);
                        }
                        Some(cfg) => match handshake(cfg, stream) {
                            Ok((s, info)) => {
                                b.tls = Some(info);
                                let _ = serve(mode, &name, banner.as_deref(), s, b);
                            }
                            Err(e) => eprintln!("shoal-origin {name}: TLS handshake failed: {e}"),
                        },
                    }
                });
            }
        }));
    }
    let _ = std::io::stdout().flush();
    for h in handles {
        let _ = h.join();
    }
}

fn bind(mode: Mode, addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    if mode == Mode::Blackhole {
        // Backlog 0 holds one pending connection; fill it so later SYNs are
        // dropped and connects hang until the client's timeout.
        s.listen(0)?;
        let l: TcpListener = s.into();
        let actual = l.local_addr()?;
        let mut fillers = Vec::new();
        for _ in 0..4 {
            if let Ok(c) = TcpStream::connect_timeout(&actual, std::time::Duration::from_millis(200)) {
                fillers.push(c);
            }
        }
        std::mem::forget(fillers);
        return Ok((l, actual));
    }
    s.listen(1024)?;
    let l: TcpListener = s.into();
    let actual = l.local_addr()?;
    Ok((l, actual))
}

/// A connection as the modes see it: plain TCP, or TLS over it.
trait Conn: Read + Write {
    /// End our direction of the stream (TLS: close_notify, then FIN).
    fn shutdown_write(&mut self) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn shutdown_write(&mut self) -> std::io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

type TlsConn = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

impl Conn for TlsConn {
    fn shutdown_write(&mut self) -> std::io::Result<()> {
        self.conn.send_close_notify();
        self.flush()?;
        self.sock.shutdown(Shutdown::Write)
    }
}

/// Read, taking a peer that closes without close_notify (most clients
/// after a complete exchange) as an ordinary end of stream.
fn read_some(s: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    match s.read(buf) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        r => r,
    }
}

/// The server side of a TLS handshake, completed before the mode starts
/// (so `X-TLS` knows the version and server-first modes write after it).
/// Returns the stream and (version, resumed).
fn handshake(cfg: Arc<rustls::ServerConfig>, mut sock: TcpStream) -> std::io::Result<(TlsConn, (&'static str, bool))> {
    let mut conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        _ => "TLSv1.2",
    };
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok((rustls::StreamOwned::new(conn, sock), (version, resumed)))
}

/// Read a PROXY protocol v1 or v2 header; returns the source `ip:port`.
fn read_proxy_header(s: &mut TcpStream) -> std::io::Result<String> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut first = [0u8; 12];
    s.read_exact(&mut first[..6])?;
    if &first[..6] == b"PROXY " {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.last() != Some(&b'\n') {
            s.read_exact(&mut b)?;
            line.push(b[0]);
            if line.len() > 107 {
                return Err(bad("v1 line too long"));
            }
        }
        let text = String::from_utf8_lossy(&line);
        let f: Vec<&str> = text.trim_end().split(' ').collect();
        return match f.as_slice() {
            [fam, src, _, sport, _] => {
                Ok(if *fam == "TCP6" { format!("[{src}]:{sport}") } else { format!("{src}:{sport}") })
            }
            _ => Err(bad("v1 fields")),
        };
    }
    s.read_exact(&mut first[6..])?;
    if &first != b"\r\n\r\n\0\r\nQUIT\n" {
        return Err(bad("no PROXY signature"));
    }
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    match h[1] {
        0x11 if len >= 12 => {
            let ip = std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Ok(format!("{ip}:{}", u16::from_be_bytes([body[8], body[9]])))
        }
        0x21 if len >= 36 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&body[..16]);
            Ok(format!("[{}]:{}", std::net::Ipv6Addr::from(o), u16::from_be_bytes([body[32], body[33]])))
        }
        _ => Err(bad("v2 family")),
    }
}

fn serve<S: Conn>(
    mode: Mode,
    name: &str,
    banner: Option<&str>,
    mut s: S,
    b: http::Behaviour<'_>,
) -> std::io::Result<()> {
    match mode {
        Mode::Echo => echo(s, &[]),
        Mode::NameEcho => {
            let mut buf = vec![0u8; 64 * 1024];
            let n = read_some(&mut s, &mut buf)?;
            if n == 0 {
                return s.shutdown_write();
            }
            s.write_all(format!("{name}\n").as_bytes())?;
            echo(s, &buf[..n])
        }
        Mode::Banner => {
            let b = banner.map_or_else(|| format!("220 {name} ready\r\n"), |b| b.to_string());
            s.write_all(b.as_bytes())?;
            echo(s, &[])
        }
        Mode::Oneshot => {
            s.write_all(format!("{name}\n").as_bytes())?;
            s.shutdown_write()
        }
        Mode::Stall => {
            // Never answer: swallow whatever arrives until the peer leaves.
            let mut sink = vec![0u8; 64 * 1024];
            while read_some(&mut s, &mut sink)? > 0 {}
            Ok(())
        }
        // Plain: the drop closes at once. TLS: the session just made is
        // closed properly (close_notify) before the socket.
        Mode::Close => s.shutdown_write(),
        Mode::Blackhole => Ok(()),
        Mode::Http => {
            // A clean end (either side asked to close) closes the session
            // properly, as a real server does (TLS: close_notify, so
            // clients reading to the end see a complete response); an
            // error drops the connection as it is.
            http::serve(name, &mut s, b)?;
            s.shutdown_write()
        }
        Mode::WebSocket => websocket(name, s),
    }
}

/// Accept a WebSocket handshake (answering with `X-Node: NAME`) and echo
/// every message back.
#[allow(clippy::result_large_err)] // the callback's error type is tungstenite's
fn websocket<S: Conn>(name: &str, s: S) -> std::io::Result<()> {
    let name = name.to_string();
    let add_node = move |_: &tungstenite::handshake::server::Request,
                         mut resp: tungstenite::handshake::server::Response| {
        if let Ok(v) = name.parse() {
            resp.headers_mut().insert("x-node", v);
        }
        Ok(resp)
    };
    let mut ws = tungstenite::accept_hdr(s, add_node).map_err(|e| std::io::Error::other(e.to_string()))?;
    loop {
        match ws.read() {
            Ok(m) if m.is_text() || m.is_binary() => ws.send(m).map_err(std::io::Error::other)?,
            Ok(tungstenite::Message::Close(_)) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

fn echo<S: Conn>(mut s: S, first: &[u8]) -> std::io::Result<()> {
    s.write_all(first)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = read_some(&mut s, &mut buf)?;
        if n == 0 {
            return s.shutdown_write();
        }
        s.write_all(&buf[..n])?;
    }
}
