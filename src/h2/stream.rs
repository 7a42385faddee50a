//! One HTTP/2 stream as the halves of a client connection, so the HTTP
//! driver (`proxy::pipeline`) serves it like an HTTP/1.1 connection that
//! carries one request: every module, the retries, the logs and the
//! statistics run unchanged.
//!
//! - [`StreamIn`] reads as the request in HTTP/1.1 form: a head built from
//!   the stream's HEADERS (`:authority` as `Host`, crumbled cookies joined,
//!   RFC 9113 §8.2.3), then the DATA, as it is when the client gave a
//!   `content-length` (the codec checks the sum) and chunked otherwise,
//!   with any trailers as a chunked trailer section. Flow-control window
//!   is given back only as the driver takes the bytes, so a slow node
//!   slows that stream's client, not the connection.
//! - [`StreamOut`] takes the response the driver writes in HTTP/1.1 form
//!   and sends it as HEADERS and DATA: the head parsed by the same parser
//!   as a node's, hop-by-hop fields dropped; the body by its framing
//!   (length, chunked with trailers to a trailing HEADERS, or until the
//!   end); each DATA frame waits for window, up to the stream's
//!   `send_timeout`. A response left unfinished (a node that failed
//!   mid-body) resets the stream, so the client never takes a truncated
//!   body for a whole one.
//!
//! The cost is one head written and parsed again per request: kept, as
//! it is what lets HTTP/2 share the whole HTTP/1.1 driver (docs/http2.md).

use crate::http::chunked::ChunkedFramer;
use crate::http::head::HOP_BY_HOP;
use crate::http::response::{self, ResponseHead};
use crate::http::Framing;
use crate::net::rentbuf;
use bytes::{Buf, Bytes};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use monoio::buf::IoBufMut;
use std::future::poll_fn;
use std::io;
use std::io::Write;
use std::task::Poll;
use std::time::Duration;

/// An HTTP/2 message as HTTP/1.1 bytes for the driver: a head written
/// beforehand, then the DATA, as it is when the sender gave a
/// `content-length` and chunked otherwise, with trailers as a chunked
/// trailer section. Shared by the request of a client's stream and the
/// response of a node's (`super::upstream`).
pub(crate) struct BodyIn {
    /// Bytes ready for the driver (the head, then chunk framing).
    staged: Vec<u8>,
    pos: usize,
    body: Option<RecvStream>,
    /// The DATA frame in hand (length-framed bodies go as they are).
    data: Bytes,
    chunked: bool,
    done: bool,
}

