//! Request heads: parsed in place, validated strictly (RFC 9112), kept as
//! spans of the connection's buffer so unchanged bytes are forwarded as
//! they came.
//!
//! Refused, with the status given: an unparsable head, a bad method,
//! target or version, control characters, obs-fold or whitespace before a
//! colon (400, by httparse's strict request parsing); Content-Length with
//! Transfer-Encoding, conflicting or malformed Content-Length, a
//! Transfer-Encoding whose final coding is not `chunked`, or any
//! Transfer-Encoding on HTTP/1.0 (400); a missing or repeated Host on
//! HTTP/1.1 (400); an Expect other than `100-continue` (417); a head over
//! the size limit or with too many fields (431); a target over its limit
//! (414); an unsupported version (505).

use super::fields::{is_token, EditError, Fields, Span};
use super::head::{self, BodyHeaders, ConnectionTokens};
use super::{offset, Framing, HttpError, Version};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Whole head (request line + fields), bytes.
    pub max_head: usize,
    pub max_headers: usize,
    pub max_uri: usize,
}

/// A request head, whatever protocol it came in: method, target, version
/// and fields, over bytes it owns ([`Fields`]). Edits keep what was
/// received readable ([`RequestHead::original_target`],
/// [`Fields::original`]). The HTTP/1 parser ([`parse`]) fills it, and
/// also the message facts that decide framing and connection handling.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub fields: Fields,
    method: Span,
    target: Span,
    /// The target and the request line as received (access log, `%r`).
    received_target: Span,
    line: Span,
    pub version: Version,
    /// Bytes of the head on the wire, including the final empty line.
    pub len: usize,
    pub connection: ConnectionTokens,
    pub framing: Framing,
    pub expect_continue: bool,
    /// `Upgrade` requested (Connection: upgrade plus an Upgrade header).
    pub upgrade: bool,
}

impl RequestHead {
    pub fn method(&self) -> &[u8] {
        self.fields.slice(self.method)
    }

    /// The request target (origin form `/path?query`, or absolute form).
    pub fn target(&self) -> &[u8] {
        self.fields.slice(self.target)
    }

    /// The target's path: up to the first `?`.
    pub fn path(&self) -> &[u8] {
        let t = self.target();
        t.iter().position(|&c| c == b'?').map_or(t, |q| &t[..q])
    }

    /// The target's query, without the `?`; `None` when it has none.
    pub fn query(&self) -> Option<&[u8]> {
        let t = self.target();
        t.iter().position(|&c| c == b'?').map(|q| &t[q + 1..])
    }

    /// The target as received, whatever edits did since.
    pub fn received_target(&self) -> &[u8] {
        self.fields.slice(self.received_target)
    }

    /// `METHOD SP target SP version` exactly as received.
    pub fn request_line(&self) -> &[u8] {
        self.fields.slice(self.line)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields.get(name)
    }

    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// Whether the client sent HEAD, whatever the method is now (a rule
    /// or module may have turned a GET into a HEAD probe): what the
    /// client's answer must carry depends on this one.
    pub fn client_sent_head(&self) -> bool {
        self.request_line().starts_with(b"HEAD ")
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        if self.version == Version::Http10 {
            self.connection.keep_alive && !self.connection.close
        } else {
            !self.connection.close
        }
    }

    /// Replace the method (a token).
    pub fn set_method(&mut self, method: &[u8]) -> Result<(), EditError> {
        if !is_token(method) {
            return Err(EditError::InvalidValue);
        }
        self.method = self.fields.push_bytes(method)?;
        Ok(())
    }

    /// Replace the whole target. It must start with `/` (or be `*`) or be
    /// an absolute `http(s)://` URL, and hold no whitespace or control
    /// bytes.
    pub fn set_target(&mut self, target: &[u8]) -> Result<(), EditError> {
        if !valid_target(target) {
            return Err(EditError::InvalidValue);
        }
        self.target = self.fields.push_bytes(target)?;
        Ok(())
    }

    /// Replace the path, keeping the query.
    pub fn set_path(&mut self, path: &[u8]) -> Result<(), EditError> {
        if !path.starts_with(b"/") || path.contains(&b'?') || !valid_target(path) {
            return Err(EditError::InvalidValue);
        }
        let path_len = self.path().len() as u32;
        let query = Span { start: self.target.start + path_len, end: self.target.end };
        let start = self.fields.push_bytes(path)?.start;
        let end = self.fields.push_within(query)?.end;
        self.target = Span { start, end };
        Ok(())
    }

