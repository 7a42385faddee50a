//! One response body's encoder: gzip, brotli or zstd over a stream of
//! pieces, each piece flushed as it passes (a node's streamed response
//! reaches the client as it comes, not when the encoder's buffer fills),
//! the last one finishing the stream. Memory per encoder is bounded by the
//! coding's window, which the levels and a brotli window of 2^19 fix.
//!
//! It works in place on the driver's piece buffer ([`BodyTransform`]):
//! the encoder writes into a vector of its own, which is swapped with the
//! piece, so a steady stream allocates nothing.

use crate::http::coding::Coding;
use crate::proxy::module::{BodyFlow, BodyTransform};
use std::io::Write;

/// Compression levels per coding (validated by the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// 1 to 9 (zlib's scale).
    pub gzip: u32,
    /// 0 to 11.
    pub brotli: u32,
    /// 1 to 19 (higher ones want windows past HTTP's 8 MiB, RFC 9659).
    pub zstd: i32,
}

impl Default for Levels {
    fn default() -> Self {
        // nginx's and the Apache module's usual gzip level; brotli 4 and
        // zstd 3 cost about what gzip 6 does and compress better.
        Levels { gzip: 6, brotli: 4, zstd: 3 }
    }
}

/// log2 of brotli's window: 512 KiB, the size nginx's brotli module uses
/// (the encoder's default, 4 MiB, would cost that much per response).
const BROTLI_WINDOW: u32 = 19;

enum Kind {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    /// Finished, or failed.
    Done,
}

/// A body's encoder, with its counts.
pub struct Encoder {
    kind: Kind,
    pub coding: Coding,
    /// Bytes taken in and given out so far.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Encoder {
    /// An encoder for a body of `size` bytes when the node said so
    /// (`Content-Length`): brotli and zstd then size their windows and
    /// tables to the body, as nginx's brotli filter does, so a small
    /// response costs small memory.
    pub fn new(coding: Coding, levels: Levels, size: Option<u64>) -> std::io::Result<Encoder> {
        let out = Vec::with_capacity(16 * 1024);
        let kind = match coding {
            Coding::Gzip => Kind::Gzip(flate2::write::GzEncoder::new(out, flate2::Compression::new(levels.gzip))),
            Coding::Brotli => {
                let mut p = brotli::enc::BrotliEncoderParams {
                    quality: levels.brotli as i32,
                    lgwin: BROTLI_WINDOW as i32,
                    ..Default::default()
                };
                if let Some(n) = size {
                    p.size_hint = usize::try_from(n).unwrap_or(usize::MAX);
                    // The smallest window (16 to 19 bits) that holds the body.
                    while p.lgwin > 16 && (1u64 << (p.lgwin - 1)) >= n {
                        p.lgwin -= 1;
                    }
                }
                Kind::Brotli(Box::new(brotli::CompressorWriter::with_params(out, 4096, &p)))
            }
            Coding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, levels.zstd)?;
                // The frame then says its size, and zstd picks its window
                // and tables for it.
                e.set_pledged_src_size(size)?;
                Kind::Zstd(e)
            }
        };
        Ok(Encoder { kind, coding, bytes_in: 0, bytes_out: 0 })
    }

    /// Encode `data` (replaced by the encoded bytes, possibly none);
    /// `end` finishes the stream.
    pub fn encode(&mut self, data: &mut Vec<u8>, end: bool) -> std::io::Result<()> {
        self.bytes_in += data.len() as u64;
        let out = match &mut self.kind {
            Kind::Gzip(e) => {
                feed(e, data, end, |e| e.try_finish())?;
                e.get_mut()
            }
            Kind::Brotli(e) => {
                e.write_all(data)?;
                if end {
                    // Finishing consumes the writer; its output is what
                    // is left.
                    let Kind::Brotli(e) = std::mem::replace(&mut self.kind, Kind::Done) else { unreachable!() };
                    let mut rest = e.into_inner();
                    std::mem::swap(data, &mut rest);
                    self.bytes_out += data.len() as u64;
                    return Ok(());
                }
                e.flush()?;
                e.get_mut()
            }
            Kind::Zstd(e) => {
                feed(e, data, end, |e| e.do_finish())?;
                e.get_mut()
            }
            Kind::Done => return Err(std::io::Error::other("the encoder has finished")),
        };
        std::mem::swap(data, out);
        out.clear();
        self.bytes_out += data.len() as u64;
        if end {
            self.kind = Kind::Done;
        }
        Ok(())
    }
}

