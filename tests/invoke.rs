//! Cross-shard calls between real shards (threads with io_uring rings as
//! shoal builds them, joined by the mesh): every reply of 100,000 calls
//! arrives and is the right one, one at a time and 64 in flight; replies
//! that wait, time out, a full inbox, a missing shard and a stopped one
//! each get their answer. Round-trip times are measured by
//! `cargo bench -p shoal-microbench --bench invoke` (perf/RESULTS.md).

use shoal::runtime::call::{with_shards, CallError};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

const CALLS: u64 = 100_000;

/// A call's number and what it got.
type Answer = (usize, Result<usize, CallError>);
const LONG: Duration = Duration::from_secs(10);

#[test]
fn every_reply_of_100k_calls_arrives() {
    let (sequential, concurrent) = with_shards(2, |shard| async move {
        let peers = shard.peers().unwrap();
        // One at a time: each reply names the shard that ran the call and
        // carries the caller's number back.
        let mut ok = 0u64;
        for i in 0..CALLS {
            let reply = peers.call(&shard, 1, LONG, move |s| (s.id, i * 3)).await.unwrap();
            assert_eq!(reply, (1, i * 3));
            ok += 1;
        }
        // 64 tasks in flight at once, 100,000 calls in all: every reply
        // arrives, each to its own caller.
        let done = Rc::new(Cell::new(0u64));
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let (shard, done) = (shard.clone(), done.clone());
            tasks.push(monoio::spawn(async move {
                let peers = shard.peers().unwrap();
                let mut i = t;
                while i < CALLS {
                    // Full inbox (all 64 at once can outrun the target):
                    // try again; nothing is lost either way.
                    let reply = loop {
                        match peers.call(&shard, 1, LONG, move |_| i).await {
                            Err(CallError::Busy) => monoio::time::sleep(Duration::from_micros(100)).await,
                            r => break r.unwrap(),
                        }
                    };
                    assert_eq!(reply, i);
                    done.set(done.get() + 1);
                    i += 64;
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        (ok, done.get())
    });
    assert_eq!((sequential, concurrent), (CALLS, CALLS));
}

#[test]
fn waiting_replies_timeouts_and_refusals() {
    with_shards(3, |shard| async move {
        let peers = shard.peers().unwrap();
        // A reply that waits on the target (a task there).
        let r = peers
            .call_async(&shard, 2, LONG, |s| async move {
                monoio::time::sleep(Duration::from_millis(20)).await;
                s.id * 10
            })
            .await;
        assert_eq!(r, Ok(20));
        // Too slow: the caller stops waiting; the late reply is dropped.
        let r = peers
            .call_async(&shard, 1, Duration::from_millis(30), |_| async move {
                monoio::time::sleep(Duration::from_millis(300)).await;
                1
            })
            .await;
        assert_eq!(r, Err(CallError::Timeout));
        // A call to oneself runs in place; a shard that does not exist.
        assert_eq!(peers.call(&shard, 0, LONG, |s| s.id + 100).await, Ok(100));
        assert_eq!(peers.call(&shard, 7, LONG, |_| ()).await, Err(CallError::NoShard));
        // A target whose thread is held up: its inbox fills, and calls
        // beyond it are refused at once instead of making this shard wait;
        // every call it accepted is answered once it is free again.
        let hold = monoio::spawn({
            let shard = shard.clone();
            async move {
                let peers = shard.peers().unwrap();
                peers.call(&shard, 2, LONG, |_| std::thread::sleep(Duration::from_millis(500))).await
            }
        });
        monoio::time::sleep(Duration::from_millis(50)).await;
        let results: Rc<std::cell::RefCell<Vec<Answer>>> = Rc::default();
        let n = shoal::runtime::mesh::INBOX_CAPACITY + 100;
        let mut tasks = Vec::new();
        for i in 0..n {
            let (shard, results) = (shard.clone(), results.clone());
            tasks.push(monoio::spawn(async move {
                let r = shard.peers().unwrap().call(&shard, 2, LONG, move |_| i).await;
                results.borrow_mut().push((i, r));
            }));
        }
        // Every task has sent (or been refused) by now; the target is
        // still held.
        monoio::time::sleep(Duration::from_millis(100)).await;
        let busy = results.borrow().iter().filter(|(_, r)| *r == Err(CallError::Busy)).count();
        assert!(busy >= 100, "{busy} calls refused as busy");
        assert_eq!(results.borrow().len(), busy, "no call was answered while the target was held");
        assert_eq!(hold.await, Ok(()));
        for t in tasks {
            t.await;
        }
        let results = results.borrow();
        assert_eq!(results.len(), n);
        for (i, r) in results.iter() {
            assert!(*r == Ok(*i) || *r == Err(CallError::Busy), "call {i}: {r:?}");
        }
    });
}

#[test]
fn calls_to_a_stopped_shard_are_gone() {
    let (ends, senders) = shoal::runtime::mesh::build(2);
    let mut ends = ends.into_iter();
    let (mine, theirs) = (ends.next().unwrap(), ends.next().unwrap());
    drop(theirs);
    drop(senders);
    let (mut rt, _) = shoal::runtime::ring::build(64).unwrap();
    rt.block_on(async move {
        let shard = shoal::runtime::shard::Shard::new(0, 2);
        shard.start_mesh(Rc::new(mine));
        let r = shard.peers().unwrap().call(&shard, 1, LONG, |_| ()).await;
        assert_eq!(r, Err(CallError::Gone));
        shard.shutdown.set();
    });
}
