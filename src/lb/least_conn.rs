//! Least connections: the eligible node with the fewest connections across
//! all shards. Ties rotate, so an idle pool is filled round robin rather
//! than always from its first node — unless LARD names a node among the
//! tied ones (it served this URL recently), which then wins.

use super::{pick_best, Balancer, Nodes};
use std::cell::Cell;

#[derive(Default)]
pub struct LeastConnections {
    next: Cell<usize>,
}

impl Balancer for LeastConnections {
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        pick_best(nodes, &self.next, |i| nodes.connections(i), |a, b| a < b, |p, best| p <= best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::StaticNodes;

    #[test]
    fn fewest_wins_ties_rotate() {
        let mut n = StaticNodes::new(&[1, 1, 1]);
        n.conns = vec![5, 2, 2];
        let b = LeastConnections::default();
        let first = b.pick(&n).unwrap();
        let second = b.pick(&n).unwrap();
        assert_eq!([first.min(second), first.max(second)], [1, 2]);
        n.preferred = Some(2);
        assert_eq!(b.pick(&n), Some(2), "LARD wins a tie");
        n.conns[2] = 3;
        assert_eq!(b.pick(&n), Some(1), "LARD does not beat a lighter node");
        n.eligible[1] = false;
        n.eligible[2] = false;
        assert_eq!(b.pick(&n), Some(0));
    }
}
