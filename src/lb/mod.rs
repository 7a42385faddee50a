//! Load-balancing algorithms (C2), one per file behind one trait.
//!
//! A balancer sees the pool through [`Nodes`]: weights, a process-wide
//! connection estimate (this shard's exact count plus the other shards'
//! last published counts), and which nodes are eligible right now (active,
//! not dead, not already tried for this connection). It returns one index;
//! the caller keeps calling past nodes that then fail to connect, marking
//! them ineligible, so "try every working node once" needs no help here.
//!
//! State lives in `Cell`s: a balancer belongs to one shard and is never
//! shared, so there is nothing to lock.

mod fastest;
mod least_conn;
mod perceptive;
mod random;
mod round_robin;
mod weighted_least_conn;
mod weighted_rr;

pub use fastest::FastestResponseTime;
pub use least_conn::LeastConnections;
pub use perceptive::Perceptive;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted_least_conn::WeightedLeastConnections;
pub use weighted_rr::WeightedRoundRobin;

use crate::config::Algorithm;

/// The balancer's read-only view of a pool for one decision.
pub trait Nodes {
    fn len(&self) -> usize;
    fn weight(&self, i: usize) -> u32;
    /// Connections to node `i` across all shards (exact for this shard,
    /// at most one mesh interval stale for the others).
    fn connections(&self, i: usize) -> u32;
    /// Whether node `i` may be picked for this connection.
    fn eligible(&self, i: usize) -> bool;
    /// Average time from request to response head at node `i`, in
    /// microseconds, merged across shards; `None` before any sample.
    fn response_time_us(&self, _i: usize) -> Option<f64> {
        None
    }
    /// LARD: the node that served this request's URL recently, if any.
    /// Load- and speed-based algorithms prefer it when it is within a
    /// whisker of their best choice.
    fn preferred(&self) -> Option<usize> {
        None
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub trait Balancer {
    /// Pick an eligible node, or `None` when no node is eligible.
    fn pick(&self, nodes: &dyn Nodes) -> Option<usize>;
    /// A connection to node `i` started (after `pick` and a successful
    /// connect). Algorithms that keep their own structures update them here.
    fn on_start(&self, _i: usize) {}
    /// A connection to node `i` ended.
    fn on_end(&self, _i: usize) {}
}

/// Build the balancer for `algorithm` over `n` nodes.
pub fn build(algorithm: Algorithm, n: usize) -> Box<dyn Balancer> {
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::default()),
        Algorithm::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(n)),
        Algorithm::Random => Box::new(Random),
        Algorithm::LeastConnections => Box::new(LeastConnections::default()),
        Algorithm::WeightedLeastConnections => Box::new(WeightedLeastConnections::default()),
        Algorithm::FastestResponseTime => Box::new(FastestResponseTime::default()),
        Algorithm::Perceptive => Box::new(Perceptive::default()),
    }
}

/// A plain in-memory node set, for tests and micro-benchmarks.
#[derive(Debug, Clone, Default)]
pub struct StaticNodes {
    pub weights: Vec<u32>,
    pub conns: Vec<u32>,
    pub eligible: Vec<bool>,
    pub rt_us: Vec<Option<f64>>,
    pub preferred: Option<usize>,
}

impl StaticNodes {
    pub fn new(weights: &[u32]) -> Self {
        StaticNodes {
            weights: weights.to_vec(),
            conns: vec![0; weights.len()],
            eligible: vec![true; weights.len()],
            rt_us: vec![None; weights.len()],
            preferred: None,
        }
    }
}

/// The rotating scan shared by the score-based balancers. Starting after the
/// last pick, the eligible node whose score is `better` than every other
/// wins (among equals the first in rotation order, so equal nodes take
/// turns); then the LARD node, when eligible and `lard_ok(its score, best)`,
/// takes its place.
pub(crate) fn pick_best<S: Copy>(
    nodes: &dyn Nodes,
    next: &std::cell::Cell<usize>,
    score: impl Fn(usize) -> S,
    better: impl Fn(S, S) -> bool,
    lard_ok: impl Fn(S, S) -> bool,
) -> Option<usize> {
    let n = nodes.len();
    let start = next.get();
    let mut best: Option<(usize, S)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if !nodes.eligible(i) {
            continue;
        }
        let s = score(i);
        if best.is_none_or(|(_, bs)| better(s, bs)) {
            best = Some((i, s));
        }
    }
    let (mut b, bs) = best?;
    if let Some(p) = nodes.preferred().filter(|&p| p < n && nodes.eligible(p)) {
        if lard_ok(score(p), bs) {
            b = p;
        }
    }
    next.set(b + 1);
    Some(b)
}

/// Whether `a` is within the LARD tolerance of `best` (10% or 100 µs).
pub(crate) fn close_enough(a: f64, best: f64) -> bool {
    a <= best * 1.1 || a <= best + 100.0
}

impl Nodes for StaticNodes {
    fn len(&self) -> usize {
        self.weights.len()
    }
    fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }
    fn connections(&self, i: usize) -> u32 {
        self.conns[i]
    }
    fn eligible(&self, i: usize) -> bool {
        self.eligible[i]
    }
    fn response_time_us(&self, i: usize) -> Option<f64> {
        self.rt_us[i]
    }
    fn preferred(&self) -> Option<usize> {
        self.preferred
    }
}

#[cfg(test)]
pub(crate) fn shares(b: &dyn Balancer, nodes: &StaticNodes, picks: usize) -> Vec<usize> {
    let mut counts = vec![0; nodes.len()];
    for _ in 0..picks {
        counts[b.pick(nodes).unwrap()] += 1;
    }
    counts
}
