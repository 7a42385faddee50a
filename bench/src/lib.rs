//! shoal's criterion micro-benchmarks live in `benches/`; this crate has no
//! code of its own. Run them with `cargo bench -p shoal-microbench`.
