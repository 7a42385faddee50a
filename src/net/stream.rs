//! The halves of a client or node connection, plain TCP or TLS, behind one
//! type each, so the HTTP driver, the keepalive pool and the relay are
//! written once. A match per I/O call is the whole cost of the choice.
//!
//! `Null` halves stand in for a connection that is not there: a request a
//! module starts with no client (the cache's background revalidation)
//! reads end of input and writes into nothing, as does a node body drained
//! into a module's sink.

use crate::tls::stream::{Negotiated, TlsRead, TlsStream, TlsWrite};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, Splitable};
use monoio::net::tcp::{TcpOwnedReadHalf, TcpOwnedWriteHalf};
use monoio::net::TcpStream;
use monoio::BufResult;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

pub enum ConnRead {
    Tcp(TcpOwnedReadHalf),
    Tls(TlsRead),
    /// An HTTP/2 stream's request, as HTTP/1.1 bytes.
    H2(Box<crate::h2::stream::StreamIn>),
    /// A node's HTTP/2 response, as HTTP/1.1 bytes.
    H2Node(Box<crate::h2::upstream::NodeIn>),
    /// End of input at once.
    Null,
}

pub enum ConnWrite {
    Tcp(TcpOwnedWriteHalf),
    Tls(TlsWrite),
    /// An HTTP/2 stream's response, written as HTTP/1.1 bytes.
    H2(Box<crate::h2::stream::StreamOut>),
    /// A request to a node over HTTP/2, written as HTTP/1.1 bytes.
    H2Node(Box<crate::h2::upstream::NodeOut>),
    /// Takes every byte and keeps none.
    Null,
}

/// A connection split into halves, with what the proxy needs to know of it.
pub struct Split {
    pub r: ConnRead,
    pub w: ConnWrite,
    /// The TCP socket underneath (peeks, splicing, readiness).
    pub fd: RawFd,
    /// The handshake's outcome, for TLS connections.
    pub tls: Option<Negotiated>,
}

impl Split {
    pub fn tcp(stream: TcpStream) -> Split {
        let fd = stream.as_raw_fd();
        let (r, w) = stream.into_split();
        Split { r: ConnRead::Tcp(r), w: ConnWrite::Tcp(w), fd, tls: None }
    }

    pub fn tls(stream: TlsStream) -> Split {
        let fd = stream.tcp().as_raw_fd();
        let tls = Some(stream.negotiated());
        let (r, w) = stream.into_split();
        Split { r: ConnRead::Tls(r), w: ConnWrite::Tls(w), fd, tls }
    }
}

impl ConnRead {
    /// Plain TCP: bytes can move between sockets without passing through
    /// user space (splice), and an idle connection can be parked.
    pub fn is_plain(&self) -> bool {
        matches!(self, ConnRead::Tcp(_))
    }
}

impl AsyncReadRent for ConnRead {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ConnRead::Tcp(r) => r.read(buf).await,
            ConnRead::Tls(r) => r.read(buf).await,
            ConnRead::H2(r) => r.read(buf).await,
            ConnRead::H2Node(r) => r.read(buf).await,
            ConnRead::Null => (Ok(0), buf),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ConnRead::Tcp(r) => r.readv(buf).await,
            ConnRead::Tls(r) => r.readv(buf).await,
            ConnRead::H2(r) => r.readv(buf).await,
            ConnRead::H2Node(r) => r.readv(buf).await,
            ConnRead::Null => (Ok(0), buf),
        }
    }
}

/// TLS reads are not cancelled by the handle (a cancelled ciphertext read
/// would lose record bytes): callers only cancel plain connections
/// ([`ConnRead::is_plain`]).
impl CancelableAsyncReadRent for ConnRead {
    async fn cancelable_read<T: IoBufMut>(&mut self, buf: T, c: CancelHandle) -> BufResult<usize, T> {
        match self {
            ConnRead::Tcp(r) => r.cancelable_read(buf, c).await,
            ConnRead::Tls(r) => r.read(buf).await,
            ConnRead::H2(r) => r.read(buf).await,
            ConnRead::H2Node(r) => r.read(buf).await,
            ConnRead::Null => (Ok(0), buf),
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(&mut self, buf: T, c: CancelHandle) -> BufResult<usize, T> {
        match self {
            ConnRead::Tcp(r) => r.cancelable_readv(buf, c).await,
            ConnRead::Tls(r) => r.readv(buf).await,
            ConnRead::H2(r) => r.readv(buf).await,
            ConnRead::H2Node(r) => r.readv(buf).await,
            ConnRead::Null => (Ok(0), buf),
        }
    }
}

impl AsyncWriteRent for ConnWrite {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ConnWrite::Tcp(w) => w.write(buf).await,
            ConnWrite::Tls(w) => w.write(buf).await,
            ConnWrite::H2(w) => w.write(buf).await,
            ConnWrite::H2Node(w) => w.write(buf).await,
            ConnWrite::Null => {
                let n = buf.bytes_init();
                (Ok(n), buf)
            }
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ConnWrite::Tcp(w) => w.writev(buf).await,
            ConnWrite::Tls(w) => w.writev(buf).await,
            ConnWrite::H2(w) => w.writev(buf).await,
            ConnWrite::H2Node(w) => w.writev(buf).await,
            // Nothing writes vectored to a connection (reading the iovecs'
            // lengths would need `unsafe` here for no use).
            ConnWrite::Null => (Err(io::Error::other("vectored writes are not used")), buf),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            ConnWrite::Tcp(w) => w.flush().await,
            ConnWrite::Tls(w) => w.flush().await,
            ConnWrite::H2(w) => w.flush().await,
            ConnWrite::H2Node(w) => w.flush().await,
            ConnWrite::Null => Ok(()),
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ConnWrite::Tcp(w) => w.shutdown().await,
            ConnWrite::Tls(w) => w.shutdown().await,
            ConnWrite::H2(w) => w.shutdown().await,
            ConnWrite::H2Node(w) => w.shutdown().await,
            ConnWrite::Null => Ok(()),
        }
    }
}
