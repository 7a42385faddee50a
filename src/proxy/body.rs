//! Streaming a message body from a reader to a writer according to its
//! framing, in buffer-sized pieces, never holding the whole body. Chunked
//! bodies are forwarded as they came (the framer only finds their end and
//! checks their syntax) or de-chunked for HTTP/1.0 clients.

use crate::http::chunked::{ChunkError, ChunkedFramer};
use crate::http::Framing;
use crate::net::reader::Reader;
use crate::net::splice::{self, Pipe, SpliceError};
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
}

#[derive(Clone, Copy)]
pub struct BodyOpts {
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

/// Forward one body. Returns payload bytes forwarded. Bytes after the body
/// stay unread in `src` (a pipelined request, or garbage from a node).
pub async fn forward<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut Reader<R>,
    dst: &mut W,
    framing: Framing,
    opts: &BodyOpts,
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
            let mut splice = opts.splice;
            while left > 0 {
                if src.data().is_empty() && left >= SPLICE_MIN {
                    if let Some(((from, to), mut pipe)) = splice.take().and_then(|fds| Some((fds, Pipe::take()?))) {
                        splice::relay(from, to, left, &mut pipe, opts.idle).await?;
                        return Ok(n);
                    }
                }
                if src.data().is_empty() {
                    fill(src, opts, true).await?;
                }
                let take = src.data().len().min(usize::try_from(left).unwrap_or(usize::MAX));
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
                // Payload ranges are kept only to de-chunk; counting them
                // needs no list (so forwarding a chunked body as it came
                // allocates nothing).
                let dechunk = opts.dechunk;
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
async fn fill<R: AsyncReadRent>(src: &mut Reader<R>, opts: &BodyOpts, need: bool) -> Result<usize, BodyError> {
    src.reserve_total(opts.buffer);
    match monoio::time::timeout(opts.idle, src.fill()).await {
        Err(_) => Err(BodyError::SourceIdle),
        Ok(Err(e)) => Err(BodyError::SourceIo(e)),
        Ok(Ok(0)) if need => Err(BodyError::Truncated),
        Ok(Ok(n)) => Ok(n),
    }
}
