//! Process lifecycle: graceful stop (A5), node states (C8) applied by
//! SIGHUP, quick mode (A6) and the embedded default configuration.

use crate::support::*;
use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// SIGTERM with a streaming connection open: new connections are refused,
/// the open one completes, and the process exits 0.
#[test]
fn sigterm_drains_open_stream_then_exits_zero() {
    let origin = Origin::start("echo", &["e"]);
    let mut shoal = Shoal::start(&format!(
        "[global]\nshards = 2\nshutdown_timeout = \"60s\"\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"generic_streaming\"\npool = \"p\"\n\n[pools.p]\nnodes = [\"{}\"]\n",
        origin.addr("e")
    ));
    let v = shoal.addr("v");
    let mut s = connect(v);
    s.write_all(b"before ").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    shoal.proc.signal("TERM");
    shoal.proc.wait_count(2, STARTUP, |l| l.contains("stopped accepting"));
    poll(STARTUP, "listeners to close after SIGTERM", || {
        std::net::TcpStream::connect_timeout(&v, Duration::from_secs(2)).is_err().then_some(())
    });
    // The open connection still works, both ways, after the signal.
    let data = Arc::new(pattern(8 << 20, 9));
    let got = exchange(s, data.clone());
    assert_eq!(sha256(&got), sha256(&data));
    let st = shoal.proc.wait_exit(STARTUP);
    assert!(st.success(), "exit status {st:?}");
}

/// Draining and disabled nodes take no new connections; established ones
/// keep relaying. States change by editing the file and sending SIGHUP.
#[test]
fn draining_and_disabled_nodes_keep_established_connections() {
    let origin = Origin::start("name-echo", &["a", "b", "c"]);
    let (a, b, c) = (origin.addr("a"), origin.addr("b"), origin.addr("c"));
    let cfg = |sb: &str, sc: &str| {
        format!(
            "[global]\nshards = 2\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"client_first\"\npool = \"p\"\n\n\
             [pools.p]\nnodes = [\"{a}\", {{ address = \"{b}\", state = \"{sb}\" }}, {{ address = \"{c}\", state = \"{sc}\" }}]\n"
        )
    };
    let shoal = Shoal::start(&cfg("active", "active"));
    let v = shoal.addr("v");
    let open = || {
        let mut s = connect(v);
        s.write_all(b"x\n").unwrap();
        let name = read_line(&mut s);
        assert_eq!(read_line(&mut s), "x");
        (s, name)
    };
    // One established connection on each of b and c.
    let mut on_b = None;
    let mut on_c = None;
    poll(STARTUP, "connections on b and c", || {
        let (s, n) = open();
        match n.as_str() {
            "b" if on_b.is_none() => on_b = Some(s),
            "c" if on_c.is_none() => on_c = Some(s),
            _ => {}
        }
        (on_b.is_some() && on_c.is_some()).then_some(())
    });
    write_file(&shoal.config, &cfg("draining", "disabled"));
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {b}: state active -> draining")));
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {c}: state active -> disabled")));
    // New connections go only to a (allow the shards a moment to apply the
    // change: wait until a run of connections all land on a).
    let mut run = 0;
    poll(STARTUP, "new connections to avoid b and c", || {
        let (_s, n) = open();
        run = if n == "a" { run + 1 } else { 0 };
        (run >= 10).then_some(())
    });
    for _ in 0..20 {
        assert_eq!(open().1, "a");
    }
    // The established connections still relay both ways.
    for s in [on_b.as_mut().unwrap(), on_c.as_mut().unwrap()] {
        s.write_all(b"still here\n").unwrap();
        assert_eq!(read_line(s), "still here");
    }
}

