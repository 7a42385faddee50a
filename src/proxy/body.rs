//! Streaming a message body from a reader to a writer according to its
//! framing, in buffer-sized pieces, never holding the whole body. Chunked
//! bodies are forwarded as they came (the framer only finds their end and
//! checks their syntax) or de-chunked for HTTP/1.0 clients.
//!
//! With body filters (docs/phases.md): [`forward`] with an observer shows
//! each payload piece as it passes and keeps the framing;
//! [`forward_transformed`] reads the payload, lets a filter change each
//! piece and writes the result re-framed; [`read_whole`] collects the
//! payload up to a limit for a filter that needs all of it.

use crate::http::chunked::{ChunkError, ChunkedFramer};
use crate::http::rewrite::BodyFraming;
use crate::http::Framing;
use crate::net::reader::Reader;
use crate::net::splice::{self, Pipe, SpliceError};
use crate::proxy::module::BodyFlow;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

#[derive(Debug)]
pub enum BodyError {
    /// The source ended before the body did.
    Truncated,
    SourceIo(io::Error),
    /// Nothing arrived from the source for the idle timeout.
    SourceIdle,
    Sink(io::Error),
    Chunked(ChunkError),
    /// The body exceeded the configured limit.
    TooLarge,
    /// The body exceeded what a body filter may hold.
    OverFilterLimit,
    /// A body filter stopped the body (its reason).
    Filter(&'static str),
}

/// What sees each payload piece of a body as it is forwarded (a tee).
pub type Observer<'a> = &'a mut dyn FnMut(&[u8]) -> BodyFlow;

#[derive(Clone, Copy)]
pub struct BodyOpts<'s> {
    pub idle: Duration,
    /// Forward only chunk payloads (for an HTTP/1.0 recipient).
    pub dechunk: bool,
    /// Largest body allowed, in payload bytes.
    pub limit: Option<u64>,
    /// Buffer size to stream with (the source's buffer is grown to it
    /// when the body needs a read).
    pub buffer: usize,
    /// The source and destination sockets, when both are plain TCP: the
    /// rest of a large Content-Length body is then spliced between them
    /// (zero-copy) instead of read and written.
    pub splice: Option<(RawFd, RawFd)>,
    /// The response's bandwidth class, which a spliced body honours piece
    /// by piece (a copied one through the writer, `Shaped`).
    pub shape: Option<&'s crate::shaping::bandwidth::Shaper>,
}

/// Bodies with at least this much left after the bytes already buffered
/// are spliced; below it, a read and a write cost less than the pipe.
const SPLICE_MIN: u64 = 128 * 1024;

impl From<SpliceError> for BodyError {
    fn from(e: SpliceError) -> Self {
        match e {
            SpliceError::Truncated => BodyError::Truncated,
            SpliceError::SourceIdle => BodyError::SourceIdle,
            SpliceError::Source(e) => BodyError::SourceIo(e),
            SpliceError::Sink(e) => BodyError::Sink(e),
        }
    }
}

fn seen(see: &mut Option<Observer<'_>>, data: &[u8]) -> Result<(), BodyError> {
    match see.as_mut().map(|f| f(data)) {
        Some(BodyFlow::Abort(why)) => Err(BodyError::Filter(why)),
        Some(BodyFlow::Respond(_)) => Err(BodyError::Filter("a body filter answered while the body was in flight")),
        _ => Ok(()),
    }
}

