//! The flood guard of an HTTP/2 client connection: it reads the frame
//! headers of the bytes on their way to the codec and charges a token
//! bucket for every frame that makes no request progress, the frames the
//! 2019 and 2023 floods are made of (CVE-2019-9512 PING, -9515 SETTINGS,
//! -9518 empty frames, -9516 zero-length headers, CVE-2023-44487 resets):
//!
//! - PING, SETTINGS, PRIORITY, RST_STREAM, and frame types shoal does not
//!   know;
//! - DATA without payload or END_STREAM; HEADERS or CONTINUATION without
//!   payload or END_HEADERS;
//! - WINDOW_UPDATE opening less than [`SMALL_WINDOW_UPDATE`] bytes (real
//!   receivers batch their updates; a flood of tiny ones costs a frame
//!   each to process and invites tiny DATA frames back).
//!
//! The bucket refills at `control_frames_per_second` up to
//! `control_frames_burst`; a frame that finds it empty trips the guard and
//! the connection gets GOAWAY `ENHANCE_YOUR_CALM`. The codec keeps its own
//! limits (streams, header list, reset streams, frame sizes); this guard
//! only covers what the codec answers without limit.

use std::time::Instant;

/// A WINDOW_UPDATE that opens fewer bytes than this counts as a control
/// frame.
pub const SMALL_WINDOW_UPDATE: u32 = 1024;

/// The client connection preface (RFC 9113 §3.4), skipped before frames.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Why the guard tripped, for the log and the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tripped {
    pub frame_type: u8,
}

#[derive(Debug)]
pub struct Guard {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    /// Preface bytes still to skip.
    preface_left: usize,
    header: [u8; 9],
    header_len: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    /// The current frame is a WINDOW_UPDATE: its increment, as read so far.
    window_update: Option<(u32, u8)>,
}

impl Guard {
    pub fn new(per_second: u32, burst: u32) -> Guard {
        Guard {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled: Instant::now(),
            preface_left: PREFACE.len(),
            header: [0; 9],
            header_len: 0,
            payload_left: 0,
            window_update: None,
        }
    }

    /// Account for the next `bytes` of the connection.
    pub fn scan(&mut self, mut bytes: &[u8]) -> Result<(), Tripped> {
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let take = self.payload_left.min(bytes.len());
                if let Some((inc, have)) = self.window_update.as_mut() {
                    for &b in bytes[..take].iter().take(4 - usize::from(*have)) {
                        *inc = *inc << 8 | u32::from(b);
                        *have += 1;
                    }
                    if *have == 4 {
                        let small = (*inc & 0x7fff_ffff) < SMALL_WINDOW_UPDATE;
                        self.window_update = None;
                        if small {
                            self.charge(WINDOW_UPDATE)?;
                        }
                    }
                }
                self.payload_left -= take;
                bytes = &bytes[take..];
                continue;
            }
            let take = (9 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            bytes = &bytes[take..];
            if self.header_len == 9 {
                self.header_len = 0;
                self.frame()?;
            }
        }
        Ok(())
    }

    /// A whole frame header is in `self.header`.
    fn frame(&mut self) -> Result<(), Tripped> {
        let h = self.header;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        self.payload_left = len;
        let idle = match kind {
            DATA => len == 0 && flags & END_STREAM == 0,
            HEADERS | CONTINUATION => len == 0 && flags & END_HEADERS == 0,
            WINDOW_UPDATE => {
                // Judged once its increment is read (a wrong length is the
                // codec's FRAME_SIZE_ERROR).
                if len == 4 {
                    self.window_update = Some((0, 0));
                }
                false
            }
            // PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY,
            // and types shoal does not know.
            _ => true,
        };
        if idle {
            self.charge(kind)?;
        }
        Ok(())
    }

    fn charge(&mut self, frame_type: u8) -> Result<(), Tripped> {
        if self.tokens < 1.0 {
            let now = Instant::now();
            let secs = now.duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + secs * self.per_second).min(self.burst);
            self.refilled = now;
        }
        if self.tokens < 1.0 {
            return Err(Tripped { frame_type });
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags, 0, 0, 0, 1];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn pings_trip_after_the_burst_and_data_does_not() {
        let mut g = Guard::new(1, 3);
        let mut bytes = PREFACE.to_vec();
        for _ in 0..100 {
            bytes.extend(frame(DATA, 0, &[7; 100]));
        }
        assert!(g.scan(&bytes).is_ok());
        let ping = frame(6, 0, &[0; 8]);
        for _ in 0..3 {
            assert!(g.scan(&ping).is_ok());
        }
        assert_eq!(g.scan(&ping), Err(Tripped { frame_type: 6 }));
    }

    #[test]
    fn frames_split_at_every_byte_are_read_alike() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(WINDOW_UPDATE, 0, &[0, 0, 0, 1]));
        bytes.extend(frame(WINDOW_UPDATE, 0, &[0, 1, 0, 0]));
        bytes.extend(frame(DATA, 0, &[]));
        bytes.extend(frame(DATA, END_STREAM, &[]));
        bytes.extend(frame(HEADERS, END_HEADERS, &[1, 2, 3]));
        bytes.extend(frame(CONTINUATION, 0, &[]));
        let mut g = Guard::new(1, 3);
        for b in &bytes {
            g.scan(std::slice::from_ref(b)).unwrap();
        }
        // Small update, empty DATA, empty CONTINUATION: the burst is spent.
        assert!(g.scan(&frame(6, 0, &[0; 8])).is_err());
        let mut whole = Guard::new(1, 4);
        whole.scan(&bytes).unwrap();
        assert!(whole.scan(&frame(6, 0, &[0; 8])).is_ok());
    }
}
