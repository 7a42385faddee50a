//! Rate classes (H2): a limit on how often requests pass, kept as a queue
//! (callers wait their turn; they are refused only when the queue is full
//! or the wait would be too long), for the whole process.
//!
//! The queue is a virtual schedule, not a list: each queue keeps the time
//! its next request may pass (`next`) and how many wait. A request that
//! arrives after `next` passes at once and sets `next` one interval on; one
//! that arrives earlier takes the slot at `next` (moving it on by an
//! interval) and sleeps until then. Requests are therefore released evenly
//! spaced, one per interval, in the order they arrived, across every shard:
//! the interval is `1 s / max_per_second` or `60 s / max_per_minute`,
//! whichever is longer, so neither limit is exceeded in any window. There is
//! no burst allowance: a class at 100 per second lets one request through
//! every 10 ms, never 100 at once.
//!
//! Process-wide by sharing. The class's own queue is two atomics (`next`
//! as nanoseconds since the class was made, and the count waiting),
//! updated with one compare-and-swap per request, so shards never block
//! each other on it; the wait itself is a timer on the request's own
//! shard. Contexts (`rate.use` with a key: a client address, a header) each
//! get a queue of their own in a bounded least-recently-used table behind a
//! mutex taken once per request (never across a wait), keyed by a 128-bit
//! keyed hash as the persistence stores are; the least recently used
//! context is dropped to make room, and its requests in the queue still
//! pass at their slots.

use crate::config::model::RateClass as RateConfig;
use crate::persist::lru::Lru;
use crate::util::clock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A rate class's runtime: its settings, its queues and its counters.
pub struct RateClass {
    pub cfg: RateConfig,
    /// Between two requests' release times; `None`: no limit.
    interval: Option<Duration>,
    /// The class's own queue: when its next request may pass, in
    /// nanoseconds on the process clock (`util::clock`; 0: at once), and
    /// how many wait.
    next_ns: AtomicU64,
    waiting: AtomicU32,
    /// The contexts' queues.
    state: Mutex<State>,
    hash: (ahash::RandomState, ahash::RandomState),
    pub counters: Counters,
}

#[derive(Default)]
pub struct Counters {
    /// Passed without waiting.
    pub passed: AtomicU64,
    /// Passed after waiting in the queue.
    pub queued: AtomicU64,
    /// Refused: the queue was full, or the wait would have been longer than
    /// `max_wait`.
    pub refused: AtomicU64,
    /// Waiting now, every context together.
    pub waiting: AtomicU64,
}

struct State {
    contexts: Lru<u128, Queue>,
}

#[derive(Default, Clone, Copy)]
struct Queue {
    /// When the next request may pass (`None`: at once).
    next: Option<Instant>,
    /// Requests holding a slot that has not come yet.
    waiting: u32,
}

/// What a request gets from [`RateClass::admit`].
pub enum Admit {
    /// It may go on now.
    Now,
    /// It holds a slot: wait until `ticket.until`, then go on.
    Wait(Ticket),
    /// The queue is full or too long: answer with the class's status.
    Refused,
}

/// A request's place in a queue. Dropped (when the wait is over, or the
/// request is abandoned while waiting), it leaves the queue's count.
pub struct Ticket {
    class: Arc<RateClass>,
    key: Option<u128>,
    pub until: Instant,
}