impl BodyIn {
    /// `head`: the HTTP/1.1 head, without its final CRLF; the framing
    /// field is added here (`chunked` when the body has no length).
    pub(crate) fn new(mut head: Vec<u8>, body: RecvStream, has_length: bool) -> BodyIn {
        let has_body = !body.is_end_stream();
        let chunked = has_body && !has_length;
        if chunked {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        head.extend_from_slice(b"\r\n");
        BodyIn { staged: head, pos: 0, body: has_body.then_some(body), data: Bytes::new(), chunked, done: !has_body }
    }

    /// Copy what is ready into `dst`; waits for the sender's next DATA.
    pub(crate) async fn read_into<T: IoBufMut>(&mut self, dst: &mut T) -> io::Result<usize> {
        loop {
            if self.pos < self.staged.len() {
                let n = rentbuf::fill(dst, &self.staged[self.pos..]);
                self.pos += n;
                if self.pos == self.staged.len() {
                    self.staged.clear();
                    self.pos = 0;
                }
                return Ok(n);
            }
            if !self.data.is_empty() {
                let n = rentbuf::fill(dst, &self.data);
                self.data.advance(n);
                if let Some(b) = self.body.as_mut() {
                    let _ = b.flow_control().release_capacity(n);
                }
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let Some(body) = self.body.as_mut() else { return Ok(0) };
            match poll_fn(|cx| body.poll_data(cx)).await {
                Some(Ok(d)) if d.is_empty() => {}
                Some(Ok(d)) if self.chunked => {
                    let n = d.len();
                    let _ = body.flow_control().release_capacity(n);
                    let _ = write!(self.staged, "{n:x}\r\n");
                    self.staged.extend_from_slice(&d);
                    self.staged.extend_from_slice(b"\r\n");
                }
                Some(Ok(d)) => self.data = d,
                Some(Err(e)) => return Err(io::Error::new(io::ErrorKind::ConnectionReset, e)),
                None => {
                    self.done = true;
                    if self.chunked {
                        self.staged.extend_from_slice(b"0\r\n");
                        let trailers = poll_fn(|cx| body.poll_trailers(cx)).await;
                        if let Ok(Some(t)) = trailers {
                            write_fields(&t, &mut self.staged);
                        }
                        self.staged.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
    }
}

impl Drop for BodyIn {
    /// DATA already received but not read (a request answered before its
    /// body was read: a 413, a rule's answer) is taken now, so a stream the
    /// client finished sending ends cleanly; one still being sent gets the
    /// codec's `RST_STREAM NO_ERROR` once the response is complete (RFC
    /// 9113 §8.1), never a `CANCEL` that would make the client drop the
    /// answer.
    fn drop(&mut self) {
        let Some(b) = self.body.as_mut() else { return };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        while let Poll::Ready(Some(Ok(d))) = b.poll_data(&mut cx) {
            let _ = b.flow_control().release_capacity(d.len());
        }
    }
}

/// The request side of a client's stream, read by the driver as HTTP/1.1
/// bytes.
pub struct StreamIn(BodyIn);

/// Why a stream's request cannot be written as HTTP/1.1.
#[derive(Debug)]
pub struct Unfit(pub &'static str);

impl StreamIn {
    /// The stream's request as HTTP/1.1 (the driver's parser enforces the
    /// virtual server's head limits on it).
    pub fn new(req: http::Request<RecvStream>) -> Result<StreamIn, Unfit> {
        let (parts, body) = req.into_parts();
        let mut h = Vec::with_capacity(256);
        h.extend_from_slice(parts.method.as_str().as_bytes());
        h.push(b' ');
        let authority = parts.uri.authority().map(|a| a.as_str());
        if parts.method == http::Method::CONNECT {
            h.extend_from_slice(authority.ok_or(Unfit("CONNECT without :authority"))?.as_bytes());
        } else {
            match parts.uri.path_and_query().map(|p| p.as_str()) {
                Some(p) if !p.is_empty() => h.extend_from_slice(p.as_bytes()),
                _ => h.push(b'/'),
            }
        }
        h.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(a) = authority {
            h.extend_from_slice(b"host: ");
            h.extend_from_slice(a.as_bytes());
            h.extend_from_slice(b"\r\n");
        }
        let mut cookies = 0;
        let mut length = false;
        for (name, value) in &parts.headers {
            if name == http::header::COOKIE {
                cookies += 1;
                continue;
            }
            if name == http::header::HOST && authority.is_some() {
                continue;
            }
            length |= name == http::header::CONTENT_LENGTH;
            push_field(&mut h, name.as_str().as_bytes(), value.as_bytes());
        }
        if cookies > 0 {
            h.extend_from_slice(b"cookie: ");
            for (i, c) in parts.headers.get_all(http::header::COOKIE).iter().enumerate() {
                if i > 0 {
                    h.extend_from_slice(b"; ");
                }
                h.extend_from_slice(c.as_bytes());
            }
            h.extend_from_slice(b"\r\n");
        }
        Ok(StreamIn(BodyIn::new(h, body, length)))
    }
}

pub(crate) fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_fields(map: &http::HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in map {
        push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

impl StreamIn {
    async fn read_into<T: IoBufMut>(&mut self, dst: &mut T) -> io::Result<usize> {
        self.0.read_into(dst).await
    }
}

enum OutBody {
    /// Not started (the head is not complete yet).
    Head,
    Length(u64),
    Chunked(Box<ChunkedFramer>),
    UntilEnd,
    Done,
}

/// An HTTP/1.1 body the driver writes, sent as DATA frames on an HTTP/2
/// stream: by its framing (length, chunked with trailers to a trailing
/// HEADERS, or until the end), each frame waiting for the peer's window
/// up to `send_timeout`. Shared by the response to a client's stream and
/// the request on a node's (`super::upstream`).
pub(crate) struct BodyOut {
    send: Option<SendStream<Bytes>>,
    body: OutBody,
    send_timeout: Duration,
    /// The trailer section of a chunked body, as it arrives.
    trailers: Vec<u8>,
}

impl BodyOut {
    pub(crate) fn new(send_timeout: Duration) -> BodyOut {
        BodyOut { send: None, body: OutBody::Head, send_timeout, trailers: Vec::new() }
    }

    pub(crate) fn started(&self) -> bool {
        !matches!(self.body, OutBody::Head)
    }

    /// The head went out on `send`; `framing` is the body's (`None`: the
    /// head carried END_STREAM).
    pub(crate) fn start(&mut self, send: SendStream<Bytes>, framing: Framing) {
        self.send = Some(send);
        self.body = match framing {
            Framing::None | Framing::Length(0) => OutBody::Done,
            Framing::Length(n) => OutBody::Length(n),
            Framing::Chunked => OutBody::Chunked(Box::default()),
            Framing::UntilClose => OutBody::UntilEnd,
        };
    }

    pub(crate) async fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.body {
            OutBody::Head | OutBody::Done => Ok(()),
            OutBody::UntilEnd => self.send_data(bytes, false).await,
            OutBody::Length(left) => {
                let take = (*left).min(bytes.len() as u64) as usize;
                *left -= take as u64;
                let end = *left == 0;
                if end {
                    self.body = OutBody::Done;
                }
                self.send_data(&bytes[..take], end).await
            }
            OutBody::Chunked(framer) => {
                let mut pieces: Vec<std::ops::Range<usize>> = Vec::new();
                let trailers = &mut self.trailers;
                let used = framer.advance_parts(bytes, |r| pieces.push(r), |t| trailers.extend_from_slice(t));
                let done = match used {
                    Ok(_) => framer.is_done(),
                    Err(_) => return Err(self.fail(Reason::INTERNAL_ERROR, "bad chunked body")),
                };
                for r in pieces {
                    self.send_data(&bytes[r], false).await?;
                }
                if done {
                    self.body = OutBody::Done;
                    self.finish_chunked()?;
                }
                Ok(())
            }
        }
    }

    /// The chunked body ended: its trailers (gRPC's status) as a trailing
    /// HEADERS, or an empty DATA with END_STREAM.
    fn finish_chunked(&mut self) -> io::Result<()> {
        let Some(send) = self.send.as_mut() else { return Ok(()) };
        let mut map = http::HeaderMap::new();
        let mut fields = [httparse::EMPTY_HEADER; 64];
        if let Ok(httparse::Status::Complete((_, list))) = httparse::parse_headers(&self.trailers, &mut fields) {
            for f in list.iter() {
                if let (Ok(n), Ok(v)) =
                    (http::HeaderName::from_bytes(f.name.as_bytes()), http::HeaderValue::from_bytes(f.value))
                {
                    map.append(n, v);
                }
            }
        }
        let r = if map.is_empty() { send.send_data(Bytes::new(), true) } else { send.send_trailers(map) };
        r.map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))
    }

    /// Send `data` as DATA frames as the peer's window allows.
    async fn send_data(&mut self, mut data: &[u8], end: bool) -> io::Result<()> {
        let timeout = self.send_timeout;
        let Some(send) = self.send.as_mut() else { return Err(io::ErrorKind::BrokenPipe.into()) };
        if data.is_empty() {
            if end {
                send.send_data(Bytes::new(), true).map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
            }
            return Ok(());
        }
        while !data.is_empty() {
            send.reserve_capacity(data.len());
            let mut cap = send.capacity();
            if cap == 0 {
                // A report of no capacity is followed by a poll that
                // registers for the next increase.
                let wait = poll_fn(|cx| loop {
                    match send.poll_capacity(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(0))) => continue,
                        Poll::Ready(Some(Ok(n))) => return Poll::Ready(Ok(n)),
                        Poll::Ready(Some(Err(e))) => {
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, e)))
                        }
                        Poll::Ready(None) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                    }
                });
                cap = match monoio::time::timeout(timeout, wait).await {
                    Ok(r) => r?,
                    Err(_) => {
                        send.send_reset(Reason::CANCEL);
                        self.body = OutBody::Done;
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no flow-control window within send_timeout",
                        ));
                    }
                };
            }
            let n = cap.min(data.len());
            let last = end && n == data.len();
            send.send_data(Bytes::copy_from_slice(&data[..n]), last)
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Reset the stream (once its head went out) and say why.
    pub(crate) fn fail(&mut self, reason: Reason, why: &'static str) -> io::Error {
        if let Some(s) = self.send.as_mut() {
            s.send_reset(reason);
        }
        self.body = OutBody::Done;
        io::Error::other(why)
    }

    /// The writer is done: a body framed by its end ends here; one cut
    /// short resets the stream with `INTERNAL_ERROR`. Returns false when
    /// no head was ever sent.
    pub(crate) fn close(&mut self) -> bool {
        match self.body {
            OutBody::Head => return false,
            OutBody::Done => {}
            OutBody::UntilEnd => {
                if let Some(s) = self.send.as_mut() {
                    let _ = s.send_data(Bytes::new(), true);
                }
                self.body = OutBody::Done;
            }
            OutBody::Length(_) | OutBody::Chunked(_) => {
                let _ = self.fail(Reason::INTERNAL_ERROR, "");
            }
        }
        true
    }
}

/// The response side of a client's stream, written by the driver as
/// HTTP/1.1 bytes.
pub struct StreamOut {
    respond: Option<SendResponse<Bytes>>,
    head: Vec<u8>,
    parsed: ResponseHead,
    out: BodyOut,
    head_request: bool,
    max_head: usize,
}

impl StreamOut {
    pub fn new(respond: SendResponse<Bytes>, head_request: bool, max_head: usize, send_timeout: Duration) -> StreamOut {
        StreamOut {
            respond: Some(respond),
            head: Vec::new(),
            parsed: ResponseHead::default(),
            out: BodyOut::new(send_timeout),
            head_request,
            max_head,
        }
    }

