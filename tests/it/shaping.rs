//! Rate classes (H2) and service level classes (H3) against real nodes:
//! the rate a class lets through each second across shards, its queue,
//! refusals and contexts; a service level class's transitions and a rule
//! that routes on them.

use crate::support::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// One `GET path` from source address `src` on a new connection; the
/// status.
fn get_from(src: IpAddr, addr: SocketAddr, path: &str) -> u16 {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(src, 0).into()).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Arrivals at the node of requests whose target starts with `prefix`, per
/// whole second of the origin's clock (`at=` in milliseconds).
fn per_second(origin: &Origin, prefix: &str) -> BTreeMap<u64, u32> {
    let want = format!("request a GET {prefix}");
    let mut counts = BTreeMap::new();
    for l in origin.proc.lines().iter().filter(|l| l.starts_with(&want)) {
        let at: u64 = l.split_whitespace().find_map(|w| w.strip_prefix("at=")).and_then(|v| v.parse().ok()).unwrap();
        *counts.entry(at / 1000).or_insert(0) += 1;
    }
    counts
}

/// H2 proof: 100 per second configured, four times that offered from 400
/// connections on 2 shards for 10 s: every full second 100 ± 5 reach the
/// node, every request is answered 200 (they wait, none fails), and a rule
/// sees the backlog meanwhile.
#[test]
fn rate_class_holds_its_rate_across_shards() {
    let _heavy = heavy();
    // Built before the clock starts (the first call may build it).
    bench_bin();
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let rule = r#"if( http.getPath() == "/backlog" ) {
   http.sendResponse( "200", "text/plain", rate.getBacklog( "api" ), "" );
}
rate.use( "api" );
"#;
    let dir = TempDir::new();
    dir.write("limit.ts", rule);
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\
         request_rules = [\"limit\"]\n\n[pools.p]\nnodes = [\"{}\"]\n\n[rules.limit]\nfile = \"{}\"\n\n\
         [rate_classes.api]\nmax_per_second = 100\n\n{}",
        origin.addr("a"),
        dir.0.join("limit.ts").display(),
        api_section()
    ));
    let url = format!("http://{}/x", shoal.addr("web"));
    let load = std::thread::spawn(move || {
        bench_json(&["-c", "400", "-r", "400", "-t", "10", "--timeout", "60", "--max-errors", "100", &url])
    });
    // The queue is visible to a rule while it is long.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let backlog = loop {
        let r = get(shoal.addr("web"), "/backlog");
        let n: u64 = String::from_utf8_lossy(&r.body).trim().parse().unwrap_or(0);
        if n > 100 {
            break n;
        }
        seen.push((r.status, String::from_utf8_lossy(&r.body).into_owned()));
        assert!(Instant::now() < deadline, "no backlog over 100 seen: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (report, ok) = load.join().unwrap();
    assert!(ok, "{report}");
    assert_eq!(report["errors"]["total"], 0, "{report}");
    let statuses = report["statuses"].as_object().unwrap();
    assert_eq!(statuses.keys().collect::<Vec<_>>(), ["200"], "every request answered 200: {report}");
    let counts = per_second(&origin, "/x");
    let seconds: Vec<u64> = counts.keys().copied().collect();
    // Whole seconds only: not the first or the last, which are partial.
    let full: Vec<(u64, u32)> =
        counts.iter().map(|(s, n)| (*s, *n)).filter(|(s, _)| s > &seconds[0] && s < seconds.last().unwrap()).collect();
    assert!(full.len() >= 8, "{counts:?}");
    for (s, n) in &full {
        assert!((95..=105).contains(n), "second {s}: {n} requests reached the node: {counts:?}");
    }
    let st = shoal.status();
    let c = &st["rate_classes"]["api"];
    assert!(c["queued"].as_u64().unwrap() > 500 && c["refused"] == 0, "{c} (backlog seen {backlog})");
}

