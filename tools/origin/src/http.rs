//! The HTTP/1.1 mode of shoal-origin: a deliberately simple, strict-enough
//! server for tests (keepalive, content-length and chunked request bodies),
//! steered by query parameters. Request bodies are streamed through a
//! SHA-256 (reported in `X-Body-Sha256` and `X-Body-Len`) and kept only when
//! the response echoes them, so gigabyte uploads cost no memory; generated
//! response bodies are streamed too.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Connections accepted by this process, numbered from 1 (`X-Conn`).
static CONNS: AtomicU64 = AtomicU64::new(0);

const MAX_HEAD: usize = 64 * 1024;

struct Request {
    method: String,
    target: String,
    head: Vec<u8>,
    close: bool,
    /// Kept only with `echo=1`.
    body: Vec<u8>,
    body_len: u64,
    body_sha: String,
    request_id: String,
}

/// Requests being answered right now, for `inflight=` in the request log.
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// How this node answers, from the command line.
pub struct Behaviour<'a> {
    pub log_requests: bool,
    pub delay_ms: u64,
    /// `--status N`.
    pub status: Option<u64>,
    pub proxy_src: Option<&'a str>,
    /// (every, for) in milliseconds.
    pub stall: Option<(u64, u64)>,
    /// TLS connections: the version (`TLSv1.2`/`TLSv1.3`) and whether the
    /// session was resumed, sent back as `X-TLS` and `X-TLS-Resumed`.
    pub tls: Option<(&'static str, bool)>,
    /// The address this connection was accepted on (`backend=self`).
    pub local: Option<std::net::SocketAddr>,
}

fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// Fix the origin's start time (stall windows count from it).
pub fn start_clock() {
    let _ = started();
}

/// Sleep out the current stall window, if inside one.
fn wait_out_stall(stall: Option<(u64, u64)>) {
    if let Some((every, len)) = stall {
        let phase = started().elapsed().as_millis() as u64 % every;
        if phase >= every - len {
            std::thread::sleep(Duration::from_millis(every - phase));
        }
    }
}

/// Serve one connection (plain TCP or TLS: reads go through a buffer,
/// responses are written to the stream under it).
pub fn serve<S: Read + Write>(name: &str, s: S, b: Behaviour<'_>) -> std::io::Result<()> {
    let Behaviour { log_requests, delay_ms, stall, .. } = b;
    let conn = CONNS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut seq = 0u64;
    while let Some(req) = read_request(&mut r)? {
        seq += 1;
        let inflight = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
        if log_requests {
            let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
            println!(
                "request {name} {} {} id={} conn={conn} len={} at={at} inflight={inflight}",
                req.method, req.target, req.request_id, req.body_len
            );
        }
        wait_out_stall(stall);
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        let res = respond(name, &req, r.get_mut(), (conn, seq), &b);
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        let close = res? || req.close;
        if close {
            break;
        }
    }
    Ok(())
}

fn read_request<S: Read + Write>(r: &mut BufReader<S>) -> std::io::Result<Option<Request>> {
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
    let mut length = 0u64;
    let mut chunked = false;
    let mut request_id = String::from("-");
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse().map_err(|_| bad("bad content-length"))?,
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "x-request-id" => request_id = v.to_string(),
            "expect" if v.eq_ignore_ascii_case("100-continue") => {
                r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
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
    let keep = query(&target, "echo").is_some_and(|v| v != "0");
    let mut body = Vec::new();
    let mut sha = Sha256::new();
    let mut body_len = 0u64;
    let mut take = |r: &mut BufReader<S>, mut n: u64| -> std::io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..want])?;
            sha.update(&buf[..want]);
            if keep {
                body.extend_from_slice(&buf[..want]);
            }
            body_len += want as u64;
            n -= want as u64;
        }
        Ok(())
    };
    if chunked {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
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
            take(r, size)?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if length > 0 {
        take(r, length)?;
    }
    let body_sha = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(Request { method, target, head, close, body, body_len, body_sha, request_id }))
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

fn queries<'a>(target: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
    let q = target.split_once('?').map_or("", |(_, q)| q);
    q.split('&').filter_map(move |kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// `%XX` and `+` (a space) decoded.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    out
}

