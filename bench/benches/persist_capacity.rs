//! The session store at its capacity (issue 20, proof 5): lookup+record
//! latency, each operation timed, in tables of 1 million and 10 million
//! entries, through three phases:
//!
//! - **fill**: new sessions until the table is full (each a lookup that
//!   misses and a record that inserts);
//! - **boundary**: as many new sessions again, each evicting the least
//!   recently used (the capacity boundary);
//! - **hits**: returning sessions, each a lookup that hits and a record
//!   that refreshes (what most requests of a persistent pool do).
//!
//! Reported per phase: p50, p99, p99.9 and max in nanoseconds. A scan
//! under the store's lock shows as a max (and at scale a p99.9) far above
//! the rest. Run: `cargo bench -p shoal-microbench --bench persist_capacity`
//! (optionally with sizes: `-- 1000000 10000000`).

use hdrhistogram::Histogram;
use shoal::persist::store::Store;
use std::hint::black_box;
use std::time::Instant;

fn key(i: u64) -> [u8; 32] {
    let mut k = [b'k'; 32];
    k[..8].copy_from_slice(&i.to_le_bytes());
    k
}

fn op(s: &Store, i: u64, h: &mut Histogram<u64>) {
    let k = key(i);
    let t = Instant::now();
    let n = s.lookup(0, black_box(&k)).unwrap_or((i % 8) as u32);
    s.record(0, &k, n);
    h.record(t.elapsed().as_nanos() as u64).ok();
}

fn report(size: u64, phase: &str, h: &Histogram<u64>) {
    println!(
        "| {size} | {phase} | {} | {} | {} | {} | {} |",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1_000_000, 10_000_000] } else { sizes };
    println!("| entries | phase | operations | p50 ns | p99 ns | p99.9 ns | max ns |");
    println!("|---|---|---|---|---|---|---|");
    for size in sizes {
        let s = Store::new(size as usize);
        let new = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        let mut fill = new();
        for i in 0..size {
            op(&s, i, &mut fill);
        }
        report(size, "fill", &fill);
        let mut boundary = new();
        for i in size..2 * size {
            op(&s, i, &mut boundary);
        }
        report(size, "boundary", &boundary);
        assert_eq!(s.counters().entries, size as usize);
        // Returning sessions: the newest `size` keys, in a scattered order.
        let mut hits = new();
        let mut j = 0u64;
        for _ in 0..size {
            j = (j + 7_919) % size;
            op(&s, size + j, &mut hits);
        }
        report(size, "hits", &hits);
    }
}
