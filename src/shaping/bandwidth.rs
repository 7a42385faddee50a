//! Bandwidth classes (H1): a limit on the bytes a response sends to its
//! client, per connection or shared by every connection of the class in
//! the process.
//!
//! The same virtual schedule as the rate classes, in bytes: a class keeps
//! the time its next piece may go (`next`); a sender reserves the time its
//! piece takes at the class's rate (moving `next` on by it) and waits for
//! the start of its reservation before writing. Pieces are at most
//! [`BandwidthClass::chunk`] bytes, the class's rate for 5 ms (1 KiB to
//! 1 MiB): long enough that the timer's millisecond granularity does not
//! slow the class down, short enough that connections sharing a class take
//! turns many times a second. Reservations are granted in the order asked,
//! so the connections of a shared class take turns, one piece each, and
//! share it evenly; a connection that asks for less (a slow client, a
//! small response) leaves the rest to the others.
//!
//! A sender that comes late for its turn (a timer that fired late, a node
//! that was slow to fill the pipe) may catch up on up to 20 ms of the
//! class's time at once (`CATCH_UP`), so those delays do not lower the
//! rate; that is also the most a class sends ahead of its rate, after an
//! idle spell.
//!
//! A shared class's `next` is one atomic for the process, moved with a
//! compare-and-swap per piece, so shards never wait for each other and
//! the limit is the class's on 1 shard or 64. A per-connection class keeps
//! `next` in the response's own [`Shaper`].
//!
//! In a cluster a shared class's rate is the cluster's: each member paces
//! at its share ([`BandwidthClass::set_rate`], set by the cluster thread
//! from the members' demand, K5), and counts its connections sending
//! through the class ([`BandwidthClass::active`]) as its demand.

use crate::config::model::BandwidthClass as BandwidthConfig;
use crate::util::clock;
use monoio::buf::{IoBuf, IoVecBuf};
use monoio::io::AsyncWriteRent;
use monoio::BufResult;
use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How far behind its schedule a class may have fallen and still catch up.
const CATCH_UP: u64 = 20_000_000;

pub struct BandwidthClass {
    pub cfg: BandwidthConfig,
    /// When the class was made, in nanoseconds on the process clock
    /// (`util::clock`): every schedule starts there.
    made_ns: u64,
    /// When a shared class's next piece may go, in nanoseconds on the
    /// process clock.
    next_ns: AtomicU64,
    /// Bytes sent through the class, and pieces that had to wait.
    pub bytes: AtomicU64,
    pub waits: AtomicU64,
    /// The rate this process paces at: the configured one, or in a
    /// cluster this member's share of it.
    rate_bps: AtomicU64,
    /// Responses sending through the class now (live [`Shaper`]s).
    active: AtomicU64,
}

impl BandwidthClass {
    pub fn new(cfg: BandwidthConfig) -> BandwidthClass {
        let made_ns = clock::nanos(Instant::now());
        BandwidthClass {
            made_ns,
            next_ns: AtomicU64::new(made_ns),
            bytes: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            rate_bps: AtomicU64::new(cfg.bits_per_second),
            active: AtomicU64::new(0),
            cfg,
        }
    }

    /// The rate this process paces at, bits per second.
    pub fn rate(&self) -> u64 {
        self.rate_bps.load(Ordering::Relaxed)
    }

    /// Pace at `bps` from now on (a cluster member's share of a shared
    /// class); at least 1 kbit/s, so that no sender waits forever.
    pub fn set_rate(&self, bps: u64) {
        self.rate_bps.store(bps.max(1000), Ordering::Relaxed);
    }

    /// Responses sending through the class now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// The largest piece sent at once: the class's rate for 5 ms.
    pub fn chunk(&self) -> usize {
        let per_5ms = self.rate() / 8 / 200;
        usize::try_from(per_5ms).unwrap_or(usize::MAX).clamp(1024, 1 << 20)
    }