/// Write the response; returns whether to close afterwards (an error
/// drops the connection at once).
fn respond<W: Write>(
    name: &str,
    req: &Request,
    w: &mut W,
    (conn, seq): (u64, u64),
    b: &Behaviour<'_>,
) -> std::io::Result<bool> {
    let Behaviour { proxy_src, tls, local, .. } = *b;
    let num = |k: &str| query(&req.target, k).and_then(|v| v.parse::<u64>().ok());
    let flag = |k: &str| query(&req.target, k).is_some_and(|v| v != "0");
    if let Some(d) = num("delay") {
        std::thread::sleep(Duration::from_millis(d));
    }
    let mut status = num("status").or(b.status).unwrap_or(200);
    // `etag=X`: `ETag: "X"`, and a 304 to a request whose If-None-Match
    // names it; `lm=1`: a fixed Last-Modified, and a 304 to an
    // If-Modified-Since at or after it (as a file server answers).
    let etag = query(&req.target, "etag").map(|e| format!("\"{e}\""));
    const LAST_MODIFIED: &str = "Sat, 01 Jan 2022 00:00:00 GMT";
    let lm = flag("lm");
    let inm = request_header(&req.head, "if-none-match");
    let not_modified = match (&etag, inm) {
        (Some(e), Some(v)) => v.split(',').any(|t| t.trim().trim_start_matches("W/") == e || t.trim() == "*"),
        _ => lm && request_header(&req.head, "if-modified-since").is_some_and(|v| v.trim() == LAST_MODIFIED),
    };
    if not_modified && status == 200 {
        status = 304;
    }
    let text = query(&req.target, "text").map(percent_decode);
    let fixed: Option<&[u8]> = if flag("echo") {
        Some(&req.body)
    } else if flag("head") {
        Some(&req.head)
    } else {
        text.as_deref()
    };
    let size = fixed.map_or_else(|| num("size").unwrap_or(0), |b| b.len() as u64);
    let close = flag("close");
    let chunked = flag("chunked");
    let mix = match query(&req.target, "pattern") {
        Some("mix") => Pattern::Mix,
        Some("text") => Pattern::Text,
        _ => Pattern::Alphabet,
    };
    let no_body = req.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nX-Node: {name}\r\nX-Conn: {conn}\r\nX-Seq: {seq}\r\nX-Body-Len: {}\r\nX-Body-Sha256: {}\r\n",
        reason(status),
        req.body_len,
        req.body_sha
    );
    if let Some(src) = proxy_src {
        h += &format!("X-Proxy-Src: {src}\r\n");
    }
    // `cookie=NAME`: set cookie NAME to a value naming this node
    // (`cookie_age=N` adds Max-Age); `backend=self`: set X-Zeus-Backend to
    // the address this connection was accepted on.
    if let Some(c) = query(&req.target, "cookie") {
        h += &format!("Set-Cookie: {c}={name}-{conn}-{seq}; Path=/");
        if let Some(age) = num("cookie_age") {
            h += &format!("; Max-Age={age}");
        }
        h += "\r\n";
    }
    if query(&req.target, "backend") == Some("self") {
        if let Some(a) = local {
            h += &format!("Set-Cookie: X-Zeus-Backend={a}; Path=/\r\n");
        }
    }
    // `type=MIME`: Content-Type; `hdr=NAME:VALUE` (repeatable, URL
    // encoded): a header of the caller's.
    if let Some(t) = query(&req.target, "type") {
        h += &format!("Content-Type: {}\r\n", String::from_utf8_lossy(&percent_decode(t)));
    }
    for v in queries(&req.target, "hdr") {
        h += &format!("{}\r\n", String::from_utf8_lossy(&percent_decode(v)));
    }
    if let Some(e) = &etag {
        h += &format!("ETag: {e}\r\n");
    }
    if lm {
        h += &format!("Last-Modified: {LAST_MODIFIED}\r\n");
    }
    if let Some((version, resumed)) = tls {
        h += &format!("X-TLS: {version}\r\nX-TLS-Resumed: {}\r\n", u8::from(resumed));
    }
    if chunked {
        h += "Transfer-Encoding: chunked\r\n";
    } else if status != 204 && status != 304 && !(100..200).contains(&status) {
        h += &format!("Content-Length: {size}\r\n");
    }
    if close {
        h += "Connection: close\r\n";
    }
    h += "\r\n";
    if no_body {
        w.write_all(h.as_bytes())?;
        return Ok(close);
    }
    // Small responses go out in one write, so a node killed mid-response
    // never leaves a client with a head and half a body.
    // `cut=N`: close after N body bytes, short of the declared size.
    let cut = num("cut");
    let small = !chunked && size <= 64 * 1024 && num("slow").is_none() && num("rate").is_none() && cut.is_none();
    if small {
        let mut all = h.into_bytes();
        match fixed {
            Some(b) => all.extend_from_slice(b),
            None => all.extend((0..size).map(|i| byte_at(i, mix))),
        }
        w.write_all(&all)?;
        return Ok(close);
    }
    w.write_all(h.as_bytes())?;
    let slow = num("slow");
    let rate = num("rate");
    let began = std::time::Instant::now();
    let piece = if slow.is_some() { 1024 } else { 256 * 1024 };
    let mut generated = vec![0u8; piece];
    let mut sent = 0u64;
    while sent < size {
        if cut.is_some_and(|c| sent >= c) {
            w.flush()?;
            // An error, not a close: the connection breaks off (over TLS,
            // without close_notify), as a failing node's would.
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "cut=N: response cut short"));
        }
        let n = (size - sent).min(piece as u64).min(cut.map_or(u64::MAX, |c| c - sent)) as usize;
        let c: &[u8] = match fixed {
            Some(b) => &b[sent as usize..sent as usize + n],
            None => {
                // Byte i of the body is b'a' + i % 26, wherever it falls.
                for (k, b) in generated[..n].iter_mut().enumerate() {
                    *b = byte_at(sent + k as u64, mix);
                }
                &generated[..n]
            }
        };
        if let Some(ms) = slow {
            std::thread::sleep(Duration::from_millis(ms));
        }
        // `rate=B`: about B bytes per second (a node slower than the
        // clients, to watch a body while it arrives).
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64((sent + n as u64) as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if chunked {
            w.write_all(format!("{:x}\r\n", c.len()).as_bytes())?;
            w.write_all(c)?;
            w.write_all(b"\r\n")?;
        } else {
            w.write_all(c)?;
        }
        sent += n as u64;
    }
    if chunked {
        w.write_all(b"0\r\n\r\n")?;
    }
    Ok(close)
}

