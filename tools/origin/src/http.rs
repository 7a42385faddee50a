//! The HTTP/1.1 mode of shoal-origin: a deliberately simple, strict-enough
//! server for tests (keepalive, content-length and chunked request bodies),
//! steered by query parameters.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const MAX_HEAD: usize = 64 * 1024;

struct Request {
    method: String,
    target: String,
    head: Vec<u8>,
    close: bool,
    body: Vec<u8>,
}

pub fn serve(name: &str, s: TcpStream) -> std::io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::with_capacity(64 * 1024, s);
    while let Some(req) = read_request(&mut r)? {
        let close = respond(name, &req, &mut w)? || req.close;
        if close {
            break;
        }
    }
    Ok(())
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = r.read_until(b'\n', &mut head)?;
        if n == 0 {
            return Ok(None);
        }
        if head.len() > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                head.clear(); // tolerate empty lines before a request
                continue;
            }
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let version = parts.next().unwrap_or_default();
    let mut close = version == "HTTP/1.0";
    let mut length = 0usize;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse().map_err(|_| bad("bad content-length"))?,
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = v.to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t)? == 0 || t == "\r\n" || t == "\n" {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if length > 0 {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some(Request { method, target, head, close, body }))
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

fn query<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// Write the response; returns whether to close afterwards.
fn respond(name: &str, req: &Request, w: &mut TcpStream) -> std::io::Result<bool> {
    let num = |k: &str| query(&req.target, k).and_then(|v| v.parse::<u64>().ok());
    let flag = |k: &str| query(&req.target, k).is_some_and(|v| v != "0");
    if let Some(d) = num("delay") {
        std::thread::sleep(Duration::from_millis(d));
    }
    let status = num("status").unwrap_or(200);
    let body: Vec<u8> = if flag("echo") {
        req.body.clone()
    } else if flag("head") {
        req.head.clone()
    } else {
        let size = num("size").unwrap_or(0) as usize;
        (0..size).map(|i| b'a' + (i % 26) as u8).collect()
    };
    let close = flag("close");
    let chunked = flag("chunked");
    let no_body = req.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let mut h = format!("HTTP/1.1 {status} {}\r\nX-Node: {name}\r\n", reason(status));
    if chunked {
        h += "Transfer-Encoding: chunked\r\n";
    } else if status != 204 && !(100..200).contains(&status) {
        h += &format!("Content-Length: {}\r\n", body.len());
    }
    if close {
        h += "Connection: close\r\n";
    }
    h += "\r\n";
    w.write_all(h.as_bytes())?;
    if no_body {
        return Ok(close);
    }
    let slow = num("slow");
    let piece = if slow.is_some() { 1024 } else { 256 * 1024 };
    for c in body.chunks(piece) {
        if let Some(ms) = slow {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if chunked {
            w.write_all(format!("{:x}\r\n", c.len()).as_bytes())?;
            w.write_all(c)?;
            w.write_all(b"\r\n")?;
        } else {
            w.write_all(c)?;
        }
    }
    if chunked {
        w.write_all(b"0\r\n\r\n")?;
    }
    Ok(close)
}

fn reason(s: u64) -> &'static str {
    match s {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