/// H2 contexts: two clients, each with a context of its own (its address),
/// each get the class's whole rate: 300 requests apiece at 100 per second
/// take about 3 s each side by side, where one shared queue would take 6.
#[test]
fn rate_contexts_give_each_client_its_own_rate() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\
         request_rules = [\"perip\"]\n\n[pools.p]\nnodes = [\"{}\"]\n\n\
         [rules.perip]\nsource = 'rate.use( \"search\", request.getRemoteIP() );'\n\n\
         [rate_classes.search]\nmax_per_second = 100\n",
        origin.addr("a")
    ));
    let addr = shoal.addr("web");
    let clients: Vec<_> = ["127.0.0.1", "127.0.0.2"]
        .into_iter()
        .map(|src| {
            let src: IpAddr = src.parse().unwrap();
            std::thread::spawn(move || {
                let started = Instant::now();
                let workers: Vec<_> = (0..20)
                    .map(|_| {
                        std::thread::spawn(move || (0..15).map(|_| get_from(src, addr, "/search")).collect::<Vec<_>>())
                    })
                    .collect();
                let statuses: Vec<u16> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
                (started.elapsed(), statuses)
            })
        })
        .collect();
    for c in clients {
        let (took, statuses) = c.join().unwrap();
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
        assert_eq!(statuses.len(), 300);
        assert!(
            took >= Duration::from_millis(2500) && took < Duration::from_millis(4800),
            "300 requests at 100/s in {took:?}"
        );
    }
}

/// A virtual server's `rate_class`: past `max_queue` requests are refused
/// with the class's status (counted); `rate.use.noQueue` answers without
/// waiting.
#[test]
fn rate_class_refusals_and_no_queue() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!(
        "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nrate_class = \"slow\"\n\n\
         [virtual_servers.nq]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nrequest_rules = [\"nq\"]\n\n\
         [pools.p]\nnodes = [\"{}\"]\n\n\
         [rules.nq]\nsource = 'if( !rate.use.noQueue( \"once\" ) ) http.sendResponse( \"429\", \"text/plain\", \"busy\", \"\" );'\n\n\
         [rate_classes.slow]\nmax_per_second = 2\nmax_queue = 2\nstatus = 429\n\n\
         [rate_classes.once]\nmax_per_minute = 1\n\n{}",
        origin.addr("a"),
        api_section()
    ));
    let addr = shoal.addr("web");
    let all: Vec<_> = (0..8).map(|_| std::thread::spawn(move || get(addr, "/").status)).collect();
    let mut statuses: Vec<u16> = all.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort();
    // One at once, two in the queue, the other five refused.
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
    let st = shoal.status();
    let c = &st["rate_classes"]["slow"];
    assert_eq!((c["passed"].as_u64(), c["queued"].as_u64(), c["refused"].as_u64()), (Some(1), Some(2), Some(5)), "{c}");
    assert!(shoal.log().contains("refused by its virtual server's rate class slow"));
    let nq = shoal.addr("nq");
    assert_eq!(get(nq, "/").status, 200);
    let started = Instant::now();
    let r = get(nq, "/");
    assert_eq!((r.status, r.body.as_slice()), (429, &b"busy"[..]));
    assert!(started.elapsed() < Duration::from_secs(2), "noQueue does not wait");
    let metrics = shoal.api("GET", "/metrics", "").text();
    assert!(metrics.contains("shoal_rate_class_requests_total{class=\"slow\",outcome=\"refused\"} 5"), "{metrics}");
}

both_protocols! {
/// H3 proof: a node that slows from 10 ms to 300 ms against a 100 ms target
/// takes the class through warning to serious within its window, each
/// transition logged, and a rule that reads the class sends traffic to
/// another pool.
fn service_level_goes_serious_and_a_rule_routes_away() {
    let origin = Origin::start("http", &["a", "b"]);
    let shoal = Shoal::start(&format!(
        "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"main\"\n\
         service_level = \"web\"\nrequest_rules = [\"away\"]\n\n\
         [pools.main]\nnodes = [\"{}\"]\n\n[pools.spare]\nnodes = [\"{}\"]\n\n\
         [rules.away]\nsource = '''\nif( slm.conforming( \"web\" ) < 50 ) pool.use( \"spare\" );\n'''\n\n\
         [service_levels.web]\nresponse_time = \"100ms\"\nwarning = 90\nserious = 50\n\n{}",
        origin.addr("a"),
        origin.addr("b"),
        api_section()
    ));
    let addr = shoal.addr("web");
    for _ in 0..10 {
        let r = get(addr, "/?delay=10");
        assert_eq!((r.status, r.header("x-node")), (200, Some("a")));
    }
    assert_eq!(shoal.status()["service_levels"]["web"]["state"], "ok");
    // The node slows down: 10 fast and then slow ones in the window.
    let mut moved = None;
    for i in 0..30 {
        let r = get(addr, "/?delay=300");
        if r.header("x-node") == Some("b") {
            moved = Some(i);
            break;
        }
    }
    let moved = moved.expect("traffic moved to the spare pool");
    assert!((10..=12).contains(&moved), "moved after {moved} slow requests (10 fast, 11 slow is under 50%)");
    let st = shoal.status();
    let c = &st["service_levels"]["web"];
    assert_eq!(c["state"], "serious", "{c}");
    assert!(c["window"]["max_us"].as_u64().unwrap() >= 300_000, "{c}");
    let log = shoal.log();
    assert!(log.contains("service level web: ok -> warning"), "{log}");
    assert!(log.contains("service level web: warning -> serious"), "{log}");
    // With no more traffic the window empties: back to ok within about
    // ten seconds, logged with no request to trigger it.
    shoal.proc.wait_line(Duration::from_secs(20), |l| l.contains("service level web: serious -> ok"));
    assert_eq!(shoal.status()["service_levels"]["web"]["state"], "ok");
}
}