/// What a generated body holds (`pattern=`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// `b'a' + i % 26` (the default).
    Alphabet,
    /// A mix of every byte of `i` (`mix`: a range read from the wrong
    /// offset shows; incompressible).
    Mix,
    /// Words in a random order (`text`): compresses as prose does, for
    /// the compression tests and benchmarks.
    Text,
}

/// Byte `i` of a generated body.
pub fn byte_at(i: u64, p: Pattern) -> u8 {
    match p {
        Pattern::Alphabet => b'a' + (i % 26) as u8,
        Pattern::Mix => {
            let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8 ^ (i as u8)
        }
        Pattern::Text => {
            let t = text();
            t[(i % t.len() as u64) as usize]
        }
    }
}

/// 4 MiB of words chosen by a fixed generator: longer than the windows of
/// gzip and the default brotli and zstd levels, so a body repeats it only
/// past what a compressor can see.
fn text() -> &'static [u8] {
    static TEXT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "the",
            "of",
            "and",
            "to",
            "in",
            "a",
            "is",
            "that",
            "for",
            "it",
            "as",
            "was",
            "with",
            "be",
            "by",
            "on",
            "not",
            "he",
            "this",
            "are",
            "or",
            "his",
            "from",
            "at",
            "which",
            "but",
            "have",
            "an",
            "had",
            "they",
            "you",
            "were",
            "their",
            "one",
            "all",
            "we",
            "can",
            "her",
            "has",
            "there",
            "been",
            "if",
            "more",
            "when",
            "will",
            "would",
            "who",
            "so",
            "no",
            "proxy",
            "node",
            "pool",
            "request",
            "response",
            "cache",
            "stream",
            "shard",
            "connection",
            "traffic",
            "balance",
            "header",
            "body",
            "server",
            "client",
            "rule",
            "class",
            "bandwidth",
            "service",
            "level",
            "monitor",
            "session",
            "persistence",
            "virtual",
            "network",
            "media",
        ];
        let mut out = Vec::with_capacity(4 << 20);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut words_in_line = 0;
        while out.len() < 4 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
            words_in_line += 1;
            if words_in_line == 12 {
                out.extend_from_slice(b".\n");
                words_in_line = 0;
            } else {
                out.push(b' ');
            }
        }
        out.truncate(4 << 20);
        out
    })
}

/// The value of request header `name` (case-insensitive), from the head.
fn request_header(head: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(head).lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
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
