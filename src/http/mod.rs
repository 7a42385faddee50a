//! The HTTP/1.1 codec: request and response heads parsed in place with
//! httparse into spans of the connection's own buffer, body framing
//! (content-length and a streaming chunked framer), and head rewriting by
//! copying spans. No policy lives here: what to add, remove or allow is
//! the proxy's decision (`src/proxy/`).

pub mod chunked;
pub mod coding;
pub mod cookie;
pub mod date;
pub mod fields;
pub mod head;
pub mod request;
pub mod response;
pub mod rewrite;

/// A client-side protocol error: the status to answer with and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
}

impl HttpError {
    pub const fn new(status: u16, reason: &'static str) -> Self {
        HttpError { status, reason }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.status, self.reason)
    }
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    #[default]
    None,
    Length(u64),
    Chunked,
    /// Response only: the body runs until the node closes.
    UntilClose,
}

/// The protocol version a message came in (or goes out) with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Version {
    Http10,
    #[default]
    Http11,
    Http2,
}

impl Version {
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0` (as in a request line or `Via`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2.0",
        }
    }

    /// The protocol's version number as `Via` names it (`1.0`, `1.1`, `2`).
    pub fn via_str(self) -> &'static str {
        match self {
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
            Version::Http2 => "2",
        }
    }
}

/// The first line of a head after any empty lines (which a recipient
/// ignores, RFC 9112 §2.2): `(start, end)` with the line's CR excluded.
pub(crate) fn first_line(head: &[u8]) -> (usize, usize) {
    let start = head.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(head.len());
    let end = start + head[start..].iter().position(|&c| c == b'\n').unwrap_or(head.len() - start);
    let end = if end > start && head[end - 1] == b'\r' { end - 1 } else { end };
    (start, end)
}

/// Byte offset of `part` within `base` (both slices of one buffer).
pub(crate) fn offset(base: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - base.as_ptr() as usize
}

/// Standard reason phrases for the statuses shoal generates.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// RFC 9110 §9.2.2 idempotent methods.
/// `b` without optional whitespace (spaces and tabs, RFC 9110 §5.6.3)
/// at either end.
pub fn trim_ows(b: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = b.iter().position(|b| !is_ows(b)).unwrap_or(b.len());
    let end = b.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &b[start..end]
}

/// Safe methods (RFC 9110 §9.2.1): any other, answered with success,
/// invalidates what a cache holds for its URL.
pub fn is_safe(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE")
}

pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"PUT" | b"DELETE" | b"OPTIONS" | b"TRACE")
}
