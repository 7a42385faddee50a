//! UDP virtual servers (B13): DNS through shoal with `dig` against two
//! `dnsmasq` nodes (10,000 queries over both shards, every answer right,
//! spread by round robin, a dead node's queries moved after the failure
//! threshold); a streaming flow of 100,000 datagrams each way that keeps
//! its node and loses none; the drops a relay must make, each counted
//! (oversize, flow limits, no node); an access-log line per flow.

use crate::support::*;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A loopback UDP port free now, below 1024. dig sends each query from a
/// random port between 1024 and 65535 and binds it with SO_REUSEADDR and
/// SO_REUSEPORT; the tests run as root, the same user as shoal, so a dig
/// socket that drew a port of shoal's or dnsmasq's could share it and
/// take datagrams meant for them. Privileged ports are out of its draw.
fn free_udp_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(0, 600 + (std::process::id() % 200) as u16, Ordering::Relaxed, Ordering::Relaxed);
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        if port >= 1_000 {
            NEXT.store(600, Ordering::Relaxed);
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A dnsmasq answering `www.test A 192.0.2.1` and `who.test TXT <tag>`.
struct Dns {
    child: Child,
    addr: SocketAddr,
}

impl Dns {
    fn start(tag: &str) -> Dns {
        let port = free_udp_port();
        let child = Command::new("dnsmasq")
            .args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "-C", "/dev/null", "--bind-interfaces"])
            .args(["--listen-address=127.0.0.1", "--pid-file=", "-u", "root", "--cache-size=0"])
            .arg(format!("--port={port}"))
            .args(["--address=/www.test/192.0.2.1", &format!("--txt-record=who.test,{tag}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        poll(STARTUP, "dnsmasq answering", || dig(addr, &["+short", "who.test", "TXT"]).contains(tag).then_some(()));
        Dns { child, addr }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dig` at `server` with `args` (one try, one second): its output.
fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=1"])
        .args(args)
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig -f` of `n` lines `name type` (one process, a new source port per
/// query: a flow each).
fn dig_batch(server: SocketAddr, lines: &[&str]) -> String {
    let dir = TempDir::new();
    let file = dir.write("queries", &(lines.join("\n") + "\n"));
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=3", "+noall", "+answer", "-f"])
        .arg(&file)
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have_dns_tools() -> bool {
    have_tool("dig", "SHOAL_REQUIRE_DNS", "Debian package bind9-dnsutils")
        && have_tool("dnsmasq", "SHOAL_REQUIRE_DNS", "Debian package dnsmasq-base")
}

#[test]
fn dns_through_shoal_with_dig_and_dnsmasq() {
    if !have_dns_tools() {
        return;
    }
    let _heavy = heavy();
    let (a, b) = (Dns::start("a"), Dns::start("b"));
    let mut b = Some(b);
    let shoal = Shoal::start(&format!(
        "[virtual_servers.dns]\nlisten = \"127.0.0.1:{}\"\nprotocol = \"udp\"\npool = \"dns\"\nudp_timeout = \"500ms\"\n\n\
         [pools.dns]\nnodes = [\"{}\", \"{}\"]\nnode_connection_attempts = 3\nnode_fail_time = \"60s\"\n\n{}",
        free_udp_port(),
        a.addr,
        b.as_ref().unwrap().addr,
        api_section()
    ));
    let vip = shoal.addr("dns");
    // 10,000 queries, a flow each, over both shards: every answer right.
    let out = dig_batch(vip, &["www.test A"; 10_000]);
    let right = out.lines().filter(|l| l.starts_with("www.test.") && l.ends_with("192.0.2.1")).count();
    let st = shoal.status();
    let other: Vec<&str> =
        out.lines().filter(|l| !(l.starts_with("www.test.") && l.ends_with("192.0.2.1"))).take(20).collect();
    assert_eq!(right, 10_000, "{} {other:?}", st["virtual_servers"]["dns"]["udp"]);
    let dns = &st["virtual_servers"]["dns"];
    assert_eq!(
        (dns["udp"]["datagrams_in"].as_u64(), dns["udp"]["datagrams_out"].as_u64()),
        (Some(10_000), Some(10_000)),
        "{dns}"
    );
    assert_eq!(dns["total_connections"], 10_000, "{dns}");
    // Spread by round robin (per shard): both nodes about half.
    let per_node: Vec<u64> =
        st["pools"]["dns"]["nodes"].as_array().unwrap().iter().map(|n| n["requests"].as_u64().unwrap()).collect();
    assert_eq!(per_node.iter().sum::<u64>(), 10_000, "{st}");
    assert!(per_node.iter().all(|&n| (4_500..=5_500).contains(&n)), "{per_node:?}");
    let who = dig_batch(vip, &["who.test TXT"; 200]);
    let count = |tag: &str| who.lines().filter(|l| l.ends_with(&format!("\"{tag}\""))).count();
    assert_eq!(count("a") + count("b"), 200, "{who}");
    assert!((80..=120).contains(&count("a")), "{who}");
    // Node b dies: its flows get no answer within udp_timeout; after
    // node_connection_attempts of them (on each shard's picks) it is
    // marked dead and every query goes to a.
    drop(b.take());
    poll(Duration::from_secs(60), "node b marked dead", || {
        dig_batch(vip, &["who.test TXT"; 4]);
        shoal.log().contains("marked dead").then_some(())
    });
    let after = dig_batch(vip, &["who.test TXT"; 100]);
    let count = |tag: &str| after.lines().filter(|l| l.ends_with(&format!("\"{tag}\""))).count();
    assert_eq!((count("a"), count("b")), (100, 0), "{after}");
    let st = shoal.status();
    // Loopback answers a dead port with ICMP port unreachable at once.
    assert!(st["virtual_servers"]["dns"]["errors"]["node_failure"].as_u64() >= Some(3), "{st}");
    assert!(shoal.log().contains("UDP: Connection refused"), "{}", shoal.log());
}

/// Echo nodes for the streaming test: each answers every datagram with
/// its own tag byte and the datagram, and counts what it got.
fn echo_node(tag: u8) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        loop {
            let Ok((n, from)) = s.recv_from(&mut buf[1..]) else { return };
            g.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            buf[0] = tag;
            let _ = s.send_to(&buf[..n + 1], from);
        }
    });
    (addr, got)
}

#[test]
fn a_streaming_flow_keeps_its_node_and_loses_nothing() {
    let _heavy = heavy();
    let (a, got_a) = echo_node(b'a');
    let (b, got_b) = echo_node(b'b');
    let shoal = Shoal::start(&format!(
        "[virtual_servers.media]\nlisten = \"127.0.0.1:0\"\nprotocol = \"udp\"\npool = \"p\"\nudp_mode = \"streaming\"\n\
         udp_timeout = \"5s\"\n\n[pools.p]\nnodes = [\"{a}\", \"{b}\"]\n\n{}",
        api_section()
    ));
    let vip = shoal.addr("media");
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // 100,000 datagrams of 200 bytes, at most 64 unanswered at a time (a
    // window, as a media sender paces itself; it also keeps the client's
    // own receive buffer, about 1 KiB of kernel memory per small
    // datagram, from overflowing).
    const N: u64 = 100_000;
    let mut seen = vec![false; N as usize];
    let (mut sent, mut received, mut tag) = (0u64, 0u64, None);
    let mut buf = [0u8; 2048];
    while received < N {
        while sent < N && sent - received < 64 {
            let mut d = [0u8; 200];
            d[..8].copy_from_slice(&sent.to_be_bytes());
            d[8..].fill((sent % 251) as u8);
            c.send(&d).unwrap();
            sent += 1;
        }
        let n = c.recv(&mut buf).unwrap_or_else(|e| {
            panic!("after {received} answers: {e}: {}", shoal.status()["virtual_servers"]["media"])
        });
        assert_eq!(n, 201);
        let t = *tag.get_or_insert(buf[0]);
        assert_eq!(buf[0], t, "the flow moved to another node");
        let i = u64::from_be_bytes(buf[1..9].try_into().unwrap());
        assert!(buf[9..201].iter().all(|&x| x == (i % 251) as u8), "datagram {i} changed");
        assert!(!std::mem::replace(&mut seen[i as usize], true), "datagram {i} twice");
        received += 1;
    }
    assert!(seen.iter().all(|&s| s));
    let (ga, gb) = (got_a.load(std::sync::atomic::Ordering::Relaxed), got_b.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(ga.max(gb), N, "{ga} {gb}");
    assert_eq!(ga.min(gb), 0, "{ga} {gb}");
    let st = shoal.status();
    let u = &st["virtual_servers"]["media"]["udp"];
    assert_eq!((u["datagrams_in"].as_u64(), u["datagrams_out"].as_u64()), (Some(N), Some(N)), "{u}");
    assert_eq!(st["virtual_servers"]["media"]["total_connections"], 1, "{st}");
    assert_eq!(st["virtual_servers"]["media"]["current_connections"], 1, "{st}");
}

#[test]
fn drops_are_counted_and_flows_are_logged() {
    let (a, _) = echo_node(b'a');
    let dir = TempDir::new();
    let log = dir.0.join("udp.log");
    let shoal = Shoal::start(&format!(
        "[virtual_servers.u]\nlisten = \"127.0.0.1:0\"\nprotocol = \"udp\"\npool = \"p\"\nudp_mode = \"streaming\"\n\
         udp_timeout = \"300ms\"\nudp_max_datagram = 1000\nmax_connections_per_client = 2\nshards = [0]\n\
         access_log = \"{}\"\naccess_log_format = \"%a %v %p %n %r %B %e\"\n\n\
         [virtual_servers.none]\nlisten = \"127.0.0.1:0\"\nprotocol = \"udp\"\npool = \"off\"\n\n\
         [pools.p]\nnodes = [\"{a}\"]\n\n[pools.off]\nnodes = [{{ address = \"{a}\", state = \"disabled\" }}]\n\n{}",
        log.display(),
        api_section()
    ));
    let vip = shoal.addr("u");
    let client = || {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(vip).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
        c
    };
    let mut buf = [0u8; 4096];
    // Oversize: dropped and counted; the flow goes on.
    let c1 = client();
    c1.send(&[7u8; 1001]).unwrap();
    c1.send(&[8u8; 999]).unwrap();
    let n = c1.recv(&mut buf).unwrap();
    assert_eq!((n, buf[0], buf[1]), (1000, b'a', 8), "only the 999-byte datagram came back");
    // An empty datagram is a datagram: relayed.
    c1.send(&[]).unwrap();
    assert_eq!(c1.recv(&mut buf).unwrap(), 1);
    // Flows per client (2 on the one shard): a third client port is dropped.
    let c2 = client();
    c2.send(b"x").unwrap();
    assert_eq!(c2.recv(&mut buf).unwrap(), 2);
    let c3 = client();
    c3.send(b"y").unwrap();
    assert!(c3.recv(&mut buf).is_err(), "a third flow from one address");
    // No node: dropped and counted.
    let c4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    c4.send_to(b"z", shoal.addr("none")).unwrap();
    let st = poll(STARTUP, "the drops counted", || {
        let st = shoal.status();
        let u = &st["virtual_servers"]["u"]["udp"];
        (u["oversize_dropped"] == 1
            && u["flows_refused"] == 1
            && st["virtual_servers"]["none"]["udp"]["no_node_dropped"] == 1)
            .then_some(st)
    });
    assert_eq!(st["virtual_servers"]["u"]["errors"]["refused"], 1, "{st}");
    assert_eq!(st["virtual_servers"]["none"]["errors"]["no_node"], 1, "{st}");
    // The flows idle out (300 ms) and each writes its line.
    let lines = poll(STARTUP, "two flow lines", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    });
    let c1_line = format!("{} u p {a} UDP 2 2 1001 -", c1.local_addr().unwrap());
    assert!(lines.lines().any(|l| l == c1_line), "{lines}\nwanted: {c1_line}");
    let m = shoal.api("GET", "/metrics", "").text();
    assert!(
        m.contains("shoal_virtual_server_udp_events_total{virtual_server=\"u\",event=\"oversize_dropped\"} 1\n"),
        "{m}"
    );
}

/// `one_response`: a client with several datagrams out from one port (a
/// resolver's pipelined queries) gets an answer to each, on one flow that
/// ends when the last is answered.
#[test]
fn one_response_answers_every_datagram_of_a_flow() {
    // A node that answers only once it holds all five queries, so all five
    // are out on the flow at once whatever the scheduling.
    let node = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = node.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let mut buf = [0u8; 64];
        while held.len() < 5 {
            let Ok((n, from)) = node.recv_from(&mut buf) else { return };
            held.push(([&[b'a'][..], &buf[..n]].concat(), from));
        }
        g.store(5, std::sync::atomic::Ordering::Relaxed);
        for (d, to) in held {
            let _ = node.send_to(&d, to);
        }
    });
    let shoal = Shoal::start(&format!(
        "[virtual_servers.u]\nlisten = \"127.0.0.1:0\"\nprotocol = \"udp\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [\"{a}\"]\n\n{}",
        api_section()
    ));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(shoal.addr("u")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..5u8 {
        c.send(&[i; 10]).unwrap();
    }
    let mut answers: Vec<u8> = (0..5)
        .map(|_| {
            let mut buf = [0u8; 64];
            let n = c.recv(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (11, b'a'));
            buf[1]
        })
        .collect();
    answers.sort();
    assert_eq!(answers, [0, 1, 2, 3, 4]);
    assert_eq!(got.load(std::sync::atomic::Ordering::Relaxed), 5);
    let st = poll(STARTUP, "the flow ended", || {
        let st = shoal.status();
        (st["virtual_servers"]["u"]["current_connections"] == 0).then_some(st)
    });
    assert_eq!(st["virtual_servers"]["u"]["total_connections"], 1, "{st}");
    assert_eq!(st["virtual_servers"]["u"]["udp"]["datagrams_out"], 5, "{st}");
}