    /// Nanoseconds `n` bytes take at the class's rate.
    fn duration_ns(&self, n: usize) -> u64 {
        let ns = (n as u128 * 8 * 1_000_000_000) / u128::from(self.rate().max(1));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// One response's use of a class.
pub struct Shaper {
    class: Arc<BandwidthClass>,
    /// A per-connection class's schedule (nanoseconds on the process
    /// clock).
    own_next: Cell<u64>,
}

impl Shaper {
    pub fn new(class: Arc<BandwidthClass>) -> Shaper {
        let start = class.made_ns;
        class.active.fetch_add(1, Ordering::Relaxed);
        Shaper { class, own_next: Cell::new(start) }
    }

    /// The largest piece to send at once.
    pub fn chunk(&self) -> usize {
        self.class.chunk()
    }

    /// Reserve the time `n` bytes take and wait for its start.
    pub async fn take(&self, n: usize) {
        let c = &self.class;
        c.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let now_ns = clock::nanos(Instant::now());
        let earliest = now_ns.saturating_sub(CATCH_UP);
        let d = c.duration_ns(n);
        let slot = if c.cfg.per_connection {
            let slot = self.own_next.get().max(earliest);
            self.own_next.set(slot + d);
            slot
        } else {
            let mut cur = c.next_ns.load(Ordering::Acquire);
            loop {
                let slot = cur.max(earliest);
                match c.next_ns.compare_exchange_weak(cur, slot + d, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break slot,
                    Err(seen) => cur = seen,
                }
            }
        };
        if slot > now_ns {
            c.waits.fetch_add(1, Ordering::Relaxed);
            monoio::time::sleep_until(clock::at_nanos(slot).into()).await;
        }
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.class.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A writer whose writes go out at a [`Shaper`]'s pace (each at most a
/// piece), or as they come with no shaper.
pub struct Shaped<'a, W> {
    pub inner: &'a mut W,
    pub shape: Option<&'a Shaper>,
}

impl<W: AsyncWriteRent> AsyncWriteRent for Shaped<'_, W> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let Some(shape) = self.shape else { return self.inner.write(buf).await };
        let n = buf.bytes_init().min(shape.chunk());
        if n == 0 {
            return self.inner.write(buf).await;
        }
        shape.take(n).await;
        let (res, slice) = self.inner.write(buf.slice(0..n)).await;
        (res, slice.into_inner())
    }

    /// Vectored writes are not shaped (the response paths write whole
    /// buffers; none writes vectored to a client).
    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.inner.writev(buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// Every bandwidth class of a generation, indexed like
/// `config.bandwidth_classes`.
pub type BandwidthClasses = Arc<Vec<Arc<BandwidthClass>>>;

/// The classes of `configs`; a class whose settings did not change keeps
/// its schedule and counters from `prev`.
pub fn build(configs: &[BandwidthConfig], prev: Option<&BandwidthClasses>) -> BandwidthClasses {
    crate::util::carry_over(configs, prev, |c| &c.cfg, BandwidthClass::new)
}

/// `"50Mbit"`, `"2Gbit"`, `"400kbit"`, `"1000000"` (bits per second; the
/// prefixes are decimal, `bps` may stand for `bit`).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("expected a rate like \"50Mbit\", found \"{s}\""))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix("bit").or_else(|| unit.strip_suffix("bps")).unwrap_or(&unit);
    let mult = match unit {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        _ => return Err(format!("unknown rate unit in \"{s}\" (use bit, kbit, Mbit or Gbit per second)")),
    };
    n.checked_mul(mult).filter(|&r| r > 0).ok_or_else(|| format!("rate \"{s}\" out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn class(bits: u64, per_connection: bool) -> Arc<BandwidthClass> {
        Arc::new(BandwidthClass::new(BandwidthConfig {
            name: "t".into(),
            bits_per_second: bits,
            per_connection,
            per_member: false,
        }))
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("50Mbit"), Ok(50_000_000));
        assert_eq!(parse_rate("2 Gbit"), Ok(2_000_000_000));
        assert_eq!(parse_rate("400kbps"), Ok(400_000));
        assert_eq!(parse_rate("8000"), Ok(8000));
        assert!(parse_rate("5 furlongs").is_err() && parse_rate("0bit").is_err() && parse_rate("Mbit").is_err());
    }

    #[test]
    fn pieces_are_five_milliseconds_of_the_rate() {
        assert_eq!(class(50_000_000, false).chunk(), 31_250);
        assert_eq!(class(8_000, false).chunk(), 1024);
        assert_eq!(class(100_000_000_000, false).chunk(), 1 << 20);
        assert_eq!(class(8_000_000, false).duration_ns(1_000_000), 1_000_000_000);
    }

    #[monoio::test(timer_enabled = true)]
    async fn a_shared_class_paces_every_shaper_together() {
        // 8 Mbit/s = 1 MB/s; two shapers of one class, 50 pieces of 10 kB
        // each: 1 MB in all, about a second.
        let c = class(8_000_000, false);
        let (a, b) = (Shaper::new(c.clone()), Shaper::new(c.clone()));
        let started = Instant::now();
        for _ in 0..50 {
            a.take(10_000).await;
            b.take(10_000).await;
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(980) && took < Duration::from_millis(1300), "{took:?}");
        assert_eq!(c.bytes.load(Ordering::Relaxed), 1_000_000);
    }

    #[monoio::test(timer_enabled = true)]
    async fn a_per_connection_class_paces_each_alone() {
        let c = class(8_000_000, true);
        let (a, b) = (Shaper::new(c.clone()), Shaper::new(c.clone()));
        let started = Instant::now();
        for _ in 0..25 {
            a.take(10_000).await;
            b.take(10_000).await;
        }
        // 250 kB each at 1 MB/s each: a quarter second, side by side.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(235) && took < Duration::from_millis(450), "{took:?}");
    }
}
