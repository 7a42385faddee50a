//! Random: a uniformly random eligible node, weights ignored. Uses the
//! thread-local generator, which is per shard by construction.

use super::{Balancer, Nodes};

pub struct Random;

impl Balancer for Random {
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize> {
        let n = nodes.len();
        // Fast path: a random probe usually lands on an eligible node.
        if n > 0 {
            let i = fastrand::usize(..n);
            if nodes.eligible(i) {
                return Some(i);
            }
        }
        let eligible = (0..n).filter(|&i| nodes.eligible(i)).count();
        if eligible == 0 {
            return None;
        }
        let k = fastrand::usize(..eligible);
        (0..n).filter(|&i| nodes.eligible(i)).nth(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::{shares, StaticNodes};

    #[test]
    fn roughly_uniform() {
        let mut n = StaticNodes::new(&[1, 1, 1, 1]);
        let s = shares(&Random, &n, 40_000);
        assert!(s.iter().all(|&c| (9_000..11_000).contains(&c)), "{s:?}");
        n.eligible[2] = false;
        let s = shares(&Random, &n, 30_000);
        assert_eq!(s[2], 0);
        assert!(s.iter().filter(|&&c| c > 0).all(|&c| (9_000..11_000).contains(&c)), "{s:?}");
    }
}
