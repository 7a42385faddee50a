//! HTTP balancing by speed (fastest response time, perceptive with gradual
//! start, LARD) and the access log (I3).

use crate::http::http_config;
use crate::support::*;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn get(s: &mut std::net::TcpStream, path: &str) -> Resp {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    read_response(s, false)
}

/// `threads` keepalive clients send `per_thread` GETs each; returns the
/// share of responses per X-Node.
fn shares(addr: SocketAddr, threads: usize, per_thread: usize) -> HashMap<String, f64> {
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut m: HashMap<String, usize> = HashMap::new();
                for i in 0..per_thread {
                    let r = get(&mut s, &format!("/t{t}/{i}"));
                    assert_eq!(r.status, 200);
                    *m.entry(r.header("x-node").unwrap().to_string()).or_default() += 1;
                }
                m
            })
        })
        .collect();
    let mut total: HashMap<String, usize> = HashMap::new();
    for h in hs {
        for (k, v) in h.join().unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    let n: usize = total.values().sum();
    total.into_iter().map(|(k, v)| (k, v as f64 / n as f64)).collect()
}

/// A node 50 ms slower than its peers gets clearly less traffic under
/// fastest_response_time and perceptive than under round robin.
#[test]
fn slow_node_gets_less_under_fastest_and_perceptive() {
    let fast = Origin::start("http", &["a", "b"]);
    let slow = Origin::start_with("http", &[("slow", "127.0.0.1:0".parse().unwrap())], &["--delay", "50"]);
    let nodes = format!("[\"{}\", \"{}\", \"{}\"]", fast.addr("a"), fast.addr("b"), slow.addr("slow"));
    let mut cfg = String::from("[global]\nshards = 2\n");
    for alg in ["round_robin", "fastest_response_time", "perceptive"] {
        cfg += &format!(
            "\n[virtual_servers.{alg}]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"{alg}\"\n\n[pools.{alg}]\nalgorithm = \"{alg}\"\nnodes = {nodes}\n"
        );
    }
    let shoal = Shoal::start(&cfg);
    let rr = shares(shoal.addr("round_robin"), 6, 60);
    let fastest = shares(shoal.addr("fastest_response_time"), 6, 60);
    let perceptive = shares(shoal.addr("perceptive"), 6, 60);
    let s = |m: &HashMap<String, f64>| m.get("slow").copied().unwrap_or(0.0);
    // Round robin's third, less what connection reuse defers: a busy node
    // without an idle connection is skipped for a warm one and owed the
    // turn (up to 8 per shard, `ShardPool::prefer_warm`), and a node busy
    // 50 ms per request is often still owed turns when the run ends.
    // Measured 0.236 to 0.40 on the 2-core CI machine.
    assert!(s(&rr) > 0.2, "round robin: {rr:?}");
    assert!(s(&fastest) < 0.1, "fastest_response_time: {fastest:?}");
    assert!(s(&perceptive) < 0.15, "perceptive: {perceptive:?}");
}