/// Configuration errors name the file, line and key.
#[test]
fn class_configuration_errors() {
    let base = "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n";
    let pools = "\n[pools.p]\nnodes = [\"127.0.0.1:9\"]\n";
    for (extra, top, want) in [
        ("rate_class = \"nope\"\n", "", "no rate class named \"nope\" (defined: none)"),
        ("service_level = \"x\"\n", "[service_levels.y]\n", "no service level class named \"x\" (defined: y)"),
        ("", "[rate_classes.r]\nstatus = 200\n", "rate_classes.r.status"),
        ("", "[bandwidth_classes.b]\nmax_rate = \"5 furlongs\"\n", "bandwidth_classes.b.max_rate"),
        ("bandwidth_class = \"b\"\n", "", "no bandwidth class named \"b\" (defined: none)"),
        (
            "request_rules = [\"r\"]\n",
            "[rules.r]\nsource = 'response.setBandwidthClass( \"nope\" );'\n",
            "no bandwidth class named \"nope\"",
        ),
        ("", "[service_levels.s]\nwarning = 40\nserious = 60\n", "must not be above warning"),
        ("", "[service_levels.s]\nresponse_time = \"0ms\"\n", "service_levels.s.response_time"),
        (
            "request_rules = [\"r\"]\n",
            "[rules.r]\nsource = 'rate.use( \"missing\" );'\n",
            "rate.use: no rate class named \"missing\"",
        ),
        (
            "request_rules = [\"r\"]\n",
            "[rules.r]\nsource = 'if( slm.state( \"q\" ) == \"ok\" ) {}'\n",
            "slm.state: no service level class named \"q\"",
        ),
    ] {
        let dir = TempDir::new();
        let path = dir.write("c.toml", &format!("{base}{extra}{pools}\n{top}"));
        let out = std::process::Command::new(shoal_bin()).args(["check", "-c"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want) && err.contains("c.toml:"), "{want}: {err}");
    }
}

/// `GET path` on a new connection.
fn get(addr: SocketAddr, path: &str) -> Resp {
    send(addr, &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
}

/// Read a response to `GET path` on a new connection for `secs` seconds
/// (from `start`); the body bytes that came in that time.
pub fn read_for(addr: SocketAddr, path: &str, start: Instant, secs: u64) -> u64 {
    read_for_with(addr, path, "", start, secs)
}

/// As [`read_for`], with `extra` header lines (each ending in CRLF).
fn read_for_with(addr: SocketAddr, path: &str, extra: &str, start: Instant, secs: u64) -> u64 {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let end = start + Duration::from_secs(secs);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut total, mut head) = (0u64, Vec::new());
    let mut in_body = false;
    while Instant::now() < end {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => continue,
        };
        // Body bytes that came after `start` only.
        let counted = Instant::now() >= start;
        if in_body {
            total += if counted { n as u64 } else { 0 };
            continue;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            in_body = true;
            total += if counted { (head.len() - i - 4) as u64 } else { 0 };
        }
    }
    total
}

/// Jain's fairness index of `xs`: 1 when all are equal.
fn jain(xs: &[u64]) -> f64 {
    let sum: f64 = xs.iter().map(|&x| x as f64).sum();
    let sq: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
    sum * sum / (xs.len() as f64 * sq)
}

