//! A cached response ([`Object`]): its stored head and freshness, the
//! request headers it was selected by (`Vary`, a rule's key), and its body
//! ([`Body`]), which any shard reads without copying while it is still
//! being filled.
//!
//! An `Object` never changes once made: a revalidation that updates the
//! head makes a new one around the same `Arc<Body>`. The body is a list of
//! immutable `Bytes` pieces cut from large blocks, appended by the one
//! request filling it ([`BodyWriter`]) and read by any number of readers
//! on any shard ([`BodyReader`]); a short mutex guards the list (never held
//! across I/O), and readers waiting for more bytes are woken, on whatever
//! shard they run, when a piece lands or the body ends.

use super::policy::Freshness;
use crate::http::response::ResponseHead;
use crate::proxy::own::BodySource;
use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Blocks pieces are cut from: large enough that a big body is a few
/// hundred allocations, no larger than a small body needs.
const BLOCK: usize = 256 * 1024;

/// Bodies announced at least this long live in an in-memory file
/// ([`super::memfd`]), spliced to plain TCP clients; smaller ones in
/// pieces, which cost less per small hit.
pub const FILE_MIN: u64 = 1 << 20;

/// A stored response.
#[derive(Debug)]
pub struct Object {
    /// Status, reason and end-to-end fields as stored (hop-by-hop fields
    /// removed).
    pub head: ResponseHead,
    pub fresh: Freshness,
    /// The request's values of the response's `Vary` fields (names in
    /// lower case; `None`: the request had no such field).
    pub vary: Vec<(String, Option<Vec<u8>>)>,
    /// The key a rule set with `http.cache.setkey`.
    pub rule_key: Option<Vec<u8>>,
    pub body: Arc<Body>,
    /// The request filling it writes it to the disk tier once complete
    /// (its partition keeps it indexed until the copy is there).
    pub to_disk: bool,
}

impl Object {
    /// The same object with its body on disk at `d` (memory evicted it,
    /// or it was written straight there).
    pub fn on_disk(&self, d: super::disk::DiskRef, usage: Arc<AtomicU64>) -> Arc<Object> {
        Arc::new(Object {
            head: self.head.clone(),
            fresh: self.fresh,
            vary: self.vary.clone(),
            rule_key: self.rule_key.clone(),
            body: Body::on_disk(d, usage),
            to_disk: false,
        })
    }

    /// Whether this object was stored for a request like the one whose
    /// header values `get` gives and whose rule key is `rule_key`
    /// (RFC 9111 §4.1: `get` gives each value as stored, trimmed and
    /// normalised; they are compared case-sensitively).
    pub fn selected_by<'a>(
        &self,
        rule_key: Option<&[u8]>,
        get: impl Fn(&str) -> Option<std::borrow::Cow<'a, [u8]>>,
    ) -> bool {
        self.rule_key.as_deref() == rule_key
            && self.vary.iter().all(|(name, want)| get(name).as_deref() == want.as_deref())
    }

    /// The `ETag`, if stored.
    pub fn etag(&self) -> Option<&[u8]> {
        self.head.fields.get("etag")
    }

    /// Bytes this object holds in memory (body blocks and head).
    pub fn size(&self) -> u64 {
        self.body.charged() + self.head.fields.bytes().len() as u64 + 256
    }
}

/// How a body's filling ended, so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Filling,
    Complete,
    /// The fill failed: readers past what arrived get an error.
    Aborted,
}

struct Pieces {
    pieces: Vec<Bytes>,
    /// `ends[i]`: the body offset just past piece `i`.
    ends: Vec<u64>,
    len: u64,
    end: End,
    wakers: Vec<Waker>,
}

