//! Round-trip time of a cross-shard call (`shoal::runtime::call`): shard 0
//! calls shard 1, each on a thread of its own with a ring as shoal builds
//! them, 100,000 times. Two cases: one call at a time (each shard sleeps
//! in its ring between calls, so every call wakes the target and every
//! reply wakes the caller), and 64 calls in flight from 64 tasks (the
//! shards stay busy; the figure is throughput). Prints median, p99 and
//! calls per second; not a criterion benchmark because the tail matters.
//!
//! (A "busy target" case is not measurable here: a task that yields by
//! waking itself keeps monoio from ever polling its ring, so it would
//! starve the inbox; a zero sleep waits for the timer's millisecond tick
//! and leaves the ring asleep most of the time.)
//!
//! Run: `cargo bench -p shoal-microbench --bench invoke`

use shoal::runtime::call::with_shards;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const CALLS: usize = 100_000;
const LONG: Duration = Duration::from_secs(10);

fn report(case: &str, mut rtt: Vec<u32>, elapsed: Duration) {
    rtt.sort_unstable();
    let q = |p: f64| rtt[((rtt.len() as f64 * p) as usize).min(rtt.len() - 1)] as f64 / 1000.0;
    println!(
        "{case:<48} median {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>7.2} µs  {:>9.0} calls/s",
        q(0.5),
        q(0.99),
        q(0.999),
        rtt.len() as f64 / elapsed.as_secs_f64()
    );
}

/// `CALLS` calls from shard 0 to shard 1, one at a time: their round
/// trips and the time they took in all.
async fn one_at_a_time(shard: &Rc<shoal::runtime::shard::Shard>) -> (Vec<u32>, Duration) {
    let peers = shard.peers().unwrap();
    let mut rtt = Vec::with_capacity(CALLS);
    let start = Instant::now();
    for i in 0..CALLS {
        let t = Instant::now();
        let r = peers.call(shard, 1, LONG, move |_| i).await.unwrap();
        rtt.push(t.elapsed().as_nanos() as u32);
        assert_eq!(r, i);
    }
    (rtt, start.elapsed())
}

fn main() {
    // One at a time: both shards sleep between calls.
    let (rtt, took) = with_shards(2, |shard| async move { one_at_a_time(&shard).await });
    report("one at a time", rtt, took);

    // 64 in flight.
    let (rtt, took) = with_shards(2, |shard| async move {
        let rtt = Rc::new(RefCell::new(Vec::with_capacity(CALLS)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..64 {
            let (shard, rtt) = (shard.clone(), rtt.clone());
            tasks.push(monoio::spawn(async move {
                let peers = shard.peers().unwrap();
                let mut i = t;
                while i < CALLS {
                    let s = Instant::now();
                    let r = peers.call(&shard, 1, LONG, move |_| i).await.unwrap();
                    rtt.borrow_mut().push(s.elapsed().as_nanos() as u32);
                    assert_eq!(r, i);
                    i += 64;
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        let took = start.elapsed();
        (Rc::try_unwrap(rtt).unwrap().into_inner(), took)
    });
    report("64 in flight", rtt, took);
}
