//! The session store's cost per request (docs/architecture.md, *Session
//! stores*): a lookup and a record of a 32-byte key in a full table,
//! uncontended, and with a second thread hammering the same store (the
//! two-shard case).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shoal::persist::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("session-{i:024}").into_bytes()).collect()
}

fn store(c: &mut Criterion) {
    let s = Arc::new(Store::new(100_000));
    let ks = keys(100_000);
    for (i, k) in ks.iter().enumerate() {
        s.record(0, k, (i % 8) as u32);
    }
    let mut i = 0;
    c.bench_function("store lookup+record (full table, uncontended)", |b| {
        b.iter(|| {
            i = (i + 7919) % ks.len();
            let n = s.lookup(0, black_box(&ks[i])).unwrap_or(0);
            s.record(0, &ks[i], n);
        })
    });
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (s, stop, ks) = (s.clone(), stop.clone(), ks.clone());
        std::thread::spawn(move || {
            let mut j = 0;
            while !stop.load(Ordering::Relaxed) {
                j = (j + 104_729) % ks.len();
                let n = s.lookup(0, &ks[j]).unwrap_or(0);
                s.record(0, &ks[j], n);
            }
        })
    };
    c.bench_function("store lookup+record (another thread on the same store)", |b| {
        b.iter(|| {
            i = (i + 7919) % ks.len();
            let n = s.lookup(0, black_box(&ks[i])).unwrap_or(0);
            s.record(0, &ks[i], n);
        })
    });
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

criterion_group!(benches, store);
criterion_main!(benches);
