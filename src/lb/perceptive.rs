//! Perceptive: blends current load and recent speed. Each eligible node `i`
//! scores
//!
//! ```text
//! score(i) = (connections(i) + 1) × response_time(i)
//! ```
//!
//! where `connections` is the process-wide estimate and `response_time` the
//! merged average time to response head (a node not yet measured uses the
//! mean of the measured ones, or 1 when none is). The lowest score wins;
//! near-ties (within 10%) rotate or go to the LARD node. So a node twice as
//! slow carries about half the concurrent requests of its peers, and a node
//! that slows down sheds load as its queue grows.
//!
//! Gradual start is enforced outside the balancer (it must hold across
//! shards): a node that joins or recovers is offered exactly one request,
//! then a doubling cap per second while it keeps up (`pool/ramp.rs`).

use super::{close_enough, pick_best, Balancer, Nodes};
use std::cell::Cell;

#[derive(Default)]
pub struct Perceptive {
    next: Cell<usize>,
}

impl Balancer for Perceptive {
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        let n = nodes.len();
        let (mut sum, mut known) = (0.0, 0u32);
        for i in 0..n {
            if let Some(t) = nodes.response_time_us(i) {
                sum += t;
                known += 1;
            }
        }
        let default_rt = if known > 0 { sum / f64::from(known) } else { 1.0 };
        let score =
            |i: usize| f64::from(nodes.connections(i) + 1) * nodes.response_time_us(i).unwrap_or(default_rt).max(1.0);
        pick_best(nodes, &self.next, score, |s, best| s < best && !close_enough(best, s), close_enough)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::StaticNodes;

    #[test]
    fn slow_nodes_get_proportionally_fewer_connections() {
        let mut n = StaticNodes::new(&[1, 1]);
        n.rt_us = vec![Some(10_000.0), Some(20_000.0)];
        let b = Perceptive::default();
        for _ in 0..300 {
            let i = b.pick(&n).unwrap();
            n.conns[i] += 1;
        }
        let (fast, slow) = (n.conns[0], n.conns[1]);
        assert!((190..=210).contains(&fast) && (90..=110).contains(&slow), "{fast} {slow}");
    }
}
