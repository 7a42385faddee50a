//! Passive health (C5) and node failures counted from timeouts (B10).

use crate::support::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Kill a node mid-run: no client connection fails, at most
/// node_connection_attempts connects go to it before it is marked dead,
/// and once it is back it gets traffic again within node_fail_time plus
/// one probe.
#[test]
fn killed_node_is_marked_dead_and_recovers() {
    let mut a = Origin::start("oneshot", &["a"]);
    let b = Origin::start("oneshot", &["b"]);
    let (aa, ba) = (a.addr("a"), b.addr("b"));
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"server_first\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [\"{aa}\", \"{ba}\"]\nnode_connection_attempts = 3\nnode_fail_time = \"2s\"\n"
    ));
    let v = shoal.addr("v");
    let mut seen_a = 0;
    for _ in 0..20 {
        let n = oneshot(v);
        assert!(n == "a" || n == "b", "{n}");
        seen_a += usize::from(n == "a");
    }
    assert!(seen_a > 0);

    a.kill();
    let about_a = move |l: &str| l.contains(&format!("node {aa}:"));
    for i in 0..40 {
        assert_eq!(oneshot(v), "b", "connection {i} after the kill must be served by b");
    }
    let dead_line = shoal.proc.wait_line(STARTUP, |l| about_a(l) && l.contains("marked dead"));
    let failures = shoal.proc.count(|l| about_a(l) && (l.contains("failure:") || l.contains("marked dead")));
    assert!(failures <= 3, "{failures} failed connects reached a before it was marked dead:\n{}", shoal.log());
    assert!(dead_line.contains("after 3 consecutive failures"), "{dead_line}");

    // Bring a back on the same address; within node_fail_time plus one
    // probe it takes connections again.
    let _a2 = Origin::start_at("oneshot", &[("a", aa)]);
    let back = Instant::now();
    poll(Duration::from_secs(2 + 10), "a to receive traffic again", || (oneshot(v) == "a").then_some(()));
    assert!(back.elapsed() < Duration::from_secs(2 + 10));
    shoal.proc.wait_line(STARTUP, |l| about_a(l) && l.contains("back in service"));
}

/// A node that accepts and never answers is cut after server_idle_timeout,
/// and that counts as a node failure.
#[test]
fn silent_node_is_cut_after_idle_timeout_and_counted() {
    let stall = Origin::start("stall", &["s"]);
    let sa = stall.addr("s");
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"client_first\"\npool = \"p\"\nserver_idle_timeout = \"300ms\"\n\n\
         [pools.p]\nnodes = [\"{sa}\"]\nnode_connection_attempts = 2\n"
    ));
    for round in 0..2 {
        let mut s = connect(shoal.addr("v"));
        let t = Instant::now();
        s.write_all(b"hello?\n").unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        let waited = t.elapsed();
        assert_eq!(n, 0, "the silent node's connection must be closed with no data");
        assert!(
            waited >= Duration::from_millis(290),
            "cut after {waited:?}, before the 300ms idle timeout (round {round})"
        );
        assert!(waited < Duration::from_secs(10), "cut only after {waited:?}");
    }
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {sa}: failure: no reply within server_idle_timeout")));
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {sa}: marked dead")));
}

/// A connect that cannot complete (the node's listen backlog is full) fires
/// max_connect_time, counts as a failure, and the connection is retried on
/// another node, so the client is served.
#[test]
fn connect_timeout_fires_and_retries_elsewhere() {
    let hole = Origin::start("blackhole", &["h"]);
    let good = Origin::start("oneshot", &["g"]);
    let (ha, ga) = (hole.addr("h"), good.addr("g"));
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"server_first\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [\"{ha}\", \"{ga}\"]\nmax_connect_time = \"300ms\"\n"
    ));
    // Round robin on each shard: within a few connections one is sent to
    // the black hole first; every client is still served by g.
    for _ in 0..6 {
        assert_eq!(oneshot(shoal.addr("v")), "g");
    }
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {ha}: failure: connect timed out after 300ms")));
}
