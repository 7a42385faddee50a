//! Fastest response time: the eligible node with the lowest average time
//! from request to response head (an exponentially weighted average per
//! shard, merged across shards by sample weight; see `pool`). A node with
//! no samples yet counts as fastest, so new nodes are measured at once.
//! Near-ties (within 10% or 100 µs) rotate, or go to the LARD node.

use super::{close_enough, pick_best, Balancer, Nodes};
use std::cell::Cell;

#[derive(Default)]
pub struct FastestResponseTime {
    next: Cell<usize>,
}

impl Balancer for FastestResponseTime {
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        let time = |i| nodes.response_time_us(i).unwrap_or(0.0);
        pick_best(nodes, &self.next, time, |t, best| t < best && !close_enough(best, t), close_enough)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::StaticNodes;

    #[test]
    fn fastest_wins_unknown_explored_ties_rotate() {
        let mut n = StaticNodes::new(&[1, 1, 1]);
        n.rt_us = vec![Some(5_000.0), Some(50_000.0), Some(5_100.0)];
        let b = FastestResponseTime::default();
        let picks: Vec<usize> = (0..4).map(|_| b.pick(&n).unwrap()).collect();
        assert!(picks.iter().all(|&p| p != 1), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&2), "near-ties rotate: {picks:?}");
        n.rt_us[1] = None;
        assert_eq!(b.pick(&n), Some(1), "an unmeasured node is tried");
    }
}
