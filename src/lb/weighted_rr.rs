//! Smooth weighted round robin (the nginx algorithm): every pick adds each
//! eligible node's weight to its running score, takes the highest score and
//! subtracts the total weight from it. Shares are exact over every cycle of
//! total-weight picks and heavy nodes are interleaved, not bursted.

use super::{Balancer, Nodes};
use std::cell::RefCell;

pub struct WeightedRoundRobin {
    scores: RefCell<Vec<i64>>,
}

impl WeightedRoundRobin {
    pub fn new(n: usize) -> Self {
        WeightedRoundRobin { scores: RefCell::new(vec![0; n]) }
    }
}

impl Balancer for WeightedRoundRobin {
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        let mut scores = self.scores.borrow_mut();
        if scores.len() != nodes.len() {
            scores.resize(nodes.len(), 0);
        }
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (i, score) in scores.iter_mut().enumerate() {
            if !nodes.eligible(i) {
                continue;
            }
            let w = i64::from(nodes.weight(i));
            *score += w;
            total += w;
            if best.is_none_or(|(_, s)| *score > s) {
                best = Some((i, *score));
            }
        }
        let (b, _) = best?;
        scores[b] -= total;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::{shares, StaticNodes};

    #[test]
    fn exact_shares_and_interleaving() {
        let n = StaticNodes::new(&[5, 1, 1]);
        let b = WeightedRoundRobin::new(3);
        let seq: Vec<usize> = (0..7).map(|_| b.pick(&n).unwrap()).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(shares(&b, &n, 7000), vec![5000, 1000, 1000]);
    }

    #[test]
    fn skips_ineligible() {
        let mut n = StaticNodes::new(&[3, 1]);
        n.eligible[0] = false;
        let b = WeightedRoundRobin::new(2);
        assert_eq!(shares(&b, &n, 10), vec![0, 10]);
    }
}
