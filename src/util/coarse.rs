//! A shard-local coarse timer for many long, imprecise deadlines (parked
//! connections' keepalive timeouts). Waiters listen on one of a ring of
//! one-second bucket `Event`s, which a single ticking task notifies in
//! turn; a waiter costs a 32-byte listener instead of a runtime timer
//! entry (640 bytes in monoio), and is woken at its deadline, rounded up to
//! the next whole second, or once per ring turn when the deadline is
//! further away than the ring reaches.
//!
//! The ticking task starts with the first wait, on the shard that waits.

use super::event::Event;
use std::cell::Cell;
use std::time::{Duration, Instant};

const BUCKETS: usize = 64;
const TICK: Duration = Duration::from_secs(1);

pub struct CoarseTimer {
    start: Instant,
    /// Ticks elapsed since `start` (bucket `now % BUCKETS` was notified last).
    now: Cell<u64>,
    ticking: Cell<bool>,
    buckets: Vec<Event>,
}

impl Default for CoarseTimer {
    fn default() -> Self {
        CoarseTimer {
            start: Instant::now(),
            now: Cell::new(0),
            ticking: Cell::new(false),
            buckets: (0..BUCKETS).map(|_| Event::new()).collect(),
        }
    }
}

impl CoarseTimer {
    /// Complete at `deadline` or up to one second after it.
    pub async fn sleep_until(self: &std::rc::Rc<Self>, deadline: Instant) {
        if !self.ticking.replace(true) {
            monoio::spawn(self.clone().tick());
        }
        let due = deadline.saturating_duration_since(self.start).as_secs().saturating_add(1);
        loop {
            let now = self.now.get();
            if now >= due {
                return;
            }
            let at = due.min(now + BUCKETS as u64 - 1);
            self.buckets[(at % BUCKETS as u64) as usize].listen().await;
        }
    }

    async fn tick(self: std::rc::Rc<Self>) {
        loop {
            let next = self.start + TICK * (self.now.get() as u32 + 1);
            monoio::time::sleep_until(next.into()).await;
            let now = self.now.get() + 1;
            self.now.set(now);
            self.buckets[(now % BUCKETS as u64) as usize].notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// Waiters wake at their deadline rounded up to the next tick, never
    /// before it; a deadline already past returns at the next tick.
    #[test]
    fn wakes_at_or_just_after_the_deadline() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let t = Rc::new(CoarseTimer::default());
            let start = Instant::now();
            let a = monoio::spawn({
                let t = t.clone();
                async move {
                    t.sleep_until(start + Duration::from_millis(1500)).await;
                    start.elapsed()
                }
            });
            let b = monoio::spawn({
                let t = t.clone();
                async move {
                    t.sleep_until(start).await;
                    start.elapsed()
                }
            });
            let (a, b) = (a.await, b.await);
            assert!(a >= Duration::from_millis(1500) && a < Duration::from_millis(2600), "{a:?}");
            assert!(b < Duration::from_millis(1600), "{b:?}");
        });
    }
}
