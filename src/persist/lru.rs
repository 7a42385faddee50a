//! A bounded least-recently-used map: every lookup refreshes an entry, and
//! inserting past capacity drops the entry touched longest ago (the
//! session cache behaviour of the source, "each time an entry is accessed,
//! its timestamp is updated").
//!
//! Recency is a queue of (key, stamp) touches; stale touches are skipped
//! at eviction and the queue is rebuilt when it grows past twice the
//! capacity, so every operation is amortised O(1) and memory is bounded.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Instant;

pub struct Lru<K, V> {
    map: HashMap<K, Slot<V>, ahash::RandomState>,
    order: VecDeque<(K, u64)>,
    cap: usize,
    tick: u64,
    pub evictions: u64,
}

struct Slot<V> {
    value: V,
    stamp: u64,
    touched: Instant,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Lru {
            map: HashMap::with_capacity_and_hasher(cap.min(1 << 16), ahash::RandomState::new()),
            order: VecDeque::new(),
            cap,
            tick: 0,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn touch(&mut self, k: &K) -> u64 {
        self.tick += 1;
        self.order.push_back((k.clone(), self.tick));
        if self.order.len() > 2 * self.cap + 16 {
            let map = &self.map;
            self.order.retain(|(k, s)| map.get(k).is_some_and(|slot| slot.stamp == *s));
        }
        self.tick
    }

    /// The value for `k`, refreshed as most recently used.
    pub fn get(&mut self, k: &K) -> Option<&V> {
        self.get_mut(k).map(|v| &*v)
    }

    /// The value for `k` to change, refreshed as most recently used.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.map.contains_key(k) {
            return None;
        }
        let stamp = self.touch(k);
        let slot = self.map.get_mut(k)?;
        slot.stamp = stamp;
        slot.touched = Instant::now();
        Some(&mut slot.value)
    }

    /// Set `k` to `v` (most recently used), dropping the least recently
    /// used entry if the map is full.
    pub fn insert(&mut self, k: K, v: V) {
        if !self.map.contains_key(&k) && self.map.len() >= self.cap {
            self.evict_oldest();
        }
        let stamp = self.touch(&k);
        self.map.insert(k, Slot { value: v, stamp, touched: Instant::now() });
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k).map(|s| s.value)
    }

    fn evict_oldest(&mut self) {
        while let Some((k, stamp)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|s| s.stamp == stamp) {
                self.map.remove(&k);
                self.evictions += 1;
                return;
            }
        }
    }

    /// Age of the least recently used entry.
    pub fn oldest_age(&self) -> Option<std::time::Duration> {
        self.order
            .iter()
            .find_map(|(k, stamp)| self.map.get(k).filter(|s| s.stamp == *stamp))
            .map(|s| s.touched.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut l = Lru::new(3);
        l.insert(1, "a");
        l.insert(2, "b");
        l.insert(3, "c");
        assert_eq!(l.get(&1), Some(&"a")); // 2 is now the oldest
        l.insert(4, "d");
        assert_eq!((l.len(), l.evictions), (3, 1));
        assert_eq!(l.get(&2), None);
        assert!(l.get(&1).is_some() && l.get(&3).is_some() && l.get(&4).is_some());
        assert!(l.oldest_age().is_some());
    }

    #[test]
    fn touches_stay_bounded() {
        let mut l = Lru::new(4);
        for i in 0..10_000u32 {
            l.insert(i % 6, i);
            l.get(&(i % 3));
        }
        assert_eq!(l.len(), 4);
        assert!(l.order.len() <= 2 * 4 + 16 + 1);
    }
}
