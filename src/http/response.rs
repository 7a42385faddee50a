//! Response heads from nodes, parsed in place. A response shoal cannot
//! frame unambiguously is invalid (the caller answers 502 and counts a node
//! failure): malformed head, Content-Length with Transfer-Encoding,
//! conflicting Content-Length, a head over the limit.

use super::fields::{EditError, Fields, Span};
use super::head::{self, ConnectionTokens};
use super::{offset, Framing, HttpError, Version};

/// A response head, whatever protocol it came in: status, reason and
/// fields over bytes it owns ([`Fields`]); the HTTP/1 parser ([`parse`])
/// fills it, with the facts that decide framing and connection handling.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    pub fields: Fields,
    pub status: u16,
    reason: Span,
    pub version: Version,
    /// Bytes of the head on the wire.
    pub len: usize,
    pub connection: ConnectionTokens,
    pub framing: Framing,
}

impl ResponseHead {
    /// Whether the node keeps the connection open after this response.
    pub fn node_keep_alive(&self) -> bool {
        self.framing != Framing::UntilClose
            && if self.version == Version::Http10 {
                self.connection.keep_alive && !self.connection.close
            } else {
                !self.connection.close
            }
    }

    /// The reason phrase, as the node sent it or as set.
    pub fn reason(&self) -> &[u8] {
        self.fields.slice(self.reason)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields.get(name)
    }

    /// Change the status; the reason phrase becomes the standard one.
    /// The framing stays the node's (the body is still the node's body).
    pub fn set_status(&mut self, status: u16) -> Result<(), EditError> {
        if !(100..=999).contains(&status) {
            return Err(EditError::InvalidValue);
        }
        self.reason = self.fields.push_bytes(super::reason(status).as_bytes())?;
        self.status = status;
        Ok(())
    }

    /// Replace the reason phrase (no CR, LF or NUL).
    pub fn set_reason(&mut self, reason: &[u8]) -> Result<(), EditError> {
        if !super::fields::is_value(reason) {
            return Err(EditError::InvalidValue);
        }
        self.reason = self.fields.push_bytes(reason)?;
        Ok(())
    }

    /// Start an empty head with `status` (for a response built by code).
    pub fn new_status(&mut self, status: u16) {
        self.fields.clear();
        self.status = status;
        self.reason = self.fields.push_bytes(super::reason(status).as_bytes()).unwrap_or_default();
        self.version = Version::Http11;
        self.len = 0;
        self.connection = ConnectionTokens::default();
        self.framing = Framing::None;
    }
}

/// Parse a response head. `head_request`: the request was HEAD (no body
/// whatever the headers say).
pub fn parse(buf: &[u8], max_head: usize, head_request: bool, out: &mut ResponseHead) -> Result<Option<()>, HttpError> {
    // httparse has no uninitialised-slot variant for responses, so the
    // header array is initialised on every call: most responses fit in a
    // small one (1.5 KiB to clear instead of 8), and the rest are parsed
    // again with the full one.
    let mut small = [httparse::EMPTY_HEADER; SMALL_HEADERS];
    match parse_in(&mut small, buf, max_head, head_request, out) {
        Err(None) => parse_large(buf, max_head, head_request, out),
        r => r.map_err(|e| e.expect("only too-many-headers is None")),
    }
}

const SMALL_HEADERS: usize = 48;

#[cold]
fn parse_large(
    buf: &[u8],
    max_head: usize,
    head_request: bool,
    out: &mut ResponseHead,
) -> Result<Option<()>, HttpError> {
    let mut full = [httparse::EMPTY_HEADER; 256];
    parse_in(&mut full, buf, max_head, head_request, out)
        .map_err(|e| e.unwrap_or_else(|| HttpError::new(502, "more than 256 response headers")))
}

