//! RTSP framing (RFC 2326, RFC 7826): one frame at the start of a buffer,
//! either a message (a request or a response: start line, header fields,
//! a body of `Content-Length` bytes) or an interleaved binary frame (`$`,
//! a channel byte, a 16-bit length, that many bytes of RTP or RTCP).
//!
//! The parser borrows nothing: a [`Message`] holds ranges into the buffer
//! it was parsed from, so the bytes are relayed as received. It reports
//! `Ok(None)` until a frame's head is complete, then the frame with its
//! total length (the caller waits for the body or payload), or an error
//! that says what was wrong and which status answers it. Header fields are
//! parsed by `httparse::parse_headers` (RTSP's are HTTP's); the start line,
//! whose version is `RTSP/1.0` or `RTSP/2.0`, here.

use crate::http::fields::is_token;
use crate::http::trim_ows as trim;
use std::ops::Range;

/// Bounds on what one frame may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Start line and header fields, with their line ends.
    pub max_head: usize,
    pub max_headers: usize,
    /// A message body (an SDP description, a parameter list).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_head: 16 * 1024, max_headers: 64, max_body: 1 << 20 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Rtsp10,
    Rtsp20,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Rtsp10 => "RTSP/1.0",
            Version::Rtsp20 => "RTSP/2.0",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Range<usize>, uri: Range<usize> },
    Response { status: u16, reason: Range<usize> },
}

/// A request or response head, as ranges into the buffer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub version: Version,
    /// (name, value) of each header field, in order.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// Start line and header fields, through the empty line.
    pub head_len: usize,
    /// `Content-Length` (0 without one).
    pub body_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Message(Message),
    /// `$`, channel, length: `len` bytes of payload follow the 4-byte header.
    Interleaved {
        channel: u8,
        len: usize,
    },
}

impl Frame {
    /// Bytes the whole frame takes, head and body or payload.
    pub fn total_len(&self) -> usize {
        match self {
            Frame::Message(m) => m.head_len + m.body_len,
            Frame::Interleaved { len, .. } => 4 + len,
        }
    }
}

/// What was wrong with a frame; each maps to the status a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    HeadTooLarge,
    TooManyHeaders,
    BadStartLine,
    BadVersion,
    BadHeader,
    BadContentLength,
    BodyTooLarge,
}

impl Error {
    /// The status a client's request with this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            Error::HeadTooLarge | Error::TooManyHeaders => 494, // Request Header Field Too Large (RFC 7826)
            Error::BodyTooLarge => 413,
            Error::BadVersion => 505,
            _ => 400,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Error::HeadTooLarge => "message head too large",
            Error::TooManyHeaders => "too many header fields",
            Error::BadStartLine => "malformed request or status line",
            Error::BadVersion => "not RTSP/1.0 or RTSP/2.0",
            Error::BadHeader => "malformed header field",
            Error::BadContentLength => "malformed or conflicting Content-Length",
            Error::BodyTooLarge => "body too large",
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The most header fields a message may have, whatever `max_headers` says.
const MAX_HEADER_SLOTS: usize = 256;

/// The frame at the start of `buf`: `Ok(None)` while its head is
/// incomplete (and within the limits).
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<Frame>, Error> {
    if buf.first() == Some(&b'$') {
        if buf.len() < 4 {
            return Ok(None);
        }
        return Ok(Some(Frame::Interleaved {
            channel: buf[1],
            len: usize::from(u16::from_be_bytes([buf[2], buf[3]])),
        }));
    }
    // Empty lines between messages are allowed (RFC 7826 §20.2.2).
    let skip = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let Some(nl) = buf[skip..].iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_head { Err(Error::HeadTooLarge) } else { Ok(None) };
    };
    let line_end = skip + nl + 1;
    if line_end > limits.max_head {
        return Err(Error::HeadTooLarge);
    }
    let line = &buf[skip..skip + nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (start, version) = start_line(line, skip)?;
    // On the stack: a head parsed again as its bytes arrive allocates
    // nothing until it is complete.
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADER_SLOTS];
    let rest = &buf[line_end..];
    let (n, fields) = match httparse::parse_headers(rest, &mut slots[..limits.max_headers.min(MAX_HEADER_SLOTS)]) {
        Ok(httparse::Status::Complete((n, fields))) => (n, fields),
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head { Err(Error::HeadTooLarge) } else { Ok(None) };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
        Err(_) => return Err(Error::BadHeader),
    };
    let head_len = line_end + n;
    if head_len > limits.max_head {
        return Err(Error::HeadTooLarge);
    }
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let from = s.as_ptr() as usize - base;
        from..from + s.len()
    };
    let mut headers = Vec::with_capacity(fields.len());
    let mut body_len: Option<usize> = None;
    for f in fields.iter() {
        if f.name.eq_ignore_ascii_case("content-length") {
            let v = trim(f.value);
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(Error::BadContentLength);
            }
            let n: usize = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).ok_or(Error::BadContentLength)?;
            if body_len.is_some_and(|b| b != n) {
                return Err(Error::BadContentLength);
            }
            body_len = Some(n);
        }
        headers.push((range(f.name.as_bytes()), range(f.value)));
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > limits.max_body {
        return Err(Error::BodyTooLarge);
    }
    Ok(Some(Frame::Message(Message { start, version, headers, head_len, body_len })))
}