impl Ticket {
    /// Wait for the slot, then leave the queue.
    pub async fn wait(self) {
        monoio::time::sleep_until(self.until.into()).await;
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({} until {:?})", self.class.cfg.name, self.until)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match self.key {
            None => {
                self.class.waiting.fetch_sub(1, Ordering::Relaxed);
            }
            Some(k) => {
                let mut st = self.class.lock();
                if let Some(q) = st.contexts.get_mut(&k) {
                    q.waiting = q.waiting.saturating_sub(1);
                }
            }
        }
        self.class.counters.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RateClass {
    pub fn new(cfg: RateConfig) -> RateClass {
        let per_second = (cfg.max_per_second > 0).then(|| Duration::from_secs(1) / cfg.max_per_second);
        let per_minute = (cfg.max_per_minute > 0).then(|| Duration::from_secs(60) / cfg.max_per_minute);
        let interval = per_second.max(per_minute);
        let contexts = Lru::new(cfg.max_contexts);
        RateClass {
            cfg,
            interval,
            next_ns: AtomicU64::new(0),
            waiting: AtomicU32::new(0),
            state: Mutex::new(State { contexts }),
            hash: (ahash::RandomState::new(), ahash::RandomState::new()),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave a queue inconsistent (each update
        // is a few plain assignments), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(&self, context: &[u8]) -> u128 {
        let (a, b) = (self.hash.0.hash_one(context), self.hash.1.hash_one(context));
        (u128::from(a) << 64) | u128::from(b)
    }

    /// Take a place in the queue of `context` (the class's own queue when
    /// `None`) at `now`.
    pub fn admit(self: &Arc<Self>, context: Option<&[u8]>, now: Instant) -> Admit {
        let Some(interval) = self.interval else {
            self.counters.passed.fetch_add(1, Ordering::Relaxed);
            return Admit::Now;
        };
        let decided = match context {
            None => self.admit_main(interval, now),
            Some(c) => {
                let key = self.key(c);
                let mut st = self.lock();
                let q = st.context(key);
                let slot = q.next.map_or(now, |n| n.max(now));
                if slot <= now {
                    q.next = Some(now + interval);
                    Decided::Now
                } else if q.waiting >= self.cfg.max_queue || slot - now > self.cfg.max_wait {
                    Decided::Refused
                } else {
                    q.next = Some(slot + interval);
                    q.waiting += 1;
                    Decided::Wait(Some(key), slot)
                }
            }
        };
        match decided {
            Decided::Now => {
                self.counters.passed.fetch_add(1, Ordering::Relaxed);
                Admit::Now
            }
            Decided::Refused => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                Admit::Refused
            }
            Decided::Wait(key, until) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                self.counters.waiting.fetch_add(1, Ordering::Relaxed);
                Admit::Wait(Ticket { class: self.clone(), key, until })
            }
        }
    }

    /// The class's own queue: one compare-and-swap on `next_ns` (the count
    /// waiting is checked before it, so a queue may exceed `max_queue` by
    /// the requests of other shards deciding at the same instant).
    fn admit_main(&self, interval: Duration, now: Instant) -> Decided {
        let iv = interval.as_nanos() as u64;
        let now_ns = clock::nanos(now);
        let max_wait = u64::try_from(self.cfg.max_wait.as_nanos()).unwrap_or(u64::MAX);
        let mut cur = self.next_ns.load(Ordering::Acquire);
        loop {
            let slot = cur.max(now_ns);
            let wait = slot > now_ns;
            if wait && (self.waiting.load(Ordering::Relaxed) >= self.cfg.max_queue || slot - now_ns > max_wait) {
                return Decided::Refused;
            }
            let new = if wait { slot + iv } else { now_ns + iv };
            match self.next_ns.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) if wait => {
                    self.waiting.fetch_add(1, Ordering::Relaxed);
                    return Decided::Wait(None, clock::at_nanos(slot));
                }
                Ok(_) => return Decided::Now,
                Err(seen) => cur = seen,
            }
        }
    }

    /// `rate.use.noQueue`: pass now if no wait is needed (counted as a
    /// request of the class), else change nothing.
    pub fn try_now(&self, context: Option<&[u8]>, now: Instant) -> bool {
        let Some(interval) = self.interval else {
            self.counters.passed.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        let passed = match context {
            None => {
                let now_ns = clock::nanos(now);
                let mut cur = self.next_ns.load(Ordering::Acquire);
                loop {
                    if cur > now_ns {
                        break false;
                    }
                    let new = now_ns + interval.as_nanos() as u64;
                    match self.next_ns.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => break true,
                        Err(seen) => cur = seen,
                    }
                }
            }
            Some(c) => {
                let key = self.key(c);
                let mut st = self.lock();
                let q = st.context(key);
                if q.next.is_some_and(|n| n > now) {
                    false
                } else {
                    q.next = Some(now + interval);
                    true
                }
            }
        };
        if passed {
            self.counters.passed.fetch_add(1, Ordering::Relaxed);
        }
        passed
    }

    /// `rate.getBacklog`: requests waiting in the queue of `context` (the
    /// class's own when `None`).
    pub fn backlog(&self, context: Option<&[u8]>) -> u32 {
        match context {
            None => self.waiting.load(Ordering::Relaxed),
            Some(c) => {
                let key = self.key(c);
                self.lock().contexts.get(&key).map_or(0, |q| q.waiting)
            }
        }
    }

    /// Contexts in the table now, and contexts dropped to make room.
    pub fn contexts(&self) -> (usize, u64) {
        let st = self.lock();
        (st.contexts.len(), st.contexts.evictions)
    }
}

/// What `admit` decided, before the counters.
enum Decided {
    Now,
    Refused,
    Wait(Option<u128>, Instant),
}

impl State {
    /// The queue of context `k`, made on first use.
    fn context(&mut self, k: u128) -> &mut Queue {
        if self.contexts.get_mut(&k).is_none() {
            self.contexts.insert(k, Queue::default());
        }
        self.contexts.get_mut(&k).expect("just inserted")
    }
}