/// Parse into `storage`; `Err(None)`: more headers than `storage` holds.
fn parse_in<'b>(
    storage: &mut [httparse::Header<'b>],
    buf: &'b [u8],
    max_head: usize,
    head_request: bool,
    out: &mut ResponseHead,
) -> Result<Option<()>, Option<HttpError>> {
    let mut resp = httparse::Response::new(storage);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Err(None),
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Err(Some(HttpError::new(502, "response head too large")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Some(HttpError::new(502, "malformed response head"))),
    };
    if len > max_head {
        return Err(Some(HttpError::new(502, "response head too large")));
    }
    let status = resp.code.unwrap_or(0);
    if !(100..=999).contains(&status) {
        return Err(Some(HttpError::new(502, "invalid status code")));
    }
    out.fields.start_received(&buf[..len]);
    out.len = len;
    out.status = status;
    out.version = if resp.version == Some(0) { Version::Http10 } else { Version::Http11 };
    // Status line: "HTTP/1.x SP code SP reason"; keep the reason as sent.
    // It starts after any empty lines, which httparse skips.
    let (start, line_end) = super::first_line(&buf[..len]);
    out.reason = Span::of((start + 13).min(line_end)..line_end);
    for h in resp.headers.iter() {
        let name = offset(buf, h.name.as_bytes());
        let value = offset(buf, h.value);
        out.fields.push_received(name..name + h.name.len(), value..value + h.value.len());
    }
    head::connection_tokens(&out.fields, &mut out.connection);
    let body = head::body_headers(&out.fields).map_err(|_| Some(HttpError::new(502, "invalid Content-Length")))?;
    out.framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if body.transfer_encoding && body.content_length.is_some() {
        return Err(Some(HttpError::new(502, "both Content-Length and Transfer-Encoding")));
    } else if body.transfer_encoding {
        if body.chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match body.content_length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, head: bool) -> Result<ResponseHead, HttpError> {
        let mut h = ResponseHead::default();
        parse(s.as_bytes(), 8192, head, &mut h).map(|r| {
            assert!(r.is_some());
            h
        })
    }

    /// Past the small header array, the full one takes over; past 256
    /// headers the response is refused.
    #[test]
    fn many_headers() {
        let head = |n: usize| {
            let h: String = (0..n).map(|i| format!("X-H{i}: v{i}\r\n")).collect();
            format!("HTTP/1.1 200 OK\r\n{h}Content-Length: 2\r\n\r\nok")
        };
        for n in [SMALL_HEADERS - 1, SMALL_HEADERS, 100, 255] {
            let s = head(n);
            let mut h = ResponseHead::default();
            assert_eq!(parse(s.as_bytes(), 65536, false, &mut h).unwrap(), Some(()), "{n} headers");
            assert_eq!((h.fields.len(), h.framing), (n + 1, Framing::Length(2)), "{n} headers");
            assert_eq!(h.header(&format!("x-h{}", n - 1)), Some(format!("v{}", n - 1).as_bytes()));
        }
        let mut h = ResponseHead::default();
        let e = parse(head(300).as_bytes(), 65536, false, &mut h).unwrap_err();
        assert_eq!((e.status, e.reason), (502, "more than 256 response headers"));
    }

    #[test]
    fn framing() {
        assert_eq!(p("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false).unwrap().framing, Framing::Length(3));
        assert_eq!(p("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true).unwrap().framing, Framing::None);
        assert_eq!(p("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", false).unwrap().framing, Framing::None);
        assert_eq!(
            p("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false).unwrap().framing,
            Framing::Chunked
        );
        let h = p("HTTP/1.0 200 OK\r\n\r\n", false).unwrap();
        assert_eq!(h.framing, Framing::UntilClose);
        assert!(!h.node_keep_alive());
        let h = p("HTTP/1.1 404 Not Here\r\n\r\n", false).unwrap();
        assert_eq!((h.status, h.reason()), (404, &b"Not Here"[..]));
        let h = p("HTTP/1.1 204\r\n\r\n", false).unwrap();
        assert_eq!((h.status, h.reason()), (204, &b""[..]));
    }

    /// Empty lines before the status line (httparse skips them) are not
    /// taken for it: the status and reason forwarded are the node's (found
    /// by the response_head fuzz target).
    #[test]
    fn empty_lines_before_status_line() {
        for (s, status, reason) in
            [("\r\nHTTP/1.1 200 OK\r\n\r\n", 200, "OK"), ("\n\r\n\nHTTP/1.1 404 Not Here\n\n", 404, "Not Here")]
        {
            let h = p(s, false).unwrap();
            assert_eq!((h.status, h.reason()), (status, reason.as_bytes()), "{s:?}");
        }
    }

    #[test]
    fn invalid() {
        assert!(p("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false).is_err());
        assert!(p("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", false).is_err());
        assert!(p("HTTX/1.1 200 OK\r\n\r\n", false).is_err());
        assert!(p("HTTP/1.1 2000 OK\r\n\r\n", false).is_err());
    }
}
