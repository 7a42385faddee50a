//! Round robin: each eligible node in turn, weights ignored.

use super::{Balancer, Nodes};
use std::cell::Cell;

#[derive(Default)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl Balancer for RoundRobin {
    /// Starts at the node after the last one picked and returns the first
    /// eligible one, so skipping a dead node does not shift the others' turns.
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        let n = nodes.len();
        let start = self.next.get();
        for k in 0..n {
            let i = (start + k) % n;
            if nodes.eligible(i) {
                self.next.set(i + 1);
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::{shares, StaticNodes};

    #[test]
    fn equal_turns_and_skips() {
        let mut n = StaticNodes::new(&[1, 5, 1]);
        let b = RoundRobin::default();
        assert_eq!(shares(&b, &n, 300), vec![100, 100, 100]);
        n.eligible[1] = false;
        assert_eq!(shares(&b, &n, 300), vec![150, 0, 150]);
        n.eligible = vec![false; 3];
        assert_eq!(b.pick(&n), None);
    }
}
