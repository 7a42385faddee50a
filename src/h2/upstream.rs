//! One request to a node over HTTP/2, as the halves of a node connection,
//! so the HTTP driver's node exchange (retries, body streaming, response
//! phases) runs unchanged for pools that speak HTTP/2 (`http2 = true`).
//!
//! - [`NodeOut`] takes the request head and body the driver writes in
//!   HTTP/1.1 form and sends them as HEADERS and DATA on a new stream of
//!   the node's connection (`super::client`): the `Host` field becomes
//!   `:authority`, hop-by-hop fields are dropped, `te: trailers` is added
//!   for gRPC (the driver drops `te` as hop-by-hop on HTTP/1.1), a chunked
//!   body's trailers go as a trailing HEADERS.
//! - [`NodeIn`] reads as the node's response in HTTP/1.1 form: a head
//!   with `Connection: close` (the stream carries one exchange, so the
//!   driver never pools it), then the DATA (chunked unless the node gave
//!   a length) and its trailers (gRPC's `grpc-status`) as a chunked
//!   trailer section, which the client side turns back into trailers.

use super::stream::{push_field, BodyIn, BodyOut};
use crate::http::head::HOP_BY_HOP;
use crate::http::Framing;
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use monoio::buf::IoBufMut;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Fields a request head may have that an HTTP/2 request may not carry.
const NOT_FORWARDED: &[&[u8]] = &[b"host", b"transfer-encoding"];

#[derive(Default)]
struct Exchange {
    response: Option<ResponseFuture>,
    /// The request could not be sent: the reader fails too.
    failed: bool,
    waker: Option<Waker>,
}

impl Exchange {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The halves of one request on `send` (ready for a stream). `tls`: the
/// scheme is https.
pub fn pair(send: SendRequest<Bytes>, tls: bool, max_head: usize, send_timeout: Duration) -> (NodeIn, NodeOut) {
    let x = Rc::new(RefCell::new(Exchange::default()));
    let out = NodeOut {
        send: Some(send),
        x: x.clone(),
        head: Vec::new(),
        out: BodyOut::new(send_timeout),
        scheme: if tls { "https" } else { "http" },
        max_head,
    };
    (NodeIn { x, body: None }, out)
}

/// The request side: HTTP/1.1 bytes in, a stream out.
pub struct NodeOut {
    send: Option<SendRequest<Bytes>>,
    x: Rc<RefCell<Exchange>>,
    head: Vec<u8>,
    out: BodyOut,
    scheme: &'static str,
    max_head: usize,
}

impl NodeOut {
    async fn write_from(&mut self, src: &[u8]) -> io::Result<usize> {
        if self.out.started() {
            self.out.bytes(src).await?;
            return Ok(src.len());
        }
        self.head.extend_from_slice(src);
        let (request, framing, len) = match parse_head(&self.head, self.scheme) {
            Ok(Some(x)) => x,
            Ok(None) if self.head.len() <= self.max_head => return Ok(src.len()),
            Ok(None) => return Err(self.failed("request head over the limit")),
            Err(why) => return Err(self.failed(why)),
        };
        let Some(mut send) = self.send.take() else { return Err(io::ErrorKind::BrokenPipe.into()) };
        let end = matches!(framing, Framing::None | Framing::Length(0));
        let (response, stream) = match send.send_request(request, end) {
            Ok(x) => x,
            Err(e) => {
                self.x.borrow_mut().failed = true;
                self.x.borrow_mut().wake();
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, e));
            }
        };
        {
            let mut x = self.x.borrow_mut();
            x.response = Some(response);
            x.wake();
        }
        self.out.start(stream, framing);
        let head = std::mem::take(&mut self.head);
        self.out.bytes(&head[len..]).await?;
        Ok(src.len())
    }

    fn failed(&mut self, why: &'static str) -> io::Error {
        let mut x = self.x.borrow_mut();
        x.failed = true;
        x.wake();
        io::Error::other(why)
    }
}

/// A request head as HTTP/2, its body's framing, its length as HTTP/1.1.
type ParsedHead = (http::Request<()>, Framing, usize);