/// H1 proof: a class of 50 Mbit/s shared by 1, 10 and 100 connections over
/// 2 shards (spliced plain HTTP bodies) holds 50 Mbit/s within 5% over
/// 10 s, and the connections' shares have a Jain index of at least 0.95.
#[test]
fn shared_bandwidth_class_is_held_and_fair_across_shards() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\
         bandwidth_class = \"shared\"\n\n[pools.p]\nnodes = [\"{}\"]\n\n\
         [bandwidth_classes.shared]\nmax_rate = \"50Mbit\"\n\n{}",
        origin.addr("a"),
        api_section()
    ));
    let addr = shoal.addr("web");
    let want = 50_000_000.0 / 8.0 * 10.0;
    for n in [1usize, 10, 100] {
        let start = Instant::now() + Duration::from_millis(200);
        let readers: Vec<_> =
            (0..n).map(|_| std::thread::spawn(move || read_for(addr, "/big?size=500000000", start, 10))).collect();
        let got: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        let total: u64 = got.iter().sum();
        let ratio = total as f64 / want;
        assert!(
            (0.95..=1.05).contains(&ratio),
            "{n} connections: {total} bytes in 10 s is {ratio:.3} of the class's rate"
        );
        let j = jain(&got);
        eprintln!("{n} connections: {ratio:.4} of the rate, Jain {j:.4}");
        assert!(j >= 0.95, "{n} connections: Jain index {j:.3}: {got:?}");
    }
    let st = shoal.status();
    let c = &st["bandwidth_classes"]["shared"];
    assert!(c["bytes"].as_u64().unwrap() > 3 * 60_000_000 && c["waits"].as_u64().unwrap() > 0, "{c}");
}

/// H1 proof: a per-connection limit holds within 5% for a spliced plain
/// HTTP body, a TLS body (copied through user space to be encrypted) and a
/// body from the content cache, each with other connections of the class
/// running alongside; a rule picks the class for one path.
#[test]
fn per_connection_bandwidth_on_spliced_tls_and_cached_bodies() {
    let _heavy = heavy();
    let certs = TempDir::new();
    let pki = crate::pki::Pki::new(&certs.0, "shoal");
    let leaf = pki.server("www", &["www.test"]);
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n\
         [virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nrequest_rules = [\"videos\"]\ncache = true\n\n\
         [virtual_servers.secure]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nbandwidth_class = \"each\"\n\n\
         [virtual_servers.secure.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n\n\
         [pools.p]\nnodes = [\"{}\"]\n\n\
         [rules.videos]\nsource = '''\nif( string.startsWith( http.getPath(), \"/videos/\" ) || http.getHeader( \"X-Shaped\" ) == \"yes\" ) {{\n   response.setBandwidthClass( \"each\" );\n}}\n'''\n\n\
         [bandwidth_classes.each]\nmax_rate = \"20Mbit\"\nper_connection = true\n\n\
         [cache]\nmemory = \"256MiB\"\nmax_object = \"128MiB\"\n",
        leaf.cert.display(),
        leaf.key.display(),
        origin.addr("a")
    ));
    let per_conn = 20_000_000.0 / 8.0;
    let web = shoal.addr("web");
    // Unshaped paths are not limited by the class.
    let t = Instant::now();
    let fast = read_for(web, "/other?size=50000000", t, 3);
    assert!(fast as f64 > per_conn * 3.0 * 2.0, "an unshaped path runs free: {fast}");
    // Three at once on the plain path (spliced): each holds its own rate.
    let start = Instant::now() + Duration::from_millis(100);
    let got: Vec<u64> = (0..3)
        .map(|i| std::thread::spawn(move || read_for(web, &format!("/videos/{i}?size=200000000"), start, 5)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    eprintln!("spliced, per connection: {got:?} bytes in 5 s");
    for g in &got {
        let ratio = *g as f64 / (per_conn * 5.0);
        assert!((0.95..=1.05).contains(&ratio), "spliced: {g} bytes in 5 s is {ratio:.3} of the rate ({got:?})");
    }
    // TLS: curl for 5 s.
    let url = format!("https://www.test:{}/videos/t?size=200000000", shoal.addr("secure").port());
    let resolve = format!("www.test:{}:127.0.0.1", shoal.addr("secure").port());
    let (_, out, err) = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "--cacert",
        &pki.ca.display().to_string(),
        "--resolve",
        &resolve,
        "--max-time",
        "5",
        "-w",
        "%{size_download} %{time_total}",
        &url,
    ]);
    let text = String::from_utf8_lossy(&out);
    let mut w = text.split_whitespace();
    let (size, secs): (f64, f64) = (w.next().unwrap().parse().unwrap(), w.next().unwrap().parse().unwrap());
    let ratio = size / secs / per_conn;
    eprintln!("TLS: {ratio:.4} of the rate");
    assert!((0.95..=1.05).contains(&ratio), "TLS: {size} bytes in {secs} s is {ratio:.3} of the rate: {err}");
    // From the cache: a 100 MB object stored by a first request, then a
    // hit (spliced from memory) at the class's pace.
    let cached = format!("/media/c?hdr={}&size=100000000", enc("Cache-Control: max-age=3600"));
    assert_eq!(read_for(web, &cached, Instant::now(), 60), 100_000_000);
    let hit = read_for_with(web, &cached, "X-Shaped: yes\r\n", Instant::now(), 5);
    let ratio = hit as f64 / (per_conn * 5.0);
    eprintln!("cache hit: {ratio:.4} of the rate");
    assert!((0.95..=1.05).contains(&ratio), "cache hit: {hit} bytes in 5 s is {ratio:.3} of the rate");
}

