//! The four generic protocols (B1–B4) through a real shoal with two shards:
//! exact bytes both ways, banners, half-close.

use crate::support::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

fn config(protocol: &str, nodes: &[std::net::SocketAddr], extra: &str) -> String {
    let nodes: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[global]\nshards = 2\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\npool = \"p\"\n{extra}\n\n[pools.p]\nnodes = [{}]\n",
        nodes.join(", ")
    )
}

/// B4: 64 MiB each way at once through generic_streaming to an echo node;
/// the client's half-close reaches the node and the node's comes back.
#[test]
fn streaming_64mib_each_way_exact() {
    let origin = Origin::start("echo", &["e"]);
    let shoal = Shoal::start(&config("generic_streaming", &[origin.addr("e")], ""));
    let data = Arc::new(pattern(64 << 20, 7));
    let got = exchange(connect(shoal.addr("v")), data.clone());
    assert_eq!(got.len(), data.len(), "byte count");
    assert_eq!(sha256(&got), sha256(&data));
}

/// B1: the node speaks first; a one-shot reply then end of stream arrives
/// exactly, and an echo conversation with half-close works.
#[test]
fn server_first_oneshot_and_half_close() {
    let once = Origin::start("oneshot", &["time-node"]);
    let shoal = Shoal::start(&config("server_first", &[once.addr("time-node")], ""));
    let mut s = connect(shoal.addr("v"));
    assert_eq!(read_all(&mut s), b"time-node\n");

    let echo = Origin::start("echo", &["e"]);
    let shoal = Shoal::start(&config("server_first", &[echo.addr("e")], ""));
    let data = Arc::new(pattern(3 << 20, 11));
    let got = exchange(connect(shoal.addr("v")), data.clone());
    assert_eq!(sha256(&got), sha256(&data));
}

/// B2: nothing reaches a node until the client speaks; then the first bytes
/// and everything after arrive in order.
#[test]
fn client_first_exact_with_half_close() {
    let origin = Origin::start("name-echo", &["n1"]);
    let shoal = Shoal::start(&config("client_first", &[origin.addr("n1")], ""));
    let data = Arc::new(pattern(4 << 20, 3));
    let got = exchange(connect(shoal.addr("v")), data.clone());
    assert_eq!(&got[..3], b"n1\n");
    assert_eq!(got.len() - 3, data.len());
    assert_eq!(sha256(&got[3..]), sha256(&data));
}

/// B3: shoal's banner arrives before the client sends anything; the node's
/// own first line never reaches the client; the rest is exact.
#[test]
fn banner_written_and_node_line_discarded() {
    let origin = Origin::start("banner", &["smtp"]);
    let shoal = Shoal::start(&config(
        "server_first_banner",
        &[origin.addr("smtp")],
        "banner = \"220 shoal ESMTP ready\\r\\n\"",
    ));
    let mut s = connect(shoal.addr("v"));
    let mut banner = [0u8; 23];
    s.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"220 shoal ESMTP ready\r\n");
    let mut data = b"EHLO client.example\r\n".to_vec();
    data.extend(pattern(1 << 20, 5));
    let got = exchange(s, Arc::new(data.clone()));
    assert!(!String::from_utf8_lossy(&got[..got.len().min(64)]).contains("220 smtp"), "node banner leaked");
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));
}

/// Half-close in the other direction: the node ends its stream first and
/// the client can still send afterwards (the relay keeps the open half).
#[test]
fn node_half_close_keeps_client_direction() {
    let origin = Origin::start("oneshot", &["n"]);
    let shoal = Shoal::start(&config("generic_streaming", &[origin.addr("n")], ""));
    let mut s = connect(shoal.addr("v"));
    assert_eq!(read_line(&mut s), "n");
    let mut b = [0u8; 1];
    assert_eq!(s.read(&mut b).unwrap(), 0, "node's end of stream reaches the client");
    // Writing after the node's half-close must not error immediately on the
    // client side (shoal keeps the client->node half until the client ends).
    s.write_all(b"late").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
}

/// Every ring mode in the fallback chain (and the epoll driver used where
/// io_uring is unavailable) relays exactly, and the log says which is used.
#[test]
fn ring_fallbacks_relay_exactly() {
    let origin = Origin::start("echo", &["e"]);
    for (mode, expect) in [("coop", "COOP_TASKRUN"), ("plain", "no taskrun flags"), ("epoll", "epoll")] {
        let dir = TempDir::new();
        let cfg = dir.write("shoal.toml", &config("generic_streaming", &[origin.addr("e")], ""));
        let mut cmd = std::process::Command::new(shoal_bin());
        cmd.arg("run").arg("-c").arg(&cfg).env("SHOAL_RING", mode);
        let shoal = Shoal::from_command(cmd, dir, cfg);
        assert_eq!(shoal.proc.count(|l| l.contains("] shard ") && l.contains(expect)), 2, "{}", shoal.log());
        let data = Arc::new(pattern(4 << 20, 13));
        let got = exchange(connect(shoal.addr("v")), data.clone());
        assert_eq!(sha256(&got), sha256(&data), "ring mode {mode}");
    }
}