    /// Replace the query (`None`: no query at all), keeping the path.
    pub fn set_query(&mut self, query: Option<&[u8]>) -> Result<(), EditError> {
        if query.is_some_and(|q| !q.is_empty() && !valid_target(q)) {
            return Err(EditError::InvalidValue);
        }
        let path = Span { start: self.target.start, end: self.target.start + self.path().len() as u32 };
        let Span { start, mut end } = self.fields.push_within(path)?;
        if let Some(q) = query {
            self.fields.push_bytes(b"?")?;
            end = self.fields.push_bytes(q)?.end;
        }
        self.target = Span { start, end };
        Ok(())
    }
}

/// Bytes a target may hold: visible ASCII, no `#` (RFC 9112 §3.2).
fn valid_target(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(|&c| c > b' ' && c < 0x7f && c != b'#')
}

/// Parse a request head at the start of `buf`. `Ok(None)`: incomplete (read
/// more, unless `buf` is already at `limits.max_head`, which the caller
/// reports with [`incomplete_error`]).
pub fn parse(buf: &[u8], limits: &Limits, out: &mut RequestHead) -> Result<Option<()>, HttpError> {
    // Uninitialised header slots: httparse writes only those it fills, so a
    // parse does not pay for zeroing 256 entries first.
    let mut storage = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); 256];
    let n = limits.max_headers.min(storage.len());
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut storage[..n]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::new(431, "too many header fields")),
        Err(httparse::Error::Version) => {
            // A well-formed but unsupported version is 505; garbage is 400.
            let line = buf.split(|&c| c == b'\n').next().unwrap_or_default();
            let supported_form = line.windows(7).any(|w| w.starts_with(b" HTTP/") && w[6].is_ascii_digit());
            return Err(if supported_form {
                HttpError::new(505, "unsupported HTTP version")
            } else {
                HttpError::new(400, "malformed HTTP version")
            });
        }
        Err(httparse::Error::Token) => return Err(HttpError::new(400, "invalid method")),
        Err(httparse::Error::HeaderName) => return Err(HttpError::new(400, "invalid header name")),
        Err(httparse::Error::HeaderValue) => return Err(HttpError::new(400, "invalid header value")),
        Err(_) => return Err(HttpError::new(400, "malformed request head")),
    };
    if len > limits.max_head {
        return Err(HttpError::new(431, "request head too large"));
    }
    let method = req.method.unwrap_or_default().as_bytes();
    let target = req.path.unwrap_or_default().as_bytes();
    // The head's own copy: spans into `buf` are spans into the copy.
    out.fields.start_received(&buf[..len]);
    out.len = len;
    out.method = Span::of(offset(buf, method)..offset(buf, method) + method.len());
    out.target = Span::of(offset(buf, target)..offset(buf, target) + target.len());
    out.received_target = out.target;
    // The request line starts after any empty lines (RFC 9112 §2.2:
    // ignored before a request, as httparse does).
    let (start, line_end) = super::first_line(&buf[..len]);
    out.line = Span::of(start..line_end);
    out.version = if req.version == Some(0) { Version::Http10 } else { Version::Http11 };
    for h in req.headers.iter() {
        let name = offset(buf, h.name.as_bytes());
        let value = offset(buf, h.value);
        out.fields.push_received(name..name + h.name.len(), value..value + h.value.len());
    }
    if target.len() > limits.max_uri {
        return Err(HttpError::new(414, "request target too long"));
    }
    check_target(method, target)?;

    let mut hosts = 0;
    out.expect_continue = false;
    let mut upgrade_header = false;
    for (name, value) in out.fields.iter() {
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                out.expect_continue = true;
            } else {
                return Err(HttpError::new(417, "unsupported Expect"));
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_header = true;
        }
    }
    if out.version == Version::Http11 && hosts != 1 {
        return Err(HttpError::new(400, if hosts == 0 { "missing Host" } else { "repeated Host" }));
    }
    head::connection_tokens(&out.fields, &mut out.connection);
    out.upgrade = upgrade_header && out.connection.upgrade;
    let body = head::body_headers(&out.fields)?;
    out.framing = request_framing(body, out.version)?;
    Ok(Some(()))
}

fn request_framing(b: BodyHeaders, version: Version) -> Result<Framing, HttpError> {
    match b {
        BodyHeaders { transfer_encoding: true, content_length: Some(_), .. } => {
            Err(HttpError::new(400, "both Content-Length and Transfer-Encoding"))
        }
        BodyHeaders { transfer_encoding: true, .. } if version == Version::Http10 => {
            Err(HttpError::new(400, "Transfer-Encoding in an HTTP/1.0 request"))
        }
        BodyHeaders { transfer_encoding: true, chunked: true, .. } => Ok(Framing::Chunked),
        BodyHeaders { transfer_encoding: true, .. } => {
            Err(HttpError::new(400, "Transfer-Encoding whose final coding is not chunked"))
        }
        BodyHeaders { content_length: Some(0), .. } | BodyHeaders { content_length: None, .. } => Ok(Framing::None),
        BodyHeaders { content_length: Some(n), .. } => Ok(Framing::Length(n)),
    }
}

