//! The session store of a persistence class (E2): key → node, a bounded
//! least-recently-used table shared by every shard.
//!
//! Consistency across shards is by sharing: one table per class for the
//! process, behind a mutex taken once to look a session up and once to
//! record it, never per byte relayed. The alternatives (each key owned by
//! one shard, or replicated deltas) would avoid the lock at the price of a
//! cross-shard round trip per lookup or of stale reads. Measured
//! (`cargo bench -p shoal-microbench --bench persist`, docs/persistence.md):
//! a lookup and a record in a full 100,000-entry table cost well under a
//! microsecond, less than either alternative.

use super::lru::Lru;
use std::sync::Mutex;

/// (pool uid, 128-bit keyed hash of the session key) → node id (see
/// `ShardPool::uid` and `NodeHealth::id`: both survive reconfiguration). Hashing
/// outside the lock, to a fixed-size key, keeps the locked part free of
/// allocation and short. The hash keys are random per process, so clients
/// cannot craft colliding session keys, and at 128 bits an accidental
/// collision among even 10^8 sessions has odds below 10^-20.
pub type Key = (u32, u128);

pub struct Store {
    lru: Mutex<Lru<Key, u32>>,
    hash: (ahash::RandomState, ahash::RandomState),
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
        Store {
            lru: Mutex::new(Lru::new(max_entries)),
            hash: (ahash::RandomState::new(), ahash::RandomState::new()),
            max_entries,
        }
    }

    /// The table key of session `id` in `pool`.
    pub fn key(&self, pool: u32, id: &[u8]) -> Key {
        let (a, b) = (self.hash.0.hash_one(id), self.hash.1.hash_one(id));
        (pool, (u128::from(a) << 64) | u128::from(b))
    }

    /// The node session `id` of `pool` was served by, if remembered.
    pub fn lookup(&self, pool: u32, id: &[u8]) -> Option<u32> {
        if id.is_empty() {
            return None;
        }
        self.lookup_key(&self.key(pool, id))
    }

    pub fn lookup_key(&self, key: &Key) -> Option<u32> {
        self.lru.lock().ok()?.get(key).copied()
    }

    pub fn record(&self, pool: u32, id: &[u8], node: u32) {
        if !id.is_empty() {
            self.record_key(self.key(pool, id), node);
        }
    }

    pub fn record_key(&self, key: Key, node: u32) {
        if let Ok(mut l) = self.lru.lock() {
            l.insert(key, node);
        }
    }

    pub fn forget_key(&self, key: &Key) {
        if let Ok(mut l) = self.lru.lock() {
            l.remove(key);
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
