//! The bytes of an HTTP/2 connection between its socket (plain or TLS,
//! monoio's owned-buffer I/O) and the `h2` codec (poll-based
//! `AsyncRead`/`AsyncWrite`).
//!
//! Two small tasks own the socket's halves: the reader reads into a
//! buffer and hands it over (swapped, not copied, when the codec has
//! taken everything before), the writer sends what the codec queued. The
//! codec's side ([`Io`]) only moves bytes in memory and wakes them, so it
//! never holds an in-flight ring operation that dropping it would lose.
//! Both queues are bounded: the reader stops reading while the codec has
//! [`IN_LIMIT`] bytes unread, and the codec's writes wait while
//! [`OUT_LIMIT`] bytes are queued, which is how a slow client slows the
//! connection rather than growing it.
//!
//! Inbound bytes pass the flood guard ([`super::flood`]) on their way to
//! the codec; when it trips, the codec is given nothing more and
//! [`Io::tripped`] says why.

use super::flood::{Guard, Tripped};
use crate::net::stream::{ConnRead, ConnWrite};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at a time.
const READ_SIZE: usize = 16 * 1024;
/// The reader waits while this much is unread by the codec.
const IN_LIMIT: usize = 64 * 1024;
/// The codec's writes wait while this much is queued for the socket.
const OUT_LIMIT: usize = 256 * 1024;
/// What is still queued when the codec lets go of the connection (a
/// GOAWAY) gets this long to leave.
const LINGER: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Shared {
    inbound: Vec<u8>,
    in_pos: usize,
    /// The socket ended or failed (the codec sees end of stream).
    in_done: bool,
    out: Vec<u8>,
    /// The socket refused a write: the codec's writes fail from now on.
    out_failed: bool,
    /// The codec asked for the write side to be closed.
    closing: bool,
    /// The writer finished (closed, or failed).
    closed: bool,
    /// The codec dropped its side: the tasks stop.
    dropped: bool,
    codec_read: Option<Waker>,
    codec_write: Option<Waker>,
    reader: Option<Waker>,
    writer: Option<Waker>,
    guard: Option<Guard>,
    tripped: Option<Tripped>,
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

/// The codec's side of the connection.
pub struct Io {
    shared: Rc<RefCell<Shared>>,
}

impl Io {
    /// Start the reader and writer tasks on the halves. `already`: bytes
    /// read from the socket before (the start of the preface, sniffed by
    /// the HTTP/1 reader on a cleartext listener).
    pub fn start(r: ConnRead, w: ConnWrite, already: Vec<u8>, guard: Option<Guard>) -> (Io, Handle) {
        let shared = Rc::new(RefCell::new(Shared { inbound: already, guard, ..Shared::default() }));
        monoio::spawn(read_loop(r, shared.clone()));
        monoio::spawn(write_loop(w, shared.clone()));
        (Io { shared: shared.clone() }, Handle { shared })
    }
}

/// What the connection's driver sees of the I/O beside the codec.
pub struct Handle {
    shared: Rc<RefCell<Shared>>,
}

impl Handle {
    /// The flood guard tripped (the codec is given no more bytes).
    pub fn tripped(&self) -> Option<Tripped> {
        self.shared.borrow().tripped
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        let mut s = self.shared.borrow_mut();
        s.dropped = true;
        wake(&mut s.reader);
        wake(&mut s.writer);
    }
}

async fn read_loop(mut r: ConnRead, shared: Rc<RefCell<Shared>>) {
    let mut buf = Vec::with_capacity(READ_SIZE);
    loop {
        // Room in the inbound queue, or the end.
        let go = poll_fn(|cx| {
            let mut s = shared.borrow_mut();
            if s.dropped {
                Poll::Ready(false)
            } else if s.inbound.len() - s.in_pos < IN_LIMIT {
                Poll::Ready(true)
            } else {
                s.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        if !go.await {
            return;
        }
        let dropped = poll_fn(|cx| {
            let mut s = shared.borrow_mut();
            if s.dropped {
                Poll::Ready(())
            } else {
                s.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        // (A buffer swapped in from the codec's side may have no room.)
        buf.clear();
        buf.reserve(READ_SIZE);
        let (res, b) = monoio::select! {
            r = r.read(buf) => r,
            _ = dropped => {
                linger(r).await;
                return;
            }
        };
        buf = b;
        let mut s = shared.borrow_mut();
        match res {
            Ok(n) if n > 0 => {
                if s.in_pos == s.inbound.len() {
                    s.in_pos = 0;
                    std::mem::swap(&mut s.inbound, &mut buf);
                } else {
                    if s.in_pos > 0 {
                        let pos = s.in_pos;
                        s.inbound.drain(..pos);
                        s.in_pos = 0;
                    }
                    s.inbound.extend_from_slice(&buf);
                }
                wake(&mut s.codec_read);
            }
            _ => {
                s.in_done = true;
                wake(&mut s.codec_read);
                return;
            }
        }
    }
}

/// After the codec let go: read and drop what the client still sends,
/// for at most [`LINGER`] or until it closes. Closing a socket with unread
/// bytes makes the kernel send a reset, which can destroy the GOAWAY
/// still on its way to the client; this gives it time to arrive.
async fn linger(mut r: ConnRead) {
    let deadline = std::time::Instant::now() + LINGER;
    let mut buf = Vec::with_capacity(READ_SIZE);
    loop {
        buf.clear();
        match monoio::time::timeout_at(deadline.into(), r.read(buf)).await {
            Ok((Ok(n), b)) if n > 0 => buf = b,
            _ => return,
        }
    }
}

async fn write_loop(mut w: ConnWrite, shared: Rc<RefCell<Shared>>) {
    let mut buf = Vec::new();
    loop {
        // Something to send, a close to make, or the end.
        let (closing, dropped) = poll_fn(|cx| {
            let mut s = shared.borrow_mut();
            if !s.out.is_empty() {
                std::mem::swap(&mut s.out, &mut buf);
                wake(&mut s.codec_write);
                Poll::Ready((false, s.dropped))
            } else if s.closing || s.dropped {
                Poll::Ready((true, s.dropped))
            } else {
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if closing {
            let _ = monoio::time::timeout(LINGER, w.shutdown()).await;
            let mut s = shared.borrow_mut();
            s.closed = true;
            wake(&mut s.codec_write);
            return;
        }
        // Once the codec is gone, what it left (its GOAWAY) gets a bounded
        // time: a client that reads nothing cannot hold the task.
        let sent = if dropped {
            match monoio::time::timeout(LINGER, w.write_all(buf)).await {
                Ok((r, b)) => {
                    buf = b;
                    r
                }
                Err(_) => return,
            }
        } else {
            let (r, b) = w.write_all(buf).await;
            buf = b;
            r
        };
        let flushed = match sent {
            Ok(_) => w.flush().await,
            Err(e) => Err(e),
        };
        buf.clear();
        if flushed.is_err() {
            let mut s = shared.borrow_mut();
            s.out_failed = true;
            s.closed = true;
            s.out.clear();
            wake(&mut s.codec_write);
            return;
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut guard = self.shared.borrow_mut();
        let s = &mut *guard;
        if s.tripped.is_some() {
            return Poll::Pending;
        }
        let avail = &s.inbound[s.in_pos..];
        if avail.is_empty() {
            if s.in_done {
                return Poll::Ready(Ok(()));
            }
            s.codec_read = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = avail.len().min(buf.remaining());
        if let Some(g) = s.guard.as_mut() {
            if let Err(t) = g.scan(&avail[..n]) {
                s.tripped = Some(t);
                // The driver polls again, sees the trip and sends GOAWAY.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        buf.put_slice(&avail[..n]);
        s.in_pos += n;
        if s.in_pos == s.inbound.len() {
            s.inbound.clear();
            s.in_pos = 0;
        }
        wake(&mut s.reader);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.shared.borrow_mut();
        if s.out_failed || s.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if s.out.len() >= OUT_LIMIT {
            s.codec_write = Some(cx.waker().clone());
            return Poll::Pending;
        }
        s.out.extend_from_slice(data);
        wake(&mut s.writer);
        Poll::Ready(Ok(data.len()))
    }

    /// Queued bytes are the writer's to send: nothing to wait for here
    /// (the queue's bound is what holds the codec back).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.borrow().out_failed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.shared.borrow_mut();
        s.closing = true;
        if s.closed {
            return Poll::Ready(Ok(()));
        }
        wake(&mut s.writer);
        s.codec_write = Some(cx.waker().clone());
        Poll::Pending
    }
}