/// A request line (`METHOD URI RTSP/1.0`) or status line (`RTSP/1.0 200
/// OK`), with ranges offset by `at` (where the line starts in the buffer).
fn start_line(line: &[u8], at: usize) -> Result<(StartLine, Version), Error> {
    let version = |v: &[u8]| match v {
        b"RTSP/1.0" => Ok(Version::Rtsp10),
        b"RTSP/2.0" => Ok(Version::Rtsp20),
        v if v.starts_with(b"RTSP/") => Err(Error::BadVersion),
        _ => Err(Error::BadStartLine),
    };
    if line.starts_with(b"RTSP/") {
        let sp = line.iter().position(|&b| b == b' ').ok_or(Error::BadStartLine)?;
        let v = version(&line[..sp])?;
        let rest = &line[sp + 1..];
        if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
            return Err(Error::BadStartLine);
        }
        let status = rest[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        if !(100..=599).contains(&status) {
            return Err(Error::BadStartLine);
        }
        let reason_from = at + sp + 1 + rest.len().min(4);
        if rest[rest.len().min(4)..].iter().any(|&b| b.is_ascii_control() && b != b'\t') {
            return Err(Error::BadStartLine);
        }
        return Ok((StartLine::Response { status, reason: reason_from..at + line.len() }, v));
    }
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(ver), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Error::BadStartLine);
    };
    // A method may not begin with `$`: at the start of a frame `$` means
    // interleaved data, so such a message would be framed differently once
    // the empty lines before it are gone (a rule's rewrite drops them).
    if method.first() == Some(&b'$') || !is_token(method) {
        return Err(Error::BadStartLine);
    }
    if uri.is_empty() || uri.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(Error::BadStartLine);
    }
    let v = version(ver)?;
    let m = at..at + method.len();
    let u = m.end + 1..m.end + 1 + uri.len();
    Ok((StartLine::Request { method: m, uri: u }, v))
}

/// The session identifier in a `Session` field's value: what comes before
/// any `;timeout=`, trimmed; `None` when empty.
pub fn session_id(value: &[u8]) -> Option<&[u8]> {
    let id = trim(value.split(|&b| b == b';').next().unwrap_or(value));
    (!id.is_empty()).then_some(id)
}

