//! Cost of one balancing decision per algorithm, over pools of 4 and 32
//! nodes, with every node eligible and with a quarter of them ineligible
//! (dead, draining or already tried), which is the slow path for most
//! algorithms.
//!
//! Run: `cargo bench -p shoal-microbench --bench balancers`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use shoal::config::raw::Algorithm;
use shoal::lb::{self, StaticNodes};

fn nodes(n: usize, skip_quarter: bool) -> StaticNodes {
    let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 3) as u32).collect();
    let mut s = StaticNodes::new(&weights);
    s.conns = (0..n).map(|i| (i * 7 % 13) as u32).collect();
    if skip_quarter {
        for i in (0..n).step_by(4) {
            s.eligible[i] = false;
        }
    }
    s
}

fn pick(c: &mut Criterion) {
    let algorithms = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::LeastConnections,
        Algorithm::WeightedLeastConnections,
    ];
    let mut g = c.benchmark_group("pick");
    for alg in algorithms {
        for (n, skip) in [(4, false), (32, false), (32, true)] {
            let set = nodes(n, skip);
            let b = lb::build(alg, n);
            let id = format!("{}/{n}{}", alg.name(), if skip { "-quarter-ineligible" } else { "" });
            g.bench_function(BenchmarkId::from_parameter(id), |bench| {
                bench.iter(|| black_box(b.pick(black_box(&set))))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
