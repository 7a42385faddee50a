//! Chunked transfer coding (RFC 9112 §7.1) as a streaming framer: it finds
//! where a chunked body ends and checks its syntax, byte by byte, without
//! copying — the bytes themselves are forwarded unchanged. Optionally it
//! reports which ranges are chunk data, for de-chunking to HTTP/1.0 clients.
//!
//! Strict where laxness enables request smuggling: chunk sizes are 1–16
//! hex digits (no sign, no whitespace, no overflow), every line ends in
//! CRLF (a bare LF is an error), chunk extensions and trailers are bounded.

use std::ops::Range;

/// Longest chunk-size line extension, and the whole trailer section.
pub const MAX_EXT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    SizeOverflow,
    BadLineEnd,
    ExtTooLong,
    TrailersTooLong,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::SizeOverflow => "chunk size overflows",
            ChunkError::BadLineEnd => "chunk line not terminated by CRLF",
            ChunkError::ExtTooLong => "chunk extension too long",
            ChunkError::TrailersTooLong => "trailer section too long",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a size.
    SizeStart,
    Size {
        digits: u8,
    },
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf {
        empty: bool,
    },
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedFramer {
    state: State,
    size: u64,
    /// Bytes left in the current chunk's data.
    remaining: u64,
    ext_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedFramer {
    fn default() -> Self {
        ChunkedFramer { state: State::SizeStart, size: 0, remaining: 0, ext_len: 0, trailer_len: 0 }
    }
}

impl ChunkedFramer {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume bytes of the body from the start of `buf`; returns how many
    /// belong to this body (all of `buf` unless the body ended inside it).
    /// `data` receives the ranges (within `buf`) that are chunk payload.
    pub fn advance(&mut self, buf: &[u8], data: impl FnMut(Range<usize>)) -> Result<usize, ChunkError> {
        self.advance_parts(buf, data, |_| {})
    }

    /// As [`advance`](Self::advance), and `trailer` receives the bytes of
    /// the trailer section (its lines and the final CRLF), for a recipient
    /// that carries trailers in another form (an HTTP/2 HEADERS frame).
    pub fn advance_parts(
        &mut self,
        buf: &[u8],
        mut data: impl FnMut(Range<usize>),
        mut trailer: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < buf.len() {
            let c = buf[i];
            match self.state {
                State::SizeStart | State::Size { .. } => {
                    let digits = match self.state {
                        State::Size { digits } => digits,
                        _ => 0,
                    };
                    if let Some(v) = hex(c) {
                        if digits >= 16 {
                            return Err(ChunkError::SizeOverflow);
                        }
                        self.size = self.size << 4 | u64::from(v);
                        self.state = State::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(ChunkError::BadSize);
                    } else if c == b';' {
                        self.ext_len = 0;
                        self.state = State::Ext;
                    } else if c == b'\r' {
                        self.state = State::SizeLf;
                    } else {
                        return Err(ChunkError::BadSize);
                    }
                    i += 1;
                }
                State::Ext => {
                    // Extensions are skipped (but bounded): no proxy-relevant
                    // meaning, and nodes see them unchanged.
                    if c == b'\r' {
                        self.state = State::SizeLf;
                    } else if c == b'\n' || c == 0 {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.ext_len += 1;
                        if self.ext_len > MAX_EXT {
                            return Err(ChunkError::ExtTooLong);
                        }
                    }
                    i += 1;
                }
                State::SizeLf => {
                    if c != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    i += 1;
                    if self.size == 0 {
                        self.trailer_len = 0;
                        self.state = State::TrailerStart;
                    } else {
                        self.remaining = self.size;
                        self.state = State::Data;
                    }
                    self.size = 0;
                }
                State::Data => {
                    let take = (buf.len() - i).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    data(i..i + take);
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if c != b'\r' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if c != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::SizeStart;
                    i += 1;
                }
                State::TrailerStart | State::TrailerLine => {
                    trailer(&buf[i..=i]);
                    let start = self.state == State::TrailerStart;
                    if c == b'\r' {
                        self.state = State::TrailerLf { empty: start };
                    } else if c == b'\n' || c == 0 {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.state = State::TrailerLine;
                    }
                    self.trailer_len += 1;
                    if self.trailer_len > MAX_EXT {
                        return Err(ChunkError::TrailersTooLong);
                    }
                    i += 1;
                }
                State::TrailerLf { empty } => {
                    if c != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    trailer(&buf[i..=i]);
                    i += 1;
                    if empty {
                        self.state = State::Done;
                        return Ok(i);
                    }
                    self.state = State::TrailerStart;
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), ChunkError> {
        let mut f = ChunkedFramer::default();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let n = f.advance(piece, |r| out.extend_from_slice(&piece[r]))?;
            used += n;
            if f.is_done() {
                break;
            }
        }
        Ok((used, out, f.is_done()))
    }

    #[test]
    fn decodes_in_any_split() {
        let body = b"5\r\nhello\r\n6;name=v\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 64] {
            let (used, data, done) = run(body, step).unwrap();
            assert!(done);
            assert_eq!(used, body.len() - 4, "step {step}");
            assert_eq!(data, b"hello world");
        }
    }

    #[test]
    fn rejects_hostile_sizes_and_line_ends() {
        for bad in [
            &b"-5\r\nhello\r\n0\r\n\r\n"[..],
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"10000000000000000\r\n",
            b"5\r\nhello\r\n0\r\n\n",
        ] {
            assert!(run(bad, 1).is_err(), "accepted {:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(run(b"10000000000000000\r\n", 64).unwrap_err(), ChunkError::SizeOverflow);
        assert!(run(b"ffffffffffffffff\r\n", 64).is_ok(), "16 digits fit in u64");
    }
}