/// Quick mode: `--bandwidth RATE` paces each response; a bad rate is
/// refused with the flag's name.
#[test]
fn quick_mode_bandwidth() {
    let origin = Origin::start("http", &["a"]);
    let to = origin.addr("a").to_string();
    let mut cmd = std::process::Command::new(shoal_bin());
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--to", &to, "--protocol", "http", "--bandwidth", "8Mbit"]);
    let shoal = Shoal::from_command(cmd, TempDir::new(), std::path::PathBuf::new());
    let addr = shoal.addr("proxy");
    // 1.5 MB at 1 MB/s.
    let started = Instant::now();
    let r = get(addr, "/q?size=1500000");
    let took = started.elapsed();
    assert_eq!(r.body.len(), 1_500_000);
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_millis(2500), "{took:?}");
    let bad = std::process::Command::new(shoal_bin())
        .args(["proxy", "--listen", "127.0.0.1:0", "--to", &to, "--protocol", "http", "--bandwidth", "fast"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("--bandwidth"), "{err}");
}

/// F4: the seeds' Example 1 runs whole, as written: the video rewrite,
/// `response.setBandwidthClass( "Videos 2Mbits" )` and
/// `http.cache.disable()`.
#[test]
fn seeds_example_1_with_its_bandwidth_class() {
    let dir = TempDir::new();
    dir.write("ex1.ts", SEEDS_EXAMPLE_1);
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let config = dir.write(
        "shoal.toml",
        &format!(
            "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\ncache = true\n\
             request_rules = [\"ex1\"]\n\n[pools.p]\nnodes = [\"{}\"]\n\n[rules.ex1]\nfile = \"ex1.ts\"\n\n\
             [bandwidth_classes.\"Videos 2Mbits\"]\nmax_rate = \"2Mbit\"\nper_connection = true\n",
            origin.addr("a")
        ),
    );
    let mut cmd = std::process::Command::new(shoal_bin());
    cmd.arg("run").arg("-c").arg(&config);
    let shoal = Shoal::from_command(cmd, dir, config);
    // 500 kB at 2 Mbit/s (250 kB/s): 2 s.
    let started = Instant::now();
    let r = get(shoal.addr("web"), "/videos/clip.flv?size=500000");
    let took = started.elapsed();
    assert_eq!((r.status, r.body.len()), (200, 500_000));
    assert!(took >= Duration::from_millis(1850) && took < Duration::from_millis(2800), "{took:?}");
    origin.proc.wait_line(Duration::from_secs(5), |l| l.starts_with("request a GET /videos/clip.f4v?size=500000 "));
    // Other paths are not paced.
    let started = Instant::now();
    assert_eq!(get(shoal.addr("web"), "/other?size=500000").body.len(), 500_000);
    assert!(started.elapsed() < Duration::from_millis(1000));
}