impl Message {
    /// The first header field named `name` (case-insensitive), trimmed.
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| trim(&buf[v.clone()]))
    }

    /// A request's method.
    pub fn method<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        match &self.start {
            StartLine::Request { method, .. } => Some(&buf[method.clone()]),
            StartLine::Response { .. } => None,
        }
    }

    /// A request's URI, as sent.
    pub fn uri<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(&buf[uri.clone()]),
            StartLine::Response { .. } => None,
        }
    }

    /// A response's status.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// The session identifier of the `Session` field (before any `;timeout=`).
    pub fn session<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        session_id(self.header(buf, "session")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(buf: &[u8]) -> Message {
        match parse(buf, &Limits::default()) {
            Ok(Some(Frame::Message(m))) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_responses_and_interleaved_frames() {
        let req = b"DESCRIBE rtsp://media.example.com/clip RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\nrest";
        let m = msg(req);
        assert_eq!(m.method(req), Some(&b"DESCRIBE"[..]));
        assert_eq!(m.uri(req), Some(&b"rtsp://media.example.com/clip"[..]));
        assert_eq!((m.version, m.header(req, "cseq"), m.body_len), (Version::Rtsp10, Some(&b"2"[..]), 0));
        assert_eq!(m.head_len, req.len() - 4);
        let resp = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 12345678;timeout=60\r\nContent-Length: 5\r\n\r\nv=0\r\n";
        let m = msg(resp);
        assert_eq!((m.status(), m.session(resp), m.body_len), (Some(200), Some(&b"12345678"[..]), 5));
        assert_eq!(Frame::Message(m).total_len(), resp.len());
        assert_eq!(
            parse(b"$\x01\x00\x10abc", &Limits::default()),
            Ok(Some(Frame::Interleaved { channel: 1, len: 16 }))
        );
        assert_eq!(parse(b"$\x01\x00", &Limits::default()), Ok(None));
        // RTSP/2.0, bare LF line ends, empty lines before a message.
        let m = msg(b"\r\nOPTIONS * RTSP/2.0\nCSeq: 1\n\n");
        assert_eq!((m.version, m.status()), (Version::Rtsp20, None));
    }

    #[test]
    fn incomplete_heads_wait_and_every_prefix_agrees() {
        let req = b"SETUP rtsp://h/s/track1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n";
        for n in 0..req.len() - 1 {
            assert_eq!(parse(&req[..n], &Limits::default()), Ok(None), "prefix {n}");
        }
        assert!(matches!(parse(req, &Limits::default()), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn malformed_frames_are_refused_with_their_status() {
        let limits = Limits { max_head: 200, max_headers: 4, max_body: 100 };
        let table: &[(&[u8], Error, u16)] = &[
            (b"DESCRIBE rtsp://h/ HTTP/1.1\r\n\r\n", Error::BadStartLine, 400),
            (b"DESCRIBE rtsp://h/ RTSP/3.0\r\n\r\n", Error::BadVersion, 505),
            (b"DESCRIBE  RTSP/1.0\r\n\r\n", Error::BadStartLine, 400),
            (b"DESC(RIBE rtsp://h/ RTSP/1.0\r\n\r\n", Error::BadStartLine, 400),
            (b"\r\n$ETUP rtsp://h/ RTSP/1.0\r\n\r\n", Error::BadStartLine, 400),
            (b"RTSP/1.0 20 OK\r\n\r\n", Error::BadStartLine, 400),
            (b"RTSP/1.0 999 Odd\r\n\r\n", Error::BadStartLine, 400),
            (b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n", Error::BadHeader, 400),
            (b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n", Error::BadContentLength, 400),
            (b"OPTIONS * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", Error::BadContentLength, 400),
            (b"OPTIONS * RTSP/1.0\r\nContent-Length: 101\r\n\r\n", Error::BodyTooLarge, 413),
            (b"OPTIONS * RTSP/1.0\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n", Error::TooManyHeaders, 494),
        ];
        for (input, err, status) in table {
            assert_eq!(parse(input, &limits), Err(*err), "{}", String::from_utf8_lossy(input));
            assert_eq!(err.status(), *status);
        }
        let long = [b"OPTIONS * RTSP/1.0\r\nX: ".as_slice(), &[b'a'; 300]].concat();
        assert_eq!(parse(&long, &limits), Err(Error::HeadTooLarge));
        assert_eq!(parse(&[b'A'; 201], &limits), Err(Error::HeadTooLarge));
    }
}