    async fn write_from(&mut self, src: &[u8]) -> io::Result<usize> {
        if self.out.started() {
            self.out.bytes(src).await?;
            return Ok(src.len());
        }
        self.head.extend_from_slice(src);
        loop {
            match response::parse(&self.head, self.max_head, self.head_request, &mut self.parsed) {
                Ok(Some(())) => {}
                Ok(None) if self.head.len() <= self.max_head => return Ok(src.len()),
                Ok(None) | Err(_) => return Err(self.reset(Reason::INTERNAL_ERROR, "unparsable response head")),
            }
            let len = self.parsed.len;
            if !(100..200).contains(&self.parsed.status) {
                break;
            }
            // Interim responses (100 Continue, 103 Early Hints) go as
            // informational HEADERS.
            if let (Some(r), Ok(resp)) = (self.respond.as_mut(), h2_head(&self.parsed, true)) {
                let _ = r.send_informational(resp);
            }
            self.head.drain(..len);
        }
        let resp = h2_head(&self.parsed, false).map_err(|_| self.reset(Reason::INTERNAL_ERROR, "response head"))?;
        let framing = self.parsed.framing;
        let Some(mut respond) = self.respond.take() else { return Err(io::ErrorKind::BrokenPipe.into()) };
        let empty = framing == Framing::None || framing == Framing::Length(0);
        let send = respond.send_response(resp, empty).map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
        self.out.start(send, framing);
        // The body bytes that came with the head, sent from where they are.
        let head = std::mem::take(&mut self.head);
        self.out.bytes(&head[self.parsed.len..]).await?;
        Ok(src.len())
    }

