//! Least recently used: a doubly linked list threaded through a vector
//! indexed by entry number; every operation is O(1).

use super::Evictor;

const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Link {
    prev: usize,
    next: usize,
    linked: bool,
}

/// Most recent at the head, victims from the tail.
pub struct Lru {
    links: Vec<Link>,
    head: usize,
    tail: usize,
}

impl Default for Lru {
    fn default() -> Self {
        Lru { links: Vec::new(), head: NONE, tail: NONE }
    }
}

impl Lru {
    fn unlink(&mut self, id: usize) {
        let Some(l) = self.links.get(id).copied().filter(|l| l.linked) else { return };
        if l.prev == NONE {
            self.head = l.next;
        } else {
            self.links[l.prev].next = l.next;
        }
        if l.next == NONE {
            self.tail = l.prev;
        } else {
            self.links[l.next].prev = l.prev;
        }
        self.links[id].linked = false;
    }

    fn push_front(&mut self, id: usize) {
        if self.links.len() <= id {
            self.links.resize(id + 1, Link { prev: NONE, next: NONE, linked: false });
        }
        self.links[id] = Link { prev: NONE, next: self.head, linked: true };
        if self.head != NONE {
            self.links[self.head].prev = id;
        }
        self.head = id;
        if self.tail == NONE {
            self.tail = id;
        }
    }
}

impl Evictor for Lru {
    fn admit(&mut self, id: usize, _hash: u64, _size: u64) {
        self.unlink(id);
        self.push_front(id);
    }

    fn hit(&mut self, id: usize) {
        if self.links.get(id).is_some_and(|l| l.linked) {
            self.unlink(id);
            self.push_front(id);
        }
    }

    fn remove(&mut self, id: usize) {
        self.unlink(id);
    }

    fn victim(&mut self) -> Option<usize> {
        let t = self.tail;
        if t == NONE {
            return None;
        }
        self.unlink(t);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order() {
        let mut l = Lru::default();
        for i in 0..4 {
            l.admit(i, 0, 1);
        }
        l.hit(0);
        l.remove(2);
        assert_eq!(l.victim(), Some(1));
        assert_eq!(l.victim(), Some(3));
        assert_eq!(l.victim(), Some(0));
        assert_eq!(l.victim(), None);
    }
}