/// Forward one body. Returns payload bytes forwarded. Bytes after the body
/// stay unread in `src` (a pipelined request, or garbage from a node).
/// `see`, when given, is shown every payload piece before it is written
/// (and the body is not spliced, so that it can be).
pub async fn forward<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut Reader<R>,
    dst: &mut W,
    framing: Framing,
    opts: &BodyOpts<'_>,
    mut see: Option<Observer<'_>>,
) -> Result<u64, BodyError> {
    match framing {
        Framing::None => Ok(0),
        Framing::Length(n) => {
            if opts.limit.is_some_and(|l| n > l) {
                return Err(BodyError::TooLarge);
            }
            let mut left = n;
            // Splicing is tried once per body: without a pipe (the shard's
            // limit, or none could be made) the body is copied to its end.
            let mut splice = opts.splice.filter(|_| see.is_none());
            while left > 0 {
                if src.data().is_empty() && left >= SPLICE_MIN {
                    if let Some(((from, to), mut pipe)) = splice.take().and_then(|fds| Some((fds, Pipe::take()?))) {
                        splice::relay(from, to, left, &mut pipe, opts.idle, opts.shape).await?;
                        return Ok(n);
                    }
                }
                if src.data().is_empty() {
                    fill(src, opts, true).await?;
                }
                let take = src.data().len().min(usize::try_from(left).unwrap_or(usize::MAX));
                seen(&mut see, &src.data()[..take])?;
                src.forward(dst, take).await.map_err(BodyError::Sink)?;
                left -= take as u64;
            }
            Ok(n)
        }
        Framing::UntilClose => {
            let mut total = 0;
            loop {
                if src.data().is_empty() && fill(src, opts, false).await? == 0 {
                    return Ok(total);
                }
                let n = src.data().len();
                total += n as u64;
                seen(&mut see, src.data())?;
                src.forward(dst, n).await.map_err(BodyError::Sink)?;
            }
        }
        Framing::Chunked => {
            let mut framer = ChunkedFramer::default();
            let mut payload = 0u64;
            let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
            loop {
                if src.data().is_empty() {
                    fill(src, opts, true).await?;
                }
                ranges.clear();
                // Payload ranges are kept only to de-chunk or to show them;
                // counting them needs no list (so forwarding a chunked body
                // as it came allocates nothing).
                let dechunk = opts.dechunk || see.is_some();
                let used = framer
                    .advance(src.data(), |r| {
                        payload += r.len() as u64;
                        if dechunk {
                            ranges.push(r);
                        }
                    })
                    .map_err(BodyError::Chunked)?;
                if opts.limit.is_some_and(|l| payload > l) {
                    return Err(BodyError::TooLarge);
                }
                for r in &ranges {
                    seen(&mut see, &src.data()[r.clone()])?;
                }
                if opts.dechunk {
                    let mut at = 0;
                    for r in &ranges {
                        src.consume(r.start - at);
                        src.forward(dst, r.len()).await.map_err(BodyError::Sink)?;
                        at = r.end;
                    }
                    src.consume(used - at);
                } else {
                    src.forward(dst, used).await.map_err(BodyError::Sink)?;
                }
                if framer.is_done() {
                    return Ok(payload);
                }
            }
        }
    }
}