/// Request-target forms (RFC 9112 §3.2): origin-form for most methods,
/// absolute-form accepted, `*` only for OPTIONS. CONNECT is not proxied.
fn check_target(method: &[u8], target: &[u8]) -> Result<(), HttpError> {
    if method == b"CONNECT" {
        return Err(HttpError::new(405, "CONNECT is not supported"));
    }
    let ok = match target.first() {
        Some(b'/') => true,
        Some(b'*') => target.len() == 1 && method == b"OPTIONS",
        _ => {
            let lower = target.get(..8).map(|p| p.to_ascii_lowercase());
            lower.is_some_and(|p| p.starts_with(b"http://") || p.starts_with(b"https://"))
        }
    };
    if ok && !target.contains(&b'#') {
        Ok(())
    } else {
        Err(HttpError::new(400, "invalid request target"))
    }
}

/// The error for a head that is still incomplete when the buffer holds
/// `limits.max_head` bytes: 414 while still in the request line, else 431.
pub fn incomplete_error(buf: &[u8]) -> HttpError {
    if buf.contains(&b'\n') {
        HttpError::new(431, "request head too large")
    } else {
        HttpError::new(414, "request line too long")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits { max_head: 8192, max_headers: 64, max_uri: 1024 };

    fn p(s: &str) -> Result<RequestHead, HttpError> {
        let mut h = RequestHead::default();
        match parse(s.as_bytes(), &L, &mut h)? {
            Some(()) => Ok(h),
            None => Err(HttpError::new(0, "incomplete")),
        }
    }

    #[test]
    fn parses_and_frames() {
        let s = "POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: keep-alive, X-Foo\r\n\r\nhello";
        let h = p(s).unwrap();
        assert_eq!(h.method(), b"POST");
        assert_eq!(h.target(), b"/a?b");
        assert_eq!((h.path(), h.query()), (&b"/a"[..], Some(&b"b"[..])));
        assert_eq!(h.request_line(), b"POST /a?b HTTP/1.1");
        assert_eq!(h.framing, Framing::Length(5));
        assert_eq!(h.len, s.len() - 5);
        assert_eq!(h.connection.others.len(), 1);
        assert!(h.keep_alive());
        let h = p("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = p("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive());
        let h = p("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(h.request_line(), b"GET / HTTP/1.1", "leading empty lines are not the request line");
    }

    #[test]
    fn rejects_ambiguous_framing() {
        for (req, status) in [
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET nope HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ] {
            assert_eq!(p(req).map(|_| ()).unwrap_err().status, status, "{req:?}");
        }
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000));
        assert_eq!(p(&long).unwrap_err().status, 414);
        let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(p(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).unwrap_err().status, 431);
        assert_eq!(incomplete_error(b"GET /aaaaaaaa").status, 414);
        assert_eq!(incomplete_error(b"GET / HTTP/1.1\r\nX: aaaa").status, 431);
    }
}

#[cfg(test)]
mod edit_tests {
    use super::*;

    #[test]
    fn target_edits() {
        let mut h = RequestHead::default();
        let s = b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        parse(s, &Limits { max_head: 4096, max_headers: 16, max_uri: 1024 }, &mut h).unwrap().unwrap();
        h.set_path(b"/c").unwrap();
        assert_eq!(h.target(), b"/c?x=1");
        h.set_query(Some(b"y=2")).unwrap();
        assert_eq!((h.path(), h.query()), (&b"/c"[..], Some(&b"y=2"[..])));
        h.set_query(None).unwrap();
        assert_eq!(h.target(), b"/c");
        h.set_method(b"POST").unwrap();
        assert_eq!(h.method(), b"POST");
        assert_eq!(h.set_path(b"/bad path"), Err(EditError::InvalidValue));
        assert_eq!(h.set_path(b"no-slash"), Err(EditError::InvalidValue));
        assert_eq!(h.set_target(b"/x\r\nHost: evil"), Err(EditError::InvalidValue));
        assert_eq!(h.set_method(b"GE T"), Err(EditError::InvalidValue));
        // The request as received is still there.
        assert_eq!((h.received_target(), h.request_line()), (&b"/a/b?x=1"[..], &b"GET /a/b?x=1 HTTP/1.1"[..]));
    }
}
