//! Balancing over real connections (C2) and cross-shard least-connections
//! aggregation (A2).

use crate::support::*;
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};

/// Open `n` one-shot connections from 4 client threads; count node names.
fn tally(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let threads = 4;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut m: HashMap<String, usize> = HashMap::new();
                for _ in (t..n).step_by(threads) {
                    let name = oneshot(addr);
                    assert!(!name.is_empty(), "a client got an empty reply");
                    *m.entry(name).or_default() += 1;
                }
                m
            })
        })
        .collect();
    let mut total: HashMap<String, usize> = HashMap::new();
    for h in handles {
        for (k, v) in h.join().unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

fn assert_shares(got: &HashMap<String, usize>, want: &[(&str, f64)], tolerance: f64, what: &str) {
    let total: usize = got.values().sum();
    for (name, share) in want {
        let s = *got.get(*name).unwrap_or(&0) as f64 / total as f64;
        assert!(
            (s - share).abs() <= tolerance,
            "{what}: node {name} got {s:.4} of {total}, want {share:.4} ± {tolerance}; all: {got:?}"
        );
    }
}

#[test]
fn round_robin_weighted_and_random_shares_over_10k_connections() {
    let _heavy = heavy();
    let origin = Origin::start("oneshot", &["a", "b", "c"]);
    let (a, b, c) = (origin.addr("a"), origin.addr("b"), origin.addr("c"));
    let mut cfg = String::from("[global]\nshards = 2\n");
    for alg in ["round_robin", "weighted_round_robin", "random"] {
        cfg += &format!(
            "\n[virtual_servers.{alg}]\nlisten = \"127.0.0.1:0\"\nprotocol = \"server_first\"\npool = \"{alg}\"\n\n[pools.{alg}]\nalgorithm = \"{alg}\"\nnodes = [{{ address = \"{a}\", weight = 1 }}, {{ address = \"{b}\", weight = 2 }}, {{ address = \"{c}\", weight = 3 }}]\n"
        );
    }
    let shoal = Shoal::start(&cfg);
    let n = 10_000;
    let third = 1.0 / 3.0;
    assert_shares(
        &tally(shoal.addr("round_robin"), n),
        &[("a", third), ("b", third), ("c", third)],
        0.01,
        "round_robin",
    );
    assert_shares(
        &tally(shoal.addr("weighted_round_robin"), n),
        &[("a", 1.0 / 6.0), ("b", 2.0 / 6.0), ("c", 3.0 / 6.0)],
        0.01,
        "weighted_round_robin",
    );
    assert_shares(&tally(shoal.addr("random"), n), &[("a", third), ("b", third), ("c", third)], 0.05, "random");
}

/// Open a long-lived connection through `addr` to a name-echo node and
/// return it with the node's name.
fn open(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = connect(addr);
    s.write_all(b"hi\n").unwrap();
    let name = read_line(&mut s);
    assert_eq!(read_line(&mut s), "hi");
    (s, name)
}

/// Connections held through shard 1 (virtual server `via1` accepts only
/// there) must steer shard 0's (`via0`) new connections away from that node:
/// shard 0 learns of them only through the mesh.
#[test]
fn least_connections_counts_other_shards_connections() {
    let origin = Origin::start("name-echo", &["a", "b"]);
    let (a, b) = (origin.addr("a"), origin.addr("b"));
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\nmesh_interval = \"5ms\"\nlog_level = \"debug\"\n\n\
         [virtual_servers.via1]\nlisten = \"127.0.0.1:0\"\nprotocol = \"client_first\"\npool = \"p\"\nshards = [1]\n\n\
         [virtual_servers.via0]\nlisten = \"127.0.0.1:0\"\nprotocol = \"client_first\"\npool = \"p\"\nshards = [0]\n\n\
         [pools.p]\nalgorithm = \"least_connections\"\nnodes = [\"{a}\", \"{b}\"]\n"
    ));
    // Through shard 1: 20 connections, held, alternate a/b; then close b's.
    let conns: Vec<(TcpStream, String)> = (0..20).map(|_| open(shoal.addr("via1"))).collect();
    let (held, to_b): (Vec<_>, Vec<_>) = conns.into_iter().partition(|(_, n)| n == "a");
    assert_eq!((held.len(), to_b.len()), (10, 10), "least connections on one shard alternates");
    drop(to_b);
    // Shard 0 receives shard 1's counts: a=10, b=0.
    shoal
        .proc
        .wait_line(STARTUP, |l| l.contains("[shard-0]") && l.contains("pool p: shard 1 now holds [10, 0] connections"));
    // Every new connection through shard 0 now goes to b until b catches up.
    let mut kept = Vec::new();
    for i in 0..9 {
        let (s, name) = open(shoal.addr("via0"));
        assert_eq!(name, "b", "connection {i} through shard 0 went to a, which holds 10 connections on shard 1");
        kept.push(s);
    }
    drop(held);
}