/// Write `data` into encoder `e`, then flush it, or `finish` it at the
/// end.
fn feed<W: Write>(
    e: &mut W,
    data: &[u8],
    end: bool,
    finish: impl FnOnce(&mut W) -> std::io::Result<()>,
) -> std::io::Result<()> {
    e.write_all(data)?;
    if end {
        finish(e)
    } else {
        e.flush()
    }
}

impl BodyTransform for Encoder {
    fn transform(&mut self, data: &mut Vec<u8>, end: bool) -> BodyFlow {
        match self.encode(data, end) {
            Ok(()) => BodyFlow::Continue,
            Err(e) => {
                log::warn!("compression ({}) failed: {e}", self.coding.token());
                BodyFlow::Abort("the compressor failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn text(n: usize) -> Vec<u8> {
        let words = ["shoal ", "proxy ", "stream ", "cache ", "rule ", "node\n", "pool, ", "class. "];
        let mut out = Vec::with_capacity(n);
        let mut x = 12345u64;
        while out.len() < n {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 60) as usize % words.len()].as_bytes());
        }
        out.truncate(n);
        out
    }

    fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap(),
            Coding::Brotli => brotli::Decompressor::new(data, 4096).read_to_end(&mut out).unwrap(),
            Coding::Zstd => zstd::stream::read::Decoder::new(data).unwrap().read_to_end(&mut out).unwrap(),
        };
        out
    }

    #[test]
    fn every_coding_round_trips_in_pieces_and_shrinks_text() {
        let body = text(300_000);
        for coding in Coding::ALL {
            let mut e = Encoder::new(coding, Levels::default(), None).unwrap();
            let mut wire = Vec::new();
            let pieces: Vec<&[u8]> = body.chunks(7_001).collect();
            for (i, p) in pieces.iter().enumerate() {
                let mut piece = p.to_vec();
                e.encode(&mut piece, false).unwrap();
                // Flushed: everything given so far decodes.
                wire.extend_from_slice(&piece);
                if i == 3 {
                    let mut partial = Vec::new();
                    let _ = match coding {
                        Coding::Gzip => flate2::read::GzDecoder::new(&wire[..]).read_to_end(&mut partial),
                        Coding::Brotli => brotli::Decompressor::new(&wire[..], 4096).read_to_end(&mut partial),
                        Coding::Zstd => zstd::stream::read::Decoder::new(&wire[..]).unwrap().read_to_end(&mut partial),
                    };
                    assert_eq!(partial, body[..4 * 7_001], "{coding:?}: flushed pieces decode at once");
                }
            }
            let mut last = Vec::new();
            e.encode(&mut last, true).unwrap();
            wire.extend_from_slice(&last);
            assert_eq!(decode(coding, &wire), body, "{coding:?}");
            assert!(wire.len() < body.len() / 2, "{coding:?}: {} of {}", wire.len(), body.len());
            assert_eq!((e.bytes_in, e.bytes_out), (body.len() as u64, wire.len() as u64));
            assert!(e.encode(&mut Vec::new(), true).is_err(), "finished once");
        }
    }

    #[test]
    fn a_sized_body_round_trips_in_pieces() {
        for size in [1_000usize, 70_000, 600_000] {
            let body = text(size);
            for coding in Coding::ALL {
                let mut e = Encoder::new(coding, Levels::default(), Some(size as u64)).unwrap();
                let mut wire = Vec::new();
                for p in body.chunks(16_384) {
                    let mut piece = p.to_vec();
                    e.encode(&mut piece, false).unwrap();
                    wire.extend_from_slice(&piece);
                }
                let mut last = Vec::new();
                e.encode(&mut last, true).unwrap();
                wire.extend_from_slice(&last);
                assert_eq!(decode(coding, &wire), body, "{coding:?} {size}");
            }
        }
    }

    #[test]
    fn an_empty_body_is_a_valid_stream() {
        for coding in Coding::ALL {
            let mut e = Encoder::new(coding, Levels::default(), Some(0)).unwrap();
            let mut last = Vec::new();
            e.encode(&mut last, true).unwrap();
            assert!(!last.is_empty());
            assert_eq!(decode(coding, &last), b"");
        }
    }
}
