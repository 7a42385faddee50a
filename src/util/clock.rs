//! A process-wide monotonic clock, so shared state (health, shaping
//! schedules, service level windows) can store instants in plain atomics
//! or integers (an `Instant` is not atomic).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process; never 0 after the
/// first millisecond, and callers treat 0 as "unset".
pub fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// Nanoseconds from the process's epoch to `t` (0 for an earlier `t`).
pub fn nanos(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// The instant `ns` nanoseconds after the process's epoch.
pub fn at_nanos(ns: u64) -> Instant {
    epoch() + Duration::from_nanos(ns)
}

/// Convert a duration to whole milliseconds, saturating.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
