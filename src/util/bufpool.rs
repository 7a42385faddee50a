//! A shard-local free list of I/O buffers, so connections and keepalive
//! node connections do not allocate a fresh buffer each time. Bounded: at
//! most `max_free` buffers are kept; the rest are freed.

use std::cell::RefCell;

pub struct BufPool {
    size: usize,
    max_free: usize,
    free: RefCell<Vec<Vec<u8>>>,
}

impl BufPool {
    pub fn new(size: usize, max_free: usize) -> Self {
        BufPool { size, max_free, free: RefCell::new(Vec::new()) }
    }

    /// An empty buffer with capacity of at least `size`.
    pub fn take(&self) -> Vec<u8> {
        self.free.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    pub fn give(&self, mut v: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if v.capacity() >= self.size && free.len() < self.max_free {
            v.clear();
            free.push(v);
        }
    }
}
