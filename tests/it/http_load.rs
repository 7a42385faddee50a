//! HTTP under load: node connection reuse (C4), a node killed mid-load
//! (C5/C6), slow clients (B11).

use crate::http::http_config;
use crate::support::*;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the kill tests load shoal (the proof uses 30 s).
fn load_secs() -> u64 {
    std::env::var("SHOAL_LOAD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30)
}

/// A keepalive client connection with a buffered reader.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let w = connect(addr);
        let r = BufReader::new(w.try_clone().unwrap());
        Client { w, r }
    }

    fn request(&mut self, method: &str, path: &str, id: &str, body: &[u8]) -> std::io::Result<Resp> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.w.write_all(&req)?;
        // A connection closed before any response is an error for the
        // caller to count, not a panic in the harness.
        if self.r.fill_buf()?.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed without a response"));
        }
        Ok(read_response(&mut self.r, false))
    }
}

/// 100,000 keepalive requests at concurrency 64 over 3 nodes reuse node
/// connections: at most concurrency × 1.5 are opened. The design bounds
/// each shard's pool for a node by the most requests that node had in
/// flight at once on that shard, so the sum over shards and nodes can pass
/// the concurrency when load shifts between nodes (64 + 3 held in quiet
/// runs; 78 was seen with other tests loading the machine); a broken pool
/// would open one per request.
#[test]
fn node_connections_bounded_by_concurrency() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a", "b", "c"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a"), origin.addr("b"), origin.addr("c")], "", ""));
    let addr = shoal.addr("web");
    let (clients, total) = (64, 100_000);
    let conns: Arc<Mutex<HashSet<String>>> = Arc::default();
    let t = Instant::now();
    let hs: Vec<_> = (0..clients)
        .map(|c| {
            let conns = conns.clone();
            std::thread::spawn(move || {
                let mut s = Client::new(addr);
                let mut seen = HashSet::new();
                for i in (c..total).step_by(clients) {
                    let r = s.request("GET", &format!("/r{i}?size=100"), "-", b"").unwrap();
                    assert_eq!((r.status, r.body.len()), (200, 100));
                    seen.insert(r.header("x-conn").unwrap().to_string());
                }
                conns.lock().unwrap().extend(seen);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let opened = conns.lock().unwrap().len();
    eprintln!(
        "{total} requests at concurrency {clients} over 3 nodes in {:?}: {opened} node connections opened",
        t.elapsed()
    );
    assert!(opened <= clients * 3 / 2, "{opened} node connections for concurrency {clients}");
}

/// Paced keepalive clients until `stop`; each result goes to `record`.
fn paced_clients(
    addr: SocketAddr,
    n: usize,
    stop: Arc<AtomicBool>,
    method: &'static str,
    record: Recorder,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|c| {
            let (stop, record) = (stop.clone(), record.clone());
            std::thread::spawn(move || {
                let mut s = Client::new(addr);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("c{c}-{i}");
                    let body = if method == "POST" { id.as_bytes().to_vec() } else { Vec::new() };
                    let r = s.request(method, "/load?size=64", &id, &body).map_err(|e| e.to_string());
                    let reconnect = r.as_ref().map_or(true, |r| r.header("connection") == Some("close"));
                    record(id, r);
                    if reconnect {
                        s = Client::new(addr);
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect()
}

/// Run 16 paced clients for `load_secs()`, killing `victim` a third of the
/// way through; returns the duration in seconds.
fn load_with_kill(addr: SocketAddr, method: &'static str, record: Recorder, victim: &mut Origin) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let clients = paced_clients(addr, 16, stop.clone(), method, record);
    let start = Instant::now();
    let secs = load_secs();
    let until = |t: u64, what: &str| {
        poll(Duration::from_secs(secs + 60), what, || (start.elapsed() > Duration::from_secs(t)).then_some(()))
    };
    until(secs / 3, "a third of the load");
    victim.kill();
    until(secs, "the rest of the load");
    stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.join().unwrap();
    }
    secs
}

type Recorder = Arc<dyn Fn(String, Result<Resp, String>) + Send + Sync>;

fn three_nodes() -> (Origin, Origin, Origin) {
    let one = |n: &str| Origin::start_with("http", &[(n, "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    (one("a"), one("b"), one("c"))
}

/// Killing one of three nodes during a GET load: no client sees an error.
#[test]
fn killed_node_during_get_load_no_client_errors() {
    let _heavy = heavy();
    let (a, mut b, c) = three_nodes();
    let shoal = Shoal::start(&http_config(&[a.addr("a"), b.addr("b"), c.addr("c")], "", ""));
    let (ok, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let (ok2, errors2) = (ok.clone(), errors.clone());
    let record: Recorder = Arc::new(move |id, r| match r {
        Ok(r) if r.status == 200 => {
            ok2.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r) => errors2.lock().unwrap().push(format!("{id}: status {}", r.status)),
        Err(e) => errors2.lock().unwrap().push(format!("{id}: {e}")),
    });
    let secs = load_with_kill(shoal.addr("web"), "GET", record, &mut b);
    let errors = errors.lock().unwrap();
    eprintln!(
        "{} GETs answered 200 over {secs} s with node b killed at {} s; {} errors",
        ok.load(Ordering::Relaxed),
        secs / 3,
        errors.len()
    );
    assert!(errors.is_empty(), "client-visible errors: {:?}", &errors[..errors.len().min(20)]);
    assert!(c.proc.count(|l| l.starts_with("request ")) > 0 && a.proc.count(|l| l.starts_with("request ")) > 0);
}

/// The same with POSTs: no request reaches two nodes, and only POSTs in
/// flight to the killed node fail, with 502.
#[test]
fn killed_node_during_post_load_never_duplicates() {
    let _heavy = heavy();
    let (a, mut b, c) = three_nodes();
    let shoal = Shoal::start(&http_config(&[a.addr("a"), b.addr("b"), c.addr("c")], "", ""));
    let results: Arc<Mutex<HashMap<String, Result<u16, String>>>> = Arc::default();
    let r2 = results.clone();
    let record: Recorder = Arc::new(move |id, r| drop(r2.lock().unwrap().insert(id, r.map(|r| r.status))));
    let secs = load_with_kill(shoal.addr("web"), "POST", record, &mut b);
    let ids = |o: &Origin| -> HashSet<String> {
        o.proc
            .lines()
            .iter()
            .filter(|l| l.starts_with("request "))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")).map(String::from))
            .collect()
    };
    let (ia, ib, ic) = (ids(&a), ids(&b), ids(&c));
    let twice: Vec<&String> = ia.intersection(&ib).chain(ia.intersection(&ic)).chain(ib.intersection(&ic)).collect();
    assert!(twice.is_empty(), "requests seen by two nodes: {twice:?}");
    let results = results.lock().unwrap();
    let mut failed = Vec::new();
    for (id, r) in results.iter() {
        match r {
            Ok(200) => {}
            Ok(502) => failed.push(id.clone()),
            other => panic!("{id}: unexpected result {other:?}"),
        }
    }
    for id in &failed {
        assert!(!ia.contains(id) && !ic.contains(id), "{id} got 502 but a live node served it");
    }
    eprintln!(
        "{} POSTs over {secs} s, node b killed at {} s: {} answered 502 (in flight to b)",
        results.len(),
        secs / 3,
        failed.len()
    );
    assert!(failed.len() <= 16, "more 502s ({}) than requests that can be in flight to one node", failed.len());
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn latencies(addr: SocketAddr, threads: usize, per_thread: usize) -> Vec<Duration> {
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = Client::new(addr);
                (0..per_thread)
                    .map(|i| {
                        let t = Instant::now();
                        assert_eq!(s.request("GET", &format!("/n{i}?size=100"), "-", b"").unwrap().status, 200);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

/// Slowloris: 1,000 connections dribbling one header byte per second do not
/// push normal clients' p99 above twice an unloaded run (with a 1 ms floor
/// for timer granularity), and are closed by the header read timeout.
#[test]
fn slowloris_does_not_starve_normal_clients() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a")], "header_read_timeout = \"3s\"", ""));
    let addr = shoal.addr("web");
    let _ = latencies(addr, 2, 200); // warm up node connections
    let unloaded = p99(latencies(addr, 2, 1000));

    let mut slow: Vec<TcpStream> = (0..1000).map(|_| connect(addr)).collect();
    let opened = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let dribble = {
        let stop = stop.clone();
        let mut socks: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            let line = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < line.len() {
                for s in &mut socks {
                    let _ = s.write_all(&line[i..i + 1]);
                }
                i += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // Measure while the slow connections are still within their 3 s.
    let loaded = p99(latencies(addr, 2, 1000));
    let measured_within = opened.elapsed();
    // shoal answers each slow connection 408 once its 3 s are up.
    shoal.proc.wait_count(1000, Duration::from_secs(30), |l| l.contains("408 request head not received"));
    let closed_after = opened.elapsed();
    let mut answered = 0;
    for s in &mut slow {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        answered += usize::from(buf.starts_with(b"HTTP/1.1 408"));
    }
    stop.store(true, Ordering::Relaxed);
    dribble.join().unwrap();
    eprintln!(
        "p99 unloaded {unloaded:?}, with 1000 slowloris connections {loaded:?} (measured within {measured_within:?}); \
         {answered} got 408, all within {closed_after:?}"
    );
    assert!(
        loaded <= (unloaded * 2).max(unloaded + Duration::from_millis(1)),
        "p99 {loaded:?} vs unloaded {unloaded:?}"
    );
    assert_eq!(answered, 1000);
    assert!(closed_after < Duration::from_secs(15), "{closed_after:?}");
}