/// A body, whole or being filled, in memory; or whole on disk.
pub struct Body {
    pieces: Mutex<Pieces>,
    /// The length announced (`Content-Length`), when there was one.
    pub expected: Option<u64>,
    /// Memory taken by its blocks, also added to the partition's figure.
    charged: AtomicU64,
    usage: Arc<AtomicU64>,
    /// A body kept on disk only (the disk tier): no pieces in memory.
    disk: Option<super::disk::DiskRef>,
    /// A large body's file (its bytes are there, not in pieces): an
    /// in-memory file, or, for a body too large for memory, its file in
    /// the disk tier being written.
    file: Option<std::fs::File>,
    /// Where the body starts in `file` (after the disk tier's header).
    base: u64,
    /// The body's bytes count in the partition's memory (not for a body
    /// written straight to disk).
    in_memory: bool,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Body({} bytes)", self.len())
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.usage.fetch_sub(self.charged.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

impl Body {
    /// An empty body to be filled; its memory counts in `usage`. One
    /// announced at least [`FILE_MIN`] long goes into an in-memory file.
    pub fn new(expected: Option<u64>, usage: Arc<AtomicU64>) -> Arc<Body> {
        let file = match expected {
            Some(n) if n >= FILE_MIN => super::memfd::create()
                .map_err(|e| log::warn!("cache: no in-memory file for a body ({e}); pieces instead"))
                .ok(),
            _ => None,
        };
        Body::filling(expected, usage, file, 0, true)
    }

    fn filling(
        expected: Option<u64>,
        usage: Arc<AtomicU64>,
        file: Option<std::fs::File>,
        base: u64,
        in_memory: bool,
    ) -> Arc<Body> {
        let pieces = Pieces { pieces: Vec::new(), ends: Vec::new(), len: 0, end: End::Filling, wakers: Vec::new() };
        Arc::new(Body {
            pieces: Mutex::new(pieces),
            expected,
            charged: AtomicU64::new(0),
            usage,
            disk: None,
            file,
            base,
            in_memory,
        })
    }

    /// An empty body of `expected` bytes too large for memory, written
    /// straight into `file` (the disk tier's, its header already there)
    /// from `base` on.
    pub fn to_file(file: std::fs::File, base: u64, expected: u64, usage: Arc<AtomicU64>) -> Arc<Body> {
        Body::filling(Some(expected), usage, Some(file), base, false)
    }

    /// The file a body too large for memory is being written to.
    pub fn direct_file(&self) -> Option<&std::fs::File> {
        self.file.as_ref().filter(|_| !self.in_memory)
    }

    /// Where the body starts in its file.
    pub fn file_base(&self) -> u64 {
        self.base
    }

    /// For a body in an in-memory file: a source to splice it from.
    pub fn file_source(self: &Arc<Self>) -> Option<FileSource> {
        self.file.as_ref().map(|_| FileSource { body: self.clone() })
    }

    /// A complete body on disk (read back in pieces through the ring).
    pub fn on_disk(disk: super::disk::DiskRef, usage: Arc<AtomicU64>) -> Arc<Body> {
        let len = disk.len;
        Arc::new(Body {
            pieces: Mutex::new(Pieces {
                pieces: Vec::new(),
                ends: Vec::new(),
                len,
                end: End::Complete,
                wakers: Vec::new(),
            }),
            expected: Some(len),
            charged: AtomicU64::new(0),
            usage,
            disk: Some(disk),
            file: None,
            base: 0,
            in_memory: false,
        })
    }

    /// Where the body is on disk, when it is there only.
    pub fn disk(&self) -> Option<&super::disk::DiskRef> {
        self.disk.as_ref()
    }

    /// A complete body of `data` (tests, shoal's own objects).
    pub fn complete(data: Bytes, usage: Arc<AtomicU64>) -> Arc<Body> {
        let b = Body::new(Some(data.len() as u64), usage);
        b.charge(data.len() as u64);
        {
            let mut p = b.lock();
            p.len = data.len() as u64;
            let len = p.len;
            p.ends.push(len);
            p.pieces.push(data);
            p.end = End::Complete;
        }
        b
    }

    fn lock(&self) -> MutexGuard<'_, Pieces> {
        // A panic while holding it cannot leave the list inconsistent
        // (each update is a push of both vectors): go on with it.
        self.pieces.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn charge(&self, n: u64) {
        self.charged.fetch_add(n, Ordering::Relaxed);
        self.usage.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes of memory charged for it.
    pub fn charged(&self) -> u64 {
        self.charged.load(Ordering::Relaxed)
    }

    /// Bytes that have arrived.
    pub fn len(&self) -> u64 {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.lock().end == End::Complete
    }

    /// Whether the fill failed.
    pub fn is_aborted(&self) -> bool {
        self.lock().end == End::Aborted
    }

    /// The final length once known: announced, or complete.
    pub fn final_len(&self) -> Option<u64> {
        let p = self.lock();
        match p.end {
            End::Complete => Some(p.len),
            _ => self.expected,
        }
    }

    fn finish(&self, end: End) {
        let wakers = {
            let mut p = self.lock();
            if p.end == End::Filling {
                p.end = end;
            }
            std::mem::take(&mut p.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// A reader of bytes `start..end` (`None`: to the end of the body),
    /// from memory or disk.
    pub fn reader(self: &Arc<Self>, start: u64, end: Option<u64>) -> Box<dyn BodySource> {
        match &self.disk {
            Some(d) => Box::new(super::disk::DiskReader::new(d.clone(), start, end, None)),
            None => Box::new(self.memory_reader(start, end)),
        }
    }

    /// A reader of a body in memory (one being filled included).
    pub fn memory_reader(self: &Arc<Self>, start: u64, end: Option<u64>) -> BodyReader {
        BodyReader { body: self.clone(), pos: start, end, piece: 0 }
    }
}

/// The one request filling a body. Dropped unfinished, the body is
/// aborted (its readers get an error past what arrived).
pub struct BodyWriter {
    body: Arc<Body>,
    block: BytesMut,
    limit: u64,
    done: bool,
}

/// The body grew past the largest object stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl BodyWriter {
    /// A writer of `body`, which may hold at most `limit` bytes.
    pub fn new(body: Arc<Body>, limit: u64) -> BodyWriter {
        BodyWriter { body, block: BytesMut::new(), limit, done: false }
    }

    pub fn body(&self) -> &Arc<Body> {
        &self.body
    }

    /// Append `data`; readers see it at once. Past the limit, the body is
    /// aborted.
    pub fn append(&mut self, mut data: &[u8]) -> Result<(), TooLarge> {
        if self.done {
            return Ok(());
        }
        let len = self.body.lock().len;
        if len + data.len() as u64 > self.limit || self.body.expected.is_some_and(|e| len + data.len() as u64 > e) {
            self.abort();
            return Err(TooLarge);
        }
        if let Some(file) = &self.body.file {
            use std::os::unix::fs::FileExt;
            if let Err(e) = file.write_all_at(data, self.body.base + len) {
                log::warn!("cache: writing a body's file: {e}");
                self.abort();
                return Err(TooLarge);
            }
            if self.body.in_memory {
                self.body.charge(data.len() as u64);
            }
            let wakers = {
                let mut p = self.body.lock();
                p.len += data.len() as u64;
                std::mem::take(&mut p.wakers)
            };
            wakers.into_iter().for_each(Waker::wake);
            return Ok(());
        }
        let mut added = Vec::new();
        while !data.is_empty() {
            if self.block.capacity() == self.block.len() {
                // A new block: no larger than what is still to come.
                let rest = self.body.expected.map_or(BLOCK as u64, |e| e - len).max(data.len() as u64);
                let size = (BLOCK as u64).min(rest).max(1) as usize;
                self.block = BytesMut::with_capacity(size);
                self.body.charge(size as u64);
            }
            let n = data.len().min(self.block.capacity() - self.block.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            added.push(self.block.split().freeze());
        }
        let wakers = {
            let mut p = self.body.lock();
            for piece in added {
                p.len += piece.len() as u64;
                let end = p.len;
                p.ends.push(end);
                p.pieces.push(piece);
            }
            std::mem::take(&mut p.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// Every byte has arrived. A body shorter than announced is aborted.
    pub fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let short = self.body.expected.is_some_and(|e| e != self.body.len());
        self.body.finish(if short { End::Aborted } else { End::Complete });
    }

    /// The fill failed.
    pub fn abort(&mut self) {
        if !self.done {
            self.done = true;
            self.body.finish(End::Aborted);
        }
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Reads a range of a body, waiting for bytes still being filled.
pub struct BodyReader {
    body: Arc<Body>,
    pos: u64,
    end: Option<u64>,
    /// The piece `pos` was last found in (reads go forwards).
    piece: usize,
}

impl BodySource for BodyReader {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.end.is_some_and(|e| self.pos >= e) {
            return Poll::Ready(None);
        }
        let mut p = self.body.lock();
        if let (Some(file), true) = (&self.body.file, self.pos < p.len) {
            // A large body: read a piece of its file (this reader is for
            // clients it cannot be spliced to, and the disk writer).
            use std::os::unix::fs::FileExt;
            let to = self.end.map_or(p.len, |e| e.min(p.len));
            drop(p);
            let mut buf = vec![0u8; (to - self.pos).min(BLOCK as u64) as usize];
            return match file.read_exact_at(&mut buf, self.body.base + self.pos) {
                Ok(()) => {
                    self.pos += buf.len() as u64;
                    Poll::Ready(Some(Ok(Bytes::from(buf))))
                }
                Err(e) => Poll::Ready(Some(Err(e))),
            };
        }
        if self.pos < p.len {
            // The piece holding pos: usually the next one.
            if !(self.piece < p.ends.len()
                && p.ends[self.piece] > self.pos
                && (self.piece == 0 || p.ends[self.piece - 1] <= self.pos))
            {
                self.piece = p.ends.partition_point(|&e| e <= self.pos);
            }
            let start = if self.piece == 0 { 0 } else { p.ends[self.piece - 1] };
            let piece = &p.pieces[self.piece];
            let from = (self.pos - start) as usize;
            let mut to = piece.len();
            if let Some(e) = self.end {
                to = to.min((e - start) as usize);
            }
            let out = piece.slice(from..to);
            self.pos += out.len() as u64;
            return Poll::Ready(Some(Ok(out)));
        }
        match p.end {
            End::Complete => Poll::Ready(None),
            End::Aborted => Poll::Ready(Some(Err(io::Error::other("the cached object's fill failed")))),
            End::Filling => {
                if !p.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    p.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// A large body's in-memory file, for splicing it to a client.
pub struct FileSource {
    body: Arc<Body>,
}

impl crate::proxy::own::FileBody for FileSource {
    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.body.file.as_ref().expect("a file source has a file").as_raw_fd()
    }

    fn base(&self) -> u64 {
        self.body.base
    }

    fn poll_available(&mut self, want: u64, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let mut p = self.body.lock();
        if p.len >= want || p.end == End::Complete {
            return Poll::Ready(Ok(p.len));
        }
        if p.end == End::Aborted {
            return Poll::Ready(Err(io::Error::other("the cached object's fill failed")));
        }
        if !p.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            p.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut r: BodyReader) -> Result<Vec<u8>, io::Error> {
        let mut out = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            match r.poll_chunk(&mut cx) {
                Poll::Ready(Some(Ok(b))) => out.extend_from_slice(&b),
                Poll::Ready(Some(Err(e))) => return Err(e),
                Poll::Ready(None) => return Ok(out),
                Poll::Pending => return Ok(out),
            }
        }
    }

    #[test]
    fn pieces_ranges_and_memory() {
        let usage = Arc::new(AtomicU64::new(0));
        let body = Body::new(None, usage.clone());
        let mut w = BodyWriter::new(body.clone(), 10 << 20);
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        for c in data.chunks(10_000) {
            w.append(c).unwrap();
        }
        // Before the end, a reader gets what arrived and then waits.
        assert_eq!(collect(body.memory_reader(0, None)).unwrap(), data);
        assert!(!body.is_complete());
        w.finish();
        assert!(body.is_complete());
        assert_eq!(collect(body.memory_reader(0, None)).unwrap(), data);
        for (s, e) in [(0, 1), (262_143, 262_145), (5, 699_999), (699_999, 700_000), (300_000, 300_000)] {
            assert_eq!(collect(body.memory_reader(s, Some(e))).unwrap(), &data[s as usize..e as usize], "{s}..{e}");
        }
        let charged = usage.load(Ordering::Relaxed);
        assert!(charged >= 700_000 && charged <= 700_000 + 3 * BLOCK as u64, "{charged}");
        drop(w);
        drop(body);
        assert_eq!(usage.load(Ordering::Relaxed), 0, "memory given back with the last reference");
    }

    #[test]
    fn large_bodies_live_in_a_file() {
        let usage = Arc::new(AtomicU64::new(0));
        let n = FILE_MIN as usize + 12_345;
        let body = Body::new(Some(n as u64), usage.clone());
        assert!(body.file_source().is_some());
        let mut w = BodyWriter::new(body.clone(), 10 << 20);
        let data: Vec<u8> = (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        for c in data.chunks(100_000) {
            w.append(c).unwrap();
        }
        w.finish();
        assert_eq!(usage.load(Ordering::Relaxed), n as u64);
        assert_eq!(collect(body.memory_reader(0, None)).unwrap(), data);
        assert_eq!(collect(body.memory_reader(777, Some(300_001))).unwrap(), &data[777..300_001]);
    }

    #[test]
    fn limits_and_aborts() {
        let usage = Arc::new(AtomicU64::new(0));
        let body = Body::new(Some(10), usage.clone());
        let mut w = BodyWriter::new(body.clone(), 100);
        w.append(b"12345").unwrap();
        assert_eq!(usage.load(Ordering::Relaxed), 10, "a small announced body takes what it needs");
        assert_eq!(w.append(b"123456"), Err(TooLarge), "longer than announced");
        assert!(body.is_aborted());
        assert!(collect(body.memory_reader(0, None)).is_err());
        let body = Body::new(None, usage.clone());
        let mut w = BodyWriter::new(body.clone(), 4);
        assert_eq!(w.append(b"12345"), Err(TooLarge));
        let body = Body::new(Some(4), usage);
        let mut w = BodyWriter::new(body.clone(), 100);
        w.append(b"12").unwrap();
        w.finish();
        assert!(body.is_aborted(), "shorter than announced");
        let body2 = Body::new(None, Arc::new(AtomicU64::new(0)));
        drop(BodyWriter::new(body2.clone(), 9));
        assert!(body2.is_aborted(), "a writer dropped unfinished aborts");
    }
}
