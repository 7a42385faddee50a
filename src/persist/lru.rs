//! A bounded least-recently-used map: every lookup refreshes an entry, and
//! inserting past capacity drops the entry touched longest ago (the
//! session cache behaviour of the source, "each time an entry is accessed,
//! its timestamp is updated").
//!
//! Entries live in a slab, linked in recency order (oldest at the head,
//! newest at the tail) by slab indexes; the hash map gives a key's index.
//! A lookup moves one entry to the tail, an eviction unlinks the head:
//! every operation is O(1) with no scan, so a table of 100 million
//! sessions costs a lookup what a table of 100 does. (The queue of stale
//! touches this replaces was O(1) amortised, but its rebuild scanned twice
//! the capacity under the store's lock.)

use slab::Slab;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// No entry: the end of the list.
const NIL: usize = usize::MAX;

pub struct Lru<K, V> {
    map: HashMap<K, usize, ahash::RandomState>,
    entries: Slab<Entry<K, V>>,
    /// The least and the most recently used entry.
    head: usize,
    tail: usize,
    cap: usize,
    pub evictions: u64,
}

struct Entry<K, V> {
    key: K,
    value: V,
    prev: usize,
    next: usize,
    touched: Instant,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Lru {
            map: HashMap::with_capacity_and_hasher(cap.min(1 << 16), ahash::RandomState::new()),
            entries: Slab::with_capacity(cap.min(1 << 16)),
            head: NIL,
            tail: NIL,
            cap,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Take entry `i` out of the recency list.
    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.entries[i].prev, self.entries[i].next);
        match prev {
            NIL => self.head = next,
            p => self.entries[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n].prev = prev,
        }
    }

    /// Put entry `i` at the tail: the most recently used.
    fn push_tail(&mut self, i: usize) {
        let e = &mut self.entries[i];
        e.prev = self.tail;
        e.next = NIL;
        e.touched = Instant::now();
        match self.tail {
            NIL => self.head = i,
            t => self.entries[t].next = i,
        }
        self.tail = i;
    }

    /// The value for `k`, refreshed as most recently used.
    pub fn get(&mut self, k: &K) -> Option<&V> {
        self.get_mut(k).map(|v| &*v)
    }

    /// The value for `k` to change, refreshed as most recently used.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = *self.map.get(k)?;
        if self.tail != i {
            self.unlink(i);
            self.push_tail(i);
        } else {
            self.entries[i].touched = Instant::now();
        }
        Some(&mut self.entries[i].value)
    }

    /// Set `k` to `v` (most recently used), dropping the least recently
    /// used entry if the map is full.
    pub fn insert(&mut self, k: K, v: V) {
        if let Some(slot) = self.get_mut(&k) {
            *slot = v;
            return;
        }
        if self.map.len() >= self.cap {
            self.evict_oldest();
        }
        let i = self.entries.insert(Entry { key: k.clone(), value: v, prev: NIL, next: NIL, touched: Instant::now() });
        self.push_tail(i);
        self.map.insert(k, i);
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.map.remove(k)?;
        self.unlink(i);
        Some(self.entries.remove(i).value)
    }

    fn evict_oldest(&mut self) {
        if self.head == NIL {
            return;
        }
        let i = self.head;
        self.unlink(i);
        let e = self.entries.remove(i);
        self.map.remove(&e.key);
        self.evictions += 1;
    }

    /// Age of the least recently used entry.
    pub fn oldest_age(&self) -> Option<std::time::Duration> {
        (self.head != NIL).then(|| self.entries[self.head].touched.elapsed())
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
        // Setting a present key refreshes it and evicts nothing.
        l.insert(1, "a2");
        l.insert(5, "e"); // 3 was the oldest
        assert_eq!(l.get(&3), None);
        assert_eq!(l.get(&1), Some(&"a2"));
        assert_eq!(l.evictions, 2);
        assert_eq!(l.remove(&4), Some("d"));
        assert_eq!(l.len(), 2);
    }

    /// The same operations on this map and on a plain model (a Vec in
    /// recency order) agree, over a long random run with removals.
    #[test]
    fn agrees_with_a_model() {
        let mut l = Lru::new(8);
        let mut model: Vec<(u32, u32)> = Vec::new();
        let mut x = 0x9e37_79b9u32;
        for step in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let k = x % 13;
            match x % 5 {
                0 => {
                    let got = l.remove(&k);
                    let want = model.iter().position(|e| e.0 == k).map(|i| model.remove(i).1);
                    assert_eq!(got, want, "step {step}");
                }
                1 | 2 => {
                    let got = l.get(&k).copied();
                    let want = model.iter().position(|e| e.0 == k).map(|i| {
                        let e = model.remove(i);
                        model.push(e);
                        e.1
                    });
                    assert_eq!(got, want, "step {step}");
                }
                _ => {
                    l.insert(k, step);
                    match model.iter().position(|e| e.0 == k) {
                        Some(i) => {
                            model.remove(i);
                        }
                        None if model.len() == 8 => {
                            model.remove(0);
                        }
                        None => {}
                    }
                    model.push((k, step));
                }
            }
            assert_eq!(l.len(), model.len());
        }
        // The list, head to tail, is the model's order.
        let mut order = Vec::new();
        let mut i = l.head;
        while i != super::NIL {
            order.push(l.entries[i].key);
            i = l.entries[i].next;
        }
        assert_eq!(order, model.iter().map(|e| e.0).collect::<Vec<_>>());
    }
}