/// Perceptive gradual start: a node activated at run time gets exactly one
/// request first (nothing else reaches it until that one is answered),
/// then a ramp that grows second by second.
#[test]
fn perceptive_gradual_start_one_request_then_ramp() {
    let ab = Origin::start_with(
        "http",
        &[("a", "127.0.0.1:0".parse().unwrap()), ("b", "127.0.0.1:0".parse().unwrap())],
        &["--delay", "5", "--log-requests"],
    );
    let c = Origin::start_with("http", &[("c", "127.0.0.1:0".parse().unwrap())], &["--delay", "5", "--log-requests"]);
    let cfg = |c_state: &str| {
        format!(
            "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n\
             [pools.p]\nalgorithm = \"perceptive\"\nnodes = [\"{}\", \"{}\", {{ address = \"{}\", state = \"{c_state}\" }}]\n",
            ab.addr("a"),
            ab.addr("b"),
            c.addr("c")
        )
    };
    let shoal = Shoal::start(&cfg("disabled"));
    let addr = shoal.addr("web");
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..12)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(get(&mut s, &format!("/l{t}/{i}")).status, 200);
                    i += 1;
                }
            })
        })
        .collect();
    // Let a and b warm up (response times known on both shards), then
    // activate c.
    ab.proc.wait_count(400, STARTUP, |l| l.starts_with("request "));
    write_file(&shoal.config, &cfg("active"));
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {}: gradual start", c.addr("c"))));
    let activated = Instant::now();
    poll(Duration::from_secs(30), "six seconds of load after activation", || {
        (activated.elapsed() > Duration::from_secs(6)).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for h in load {
        h.join().unwrap();
    }
    let lines: Vec<(u64, u32)> = c
        .proc
        .lines()
        .iter()
        .filter(|l| l.starts_with("request c "))
        .map(|l| {
            let field = |k: &str| l.split(' ').find_map(|f| f.strip_prefix(k)).unwrap().to_string();
            (field("at=").parse().unwrap(), field("inflight=").parse().unwrap())
        })
        .collect();
    assert!(lines.len() > 10, "c got {} requests", lines.len());
    assert_eq!(lines[0].1, 1, "the first request to c was not alone");
    assert_eq!(lines[1].1, 1, "a second request reached c before its first was answered");
    let t0 = lines[0].0;
    let mut per_second = [0usize; 5];
    for (at, _) in &lines {
        let s = ((at - t0) / 1000) as usize;
        if s < per_second.len() {
            per_second[s] += 1;
        }
    }
    assert!(per_second[0] < per_second[3], "no ramp visible in per-second counts {per_second:?}");
    assert!(per_second[0] <= per_second[1] && per_second[1] <= per_second[2] * 2, "{per_second:?}");
    eprintln!("requests to c per second after activation: {per_second:?}");
}

/// Access log lines follow the configured format, with %n (node that
/// served), %N (required node: none here) and %F (first choice) right,
/// including when the first choice is dead; SIGUSR1 reopens the file.
#[test]
fn access_log_format_and_reopen() {
    let origin = Origin::start("http", &["a"]);
    let dead: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let a = origin.addr("a");
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let fmt = r#"%h %m %U %q %s %b %n %N %F %v %p \"%{User-Agent}i\" %{X-Node}o"#;
    let shoal = Shoal::start(&http_config(
        &[dead, a],
        &format!("access_log = \"{}\"\naccess_log_format = \"{fmt}\"", log.display()),
        "node_connection_attempts = 1000",
    ));
    let mut s = connect(shoal.addr("web"));
    for i in 0..6 {
        write!(s, "GET /p{i}?size={i} HTTP/1.1\r\nHost: t\r\nUser-Agent: t\"e\"st\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).status, 200);
    }
    let lines = poll(STARTUP, "six access log lines", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        let v: Vec<String> = t.lines().map(String::from).collect();
        (v.len() >= 6).then_some(v)
    });
    let mut favoured_dead = 0;
    for (i, l) in lines.iter().enumerate() {
        let f: Vec<&str> = l.split(' ').collect();
        let bytes = if i == 0 { "-".to_string() } else { i.to_string() };
        assert_eq!(
            &f[..7],
            ["127.0.0.1", "GET", &format!("/p{i}"), &format!("?size={i}"), "200", &bytes, &a.to_string()],
            "{l}"
        );
        assert_eq!(f[7], "-", "%N: no required node: {l}");
        assert!(f[8] == a.to_string() || f[8] == dead.to_string(), "{l}");
        favoured_dead += usize::from(f[8] == dead.to_string());
        assert_eq!(&f[9..], ["web", "p", r#""t\x22e\x22st""#, "a"], "{l}");
    }
    assert!(favoured_dead > 0, "round robin over [dead, a] favours the dead node for some requests: {lines:?}");

    std::fs::rename(&log, dir.0.join("access.log.1")).unwrap();
    shoal.proc.signal("USR1");
    shoal.proc.wait_line(STARTUP, |l| l.contains("access logs reopened"));
    write!(s, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    poll(STARTUP, "a line in the new file", || {
        std::fs::read_to_string(&log).ok().filter(|t| t.contains("/after")).map(|_| ())
    });
}

/// `access_log_format = "json"`: 10,000 requests whose headers carry
/// quotes, backslashes, a tab, UTF-8 and bytes that are not UTF-8 give
/// 10,000 lines that Python's `json` parses, with the values as sent (a
/// byte that is not UTF-8 as the code point of its number).
#[test]
fn json_access_log_of_hostile_headers_parses() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let dir = TempDir::new();
    let log = dir.0.join("access.json");
    let shoal = Shoal::start(&http_config(
        &[origin.addr("a")],
        &format!("access_log = \"{}\"\naccess_log_format = \"json\"", log.display()),
        "",
    ));
    let agent: &[u8] = b"ev\"il\\agent \xff\xfe \xc3\xa9\t</script>";
    let referer: &[u8] = b"\"},{\"injected\":1";
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = shoal.addr("web");
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for chunk in 0..25 {
                    let mut batch = Vec::new();
                    for i in 0..100 {
                        batch.extend_from_slice(
                            format!("GET /j{t}-{chunk}-{i}?a=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: ").as_bytes(),
                        );
                        batch.extend_from_slice(agent);
                        batch.extend_from_slice(b"\r\nReferer: ");
                        batch.extend_from_slice(referer);
                        batch.extend_from_slice(b"\r\n\r\n");
                    }
                    s.write_all(&batch).unwrap();
                    for _ in 0..100 {
                        assert_eq!(read_response(&mut s, false).status, 200);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    poll(STARTUP, "10,000 lines", || {
        let n = std::fs::read(&log).unwrap_or_default().iter().filter(|&&b| b == b'\n').count();
        (n >= 10_000).then_some(())
    });
    let script = r#"
import json, sys
n = 0
for line in open(sys.argv[1], "rb"):
    r = json.loads(line)
    assert r["user_agent"] == 'ev"il\\agent \u00ff\u00fe \u00e9\t</script>', r
    assert r["referer"] == '"},{"injected":1', r
    assert r["status"] == 200 and r["method"] == "GET" and r["query"] == "?a=1" and r["error"] == "", r
    assert r["path"].startswith("/j") and r["virtual_server"] == "web" and r["pool"] == "p", r
    assert isinstance(r["duration_us"], int) and r["bytes"] >= 0, r
    n += 1
print(n)
"#;
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&log).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "10000");
}
