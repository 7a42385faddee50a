//! A TLS connection over a monoio TCP stream, as owned-buffer read and
//! write halves that can be used at the same time (the HTTP driver reads a
//! request body while it writes a response).
//!
//! rustls does the protocol on in-memory buffers; this adapter only moves
//! ciphertext between those buffers and the socket. The rustls state is
//! shared by the two halves through `Rc<RefCell<_>>` and borrowed only in
//! synchronous sections, never across an `.await`, so the halves never
//! alias it (unlike adapters that split one stream through an
//! `UnsafeCell`). Messages the read side produces (a TLS 1.3 key-update
//! answer, an alert) leave with the write side's next write or close.
//!
//! As with [`Reader`](crate::net::reader::Reader), an operation dropped
//! mid-way loses its buffer: later operations on that half fail instead of
//! corrupting the record stream, and the connection must be closed.
//!
//! `unsafe`: monoio's buffer traits (`IoBuf`, `IoBufMut`) expose a caller's
//! buffer only as a pointer and length, so copying plaintext into or out of
//! it needs `slice::from_raw_parts`; each use states the bounds it relies on.

#![allow(unsafe_code)]

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::tcp::{TcpOwnedReadHalf, TcpOwnedWriteHalf};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::Connection;
use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

/// Ciphertext read from the socket at a time: one full TLS record and its
/// header, so a record never needs two reads.
const READ_BUFFER: usize = 16 * 1024 + 512;

/// What is known of a finished handshake, for logs, headers and routing.
#[derive(Debug, Clone, Default)]
pub struct Negotiated {
    /// `TLSv1.2` / `TLSv1.3`.
    pub version: &'static str,
    /// The IANA name of the cipher suite.
    pub cipher: &'static str,
    pub alpn: Option<Vec<u8>>,
    /// The server name the client asked for (server side).
    pub sni: Option<String>,
    /// The client's certificate (DER), when it presented one.
    pub peer_cert: Option<Vec<u8>>,
    /// The session was resumed rather than fully negotiated.
    pub resumed: bool,
}

/// Ciphertext received but not yet handed to rustls.
struct Incoming {
    buf: Vec<u8>,
    pos: usize,
    /// The socket reached end of stream.
    eof: bool,
}

impl Incoming {
    fn new() -> Incoming {
        Incoming { buf: Vec::with_capacity(READ_BUFFER), pos: 0, eof: false }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }
}

