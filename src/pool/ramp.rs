//! Gradual start (C2, perceptive): a node that joins a perceptive pool at
//! run time (state set to active) or recovers from dead gets exactly one
//! request first; once it has answered, the number of requests it may hold
//! at once (`cap`) starts at 1 and doubles every `RAMP_STEP` while its
//! response time stays within `RAMP_SLOWDOWN` × the other nodes' average
//! (else the cap holds, adaptively). The ramp ends when the cap reaches the
//! node's fair share of the pool's concurrent requests.
//!
//! Like passive health this state is process-wide (the first request must
//! be exactly one, whichever shard sends it), and it is touched only while
//! a ramp is under way: in steady state a pick does one relaxed load.

use crate::util::clock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

/// How often the cap may double.
pub const RAMP_STEP_MS: u64 = 1000;
/// A ramping node slower than this multiple of the others' average
/// response time does not get its cap raised.
pub const RAMP_SLOWDOWN: f64 = 1.5;

#[derive(Debug, Default)]
pub struct Ramp {
    active: AtomicBool,
    /// 0 until the first request has been answered.
    cap: AtomicU32,
    in_flight: AtomicU32,
    /// When the cap last changed (process clock, ms).
    since: AtomicU64,
}

impl Ramp {
    pub fn start(&self) {
        self.cap.store(0, Relaxed);
        self.in_flight.store(0, Relaxed);
        self.since.store(clock::now_ms(), Relaxed);
        self.active.store(true, Relaxed);
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Whether one more request may go to the node now.
    pub fn admits(&self) -> bool {
        !self.is_active() || self.in_flight.load(Relaxed) < self.cap.load(Relaxed).max(1)
    }

    /// Claim a slot for a request; false if the node is at its cap.
    pub fn begin(&self) -> bool {
        if !self.is_active() {
            return true;
        }
        let cap = self.cap.load(Relaxed).max(1);
        let n = self.in_flight.fetch_add(1, Relaxed) + 1;
        if n > cap {
            self.in_flight.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    /// A request to the node ended. `answered`: it got a response;
    /// `fast_enough`: its response time is within `RAMP_SLOWDOWN` of the
    /// others'; `fair_share`: the cap at which the ramp ends.
    pub fn end(&self, answered: bool, fast_enough: bool, fair_share: u32) {
        self.end_at(answered, fast_enough, fair_share, clock::now_ms());
    }

    fn end_at(&self, answered: bool, fast_enough: bool, fair_share: u32, now: u64) {
        if !self.is_active() {
            return;
        }
        let _ = self.in_flight.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        if !answered {
            return;
        }
        let cap = self.cap.load(Relaxed);
        if cap == 0 {
            // The first request was answered: from now on, one at a time.
            self.cap.store(1, Relaxed);
            self.since.store(now, Relaxed);
        } else if fast_enough && now.saturating_sub(self.since.load(Relaxed)) >= RAMP_STEP_MS {
            let next = cap.saturating_mul(2);
            self.cap.store(next, Relaxed);
            self.since.store(now, Relaxed);
            if next >= fair_share.max(2) {
                self.active.store(false, Relaxed);
            }
        }
    }

    pub fn cap(&self) -> u32 {
        self.cap.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_then_doubling() {
        let r = Ramp::default();
        assert!(r.admits(), "inactive ramps admit everything");
        r.start();
        let t0 = r.since.load(Relaxed);
        assert!(r.begin());
        assert!(!r.begin(), "exactly one request first");
        r.end_at(true, true, 8, t0);
        assert_eq!(r.cap(), 1);
        assert!(r.begin());
        assert!(!r.begin());
        r.end_at(true, true, 8, t0 + 10);
        assert_eq!(r.cap(), 1, "no doubling before a step has passed");
        assert!(r.begin());
        r.end_at(true, false, 8, t0 + RAMP_STEP_MS + 1);
        assert_eq!(r.cap(), 1, "too slow: the cap holds");
        let mut t = t0;
        for expect in [2, 4, 8] {
            t += RAMP_STEP_MS + 1;
            assert!(r.begin());
            r.end_at(true, true, 8, t);
            assert_eq!(r.cap(), expect);
        }
        assert!(!r.is_active(), "the ramp ends at the fair share");
    }
}
