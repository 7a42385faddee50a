//! S3-FIFO (Yang, Zhang, Qiu, Yue, Rashmi: "FIFO queues are all you need
//! for cache eviction", SOSP 2023), by bytes: a small FIFO of about a
//! tenth of the capacity takes new objects; one hit there again while in
//! it moves on to the main FIFO when it reaches the small queue's tail,
//! else it is evicted and its key hash remembered in a ghost FIFO. An
//! object whose key is in the ghost goes straight to the main FIFO. The
//! main FIFO gives an object with hits another round (its count lowered)
//! instead of evicting it. Hit counts stop at 3.
//!
//! Entries that leave for other reasons stay in their queue as stale
//! places, skipped when they reach the tail (a generation number tells a
//! reused entry number from the old one).

use super::Evictor;
use std::collections::{HashSet, VecDeque};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    None,
    Small,
    Main,
}

#[derive(Clone, Copy)]
struct Meta {
    queue: Queue,
    freq: u8,
    size: u64,
    hash: u64,
    gen: u32,
}

pub struct S3Fifo {
    meta: Vec<Meta>,
    small: VecDeque<(usize, u32)>,
    main: VecDeque<(usize, u32)>,
    small_bytes: u64,
    main_bytes: u64,
    small_target: u64,
    ghost: HashSet<u64, ahash::RandomState>,
    ghost_order: VecDeque<u64>,
    /// Ghost entries kept: about as many as the main queue holds.
    ghost_max: usize,
}

impl S3Fifo {
    pub fn new(capacity: u64) -> S3Fifo {
        S3Fifo {
            meta: Vec::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            small_target: (capacity / 10).max(1),
            ghost: HashSet::default(),
            ghost_order: VecDeque::new(),
            ghost_max: 1024,
        }
    }

    fn live(&self, (id, gen): (usize, u32), q: Queue) -> bool {
        self.meta.get(id).is_some_and(|m| m.gen == gen && m.queue == q)
    }

    fn remember(&mut self, hash: u64) {
        self.ghost_max = self.ghost_max.max(self.main.len());
        if self.ghost.insert(hash) {
            self.ghost_order.push_back(hash);
        }
        while self.ghost_order.len() > self.ghost_max {
            if let Some(h) = self.ghost_order.pop_front() {
                self.ghost.remove(&h);
            }
        }
    }

    /// The small queue's tail: evicted, or moved to the main queue.
    fn evict_small(&mut self) -> Option<usize> {
        while let Some(e) = self.small.pop_front() {
            if !self.live(e, Queue::Small) {
                continue;
            }
            let m = &mut self.meta[e.0];
            self.small_bytes -= m.size;
            if m.freq >= 1 {
                m.queue = Queue::Main;
                m.freq = 0;
                self.main_bytes += m.size;
                self.main.push_back(e);
                continue;
            }
            m.queue = Queue::None;
            let h = m.hash;
            self.remember(h);
            return Some(e.0);
        }
        None
    }

    fn evict_main(&mut self) -> Option<usize> {
        // Each pass lowers a count, so this ends.
        while let Some(e) = self.main.pop_front() {
            if !self.live(e, Queue::Main) {
                continue;
            }
            let m = &mut self.meta[e.0];
            if m.freq > 0 {
                m.freq -= 1;
                self.main.push_back(e);
                continue;
            }
            m.queue = Queue::None;
            self.main_bytes -= m.size;
            return Some(e.0);
        }
        None
    }
}

impl Evictor for S3Fifo {
    fn admit(&mut self, id: usize, hash: u64, size: u64) {
        self.remove(id);
        if self.meta.len() <= id {
            self.meta.resize(id + 1, Meta { queue: Queue::None, freq: 0, size: 0, hash: 0, gen: 0 });
        }
        let gen = self.meta[id].gen.wrapping_add(1);
        let queue = if self.ghost.remove(&hash) { Queue::Main } else { Queue::Small };
        self.meta[id] = Meta { queue, freq: 0, size, hash, gen };
        if queue == Queue::Main {
            self.main_bytes += size;
            self.main.push_back((id, gen));
        } else {
            self.small_bytes += size;
            self.small.push_back((id, gen));
        }
    }

    fn hit(&mut self, id: usize) {
        if let Some(m) = self.meta.get_mut(id).filter(|m| m.queue != Queue::None) {
            m.freq = (m.freq + 1).min(3);
        }
    }

    fn remove(&mut self, id: usize) {
        if let Some(m) = self.meta.get_mut(id) {
            match m.queue {
                Queue::Small => self.small_bytes -= m.size,
                Queue::Main => self.main_bytes -= m.size,
                Queue::None => {}
            }
            m.queue = Queue::None;
        }
    }

    fn victim(&mut self) -> Option<usize> {
        loop {
            let from_small = self.small_bytes >= self.small_target || self.main_bytes == 0;
            let v = if from_small { self.evict_small() } else { self.evict_main() };
            if v.is_some() {
                return v;
            }
            if self.small_bytes == 0 && self.main_bytes == 0 {
                return None;
            }
            // The queue tried was empty of live entries: the other one.
            let v = if from_small { self.evict_main() } else { self.evict_small() };
            if v.is_some() || (self.small_bytes == 0 && self.main_bytes == 0) {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hit_objects_leave_first() {
        let mut s = S3Fifo::new(100);
        // Entry 0 is hit while in the small queue; 1..5 are not.
        for i in 0..5 {
            s.admit(i, i as u64, 10);
        }
        s.hit(0);
        assert_eq!(s.victim(), Some(1), "0 moved to main, 1 evicted");
        assert_eq!(s.victim(), Some(2));
        // 1 comes back: its hash is in the ghost, so it goes to main.
        s.admit(1, 1, 10);
        s.remove(3);
        assert_eq!(s.victim(), Some(4));
        // Only main entries are left: 0 (no hits since it moved) first.
        assert_eq!(s.victim(), Some(0));
        assert_eq!(s.victim(), Some(1));
        assert_eq!(s.victim(), None);
    }
}
