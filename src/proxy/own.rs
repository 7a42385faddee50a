//! shoal's own responses: any status, any headers, and a body given whole
//! ([`OwnBody::Bytes`]) or produced as it goes ([`OwnBody::Stream`], for a
//! cache hit or a generated object of any size). Modules answer with one
//! from the request phase ([`super::module::Flow::Respond`]) or in place of
//! a node's response; the driver's error responses are built the same way
//! and pass the modules' `error` phase.
//!
//! Writing ([`send`]) frames the body for the client: `Content-Length` when
//! the length is known, chunked for an HTTP/1.1 client otherwise, and for
//! an HTTP/1.0 client a body that ends when the connection closes. A HEAD
//! request gets the head alone (with the length the body would have had);
//! 1xx, 204 and 304 responses never carry a body.

use crate::http::response::ResponseHead;
use crate::http::rewrite::{self, BodyFraming, ResponseChanges};
use crate::http::Version;
use bytes::Bytes;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

/// A body produced piece by piece. `Ready(None)` ends it; an error ends
/// it early (the client connection then closes, since its framing cannot
/// be completed).
pub trait BodySource {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>>;
}

/// A body that lives in a file in memory (a cached object's), which can
/// be spliced to a plain TCP client with no copy through user space.
pub trait FileBody {
    /// The file.
    fn fd(&self) -> std::os::fd::RawFd;
    /// Where body byte 0 is in the file.
    fn base(&self) -> u64 {
        0
    }
    /// Wait until the file holds body bytes up to `want` (exclusive) or the
    /// body is complete; the bytes it holds then. An error when its filling
    /// failed.
    fn poll_available(&mut self, want: u64, cx: &mut Context<'_>) -> Poll<io::Result<u64>>;
}

pub enum OwnBody {
    Empty,
    Bytes(Bytes),
    /// Bytes `start..end` of a file body: spliced to a plain TCP client,
    /// else read through `fallback` (the same bytes).
    File {
        start: u64,
        end: u64,
        file: Box<dyn FileBody>,
        fallback: Box<dyn BodySource>,
    },
    /// `length`: the body's exact length when known (sent as
    /// `Content-Length`; a source that produces another length is cut and
    /// the connection closed).
    Stream {
        length: Option<u64>,
        source: Box<dyn BodySource>,
    },
}

impl std::fmt::Debug for OwnBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnBody::Empty => write!(f, "Empty"),
            OwnBody::Bytes(b) => write!(f, "Bytes({})", b.len()),
            OwnBody::Stream { length, .. } => write!(f, "Stream({length:?})"),
            OwnBody::File { start, end, .. } => write!(f, "File({start}..{end})"),
        }
    }
}

/// A response shoal makes itself.
#[derive(Debug)]
pub struct OwnResponse {
    /// Status, reason and fields (`Content-Length`, `Transfer-Encoding`
    /// and `Connection` are shoal's to set: any given are dropped).
    pub head: ResponseHead,
    pub body: OwnBody,
    /// Close the client connection instead of sending anything (an error
    /// module's `error_action = "close"`).
    pub close_instead: bool,
}

impl OwnResponse {
    /// An empty response with `status`.
    pub fn new(status: u16) -> OwnResponse {
        let mut head = ResponseHead::default();
        head.new_status(status);
        OwnResponse { head, body: OwnBody::Empty, close_instead: false }
    }

    /// `status` with a whole body of `content_type`.
    pub fn with_body(status: u16, content_type: &str, body: impl Into<Bytes>) -> OwnResponse {
        let mut r = OwnResponse::new(status);
        r.set_body(content_type, body);
        r
    }

    /// `status` with the body `"<status> <reason>\n"` in plain text, as
    /// shoal's error responses have by default.
    pub fn plain(status: u16) -> OwnResponse {
        OwnResponse::with_body(status, "text/plain", format!("{status} {}\n", crate::http::reason(status)))
    }

    /// Replace the body (and its `Content-Type`).
    pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) {
        let _ = self.head.fields.set("Content-Type", content_type.as_bytes());
        self.body = OwnBody::Bytes(body.into());
    }

    /// Add a header field (ignored if invalid: names and values are the
    /// caller's own constants).
    pub fn header(mut self, name: &str, value: &[u8]) -> Self {
        let _ = self.head.fields.add(name, value);
        self
    }
}

/// Where [`send`] may splice a file body: the client's socket (plain TCP,
/// splicing allowed), and the response's bandwidth class, which a spliced
/// body honours piece by piece (the writer paces everything else).
#[derive(Clone, Copy, Default)]
pub struct FileOut<'a> {
    pub socket: Option<std::os::fd::RawFd>,
    pub shape: Option<&'a crate::shaping::bandwidth::Shaper>,
}

/// How [`send`] went.
pub struct Sent {
    /// Bytes of the head written.
    pub head: u64,
    /// Body bytes written (payload, without chunk framing).
    pub body: u64,
    /// Whether the client connection can carry another request.
    pub keep_alive: bool,
}

/// Why [`send`] stopped early.
#[derive(Debug)]
pub enum SendError {
    /// Writing to the client failed.
    Client(io::Error),
    /// The body's source failed or produced another length than announced.
    Source(io::Error),
}

