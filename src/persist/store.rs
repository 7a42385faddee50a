//! The session store of a persistence class (E2): key → node, a bounded
//! least-recently-used table shared by every shard.
//!
//! Consistency across shards is by sharing: one table per class for the
//! process, behind a mutex taken once to look a session up and once to
//! record it, never per byte relayed. The alternatives (each key owned by
//! one shard, or replicated deltas) would avoid the lock at the price of a
//! cross-shard round trip per lookup or of stale reads; at the rates of
//! new sessions and requests a shard serves, an uncontended lock costs
//! tens of nanoseconds, less than either.

use super::lru::Lru;
use std::sync::Mutex;

/// (pool, session key) → node index.
type Key = (u32, Vec<u8>);

pub struct Store {
    lru: Mutex<Lru<Key, u32>>,
    pub max_entries: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub entries: usize,
    pub evictions: u64,
    pub oldest_age_s: u64,
}

impl Store {
    pub fn new(max_entries: usize) -> Self {
        Store { lru: Mutex::new(Lru::new(max_entries)), max_entries }
    }

    /// The node session `id` of `pool` was served by, if remembered.
    pub fn lookup(&self, pool: usize, id: &[u8]) -> Option<usize> {
        if id.is_empty() {
            return None;
        }
        let mut l = self.lru.lock().ok()?;
        l.get(&(pool as u32, id.to_vec())).map(|&n| n as usize)
    }

    pub fn record(&self, pool: usize, id: &[u8], node: usize) {
        if id.is_empty() {
            return;
        }
        if let Ok(mut l) = self.lru.lock() {
            l.insert((pool as u32, id.to_vec()), node as u32);
        }
    }

    pub fn forget(&self, pool: usize, id: &[u8]) {
        if let Ok(mut l) = self.lru.lock() {
            l.remove(&(pool as u32, id.to_vec()));
        }
    }

    pub fn counters(&self) -> Counters {
        match self.lru.lock() {
            Ok(l) => Counters {
                entries: l.len(),
                evictions: l.evictions,
                oldest_age_s: l.oldest_age().map_or(0, |d| d.as_secs()),
            },
            Err(_) => Counters::default(),
        }
    }
}
