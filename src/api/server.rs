//! The API's HTTP/1.1 server: a blocking listener on its own threads, off
//! every shard (the control plane must answer when the data plane is
//! saturated, and it serves a handful of operators, not the traffic).
//!
//! Bounded everywhere: at most `MAX_CONNECTIONS` connections (beyond them a
//! 503 and close), heads up to `MAX_HEAD`, bodies up to `MAX_BODY` with a
//! Content-Length (chunked request bodies get 411) and read only once the
//! credentials are accepted, `IDLE` between requests and `REQUEST` for a
//! whole request, so a slow client cannot hold a connection slot for ever.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MAX_CONNECTIONS: usize = 32;
const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 64;
const IDLE: Duration = Duration::from_secs(30);
/// A request's head and body, from its first byte.
const REQUEST: Duration = Duration::from_secs(30);

/// One parsed request.
pub struct Request {
    pub method: String,
    /// The path, percent-encoded as sent, without the query.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response { status, content_type, body, headers: Vec::new() }
    }
}

/// What answers requests.
pub trait Handler: Send + Sync + 'static {
    /// Whether these credentials (the Authorization header) may send a
    /// body: checked before the body is read.
    fn authorized(&self, authorization: Option<&[u8]>) -> bool;
    fn handle(&self, req: &Request, peer: SocketAddr) -> Response;
}

/// A connection: plain TCP or TLS.
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Start serving on `listener` (already bound); returns at once.
pub fn start(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<dyn Handler>,
) -> Result<(), String> {
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn!("api: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    log::warn!("api: client {peer}: refused, {MAX_CONNECTIONS} connections already open");
                    let mut s = stream;
                    let _ = s.write_all(&simple(503, "too many API connections"));
                    continue;
                }
                let (handler, tls, done) = (handler.clone(), tls.clone(), active.clone());
                let spawned = std::thread::Builder::new().name("api-conn".into()).spawn(move || {
                    serve(stream, peer, tls, &*handler);
                    done.fetch_sub(1, Ordering::AcqRel);
                });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::AcqRel);
                    log::warn!("api: cannot start a connection thread: {e}");
                }
            }
        })
        .map_err(|e| format!("cannot start the API thread: {e}"))?;
    Ok(())
}

fn serve(stream: TcpStream, peer: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>, handler: &dyn Handler) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_write_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    // The socket under a TLS stream too, for per-read deadlines.
    let Ok(socket) = stream.try_clone() else { return };
    let mut conn: Box<dyn Conn> = match tls {
        None => Box::new(stream),
        Some(cfg) => match rustls::ServerConnection::new(cfg) {
            Ok(c) => Box::new(rustls::StreamOwned::new(c, stream)),
            Err(e) => {
                log::warn!("api: client {peer}: TLS setup failed: {e}");
                return;
            }
        },
    };
    let mut buf = Vec::with_capacity(4096);
    loop {
        let req = match read_request(&mut conn, &socket, &mut buf, handler) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(Bad(status, why)) => {
                log::info!("api: client {peer}: {status} {why}");
                let _ = conn.write_all(&simple(status, why));
                let _ = conn.flush();
                return;
            }
        };
        let close = req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let resp = handler.handle(&req, peer);
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            resp.status,
            crate::http::reason(resp.status),
            date(),
            resp.content_type,
            if req.method == "HEAD" { 0 } else { resp.body.len() }
        );
        for (k, v) in &resp.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if req.method != "HEAD" {
            bytes.extend_from_slice(&resp.body);
        }
        if conn.write_all(&bytes).and_then(|_| conn.flush()).is_err() || close {
            return;
        }
    }
}

/// A request shoal refuses before any handler sees it.
struct Bad(u16, &'static str);

fn simple(status: u16, why: &str) -> Vec<u8> {
    let body = format!("{{\"error_id\":\"http.{status}\",\"error_text\":\"{why}\"}}\n");
    let auth = if status == 401 { "WWW-Authenticate: Basic realm=\"shoal\"\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        crate::http::reason(status),
        date(),
        body.len()
    )
    .into_bytes()
}

fn date() -> String {
    String::from_utf8_lossy(&crate::http::date::now()).into_owned()
}

/// Read one request; `Ok(None)` when the client closed (or idled out)
/// between requests. `buf` keeps bytes read past this request.
fn read_request(
    conn: &mut Box<dyn Conn>,
    socket: &TcpStream,
    buf: &mut Vec<u8>,
    handler: &dyn Handler,
) -> Result<Option<Request>, Bad> {
    let mut chunk = [0u8; 4096];
    // From the request's first byte: the time left for the rest of it.
    let mut started = (!buf.is_empty()).then(std::time::Instant::now);
    let left = |started: &Option<std::time::Instant>| -> Result<(), Bad> {
        let Some(t) = started else { return Ok(()) };
        let rest = REQUEST
            .checked_sub(t.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or(Bad(408, "request not complete in time"))?;
        let _ = socket.set_read_timeout(Some(rest.min(IDLE)));
        Ok(())
    };
    let (head_len, method, path, query, headers, length) = loop {
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Request::new(&mut hs);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let target = r.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let headers: Vec<(String, Vec<u8>)> =
                    r.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();
                let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
                if get("transfer-encoding").is_some() {
                    return Err(Bad(411, "send the body with a Content-Length"));
                }
                let length = match get("content-length") {
                    None => 0,
                    Some(v) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.trim().parse::<usize>().ok())
                        .ok_or(Bad(400, "invalid Content-Length"))?,
                };
                if length > MAX_BODY {
                    return Err(Bad(413, "request body too large"));
                }
                if length > 0 && !handler.authorized(get("authorization").map(|v| v.as_slice())) {
                    return Err(Bad(401, "authentication required (HTTP Basic, a user of [api] users)"));
                }
                break (n, r.method.unwrap_or("").to_owned(), path.to_owned(), query.to_owned(), headers, length);
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(Bad(431, "request head too large"));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(Bad(431, "too many header fields")),
            Err(_) => return Err(Bad(400, "malformed request")),
        }
        left(&started)?;
        match conn.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(Bad(400, "connection closed inside a request head")),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                started.get_or_insert_with(std::time::Instant::now);
            }
            Err(e) if buf.is_empty() && is_idle(&e) => return Ok(None),
            Err(_) if buf.is_empty() => return Ok(None),
            Err(_) => return Err(Bad(408, "request head not complete in time")),
        }
    };
    buf.drain(..head_len);
    while buf.len() < length {
        left(&started)?;
        match conn.read(&mut chunk) {
            Ok(0) => return Err(Bad(400, "connection closed inside a request body")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(Bad(408, "request body not complete in time")),
        }
    }
    let body: Vec<u8> = buf.drain(..length).collect();
    let _ = socket.set_read_timeout(Some(IDLE));
    Ok(Some(Request { method, path, query, headers, body }))
}

fn is_idle(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
