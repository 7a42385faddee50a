//! Subrequests for `http.request.get/post`: one HTTP/1.1 request on a new
//! connection, with a deadline for the whole exchange, made by the task of
//! the connection whose rule asked (the shard serves everything else
//! meanwhile). Bounded: the answer's head and body have limits, and a host
//! name is resolved on a thread of its own, never on the shard.
//!
//! `http://` only: `https://` subrequests are refused (shoal carries no
//! set of public trust anchors yet; docs/rules.md lists it as missing).

use crate::http::chunked::ChunkedFramer;
use crate::http::response::{self, ResponseHead};
use crate::http::Framing;
use monoio::io::AsyncWriteRentExt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer head and body read.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 << 20;

#[derive(Debug)]
pub struct Request {
    method: &'static str,
    host: String,
    port: u16,
    target: String,
    /// Extra `Name: value` lines, CRLF-terminated.
    headers: Vec<u8>,
    body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Request {
    pub fn new(
        method: &'static str,
        url: &str,
        headers: &[u8],
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Request, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err("https:// subrequests are not supported yet".into())
            }
            _ => return Err(format!("{url:?} is not an http:// URL")),
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| format!("bad port in {url:?}"))?)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let ok = |s: &[u8]| !s.is_empty() && s.iter().all(|&c| c > b' ' && c < 0x7f);
        if !ok(host.as_bytes()) || !ok(target.as_bytes()) {
            return Err(format!("bad URL {url:?}"));
        }
        let mut lines = Vec::new();
        for line in headers.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if !line.contains(&b':') || !crate::http::fields::is_value(line) {
                return Err(format!("bad header line {:?}", String::from_utf8_lossy(line)));
            }
            lines.extend_from_slice(line);
            lines.extend_from_slice(b"\r\n");
        }
        Ok(Request { method, host, port, target, headers: lines, body, timeout })
    }
}

/// What came back: the status and the body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Make the request; an error says why there is no answer.
pub async fn run(req: Request) -> Result<Answer, String> {
    let deadline = std::time::Instant::now() + req.timeout;
    match monoio::time::timeout_at(deadline.into(), exchange(&req)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", req.timeout)),
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    // getaddrinfo blocks: on a thread of its own, never on the shard.
    let (tx, rx) = flume::bounded(1);
    let name = host.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let r = (name.as_str(), port).to_socket_addrs().map(|mut a| a.next());
            let _ = tx.send(r);
        })
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    match rx.recv_async().await {
        Ok(Ok(Some(a))) => Ok(a),
        Ok(Ok(None)) => Err(format!("{host} has no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!("cannot resolve {host}")),
    }
}

async fn exchange(req: &Request) -> Result<Answer, String> {
    let addr = resolve(&req.host, req.port).await?;
    let mut s = monoio::net::TcpStream::connect_addr(addr).await.map_err(|e| format!("connect to {addr}: {e}"))?;
    let mut out = format!("{} {} HTTP/1.1\r\nHost: {}", req.method, req.target, req.host).into_bytes();
    if req.port != 80 {
        out.extend_from_slice(format!(":{}", req.port).as_bytes());
    }
    out.extend_from_slice(b"\r\nConnection: close\r\nUser-Agent: shoal-rule\r\n");
    out.extend_from_slice(&req.headers);
    if let Some(b) = &req.body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    let (r, _) = s.write_all(out).await;
    r.map_err(|e| format!("write to {addr}: {e}"))?;
    // The head.
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut head = ResponseHead::default();
    loop {
        match response::parse(&buf, MAX_HEAD, req.method == "HEAD", &mut head) {
            Ok(Some(())) if (100..200).contains(&head.status) => {
                buf.drain(..head.len);
                continue;
            }
            Ok(Some(())) => break,
            Ok(None) => {}
            Err(e) => return Err(format!("invalid answer from {addr}: {}", e.reason)),
        }
        if read_more(&mut s, &mut buf).await? == 0 {
            return Err(format!("{addr} closed before a complete answer"));
        }
    }
    buf.drain(..head.len);
    let mut body = Vec::new();
    match head.framing {
        Framing::None => {}
        Framing::Length(n) => {
            if n > MAX_BODY as u64 {
                return Err(format!("answer body of {n} bytes, over {MAX_BODY}"));
            }
            while (buf.len() as u64) < n {
                if read_more(&mut s, &mut buf).await? == 0 {
                    return Err(format!("{addr} closed before the whole body"));
                }
            }
            body.extend_from_slice(&buf[..n as usize]);
        }
        Framing::UntilClose => loop {
            body.append(&mut buf);
            if body.len() > MAX_BODY {
                return Err(format!("answer body over {MAX_BODY} bytes"));
            }
            if read_more(&mut s, &mut buf).await? == 0 {
                break;
            }
        },
        Framing::Chunked => {
            let mut framer = ChunkedFramer::default();
            loop {
                let data = std::mem::take(&mut buf);
                let used = framer
                    .advance(&data, |r| body.extend_from_slice(&data[r]))
                    .map_err(|e| format!("invalid chunked answer: {e}"))?;
                buf.extend_from_slice(&data[used..]);
                if framer.is_done() {
                    break;
                }
                if body.len() > MAX_BODY {
                    return Err(format!("answer body over {MAX_BODY} bytes"));
                }
                buf.clear();
                if read_more(&mut s, &mut buf).await? == 0 {
                    return Err(format!("{addr} closed before the whole body"));
                }
            }
        }
    }
    Ok(Answer { status: head.status, body })
}

async fn read_more(s: &mut monoio::net::TcpStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    if buf.len() > MAX_BODY + MAX_HEAD {
        return Err("answer too large".into());
    }
    let chunk = vec![0u8; 16 * 1024];
    let (r, chunk) = monoio::io::AsyncReadRent::read(s, chunk).await;
    let n = r.map_err(|e| format!("read: {e}"))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let r = Request::new("GET", "http://127.0.0.1:8080/a?b=1", b"X-A: 1\n", None, DEFAULT_TIMEOUT).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.target.as_str()), ("127.0.0.1", 8080, "/a?b=1"));
        assert_eq!(r.headers, b"X-A: 1\r\n");
        let r = Request::new("GET", "http://example.com?q", b"", None, DEFAULT_TIMEOUT).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.target.as_str()), ("example.com", 80, "/?q"));
        let r = Request::new("GET", "http://[::1]:81/", b"", None, DEFAULT_TIMEOUT).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 81));
        assert!(Request::new("GET", "https://x/", b"", None, DEFAULT_TIMEOUT).is_err());
        assert!(Request::new("GET", "ftp://x/", b"", None, DEFAULT_TIMEOUT).is_err());
        assert!(Request::new("GET", "http://x/ y", b"", None, DEFAULT_TIMEOUT).is_err());
        assert!(Request::new("GET", "http://x/", b"Bad\r\nX: y", None, DEFAULT_TIMEOUT).is_err());
    }
}