/// Write `resp` to the client. `head_request`: the request was HEAD;
/// `version`: the client's; `keep_alive`: the client connection may stay
/// open after this response (shoal's and the client's wishes together);
/// `file_out`: where a file body may be spliced, and its pacing.
pub async fn send<W: AsyncWriteRent>(
    w: &mut W,
    resp: &mut OwnResponse,
    head_request: bool,
    version: Version,
    keep_alive: bool,
    out: &mut Vec<u8>,
    file_out: FileOut<'_>,
) -> Result<Sent, SendError> {
    let FileOut { socket: splice_to, shape } = file_out;
    let status = resp.head.status;
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    let length = match &resp.body {
        OwnBody::Empty => Some(0),
        OwnBody::Bytes(b) => Some(b.len() as u64),
        OwnBody::Stream { length, .. } => *length,
        OwnBody::File { start, end, .. } => Some(end - start),
    };
    let framing = match length {
        _ if bodiless => None,
        Some(n) => Some(BodyFraming::Length(n)),
        None if version == Version::Http10 => Some(BodyFraming::UntilClose),
        None => Some(BodyFraming::Chunked),
    };
    let keep_alive = keep_alive && framing != Some(BodyFraming::UntilClose);
    for name in ["content-length", "transfer-encoding", "connection"] {
        resp.head.fields.remove(name);
    }
    // Shoal's own answers carry its clock; a cached response keeps the
    // Date its node gave it.
    if !(100..200).contains(&status) && !resp.head.fields.contains("date") {
        let _ = resp.head.fields.set("Date", &crate::http::date::now());
    }
    rewrite::write_response(&resp.head, &ResponseChanges { close: !keep_alive, reframed: framing }, out);
    let head_len = out.len() as u64;
    let send_body = !head_request && !bodiless;
    let mut sent = Sent { head: head_len, body: 0, keep_alive };
    match std::mem::replace(&mut resp.body, OwnBody::Empty) {
        OwnBody::Bytes(b) if send_body && b.len() <= 16 * 1024 => {
            // Small bodies go in the same send as the head.
            out.extend_from_slice(&b);
            write_vec(w, out).await.map_err(SendError::Client)?;
            sent.body = b.len() as u64;
        }
        OwnBody::Bytes(b) if send_body => {
            write_vec(w, out).await.map_err(SendError::Client)?;
            sent.body = b.len() as u64;
            let (res, _) = w.write_all(b).await;
            res.map_err(SendError::Client)?;
        }
        OwnBody::File { start, end, mut file, fallback } if send_body => {
            write_vec(w, out).await.map_err(SendError::Client)?;
            match splice_to.and_then(|fd| crate::net::splice::Pipe::take().map(|lease| (fd, lease))) {
                Some((fd, mut lease)) => {
                    let mut at = start;
                    while at < end {
                        let have = poll_fn(|cx| file.poll_available(at + 1, cx)).await.map_err(SendError::Source)?;
                        if have <= at {
                            return Err(SendError::Source(io::Error::other("body source shorter than its length")));
                        }
                        let n = have.min(end) - at;
                        crate::net::splice::file_to_socket(file.fd(), file.base() + at, n, fd, &mut lease, shape)
                            .await
                            .map_err(|e| match e {
                                crate::net::splice::SpliceError::Sink(e) => SendError::Client(e),
                                other => SendError::Source(io::Error::other(format!("{other:?}"))),
                            })?;
                        at += n;
                        sent.body += n;
                    }
                }
                None => stream(w, fallback, Some(end - start), false, out, &mut sent).await?,
            }
        }
        OwnBody::Stream { length, source } if send_body => {
            write_vec(w, out).await.map_err(SendError::Client)?;
            stream(w, source, length, framing == Some(BodyFraming::Chunked), out, &mut sent).await?;
        }
        // HEAD, a bodiless status, or no body at all: the head alone.
        _ => write_vec(w, out).await.map_err(SendError::Client)?,
    }
    Ok(sent)
}

/// Send a body produced piece by piece (the head has gone out): chunked,
/// or checked against `length`.
async fn stream<W: AsyncWriteRent>(
    w: &mut W,
    mut source: Box<dyn BodySource>,
    length: Option<u64>,
    chunked: bool,
    out: &mut Vec<u8>,
    sent: &mut Sent,
) -> Result<(), SendError> {
    while let Some(chunk) = poll_fn(|cx| source.poll_chunk(cx)).await {
        let chunk = chunk.map_err(SendError::Source)?;
        if chunk.is_empty() {
            continue;
        }
        sent.body += chunk.len() as u64;
        if length.is_some_and(|n| sent.body > n) {
            return Err(SendError::Source(io::Error::other("body source longer than its length")));
        }
        if chunked {
            out.clear();
            chunk_header(chunk.len(), out);
            write_vec(w, out).await.map_err(SendError::Client)?;
        }
        let (res, _) = w.write_all(chunk).await;
        res.map_err(SendError::Client)?;
        if chunked {
            let (res, _) = w.write_all(&b"\r\n"[..]).await;
            res.map_err(SendError::Client)?;
        }
    }
    if length.is_some_and(|n| sent.body != n) {
        return Err(SendError::Source(io::Error::other("body source shorter than its length")));
    }
    if chunked {
        let (res, _) = w.write_all(&b"0\r\n\r\n"[..]).await;
        res.map_err(SendError::Client)?;
    }
    Ok(())
}

/// `<hex size>\r\n`.
pub fn chunk_header(len: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{len:x}\r\n");
}

/// Write the whole of `out` (handing the buffer to the kernel and back).
pub async fn write_vec<W: AsyncWriteRent>(w: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    let buf = std::mem::take(out);
    let (res, buf) = w.write_all(buf).await;
    *out = buf;
    res.map(|_| ())
}
