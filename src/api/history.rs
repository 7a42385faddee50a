//! The overview's recent past (I5): once a second a control-plane thread
//! reads the summed statistics and keeps what changed since the reading
//! before (requests, bytes, errors per second, open connections, average
//! response time) in a ring of [`CAPACITY`] samples, served at
//! `GET /api/tm/1.0/status/history`. The dashboard draws its charts from
//! it, so a page opened now shows the last ten minutes, and any client can
//! read the same numbers.
//!
//! Cost to the shards: one statistics snapshot per shard per second (the
//! same message `GET …/status` sends), whether or not anyone looks.

use crate::runtime::Control;
use crate::stats::Totals;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Samples kept: ten minutes at one a second.
pub const CAPACITY: usize = 600;
/// Seconds between samples.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One second of the whole proxy (every virtual server summed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken, Unix milliseconds (the `since` of the next read).
    pub time_ms: u64,
    /// The interval it covers as measured (about [`INTERVAL`]; longer when
    /// a reading was late): a rate times it is the count.
    pub seconds: f64,
    pub requests_per_second: f64,
    pub bytes_in_per_second: f64,
    pub bytes_out_per_second: f64,
    pub errors_per_second: f64,
    /// Client connections open when it was taken.
    pub connections: u64,
    /// Mean time of the requests that ended in the interval, ms (0 when
    /// none did).
    pub response_time_avg_ms: f64,
}

impl Sample {
    pub fn json(&self) -> Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "time": self.time_ms as f64 / 1000.0,
            "time_ms": self.time_ms,
            "seconds": (self.seconds * 1e6).round() / 1e6,
            "requests_per_second": r(self.requests_per_second),
            "bytes_in_per_second": r(self.bytes_in_per_second),
            "bytes_out_per_second": r(self.bytes_out_per_second),
            "errors_per_second": r(self.errors_per_second),
            "connections": self.connections,
            "response_time_avg_ms": r(self.response_time_avg_ms),
        })
    }
}

/// The counters a sample is the difference of.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub errors: u64,
    pub time_us: u64,
    pub connections: u64,
}

impl Reading {
    pub fn of(t: &Totals) -> Reading {
        let mut r = Reading::default();
        for v in &t.virtual_servers {
            r.requests += v.requests;
            r.bytes_in += v.bytes_in;
            r.bytes_out += v.bytes_out;
            r.errors += v.errors.iter().sum::<u64>();
            r.time_us += v.time_us;
            r.connections += v.current_connections;
        }
        r
    }

    /// The rates from `before` to `self`, `secs` apart. A counter that went
    /// down (a virtual server removed by a reload took its counts with
    /// it) counts as no change, not as a negative rate.
    pub fn since(&self, before: &Reading, secs: f64, time_ms: u64) -> Sample {
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let secs = secs.max(1e-3);
        let requests = d(self.requests, before.requests);
        Sample {
            time_ms,
            seconds: secs,
            requests_per_second: requests / secs,
            bytes_in_per_second: d(self.bytes_in, before.bytes_in) / secs,
            bytes_out_per_second: d(self.bytes_out, before.bytes_out) / secs,
            errors_per_second: d(self.errors, before.errors) / secs,
            connections: self.connections,
            response_time_avg_ms: if requests > 0.0 {
                d(self.time_us, before.time_us) / requests / 1000.0
            } else {
                0.0
            },
        }
    }
}

/// The ring of samples, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub fn push(&self, s: Sample) {
        let mut q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == CAPACITY {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// The samples taken after `since_ms` (all of them for 0), oldest first.
    pub fn since(&self, since_ms: u64) -> Vec<Sample> {
        let q = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let first = q.partition_point(|s| s.time_ms <= since_ms);
        q.range(first..).copied().collect()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Start the sampling thread; it ends when the process stops.
pub fn start(control: Arc<Control>) -> Result<Arc<History>, String> {
    let history = Arc::new(History::default());
    let h = history.clone();
    std::thread::Builder::new()
        .name("shoal-history".into())
        .spawn(move || {
            let mut before = (Instant::now(), Reading::of(&control.stats()));
            let mut next = before.0 + INTERVAL;
            while !control.is_stopping() {
                // Fixed deadlines, so a slow reading does not make the
                // samples drift; a missed deadline is skipped, not bunched.
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += INTERVAL;
                let now = Instant::now();
                while next <= now {
                    next += INTERVAL;
                }
                let reading = Reading::of(&control.stats());
                let at = Instant::now();
                h.push(reading.since(&before.1, (at - before.0).as_secs_f64(), unix_ms()));
                before = (at, reading);
            }
        })
        .map_err(|e| format!("cannot start the statistics history thread: {e}"))?;
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(requests: u64, time_us: u64) -> Reading {
        Reading { requests, bytes_in: requests * 10, bytes_out: requests * 100, errors: 0, time_us, connections: 3 }
    }

    #[test]
    fn rates_are_per_second_and_never_negative() {
        let s = reading(300, 3_000_000).since(&reading(100, 1_000_000), 2.0, 5);
        assert_eq!(s.requests_per_second, 100.0);
        assert_eq!(s.bytes_out_per_second, 10_000.0);
        assert_eq!(s.response_time_avg_ms, 10.0);
        assert_eq!(s.connections, 3);
        // A removed virtual server took its counts: no negative rate.
        let s = reading(50, 0).since(&reading(100, 1_000_000), 1.0, 6);
        assert_eq!((s.requests_per_second, s.response_time_avg_ms), (0.0, 0.0));
    }

    #[test]
    fn the_ring_is_bounded_and_answers_since() {
        let h = History::default();
        for i in 1..=(CAPACITY as u64 + 10) {
            h.push(reading(i, 0).since(&reading(0, 0), 1.0, i * 1000));
        }
        let all = h.since(0);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].time_ms, 11_000);
        let last = h.since(all[CAPACITY - 3].time_ms);
        assert_eq!(last.iter().map(|s| s.time_ms).collect::<Vec<_>>(), [609_000, 610_000]);
        assert!(h.since(u64::MAX).is_empty());
    }
}