    /// The driver is done with the stream. No response (a rule closed the
    /// connection, the client went away): the stream is cancelled; a body
    /// cut short: `INTERNAL_ERROR` (see `BodyIn`'s drop for a request
    /// answered before its body was read).
    fn finish(&mut self) {
        if !self.out.close() {
            let _ = self.reset(Reason::CANCEL, "");
        }
    }

    /// Reset the stream, whether or not its head went out.
    fn reset(&mut self, reason: Reason, why: &'static str) -> io::Error {
        if let Some(r) = self.respond.as_mut() {
            r.send_reset(reason);
        }
        self.out.fail(reason, why)
    }
}

/// A parsed HTTP/1.1 response head as an HTTP/2 one: hop-by-hop fields
/// and the framing dropped (an interim response's `content-length` too).
/// The values share one copy of the head's bytes (one allocation, not one
/// per field).
pub(crate) fn h2_head(p: &ResponseHead, interim: bool) -> Result<http::Response<()>, http::Error> {
    let status = http::StatusCode::from_u16(p.status)?;
    let shared = Bytes::copy_from_slice(p.fields.bytes());
    let mut resp = http::Response::new(());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.reserve(p.fields.len());
    for (name, value) in p.fields.spans() {
        let n = p.fields.slice(name);
        let hop = HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h))
            || n.eq_ignore_ascii_case(b"transfer-encoding")
            || p.connection.names(&p.fields, n)
            || (interim && n.eq_ignore_ascii_case(b"content-length"));
        if !hop {
            let name = http::HeaderName::from_bytes(n)?;
            let value = http::HeaderValue::from_maybe_shared(Bytes::slice(&shared, value.range()))?;
            headers.append(name, value);
        }
    }
    Ok(resp)
}

