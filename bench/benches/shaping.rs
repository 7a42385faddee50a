//! What a rate class with room and a service level class cost a request
//! (docs/shaping.md, perf/RESULTS.md): one `admit` that passes at once
//! (the class's own queue, and a per-client context's), and one `record`
//! into a window, uncontended and with a second thread on the same class
//! (the two-shard case). The clock is advanced by hand so every `admit`
//! finds room.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shoal::config::model::{RateClass as RateConfig, ServiceLevel as SlmConfig};
use shoal::shaping::rate::{Admit, RateClass};
use shoal::slm::ServiceLevel;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn class() -> Arc<RateClass> {
    Arc::new(RateClass::new(RateConfig {
        name: "bench".into(),
        max_per_second: 1000,
        max_per_minute: 0,
        max_queue: 1000,
        max_wait: Duration::from_secs(30),
        status: 503,
        max_contexts: 100_000,
    }))
}

fn admit_now(c: &Arc<RateClass>, context: Option<&[u8]>, t: Instant) {
    match c.admit(context, t) {
        Admit::Now => {}
        _ => panic!("the bench clock leaves room"),
    }
}

fn rate(c: &mut Criterion) {
    let r = class();
    let mut t = Instant::now();
    c.bench_function("rate class admit with room", |b| {
        b.iter(|| {
            t += Duration::from_millis(2);
            admit_now(&r, None, black_box(t));
        })
    });
    let ips: Vec<Vec<u8>> = (0..10_000).map(|i| format!("10.0.{}.{}", i / 256, i % 256).into_bytes()).collect();
    let mut i = 0;
    c.bench_function("rate class admit with room, per-client context (10k clients)", |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            if i == 0 {
                t += Duration::from_millis(2);
            }
            admit_now(&r, Some(black_box(&ips[i])), t);
        })
    });
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (r, stop) = (r.clone(), stop.clone());
        let base = t;
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Its own context, always with room.
                let _ = r.admit(Some(&b"other"[..]), base + Duration::from_millis(2 * n));
            }
        })
    };
    c.bench_function("rate class admit with room (another thread on the same class)", |b| {
        b.iter(|| {
            t += Duration::from_millis(2);
            admit_now(&r, None, black_box(t));
        })
    });
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

fn slm(c: &mut Criterion) {
    let s = ServiceLevel::new(SlmConfig {
        name: "bench".into(),
        response_time: Duration::from_millis(100),
        warning: 90,
        serious: 50,
    });
    let now = Instant::now();
    c.bench_function("service level record", |b| b.iter(|| s.record(black_box(Duration::from_millis(12)), now)));
}

criterion_group!(benches, rate, slm);
criterion_main!(benches);
