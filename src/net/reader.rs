//! A read half with its buffer: unread bytes stay at the front of the
//! buffer, new reads land in its spare capacity, and forwarding writes
//! hand the buffer itself to the kernel (no copy into a second buffer).
//!
//! The buffer is owned by the I/O operation while one is in flight, so a
//! `fill` or `forward` dropped mid-way (a timeout) leaves the reader
//! without its buffer: every later call fails, and the connection must be
//! closed. Callers only drop these futures on paths that close, except
//! for [`Reader::fill_cancelable`], which is cancelled instead of dropped.

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent};
use std::io;

pub struct Reader<R> {
    pub inner: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: CancelableAsyncReadRent> Reader<R> {
    /// [`fill`](Self::fill) that can be cancelled through `c` without
    /// losing anything: the read completes either with the bytes that
    /// arrived before the cancellation took effect (kept, as usual) or with
    /// `ECANCELED`, and the buffer comes back in both cases.
    pub async fn fill_cancelable(&mut self, c: CancelHandle) -> io::Result<usize> {
        let (len, cap) = self.spare()?;
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = self.inner.cancelable_read(buf.slice_mut(len..cap), c).await;
        self.buf = slice.into_inner();
        res
    }
}

impl<R: AsyncReadRent> Reader<R> {
    /// `buf` should be empty; its capacity is the most this reader holds.
    pub fn new(inner: R, buf: Vec<u8>) -> Self {
        Reader { inner, buf, pos: 0 }
    }

    /// Unread bytes.
    pub fn data(&self) -> &[u8] {
        // After a cancelled operation the buffer may be gone: nothing unread.
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Mark `n` unread bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.buf.len());
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.buf.clear();
        }
    }

    /// Read more bytes after the unread ones. Returns the number read (0 at
    /// end of stream). Unread bytes are moved to the front first when the
    /// spare room is short, so a head always ends up contiguous.
    pub async fn fill(&mut self) -> io::Result<usize> {
        let (len, cap) = self.spare()?;
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = self.inner.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }

    /// Where the next read lands: `(len, cap)`, after moving unread bytes
    /// to the front when the spare room is short.
    fn spare(&mut self) -> io::Result<(usize, usize)> {
        let cap = self.buf.capacity();
        if cap == 0 {
            return Err(io::Error::other("read buffer lost to an interrupted operation"));
        }
        if self.pos > 0 && (self.buf.len() == cap || self.pos > cap / 2) {
            self.buf.copy_within(self.pos.., 0);
            self.buf.truncate(self.buf.len() - self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        if len == cap {
            return Err(io::Error::other("read buffer full"));
        }
        Ok((len, cap))
    }

    /// The read half, dropping the buffer (which must hold nothing unread).
    pub fn into_inner(self) -> R {
        debug_assert!(self.data().is_empty());
        self.inner
    }

    /// Make room for at least `cap` bytes in all (unread bytes included),
    /// moving unread bytes to the front.
    pub fn reserve_total(&mut self, cap: usize) {
        if self.buf.capacity() >= cap || self.buf.capacity() == 0 {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve_exact(cap - self.buf.len());
    }

    /// Give memory back while idle: with nothing unread and more than
    /// `cap` allocated, replace the buffer by one of `cap`.
    pub fn shrink_idle(&mut self, cap: usize) {
        if self.data().is_empty() && self.buf.capacity() > cap {
            self.buf = Vec::with_capacity(cap);
            self.pos = 0;
        }
    }

    /// Write `n` unread bytes to `w` straight from this buffer and consume them.
    pub async fn forward<W: AsyncWriteRent>(&mut self, w: &mut W, n: usize) -> io::Result<()> {
        let (start, end) = (self.pos, self.pos + n);
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = w.write_all(buf.slice(start..end)).await;
        self.buf = slice.into_inner();
        res?;
        self.consume(n);
        Ok(())
    }

    /// Give the buffer back (for a buffer pool).
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// The read half and a copy of the unread bytes (for handing the
    /// connection to a byte relay).
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let rest = self.data().to_vec();
        (self.inner, rest)
    }
}

/// Read more bytes from `r` onto the end of `buf`, growing it by 4 KiB when
/// less than 2 KiB is spare (callers bound the total). Returns the number
/// read, 0 at end of stream. For small accumulating reads (handshake
/// messages, monitor replies) that have no [`Reader`].
pub async fn append<R: AsyncReadRent>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 2048 {
        buf.reserve(4096);
    }
    let len = buf.len();
    let (res, slice) = r.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    res
}
