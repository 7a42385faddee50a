//! Weighted least connections: the eligible node with the lowest
//! connections ÷ weight (compared by cross-multiplication, no division), so
//! a weight-2 node carries twice the connections of a weight-1 node.

use super::{pick_best, Balancer, Nodes};
use std::cell::Cell;

#[derive(Default)]
pub struct WeightedLeastConnections {
    next: Cell<usize>,
}

impl Balancer for WeightedLeastConnections {
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        // (connections, weight); a/b < c/d as a*d < c*b.
        let score = |i| (u64::from(nodes.connections(i)), u64::from(nodes.weight(i).max(1)));
        let less = |(c, w): (u64, u64), (bc, bw): (u64, u64)| c * bw < bc * w;
        let not_more = |(c, w): (u64, u64), (bc, bw): (u64, u64)| c * bw <= bc * w;
        pick_best(nodes, &self.next, score, less, not_more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::StaticNodes;

    #[test]
    fn fills_in_weight_proportion() {
        let mut n = StaticNodes::new(&[2, 1]);
        let b = WeightedLeastConnections::default();
        for _ in 0..300 {
            let i = b.pick(&n).unwrap();
            n.conns[i] += 1;
        }
        assert_eq!(n.conns, vec![200, 100]);
    }
}
