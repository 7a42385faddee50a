//! Service level monitoring (H3): a class times requests from the arrival
//! of the request head to the first byte of a node's response, and keeps
//! the last ten seconds of them, one bucket per second (count, requests
//! within the target, sum, minimum, maximum). The share within the target
//! over the window decides the class's state: ok, warning below
//! `warning` percent, serious below `serious` percent. Transitions are
//! logged (and counted) when they happen.
//!
//! Process-wide by sharing, as the source keeps its classes in shared
//! memory across its processes: one window per class behind a mutex taken
//! once per timed request for a few adds, never across I/O, so every
//! shard's requests land in the same window and a reading (from a rule,
//! the status API) is exact. The state is evaluated on each timed request,
//! each reading, and once a second by shard 0, so a class whose window
//! empties goes back to ok (logged) within a second of it.

pub mod module;

use crate::config::model::ServiceLevel as SlmConfig;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Seconds in the window.
pub const WINDOW: usize = 10;

/// A class's state, from its share of conforming requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Serious = 2,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Serious => "serious",
        }
    }

    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Warning,
            2 => State::Serious,
            _ => State::Ok,
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Bucket {
    /// The second it counts (since the process's epoch).
    second: u64,
    count: u64,
    conforming: u64,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
}

/// The window, summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub requests: u64,
    pub conforming: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub avg_us: u64,
}

impl Reading {
    /// Percent of the window's requests within the target (100 with none).
    pub fn percent(&self) -> u64 {
        (self.conforming * 100).checked_div(self.requests).unwrap_or(100)
    }
}

pub struct ServiceLevel {
    pub cfg: SlmConfig,
    window: Mutex<[Bucket; WINDOW]>,
    state: AtomicU8,
    /// Lifetime counts: timed requests, those within the target, state
    /// changes.
    pub requests: AtomicU64,
    pub conforming: AtomicU64,
    pub transitions: AtomicU64,
}

/// The second `now` falls in on the process clock (`util::clock`:
/// monotonic, so buckets never go back on a clock change).
fn second(now: Instant) -> u64 {
    crate::util::clock::nanos(now) / 1_000_000_000
}

impl ServiceLevel {
    pub fn new(cfg: SlmConfig) -> ServiceLevel {
        ServiceLevel {
            cfg,
            window: Mutex::new([Bucket::default(); WINDOW]),
            state: AtomicU8::new(State::Ok as u8),
            requests: AtomicU64::new(0),
            conforming: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, [Bucket; WINDOW]> {
        // Each update is a few adds: a poisoned window is still whole.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time one request that took `elapsed`, at `now`.
    pub fn record(&self, elapsed: Duration, now: Instant) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let ok = elapsed <= self.cfg.response_time;
        let sec = second(now);
        let reading = {
            let mut w = self.lock();
            let b = &mut w[(sec % WINDOW as u64) as usize];
            if b.second != sec || b.count == 0 {
                *b = Bucket { second: sec, min_us: us, ..Bucket::default() };
            }
            b.count += 1;
            b.conforming += u64::from(ok);
            b.sum_us = b.sum_us.saturating_add(us);
            b.min_us = b.min_us.min(us);
            b.max_us = b.max_us.max(us);
            sum(&w, sec)
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.conforming.fetch_add(u64::from(ok), Ordering::Relaxed);
        self.evaluate(&reading);
    }

    /// The window at `now`, and the state it puts the class in.
    pub fn read(&self, now: Instant) -> (Reading, State) {
        let reading = sum(&self.lock(), second(now));
        (reading, self.evaluate(&reading))
    }

    /// The state `r` puts the class in; a change is logged once.
    fn evaluate(&self, r: &Reading) -> State {
        let pct = r.percent();
        let new = if pct < u64::from(self.cfg.serious) {
            State::Serious
        } else if pct < u64::from(self.cfg.warning) {
            State::Warning
        } else {
            State::Ok
        };
        let old = State::from_u8(self.state.swap(new as u8, Ordering::Relaxed));
        if old != new {
            self.transitions.fetch_add(1, Ordering::Relaxed);
            let line = format!(
                "service level {}: {} -> {} ({pct}% of {} requests in the last {WINDOW} s within {} ms)",
                self.cfg.name,
                old.name(),
                new.name(),
                r.requests,
                self.cfg.response_time.as_millis()
            );
            if new == State::Ok {
                log::info!("{line}");
            } else {
                log::warn!("{line}");
            }
            let kind = match new {
                State::Ok => &crate::events::catalogue::SLM_OK,
                State::Warning => &crate::events::catalogue::SLM_WARNING,
                State::Serious => &crate::events::catalogue::SLM_SERIOUS,
            };
            crate::events::emit(crate::events::Event::new(kind, format!("service_levels/{}", self.cfg.name), line));
        }
        new
    }
}

/// The buckets of the `WINDOW` seconds ending with `sec`, summed.
fn sum(w: &[Bucket; WINDOW], sec: u64) -> Reading {
    let mut r = Reading { min_us: u64::MAX, ..Reading::default() };
    let mut sum_us = 0u64;
    for b in w.iter().filter(|b| b.count > 0 && b.second + WINDOW as u64 > sec && b.second <= sec) {
        r.requests += b.count;
        r.conforming += b.conforming;
        sum_us = sum_us.saturating_add(b.sum_us);
        r.min_us = r.min_us.min(b.min_us);
        r.max_us = r.max_us.max(b.max_us);
    }
    match sum_us.checked_div(r.requests) {
        Some(avg) => r.avg_us = avg,
        None => r.min_us = 0,
    }
    r
}

/// Every service level class of a generation, indexed like
/// `config.service_levels`.
pub type Classes = Arc<Vec<Arc<ServiceLevel>>>;

/// The classes of `configs`; a class whose settings did not change keeps
/// its window and state from `prev`.
pub fn build(configs: &[SlmConfig], prev: Option<&Classes>) -> Classes {
    crate::util::carry_over(configs, prev, |c| &c.cfg, ServiceLevel::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class() -> ServiceLevel {
        ServiceLevel::new(SlmConfig {
            name: "web".into(),
            response_time: Duration::from_millis(100),
            warning: 90,
            serious: 50,
        })
    }

    #[test]
    fn states_follow_the_share_within_the_target() {
        let c = class();
        let t0 = Instant::now();
        for _ in 0..10 {
            c.record(Duration::from_millis(10), t0);
        }
        let (r, s) = c.read(t0);
        assert_eq!((r.requests, r.conforming, r.percent(), s), (10, 10, 100, State::Ok));
        assert_eq!((r.min_us, r.max_us, r.avg_us), (10_000, 10_000, 10_000));
        c.record(Duration::from_millis(300), t0);
        c.record(Duration::from_millis(300), t0);
        assert_eq!(c.read(t0).1, State::Warning, "10 of 12 is 83%");
        for _ in 0..20 {
            c.record(Duration::from_millis(300), t0);
        }
        let (r, s) = c.read(t0);
        assert_eq!((r.percent(), s), (31, State::Serious));
        assert_eq!(r.max_us, 300_000);
        assert_eq!(c.transitions.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_window_forgets_after_ten_seconds() {
        let c = class();
        let t0 = Instant::now();
        for _ in 0..5 {
            c.record(Duration::from_millis(500), t0);
        }
        assert_eq!(c.read(t0).1, State::Serious);
        let later = t0 + Duration::from_secs(WINDOW as u64 + 1);
        let (r, s) = c.read(later);
        assert_eq!((r.requests, s), (0, State::Ok));
        c.record(Duration::from_millis(5), later);
        assert_eq!(c.read(later).0.requests, 1);
    }
}
