//! The session store of a persistence class (E2): key → node, a bounded
//! least-recently-used table shared by every shard.
//!
//! Consistency across shards is by sharing: one table per class for the
//! process, split by key hash into parts of at most about 16,384 entries
//! each behind its own mutex, taken once to look a session up and once to
//! record it, never per byte relayed. The parts keep every operation's
//! worst case small at any `max_entries`: an operation is O(1) (src/
//! persist/lru.rs), and a part that grows rehashes only its own entries
//! (a single table of 10 million rehashed all of them, under the lock
//! every shard needs, for seconds). Recency is kept per part, so the
//! entry evicted is the oldest of its part: the source's "least recently
//! used" within 1/parts of the table. The alternatives (each key owned by
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
    /// A power of two of them; a key's part is its hash's low bits.
    parts: Box<[Mutex<Lru<Key, u32>>]>,
    hash: (ahash::RandomState, ahash::RandomState),
    pub max_entries: usize,
}

/// Entries per part the store aims at (and parts at most): small enough
/// that a part's rehash is a millisecond, few enough parts that a small
/// table stays one.
const PART_ENTRIES: usize = 16_384;
const MAX_PARTS: usize = 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub entries: usize,
    pub evictions: u64,
    pub oldest_age_s: u64,
}

impl Store {
    pub fn new(max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        let n = max_entries.div_ceil(PART_ENTRIES).next_power_of_two().min(MAX_PARTS);
        // The parts' capacities add up to `max_entries` exactly.
        let (each, more) = (max_entries / n, max_entries % n);
        Store {
            parts: (0..n).map(|i| Mutex::new(Lru::new(each + usize::from(i < more)))).collect(),
            hash: (ahash::RandomState::new(), ahash::RandomState::new()),
            max_entries,
        }
    }

    fn part(&self, key: &Key) -> &Mutex<Lru<Key, u32>> {
        &self.parts[(key.1 as usize) & (self.parts.len() - 1)]
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
        self.part(key).lock().ok()?.get(key).copied()
    }

    pub fn record(&self, pool: u32, id: &[u8], node: u32) {
        if !id.is_empty() {
            self.record_key(self.key(pool, id), node);
        }
    }

    pub fn record_key(&self, key: Key, node: u32) {
        if let Ok(mut l) = self.part(&key).lock() {
            l.insert(key, node);
        }
    }

    pub fn forget_key(&self, key: &Key) {
        if let Ok(mut l) = self.part(key).lock() {
            l.remove(key);
        }
    }

    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        for part in self.parts.iter() {
            if let Ok(l) = part.lock() {
                c.entries += l.len();
                c.evictions += l.evictions;
                c.oldest_age_s = c.oldest_age_s.max(l.oldest_age().map_or(0, |d| d.as_secs()));
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_hold_max_entries_in_all() {
        for (max, parts) in [(1, 1), (3, 1), (100_000, 8), (10_000_000, 1024), (100_000_000, 1024)] {
            let s = Store::new(max);
            assert_eq!(s.parts.len(), parts, "{max}");
            let caps: usize = s.parts.iter().map(|p| p.lock().unwrap().capacity()).sum();
            assert_eq!(caps, max, "the parts hold max_entries in all");
        }
        let s = Store::new(100_000);
        for i in 0..300_000u32 {
            s.record(0, &i.to_le_bytes(), i % 5);
        }
        let c = s.counters();
        assert!(c.entries <= 100_000 && c.entries > 99_000, "{c:?}");
        assert_eq!(c.evictions, 300_000 - c.entries as u64);
        assert_eq!(s.lookup(0, &299_999u32.to_le_bytes()), Some(299_999 % 5), "the newest is kept");
        assert_eq!(s.lookup(0, &0u32.to_le_bytes()), None, "the oldest is gone");
    }
}