impl Drop for StreamOut {
    fn drop(&mut self) {
        self.finish();
    }
}

/// monoio's owned-buffer writer for an HTTP/2 half that takes each write
/// whole through its `write_from` and ends the stream with its `finish`.
macro_rules! rent_writer {
    ($t:ty) => {
        impl monoio::io::AsyncWriteRent for $t {
            async fn write<T: monoio::buf::IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
                let r = self.write_from($crate::net::rentbuf::bytes(&buf)).await;
                (r, buf)
            }

            async fn writev<T: monoio::buf::IoVecBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
                (Err(std::io::Error::other("vectored writes are not used")), buf)
            }

            async fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }

            async fn shutdown(&mut self) -> std::io::Result<()> {
                self.finish();
                Ok(())
            }
        }
    };
}

/// monoio's owned-buffer reader for an HTTP/2 half that fills the buffer
/// through its `read_into`.
macro_rules! rent_reader {
    ($t:ty) => {
        impl monoio::io::AsyncReadRent for $t {
            async fn read<T: monoio::buf::IoBufMut>(&mut self, mut buf: T) -> monoio::BufResult<usize, T> {
                let r = self.read_into(&mut buf).await;
                (r, buf)
            }

            async fn readv<T: monoio::buf::IoVecBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
                (Err(std::io::Error::other("vectored reads are not used")), buf)
            }
        }
    };
}

pub(crate) use {rent_reader, rent_writer};

rent_writer!(StreamOut);
rent_reader!(StreamIn);