/// The HTTP/1.1 request head at the start of `head` as an HTTP/2 one, its
/// body's framing and the head's length; `None` while incomplete. (A
/// function of its own, not inlined in the writer: its field array would
/// otherwise live in every node write's future.)
#[inline(never)]
fn parse_head(head: &[u8], scheme: &str) -> Result<Option<ParsedHead>, &'static str> {
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) => h2_request(&req, scheme).map(|(r, f)| Some((r, f, n))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err("request head not writable as HTTP/2"),
    }
}

/// The parsed HTTP/1.1 request as an HTTP/2 one, and its body's framing.
fn h2_request(req: &httparse::Request<'_, '_>, scheme: &str) -> Result<(http::Request<()>, Framing), &'static str> {
    let method = req.method.ok_or("no method")?;
    let target = req.path.ok_or("no target")?;
    let host = req.headers.iter().find(|h| h.name.eq_ignore_ascii_case("host")).map(|h| h.value);
    let uri = if target.starts_with('/') || target == "*" {
        let host = std::str::from_utf8(host.ok_or("no Host")?).map_err(|_| "Host is not text")?;
        format!("{scheme}://{host}{target}")
    } else {
        target.to_owned()
    };
    let mut b = http::Request::builder().method(method).uri(uri);
    let mut framing = Framing::None;
    let mut grpc = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n =
                std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()).ok_or("bad Content-Length")?;
            framing = Framing::Length(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            grpc = h.value.starts_with(b"application/grpc");
        }
        if HOP_BY_HOP.iter().chain(NOT_FORWARDED).any(|x| name.eq_ignore_ascii_case(x)) {
            continue;
        }
        b = b.header(h.name, h.value);
    }
    if grpc {
        b = b.header("te", "trailers");
    }
    b.body(()).map(|r| (r, framing)).map_err(|_| "request head not valid in HTTP/2")
}

impl Drop for NodeOut {
    fn drop(&mut self) {
        self.finish();
    }
}

impl NodeOut {
    /// The driver is done: a request body cut short resets the stream.
    fn finish(&mut self) {
        self.out.close();
    }
}

super::stream::rent_writer!(NodeOut);

/// The response side: a stream in, HTTP/1.1 bytes out.
pub struct NodeIn {
    x: Rc<RefCell<Exchange>>,
    body: Option<BodyIn>,
}

impl NodeIn {
    async fn read_into<T: IoBufMut>(&mut self, dst: &mut T) -> io::Result<usize> {
        if self.body.is_none() {
            let x = self.x.clone();
            let resp = poll_fn(|cx| {
                let mut guard = x.borrow_mut();
                let x = &mut *guard;
                if let Some(f) = x.response.as_mut() {
                    return Pin::new(f).poll(cx);
                }
                if x.failed {
                    return Poll::Ready(Err(h2::Error::from(h2::Reason::CANCEL)));
                }
                x.waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionReset, e))?;
            self.body = Some(h1_response(resp));
        }
        match self.body.as_mut() {
            Some(b) => b.read_into(dst).await,
            None => Ok(0),
        }
    }
}

/// A node's HTTP/2 response as an HTTP/1.1 message for the driver.
fn h1_response(resp: http::Response<h2::RecvStream>) -> BodyIn {
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let mut h = Vec::with_capacity(256);
    h.extend_from_slice(b"HTTP/1.1 ");
    h.extend_from_slice(status.as_str().as_bytes());
    h.push(b' ');
    h.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    h.extend_from_slice(b"\r\n");
    let mut length = false;
    for (name, value) in &parts.headers {
        length |= name == http::header::CONTENT_LENGTH;
        push_field(&mut h, name.as_str().as_bytes(), value.as_bytes());
    }
    h.extend_from_slice(b"connection: close\r\n");
    // A response that ends with its head and says no length (gRPC's
    // trailers-only answer) is an empty body, not one until the close.
    let bodiless = status.is_informational() || status == 204 || status == 304;
    if body.is_end_stream() && !length && !bodiless {
        h.extend_from_slice(b"content-length: 0\r\n");
        length = true;
    }
    BodyIn::new(h, body, length)
}

super::stream::rent_reader!(NodeIn);