/// A TLS connection before it is split: used for the handshake.
pub struct TlsStream {
    io: TcpStream,
    conn: RefCell<Connection>,
    incoming: Incoming,
    out: Vec<u8>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Hand pending ciphertext to rustls and process it. Returns false when
/// rustls takes nothing more (its plaintext buffer is full, or the peer
/// sent close_notify), so the caller drains plaintext first.
fn feed(conn: &mut Connection, inc: &mut Incoming) -> io::Result<bool> {
    let mut rest = &inc.buf[inc.pos..];
    let before = rest.len();
    let n = match conn.read_tls(&mut rest) {
        Ok(n) => n,
        // Backpressure: "received plaintext buffer full".
        Err(e) if e.kind() == io::ErrorKind::Other => 0,
        Err(e) => return Err(e),
    };
    debug_assert_eq!(before - rest.len(), n);
    inc.pos += n;
    if inc.pos == inc.buf.len() {
        inc.buf.clear();
        inc.pos = 0;
    }
    conn.process_new_packets().map_err(tls_error)?;
    Ok(n > 0)
}

/// Read more ciphertext from the socket into `inc` (which must be fully
/// handed to rustls). Returns false at end of stream.
async fn receive<R: AsyncReadRent>(io: &mut R, inc: &mut Incoming) -> io::Result<bool> {
    if inc.buf.capacity() == 0 {
        return Err(io::Error::other("TLS read buffer lost to an interrupted operation"));
    }
    let mut buf = std::mem::take(&mut inc.buf);
    buf.clear();
    inc.pos = 0;
    let (res, buf) = io.read(buf).await;
    inc.buf = buf;
    let n = res?;
    inc.eof = n == 0;
    Ok(n > 0)
}

/// Write everything rustls has queued.
async fn send<W: AsyncWriteRent>(io: &mut W, conn: &RefCell<Connection>, out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        out.clear();
        {
            let mut c = conn.borrow_mut();
            while c.wants_write() {
                c.write_tls(out)?;
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        let (res, buf) = io.write_all(std::mem::take(out)).await;
        *out = buf;
        res?;
    }
}

impl TlsStream {
    /// Run the handshake of `conn` (a fresh rustls client or server
    /// connection) over `io`.
    pub async fn handshake(io: TcpStream, conn: impl Into<Connection>) -> io::Result<TlsStream> {
        let mut s = TlsStream { io, conn: RefCell::new(conn.into()), incoming: Incoming::new(), out: Vec::new() };
        handshake_on(&mut s.io, &s.conn, &mut s.incoming, &mut s.out).await?;
        Ok(s)
    }

    pub fn negotiated(&self) -> Negotiated {
        negotiated(&self.conn.borrow())
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    /// Split into halves that can be used concurrently.
    pub fn into_split(self) -> (TlsRead, TlsWrite) {
        let conn = Rc::new(self.conn);
        let (r, w) = self.io.into_split();
        (
            TlsRead { io: r, conn: conn.clone(), incoming: self.incoming },
            TlsWrite { io: w, conn, out: self.out, closed: false },
        )
    }
}

async fn handshake_on(
    io: &mut TcpStream,
    conn: &RefCell<Connection>,
    inc: &mut Incoming,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        send(io, conn, out).await?;
        if !conn.borrow().is_handshaking() {
            return Ok(());
        }
        // Process what we have before reading more.
        if !inc.pending().is_empty() {
            let r = feed(&mut conn.borrow_mut(), inc);
            match r {
                Ok(true) => continue,
                // rustls takes no more: the peer sent close_notify.
                Ok(false) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"))
                }
                Err(e) => {
                    // Send the alert rustls queued, then fail.
                    let _ = send(io, conn, out).await;
                    return Err(e);
                }
            }
        }
        if inc.eof || !receive(io, inc).await? {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
        }
    }
}

fn negotiated(conn: &Connection) -> Negotiated {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let cipher = conn.negotiated_cipher_suite().and_then(|s| s.suite().as_str()).unwrap_or("");
    let (sni, resumed) = match conn {
        Connection::Server(s) => (s.server_name().map(str::to_owned), is_resumed(conn)),
        Connection::Client(_) => (None, is_resumed(conn)),
    };
    Negotiated {
        version,
        cipher,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        sni,
        peer_cert: conn.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec()),
        resumed,
    }
}

fn is_resumed(conn: &Connection) -> bool {
    matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed))
}

/// The read half: plaintext out of the connection.
pub struct TlsRead {
    io: TcpOwnedReadHalf,
    conn: Rc<RefCell<Connection>>,
    incoming: Incoming,
}

impl TlsRead {
    async fn read_into(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut c = self.conn.borrow_mut();
                match c.reader().read(dst) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed without close_notify. HTTP framing
                    // detects truncated messages, and most clients close
                    // that way: an end of stream like any other.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if !self.incoming.pending().is_empty() {
                    if !feed(&mut c, &mut self.incoming)? {
                        return Err(io::Error::other("TLS record layer made no progress"));
                    }
                    continue;
                }
                if self.incoming.eof {
                    // Let rustls see the end of stream.
                    let _ = c.read_tls(&mut &[][..]);
                    c.process_new_packets().map_err(tls_error)?;
                    continue;
                }
            }
            receive(&mut self.io, &mut self.incoming).await?;
        }
    }
}

impl AsyncReadRent for TlsRead {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: `buf` is valid for writes of `bytes_total` bytes; the
        // bytes up to `n` are initialised by the copy before set_init.
        let dst = unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
        match self.read_into(dst).await {
            Ok(n) => {
                // SAFETY: `read_into` wrote exactly `n <= bytes_total` bytes
                // at the start of `buf` (the slice above), so they are
                // initialised.
                unsafe { buf.set_init(n) };
                (Ok(n), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the `RawBuf` points into the first iovec of `buf`, which
        // this call owns until it returns; the `RawBuf` is consumed by the
        // read below and dropped before `buf` is handed back.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: the read initialised `n` bytes of that first iovec,
            // and `set_init` on the vector counts from its start.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

/// The write half: plaintext into the connection.
pub struct TlsWrite {
    io: TcpOwnedWriteHalf,
    conn: Rc<RefCell<Connection>>,
    out: Vec<u8>,
    closed: bool,
}

impl TlsWrite {
    async fn write_from(&mut self, src: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "TLS connection closed"));
        }
        let n = {
            let mut c = self.conn.borrow_mut();
            std::io::Write::write(&mut c.writer(), src)?
        };
        send(&mut self.io, &self.conn, &mut self.out).await?;
        Ok(n)
    }
}

impl AsyncWriteRent for TlsWrite {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `buf` is valid for reads of `bytes_init` bytes.
        let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_from(src).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the `RawBuf` points into the first iovec of `buf`, which
        // this call owns (and does not change) until it returns; the write
        // below consumes the `RawBuf` before `buf` is handed back.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        send(&mut self.io, &self.conn, &mut self.out).await
    }

