//! Passive node health (C5), shared by every shard.
//!
//! This is the one deliberate exception to "no shared atomics on the request
//! path": a node's verdict must be process-wide (three failures on any mix
//! of shards mark it dead, and no shard keeps sending to a dead node), and
//! a channel round-trip could let each shard spend its own three attempts.
//! The cost is small because the state is read-mostly: a pick does relaxed
//! loads of a cache line that is written only when a connect fails or a
//! failing node recovers, so in steady state the line stays shared in every
//! core's cache.
//!
//! States: *up* (no recent failure); *suspect* (1..attempts-1 consecutive
//! failures: one connect at a time, so concurrent clients cannot pile
//! attempts onto a node that just failed); *dead* until `node_fail_time`
//! has passed; then *probe* (one live connection at a time tries it; success
//! brings it back, failure makes it dead for another `node_fail_time`).

use crate::util::clock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug)]
pub struct NodeHealth {
    /// A process-wide identity that survives reconfiguration (the cell is
    /// carried over while the node stays in its pool): persistence tables
    /// remember nodes by it, not by their position in the pool.
    pub id: u32,
    /// Gradual start (perceptive pools), shared the same way.
    pub ramp: super::ramp::Ramp,
    /// Connections or requests in progress, process-wide; kept only when
    /// the pool sets `max_connections_per_node`.
    pub active: AtomicU32,
    failures: AtomicU32,
    /// Process-clock milliseconds until which the node is dead; 0 = not dead.
    dead_until: AtomicU64,
    /// A single-flight attempt (suspect or probe) is in progress.
    probing: AtomicBool,
    /// Active monitors (D1) that currently find the node down; any one
    /// takes it out of service until it passes again.
    monitors_failing: AtomicU32,
    /// The node is disabled (C8): monitors leave it alone.
    pub disabled: AtomicBool,
}

impl Default for NodeHealth {
    fn default() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        NodeHealth {
            id: NEXT.fetch_add(1, Relaxed),
            ramp: Default::default(),
            active: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            dead_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            monitors_failing: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Up,
    /// Usable by one connection at a time.
    SingleFlight,
    Down,
}

/// What a recorded outcome did to the node, for logging by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    /// A failure, `n` of `attempts` consecutive.
    Failed {
        n: u32,
        attempts: u32,
    },
    MarkedDead,
    StillDead,
    Recovered,
}

impl NodeHealth {
    pub fn availability(&self, now_ms: u64) -> Availability {
        if self.monitors_failing.load(Relaxed) > 0 {
            return Availability::Down;
        }
        let dead_until = self.dead_until.load(Relaxed);
        if dead_until == 0 {
            if self.failures.load(Relaxed) == 0 {
                Availability::Up
            } else if self.probing.load(Relaxed) {
                Availability::Down
            } else {
                Availability::SingleFlight
            }
        } else if now_ms < dead_until || self.probing.load(Relaxed) {
            Availability::Down
        } else {
            Availability::SingleFlight
        }
    }

    /// Claim the single-flight slot; false if another shard or connection
    /// holds it.
    pub fn try_begin_probe(&self) -> bool {
        self.probing.compare_exchange(false, true, Relaxed, Relaxed).is_ok()
    }

    /// Give the single-flight slot back. Only its holder does this (after
    /// recording the outcome), so an unrelated success or failure never
    /// frees another connection's slot.
    pub fn end_probe(&self) {
        self.probing.store(false, Relaxed);
    }

    pub fn record_success(&self) -> Transition {
        // Only write when there is something to clear: in steady state this
        // is three relaxed loads and no store.
        let was_dead = self.dead_until.load(Relaxed) != 0;
        if self.failures.load(Relaxed) != 0 || was_dead {
            self.failures.store(0, Relaxed);
            self.dead_until.store(0, Relaxed);
            if was_dead {
                return Transition::Recovered;
            }
        }
        Transition::None
    }

    pub fn record_failure(&self, attempts: u32, fail_time: Duration) -> Transition {
        let now = clock::now_ms();
        if self.dead_until.load(Relaxed) != 0 {
            self.dead_until.store(now + clock::ms(fail_time), Relaxed);
            Transition::StillDead
        } else {
            let n = self.failures.fetch_add(1, Relaxed) + 1;
            if n >= attempts {
                self.failures.store(0, Relaxed);
                self.dead_until.store(now + clock::ms(fail_time), Relaxed);
                Transition::MarkedDead
            } else {
                Transition::Failed { n, attempts }
            }
        }
    }

    /// Some active monitor currently finds the node down.
    pub fn monitor_down(&self) -> bool {
        self.monitors_failing.load(Relaxed) > 0
    }

    pub fn is_dead(&self) -> bool {
        self.dead_until.load(Relaxed) != 0
    }

    /// A monitor found the node down (`true`) or back up (`false`); each
    /// monitor reports each change once.
    pub fn set_monitor_down(&self, down: bool) {
        if down {
            self.monitors_failing.fetch_add(1, Relaxed);
        } else {
            let _ = self.monitors_failing.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_strikes_then_probe() {
        let h = NodeHealth::default();
        let now = clock::now_ms();
        assert_eq!(h.availability(now), Availability::Up);
        assert_eq!(h.record_failure(3, Duration::from_secs(60)), Transition::Failed { n: 1, attempts: 3 });
        assert_eq!(h.availability(now), Availability::SingleFlight);
        assert!(h.try_begin_probe());
        assert_eq!(h.availability(now), Availability::Down, "one attempt at a time while suspect");
        assert!(!h.try_begin_probe());
        assert_eq!(h.record_failure(3, Duration::from_secs(60)), Transition::Failed { n: 2, attempts: 3 });
        assert_eq!(h.availability(now), Availability::Down, "only the holder frees the slot");
        h.end_probe();
        assert_eq!(h.availability(now), Availability::SingleFlight);
        assert_eq!(h.record_failure(3, Duration::from_secs(60)), Transition::MarkedDead);
        assert_eq!(h.availability(clock::now_ms()), Availability::Down);
        // After the fail time a single probe is allowed.
        assert_eq!(h.availability(clock::now_ms() + 61_000), Availability::SingleFlight);
        assert_eq!(h.record_failure(3, Duration::from_secs(60)), Transition::StillDead);
        assert_eq!(h.record_success(), Transition::Recovered);
        assert_eq!(h.availability(clock::now_ms()), Availability::Up);
        assert_eq!(h.record_success(), Transition::None);
    }
}