/// An invalid file, or a change that cannot apply live (the shard count),
/// is refused with its reason and the old configuration keeps serving;
/// other changes apply.
#[test]
fn sighup_refuses_unsupported_or_invalid_changes() {
    let origin = Origin::start("oneshot", &["a"]);
    let text = format!(
        "[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"server_first\"\npool = \"p\"\n\n[pools.p]\nnodes = [\"{}\"]\n",
        origin.addr("a")
    );
    let shoal = Shoal::start(&text);
    write_file(&shoal.config, &text.replace("server_first", "bogus_protocol"));
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains("reload refused") && l.contains("bogus_protocol"));
    write_file(&shoal.config, &format!("[global]\nshards = 3\n\n{text}"));
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains("reload refused") && l.contains("global.shards"));
    assert_eq!(oneshot(shoal.addr("v")), "a");
    write_file(&shoal.config, &text.replace("server_first", "generic_streaming"));
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains("SIGHUP: configuration reloaded (generation 2)"));
    assert_eq!(oneshot(shoal.addr("v")), "a");
}

/// Quick mode: one virtual server from the command line relays and balances.
#[test]
fn quick_mode_proxy_relays_and_balances() {
    let origin = Origin::start("name-echo", &["a", "b"]);
    let mut cmd = Command::new(shoal_bin());
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--to"]).arg(format!("{},{}", origin.addr("a"), origin.addr("b")));
    cmd.args(["--protocol", "client_first", "--shards", "2"]);
    let dir = TempDir::new();
    let shoal = Shoal::from_command(cmd, dir, std::path::PathBuf::new());
    let (mut na, mut nb) = (0, 0);
    for i in 0..40 {
        let mut s = connect(shoal.addr("proxy"));
        let msg = format!("message {i}\n");
        s.write_all(msg.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let got = String::from_utf8(read_all(&mut s)).unwrap();
        let (name, rest) = got.split_once('\n').unwrap();
        assert_eq!(rest, msg);
        match name {
            "a" => na += 1,
            "b" => nb += 1,
            n => panic!("unexpected node {n}"),
        }
    }
    assert!(na >= 15 && nb >= 15, "round robin over two shards: a={na} b={nb}");
}

/// The README's first command: `shoal run` with no file serves the demo.
/// Runs the embedded default on its fixed ports only when they are free.
#[test]
fn embedded_default_serves_demo_nodes() {
    if ["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]
        .iter()
        .any(|a| std::net::TcpListener::bind(a).is_err())
    {
        eprintln!("skipping: the demo ports 8080-8083 are in use on this machine");
        return;
    }
    let mut cmd = Command::new(shoal_bin());
    cmd.arg("run");
    let shoal = Shoal::from_command(cmd, TempDir::new(), std::path::PathBuf::new());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..12 {
        let mut s = connect(shoal.addr("demo"));
        let greeting = read_line(&mut s);
        assert!(greeting.starts_with("hello from demo node "), "{greeting}");
        s.write_all(b"ping\n").unwrap();
        assert_eq!(read_line(&mut s), "ping");
        seen.insert(greeting);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// Quick mode with `--protocol http`: an HTTP proxy with keepalive, and the
/// node connection reuse reported when it stops.
#[test]
fn quick_mode_http_proxy() {
    let origin = Origin::start("http", &["a", "b"]);
    let mut cmd = Command::new(shoal_bin());
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--to"]).arg(format!("{},{}", origin.addr("a"), origin.addr("b")));
    cmd.args(["--protocol", "http", "--shards", "2"]);
    let mut shoal = Shoal::from_command(cmd, TempDir::new(), std::path::PathBuf::new());
    let mut s = connect(shoal.addr("proxy"));
    let mut nodes = std::collections::HashSet::new();
    for i in 0..20 {
        write!(s, "GET /q{i}?size={i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, false);
        assert_eq!((r.status, r.body.len()), (200, i));
        nodes.insert(r.header("x-node").unwrap().to_string());
    }
    assert_eq!(nodes.len(), 2);
    drop(s);
    shoal.proc.signal("TERM");
    assert!(shoal.proc.wait_exit(STARTUP).success());
    shoal.proc.wait_line(STARTUP, |l| l.contains("request(s) on reused connections") && !l.contains(", 0 request(s)"));
}