    /// Send close_notify, then end the TCP stream's write side.
    async fn shutdown(&mut self) -> io::Result<()> {
        if !self.closed {
            self.closed = true;
            self.conn.borrow_mut().send_close_notify();
            send(&mut self.io, &self.conn, &mut self.out).await?;
        }
        self.io.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncReadRentExt;
    use std::sync::Arc;

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let der = cert.der().clone();
        let provider = Arc::new(crate::tls::provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
    }

    /// A connected client and server `TlsStream` pair over loopback.
    async fn pair() -> (TlsStream, TlsStream) {
        let (server_cfg, client_cfg) = configs();
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = monoio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            TlsStream::handshake(s, rustls::ServerConnection::new(server_cfg).unwrap()).await.unwrap()
        });
        let tcp = TcpStream::connect_addr(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let client = TlsStream::handshake(tcp, rustls::ClientConnection::new(client_cfg, name).unwrap()).await.unwrap();
        (client, server.await)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// The halves work at the same time: 4 MiB written while 4 MiB is read
    /// back from an echoing peer, then close_notify ends both directions.
    #[test]
    fn halves_move_data_both_ways_at_once() {
        runtime().block_on(async {
            let (client, server) = pair().await;
            assert_eq!(client.negotiated().version, "TLSv1.3");
            let echo = monoio::spawn(async move {
                let (mut r, mut w) = server.into_split();
                let mut buf = Vec::with_capacity(10_000);
                loop {
                    buf.clear();
                    let (res, b) = r.read(buf).await;
                    buf = b;
                    if res.unwrap() == 0 {
                        w.shutdown().await.unwrap();
                        return;
                    }
                    let (res, b) = w.write_all(buf).await;
                    res.unwrap();
                    buf = b;
                }
            });
            let data = pattern(4 << 20);
            let (mut r, mut w) = client.into_split();
            let sent = data.clone();
            let writer = monoio::spawn(async move {
                for c in sent.chunks(100_000) {
                    let (res, _) = w.write_all(c.to_vec()).await;
                    res.unwrap();
                }
                w.shutdown().await.unwrap();
            });
            let (res, got) = r.read_exact(vec![0u8; data.len()]).await;
            res.unwrap();
            assert!(got == data, "echoed bytes differ");
            let (res, _) = r.read(Vec::with_capacity(16)).await;
            assert_eq!(res.unwrap(), 0, "close_notify is end of stream");
            writer.await;
            echo.await;
        });
    }

    /// A peer that closes the TCP connection without close_notify ends the
    /// stream (0), like most HTTP clients do.
    #[test]
    fn tcp_close_without_close_notify_is_end_of_stream() {
        runtime().block_on(async {
            let (client, server) = pair().await;
            let (sr, mut w) = server.into_split();
            let (res, _) = w.write_all(b"last words".to_vec()).await;
            res.unwrap();
            // Both halves dropped: the socket closes, no close_notify.
            drop((sr, w));
            let (mut r, _w) = client.into_split();
            let (res, got) = r.read_exact(vec![0u8; 10]).await;
            res.unwrap();
            assert_eq!(got, b"last words");
            let (res, _) = r.read(Vec::with_capacity(16)).await;
            assert_eq!(res.unwrap(), 0);
        });
    }

    /// A read dropped while waiting loses its buffer: later reads fail
    /// (the record stream may have lost bytes), they never misbehave.
    #[test]
    fn interrupted_read_fails_later_reads() {
        runtime().block_on(async {
            let (client, _server) = pair().await;
            let (mut r, _w) = client.into_split();
            let read = monoio::time::timeout(std::time::Duration::from_millis(20), r.read(Vec::with_capacity(16)));
            assert!(read.await.is_err(), "nothing was sent: the read times out");
            let (res, _) = r.read(Vec::with_capacity(16)).await;
            assert!(res.unwrap_err().to_string().contains("interrupted"));
        });
    }
}