/// Every rate class of a configuration generation, indexed like
/// `config.rate_classes`.
pub type RateClasses = Arc<Vec<Arc<RateClass>>>;

/// The classes of `configs`; a class whose settings did not change keeps
/// its queues and counters from `prev`.
pub fn build(configs: &[RateConfig], prev: Option<&RateClasses>) -> RateClasses {
    crate::util::carry_over(configs, prev, |c| &c.cfg, RateClass::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(per_second: u32, per_minute: u32, max_queue: u32, max_wait_ms: u64) -> Arc<RateClass> {
        Arc::new(RateClass::new(RateConfig {
            name: "t".into(),
            max_per_second: per_second,
            max_per_minute: per_minute,
            max_queue,
            max_wait: Duration::from_millis(max_wait_ms),
            status: 503,
            max_contexts: 4,
        }))
    }

    #[test]
    fn releases_evenly_in_arrival_order() {
        let c = class(100, 0, 1000, 60_000);
        let t0 = Instant::now();
        assert!(matches!(c.admit(None, t0), Admit::Now));
        let mut untils = Vec::new();
        for _ in 0..5 {
            match c.admit(None, t0) {
                Admit::Wait(t) => untils.push(t),
                _ => panic!("expected a wait"),
            }
        }
        let gaps: Vec<u128> = untils.iter().map(|t| (t.until - t0).as_millis()).collect();
        assert_eq!(gaps, [10, 20, 30, 40, 50]);
        assert_eq!(c.backlog(None), 5);
        drop(untils);
        assert_eq!(c.backlog(None), 0);
        assert_eq!(c.counters.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_stricter_limit_sets_the_pace() {
        // 100/s but 60/min: one a second.
        let c = class(100, 60, 1000, 60_000);
        let t0 = Instant::now();
        assert!(matches!(c.admit(None, t0), Admit::Now));
        let Admit::Wait(t) = c.admit(None, t0) else { panic!() };
        assert_eq!(t.until - t0, Duration::from_secs(1));
    }

    #[test]
    fn refuses_past_the_queue_or_the_wait() {
        let c = class(10, 0, 2, 60_000);
        let t0 = Instant::now();
        assert!(matches!(c.admit(None, t0), Admit::Now));
        let _a = c.admit(None, t0);
        let _b = c.admit(None, t0);
        assert!(matches!(c.admit(None, t0), Admit::Refused), "queue of 2 full");
        let c = class(10, 0, 100, 250);
        assert!(matches!(c.admit(None, t0), Admit::Now));
        let held: Vec<Admit> = (0..2).map(|_| c.admit(None, t0)).collect();
        assert!(held.iter().all(|a| matches!(a, Admit::Wait(_))));
        assert!(matches!(c.admit(None, t0), Admit::Refused), "a 300 ms wait is over 250 ms");
        assert_eq!(c.counters.refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn contexts_have_queues_of_their_own_in_a_bounded_table() {
        let c = class(1, 0, 100, 60_000);
        let t0 = Instant::now();
        assert!(matches!(c.admit(Some(b"10.0.0.1"), t0), Admit::Now));
        assert!(matches!(c.admit(Some(b"10.0.0.2"), t0), Admit::Now), "another context is not held up");
        assert!(!c.try_now(Some(b"10.0.0.1"), t0), "its queue has a request due later");
        assert!(c.try_now(Some(b"10.0.0.3"), t0));
        let _w = c.admit(Some(b"10.0.0.1"), t0);
        assert_eq!((c.backlog(Some(b"10.0.0.1")), c.backlog(Some(b"10.0.0.2")), c.backlog(None)), (1, 0, 0));
        for i in 0..10 {
            c.admit(Some(format!("k{i}").as_bytes()), t0);
        }
        assert_eq!(c.contexts().0, 4, "the table stays within max_contexts");
    }

    #[test]
    fn a_reload_keeps_an_unchanged_class() {
        let a = class(5, 0, 10, 1000);
        let mut changed = a.cfg.clone();
        changed.max_per_second = 6;
        let prev: RateClasses = Arc::new(vec![a.clone()]);
        let next = build(&[a.cfg.clone(), changed], Some(&prev));
        assert!(Arc::ptr_eq(&next[0], &a), "unchanged: the same queue");
        assert!(!Arc::ptr_eq(&next[1], &a));
    }

    #[test]
    fn no_limit_passes_everything() {
        let c = class(0, 0, 1, 1);
        let t0 = Instant::now();
        assert!((0..100).all(|_| matches!(c.admit(None, t0), Admit::Now)));
    }
}
