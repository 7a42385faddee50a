//! Active health monitors (D1, D2): every type marks a failing node down
//! and a recovered one up, each node is tested once per interval for the
//! whole process (two shards here), and disabled nodes are left alone.

use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn down_line(monitor: &str, pool: &str, node: SocketAddr) -> String {
    format!("monitor {monitor}: pool {pool} node {node}: node down")
}

fn up_line(monitor: &str, pool: &str, node: SocketAddr) -> String {
    format!("monitor {monitor}: pool {pool} node {node}: node up")
}

fn get_status(addr: SocketAddr) -> u16 {
    let mut s = connect(addr);
    std::io::Write::write_all(&mut s, b"GET /x?size=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    read_response(&mut s, false).status
}

/// D1 + D2: an HTTP monitor every 200 ms tests the node five times a
/// second in all (not once per shard), marks it down within
/// interval × failures of it dying, and up again once it answers.
#[test]
fn http_monitor_once_per_interval_down_and_up() {
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let a = origin.addr("a");
    let shoal = Shoal::start(
        &(crate::http::http_config(&[a], "", "monitors = [\"h\"]")
            + r#"
[monitors.h]
type = "http"
path = "/health"
interval = "200ms"
timeout = "1s"
failures = 2
successes = 2
"#),
    );
    let probes = || origin.proc.count(|l| l.starts_with("request a GET /health "));
    poll(Duration::from_secs(10), "the first tests", || (probes() >= 2).then_some(()));
    let (c0, t0) = (probes(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (c1, secs) = (probes(), t0.elapsed().as_secs_f64());
    let per_s = (c1 - c0) as f64 / secs;
    assert!(
        (3.5..=6.5).contains(&per_s),
        "{per_s:.1} tests/s: expected 5 (one per 200 ms for the process, not per shard)"
    );
    assert_eq!(get_status(shoal.addr("web")), 200);

    let mut origin = origin;
    origin.kill();
    let died = Instant::now();
    shoal.proc.wait_line(Duration::from_secs(10), |l| l.contains(&down_line("h", "p", a)));
    let took = died.elapsed();
    assert!(took < Duration::from_secs(3), "marked down after {took:?} (interval 200 ms × 2 failures)");
    assert_eq!(get_status(shoal.addr("web")), 503, "the only node is down");

    let _back = Origin::start_at("http", &[("a", a)]);
    shoal.proc.wait_line(Duration::from_secs(10), |l| l.contains(&up_line("h", "p", a)));
    assert_eq!(get_status(shoal.addr("web")), 200);
}

/// D1: each type passes a healthy node and fails a broken one: tcp,
/// http (status range, body pattern), tls, https, send_expect, and an external
/// program that gets the node's address and decides by its exit status.
/// Nodes that come to life are brought back up by each type. A disabled
/// node is not tested at all.
#[test]
fn every_monitor_type_tells_good_from_bad() {
    let dir = TempDir::new();
    let good = Origin::start("http", &["g"]);
    let plain = good.addr("g");
    let certs = crate::pki::Pki::new(&dir.0.join("pki"), "mon");
    let leaf = certs.server("node", &["localhost"]);
    let tls_node = Origin::start_with(
        "http",
        &[("t", "127.0.0.1:0".parse().unwrap())],
        &["--tls-cert", leaf.cert.to_str().unwrap(), "--tls-key", leaf.key.to_str().unwrap()],
    );
    let banner = Origin::start("banner", &["b"]);
    let echo = Origin::start("echo", &["e"]);
    let closed = closed_port();
    // Nodes that start dead and come to life later (recovery of the tls,
    // https and send_expect monitors).
    let (late_tls, late_banner) = (closed_port(), closed_port());
    let log = dir.0.join("program.log");
    let script = dir.write(
        "check.sh",
        &format!(
            "#!/bin/sh\necho \"$SHOAL_NODE_IP $SHOAL_NODE_PORT $*\" >> {}\n[ -e {}/ok-$SHOAL_NODE_PORT ]\n",
            log.display(),
            dir.0.display()
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(dir.0.join(format!("ok-{}", plain.port())), "").unwrap();
    let t = tls_node.addr("t");
    let (b, e) = (banner.addr("b"), echo.addr("e"));
    let timing = "interval = \"100ms\"\ntimeout = \"500ms\"\nfailures = 2\nsuccesses = 1";
    let shoal = Shoal::start(&format!(
        r#"[virtual_servers.web]
listen = "127.0.0.1:0"
protocol = "http"
pool = "tcp"

[pools.tcp]
nodes = ["{plain}", "{closed}", {{ address = "127.0.0.2:{cport}", state = "disabled" }}]
monitors = ["tcp"]
[pools.status]
nodes = ["{plain}"]
monitors = ["status"]
[pools.body]
nodes = ["{plain}"]
monitors = ["body_ok", "body_bad"]
[pools.tls]
nodes = ["{t}", "{plain}", "{late_tls}"]
monitors = ["tls"]
[pools.https]
nodes = ["{t}", "{plain}", "{late_tls}"]
monitors = ["https"]
[pools.banner]
nodes = ["{b}", "{e}", "{late_banner}"]
monitors = ["banner"]
[pools.program]
nodes = ["{plain}", "{e}"]
monitors = ["program"]

[monitors.tcp]
type = "tcp"
{timing}
[monitors.status]
type = "http"
path = "/?status=500"
status = "200-299"
{timing}
[monitors.body_ok]
type = "http"
path = "/?size=3"
body_regex = "^abc$"
{timing}
[monitors.body_bad]
type = "http"
path = "/?size=3"
body_regex = "^xyz"
{timing}
[monitors.tls]
type = "tls"
{timing}
[monitors.https]
type = "https"
path = "/?size=2"
body_regex = "^ab$"
{timing}
[monitors.banner]
type = "send_expect"
send = "HELO shoal\r\n"
expect = "^220 "
{timing}
[monitors.program]
type = "program"
program = "{script}"
args = ["--check"]
{timing}
"#,
        cport = closed.port(),
        script = script.display(),
    ));
    let bad = [
        ("tcp", "tcp", closed),
        ("status", "status", plain),
        ("body_bad", "body", plain),
        ("tls", "tls", plain),
        ("https", "https", plain),
        ("banner", "banner", e),
        ("tls", "tls", late_tls),
        ("https", "https", late_tls),
        ("banner", "banner", late_banner),
        ("program", "program", e),
    ];
    let started = Instant::now();
    for (m, p, n) in bad {
        shoal.proc.wait_line(Duration::from_secs(15), |l| l.contains(&down_line(m, p, n)));
    }
    // interval 100 ms × 2 failures, plus 500 ms timeouts for the tests
    // that hang rather than fail: about 1.2 s at worst.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "the broken nodes took {took:?} to be marked down");
    // The healthy ones had as many tests by now and never went down.
    let log_text = shoal.log();
    for (m, p, n) in [
        ("tcp", "tcp", plain),
        ("body_ok", "body", plain),
        ("tls", "tls", t),
        ("https", "https", t),
        ("banner", "banner", b),
        ("program", "program", plain),
    ] {
        assert!(!log_text.contains(&down_line(m, p, n)), "{m} marked healthy {n} down:\n{log_text}");
    }
    let disabled = format!("127.0.0.2:{}", closed.port());
    assert!(
        !log_text.lines().any(|l| l.contains("monitor tcp:") && l.contains(&disabled)),
        "a disabled node was tested:\n{log_text}"
    );
    // The virtual server's pool: only the live node serves.
    for _ in 0..6 {
        assert_eq!(get_status(shoal.addr("web")), 200);
    }
    // The late nodes start: tls, https and send_expect bring them back.
    let tls_args = ["--tls-cert", leaf.cert.to_str().unwrap(), "--tls-key", leaf.key.to_str().unwrap()];
    let _late_tls = Origin::start_with("http", &[("lt", late_tls)], &tls_args);
    let _late_banner = Origin::start_at("banner", &[("lb", late_banner)]);
    for (m, p, n) in [("tls", "tls", late_tls), ("https", "https", late_tls), ("banner", "banner", late_banner)] {
        shoal.proc.wait_line(Duration::from_secs(15), |l| l.contains(&up_line(m, p, n)));
    }
    // tcp: the port starts listening, the node comes back.
    let _listener = std::net::TcpListener::bind(closed).unwrap();
    shoal.proc.wait_line(Duration::from_secs(15), |l| l.contains(&up_line("tcp", "tcp", closed)));
    // The program saw the node's address and its arguments.
    let seen = std::fs::read_to_string(&log).unwrap();
    let want = format!("127.0.0.1 {} --check --ipaddr=127.0.0.1 --port={} --node={plain}", plain.port(), plain.port());
    assert!(seen.lines().any(|l| l == want), "program log:\n{seen}");
    // Its exit status decides, both ways.
    std::fs::remove_file(dir.0.join(format!("ok-{}", plain.port()))).unwrap();
    std::fs::write(dir.0.join(format!("ok-{}", e.port())), "").unwrap();
    shoal.proc.wait_line(Duration::from_secs(15), |l| l.contains(&down_line("program", "program", plain)));
    shoal.proc.wait_line(Duration::from_secs(15), |l| l.contains(&up_line("program", "program", e)));
}