/// Read more into `src` within the idle timeout; with `need`, end of
/// stream is an error. The source's buffer grows to the streaming size
/// only here, when a body needs more than arrived with its head, so small
/// messages never touch the allocator.
async fn fill<R: AsyncReadRent>(src: &mut Reader<R>, opts: &BodyOpts<'_>, need: bool) -> Result<usize, BodyError> {
    src.reserve_total(opts.buffer);
    match monoio::time::timeout(opts.idle, src.fill()).await {
        Err(_) => Err(BodyError::SourceIdle),
        Ok(Err(e)) => Err(BodyError::SourceIo(e)),
        Ok(Ok(0)) if need => Err(BodyError::Truncated),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Reads a body's payload piece by piece, whatever its framing.
struct Payload {
    framing: Framing,
    /// Length framing: bytes left.
    left: u64,
    framer: ChunkedFramer,
    total: u64,
}

impl Payload {
    fn new(framing: Framing) -> Payload {
        let left = if let Framing::Length(n) = framing { n } else { 0 };
        Payload { framing, left, framer: ChunkedFramer::default(), total: 0 }
    }

    /// Read more and append the payload that came to `out`; true once the
    /// body has ended (its last payload appended).
    async fn read<R: AsyncReadRent>(
        &mut self,
        src: &mut Reader<R>,
        opts: &BodyOpts<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, BodyError> {
        match self.framing {
            Framing::None => return Ok(true),
            Framing::Length(_) if self.left == 0 => return Ok(true),
            Framing::Length(_) => {
                if src.data().is_empty() {
                    fill(src, opts, true).await?;
                }
                let take = src.data().len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
                out.extend_from_slice(&src.data()[..take]);
                src.consume(take);
                self.left -= take as u64;
                self.total += take as u64;
            }
            Framing::UntilClose => {
                if src.data().is_empty() && fill(src, opts, false).await? == 0 {
                    return Ok(true);
                }
                let n = src.data().len();
                out.extend_from_slice(src.data());
                src.consume(n);
                self.total += n as u64;
            }
            Framing::Chunked => {
                if src.data().is_empty() {
                    fill(src, opts, true).await?;
                }
                let before = out.len();
                let data = src.data();
                let used =
                    self.framer.advance(data, |r| out.extend_from_slice(&data[r])).map_err(BodyError::Chunked)?;
                src.consume(used);
                self.total += (out.len() - before) as u64;
            }
        }
        if opts.limit.is_some_and(|l| self.total > l) {
            return Err(BodyError::TooLarge);
        }
        Ok(match self.framing {
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.framer.is_done(),
            _ => false,
        })
    }
}

/// Read a whole body's payload into `out` (cleared), up to `limit` bytes.
/// Returns the payload bytes read (`out.len()`).
pub async fn read_whole<R: AsyncReadRent>(
    src: &mut Reader<R>,
    framing: Framing,
    opts: &BodyOpts<'_>,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<u64, BodyError> {
    out.clear();
    if let Framing::Length(n) = framing {
        if n > limit as u64 {
            return Err(BodyError::OverFilterLimit);
        }
        out.reserve(n as usize);
    }
    let mut payload = Payload::new(framing);
    while !payload.read(src, opts, out).await? {
        if out.len() > limit {
            return Err(BodyError::OverFilterLimit);
        }
    }
    if out.len() > limit {
        return Err(BodyError::OverFilterLimit);
    }
    Ok(out.len() as u64)
}

/// Stream a body's payload through `filter`, which may change each piece
/// (`end`: the last, possibly empty), writing what it leaves framed as
/// `out_framing` (chunked, or raw until close). Returns the payload bytes
/// read and written.
pub async fn forward_transformed<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut Reader<R>,
    dst: &mut W,
    framing: Framing,
    opts: &BodyOpts<'_>,
    out_framing: BodyFraming,
    buf: &mut Vec<u8>,
    filter: &mut dyn FnMut(&mut Vec<u8>, bool) -> BodyFlow,
) -> Result<(u64, u64), BodyError> {
    let chunked = out_framing == BodyFraming::Chunked;
    let mut payload = Payload::new(framing);
    let mut written = 0u64;
    let mut frame = Vec::with_capacity(24);
    loop {
        buf.clear();
        src.reserve_total(opts.buffer);
        let end = payload.read(src, opts, buf).await?;
        if buf.is_empty() && !end {
            continue;
        }
        match filter(buf, end) {
            BodyFlow::Continue => {}
            BodyFlow::Abort(why) => return Err(BodyError::Filter(why)),
            BodyFlow::Respond(_) => {
                return Err(BodyError::Filter("a body filter answered while the body was in flight"))
            }
        }
        if !buf.is_empty() {
            written += buf.len() as u64;
            if chunked {
                // One write per chunk: its size line moved in front.
                frame.clear();
                super::own::chunk_header(buf.len(), &mut frame);
                buf.splice(0..0, frame.iter().copied());
                buf.extend_from_slice(b"\r\n");
            }
            if end && chunked {
                buf.extend_from_slice(b"0\r\n\r\n");
            }
            write_vec(dst, buf).await?;
        } else if end && chunked {
            buf.extend_from_slice(b"0\r\n\r\n");
            write_vec(dst, buf).await?;
        }
        if end {
            return Ok((payload.total, written));
        }
    }
}

async fn write_vec<W: AsyncWriteRent>(dst: &mut W, v: &mut Vec<u8>) -> Result<(), BodyError> {
    super::own::write_vec(dst, v).await.map_err(BodyError::Sink)
}
