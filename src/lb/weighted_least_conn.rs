//! Weighted least connections: the eligible node with the lowest
//! connections ÷ weight (compared by cross-multiplication, no division), so
//! a weight-2 node carries twice the connections of a weight-1 node.

use super::{Balancer, Nodes};
use std::cell::Cell;

#[derive(Default)]
pub struct WeightedLeastConnections {
    next: Cell<usize>,
}

impl Balancer for WeightedLeastConnections {
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        let n = nodes.len();
        let start = self.next.get();
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !nodes.eligible(i) {
                continue;
            }
            let (c, w) = (u64::from(nodes.connections(i)), u64::from(nodes.weight(i).max(1)));
            if best.is_none_or(|(_, bc, bw)| c * bw < bc * w) {
                best = Some((i, c, w));
            }
        }
        let (mut b, bc, bw) = best?;
        if let Some(p) = nodes.preferred().filter(|&p| p < n && nodes.eligible(p)) {
            let (c, w) = (u64::from(nodes.connections(p)), u64::from(nodes.weight(p).max(1)));
            if c * bw <= bc * w {
                b = p; // LARD: tied with the best
            }
        }
        self.next.set(b + 1);
        Some(b)
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
