//! Session persistence (E1–E4, C7, C8) with curl cookie jars and raw
//! requests against real nodes, through a two-shard shoal: every class
//! keeps a session on one node over 120 requests on new connections (so
//! both shards serve it), stores evict least recently used entries, and
//! each failure behaviour does what it says.

use crate::support::*;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Three HTTP nodes, each its own process (so one can be killed).
struct Nodes(Vec<Origin>);

impl Nodes {
    fn start() -> Nodes {
        Nodes(["a", "b", "c"].iter().map(|n| Origin::start("http", &[n])).collect())
    }
    fn addr(&self, i: usize) -> SocketAddr {
        self.0[i].addr(["a", "b", "c"][i])
    }
    fn all(&self) -> Vec<SocketAddr> {
        (0..3).map(|i| self.addr(i)).collect()
    }
}

fn config(nodes: &Nodes, class: &str) -> String {
    crate::http::http_config(&nodes.all(), "", "persistence = \"s\"") + &format!("\n[persistence.s]\n{class}\n")
}

/// curl `n` times `path` (each on a new connection, `Connection: close`)
/// with a cookie jar in `dir`, after `first` (the request that starts the
/// session); returns the `X-Node` of every response and the heads.
fn curl_session(
    shoal: &Shoal,
    dir: &TempDir,
    first: &str,
    path: &str,
    n: usize,
    extra: &[&str],
) -> (Vec<String>, String) {
    let jar = dir.0.join("jar.txt");
    let base = format!("http://{}", shoal.addr("web"));
    let mut args: Vec<String> = vec!["-D".into(), "-".into(), "-o".into(), "/dev/null".into()];
    args.extend(["-c".into(), jar.display().to_string(), "-b".into(), jar.display().to_string()]);
    args.extend(["-H".into(), "Connection: close".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("{base}{first}"));
    for _ in 0..n {
        args.push("-o".into());
        args.push("/dev/null".into());
        args.push(format!("{base}{path}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = curl(&refs);
    assert!(ok, "{err}");
    let heads = String::from_utf8_lossy(&out).into_owned();
    let nodes = heads.lines().filter_map(|l| l.strip_prefix("X-Node: ")).map(|s| s.trim().to_string()).collect();
    (nodes, heads)
}

/// Change node `addr`'s state from `from` to `to` in shoal's configuration
/// file, SIGHUP, and wait until shoal logs the change.
fn set_state(shoal: &Shoal, addr: SocketAddr, from: &str, to: &str) {
    let text = std::fs::read_to_string(&shoal.config).unwrap();
    let new = if from == "active" {
        text.replace(&format!("\"{addr}\""), &format!("{{ address = \"{addr}\", state = \"{to}\" }}"))
    } else {
        text.replace(&format!("state = \"{from}\""), &format!("state = \"{to}\""))
    };
    write_file(&shoal.config, &new);
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {addr}: state {from} -> {to}")));
}

fn assert_one_node(nodes: &[String], what: &str) -> String {
    let set: HashSet<&String> = nodes.iter().collect();
    assert_eq!(set.len(), 1, "{what}: the session moved between nodes: {nodes:?}");
    nodes[0].clone()
}

/// Proof 1: every HTTP class keeps a session on one node for 120 more
/// requests, each on a new connection (spread over both shards by the
/// kernel), with curl's cookie jar carrying the cookies.
#[test]
fn every_class_keeps_a_session_on_one_node() {
    let _heavy = heavy();
    let nodes = Nodes::start();
    let dir = TempDir::new();
    let cases: Vec<(&str, String, &str, &[&str])> = vec![
        ("type = \"ip\"", "/x".into(), "/x", &[]),
        ("type = \"universal\"\nsource = \"header:X-Session\"", "/x".into(), "/x", &["-H", "X-Session: s-42"]),
        ("type = \"universal\"\nsource = \"path:2\"", "/u/7/a".into(), "/u/7/b", &[]),
        ("type = \"transparent\"", "/x".into(), "/x", &[]),
        ("type = \"app_cookie\"\ncookie = \"SID\"", "/x?cookie=SID&cookie_age=600".into(), "/x", &[]),
        ("type = \"j2ee\"", "/x?cookie=JSESSIONID".into(), "/x", &[]),
        ("type = \"asp\"", "/x?cookie=ASP.NET_SessionId".into(), "/x", &[]),
        ("type = \"node_cookie\"", "/x?backend=self".into(), "/x", &[]),
    ];
    for (class, first, path, extra) in cases {
        let shoal = Shoal::start(&config(&nodes, class));
        let _ = std::fs::remove_file(dir.0.join("jar.txt"));
        let (got, heads) = curl_session(&shoal, &dir, &first, path, 120, extra);
        assert_eq!(got.len(), 121, "{class}: {heads}");
        assert_one_node(&got, class);
        if class.contains("app_cookie") {
            assert!(heads.contains("Set-Cookie: X-Mapping-") && heads.contains("; Max-Age=600"), "{heads}");
        }
    }

    // named_node: the request names the node.
    let shoal = Shoal::start(&config(&nodes, "type = \"named_node\"\nsource = \"query:node\""));
    let (got, _) = curl_session(
        &shoal,
        &dir,
        &format!("/x?node={}", nodes.addr(1)),
        &format!("/x?node={}", nodes.addr(1)),
        120,
        &[],
    );
    assert!(got.iter().all(|n| n == "b"), "{got:?}");

    // j2ee without cookies: the ;jsessionid= path parameter.
    let shoal = Shoal::start(&config(&nodes, "type = \"j2ee\""));
    let mut s = connect(shoal.addr("web"));
    std::io::Write::write_all(&mut s, b"GET /x?cookie=JSESSIONID HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    let sid = r.header("set-cookie").unwrap().split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let owner = r.header("x-node").unwrap().to_string();
    for i in 0..30 {
        let mut s = connect(shoal.addr("web"));
        std::io::Write::write_all(
            &mut s,
            format!("GET /app/p{i};jsessionid={sid}?q=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(read_response(&mut s, false).header("x-node"), Some(owner.as_str()));
    }
}

/// Proof 1: a forged or edited transparent cookie does not move the
/// session: it is ignored (the request is balanced) and a valid cookie for
/// the node that served is issued in its place.
#[test]
fn forged_transparent_cookies_are_ignored_and_replaced() {
    let nodes = Nodes::start();
    let shoal = Shoal::start(&config(&nodes, "type = \"transparent\"\nsecret = \"test secret\""));
    let get = |cookie: Option<&str>| {
        let mut s = connect(shoal.addr("web"));
        let c = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
        std::io::Write::write_all(
            &mut s,
            format!("GET /f HTTP/1.1\r\nHost: t\r\n{c}Connection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        read_response(&mut s, false)
    };
    // Learn the genuine cookie of each node.
    let mut genuine: HashMap<String, String> = HashMap::new();
    for _ in 0..9 {
        let r = get(None);
        let set = r.header("set-cookie").expect("a new session gets a cookie").split(';').next().unwrap().to_string();
        genuine.insert(r.header("x-node").unwrap().to_string(), set);
    }
    assert_eq!(genuine.len(), 3);
    let (name, value) = genuine["a"].split_once('=').unwrap();
    assert!(
        !value.contains("127.0.0.1") && !value.contains(&nodes.addr(0).port().to_string()),
        "the value reveals the node"
    );
    // The genuine cookie pins; an edited one (one digit changed) and one
    // naming a node in clear are ignored and replaced.
    for _ in 0..10 {
        assert_eq!(get(Some(&genuine["a"])).header("x-node"), Some("a"));
    }
    let flip = |c: char| if c == '0' { '1' } else { '0' };
    let edited = format!("{name}={}{}", &value[..value.len() - 1], flip(value.chars().last().unwrap()));
    for forged in [edited, format!("{name}={}", nodes.addr(2)), format!("{name}=00000000000000000000000000000000")] {
        let mut served = HashSet::new();
        for _ in 0..6 {
            let r = get(Some(&forged));
            let node = r.header("x-node").unwrap().to_string();
            let set =
                r.header("set-cookie").expect("a forged cookie is replaced").split(';').next().unwrap().to_string();
            assert_eq!(set, genuine[&node], "the replacement names the node that served");
            served.insert(node);
        }
        assert!(served.len() > 1, "{forged}: a forged cookie pinned the session to {served:?}");
    }
}

/// Proof 2: the store keeps at most max_entries sessions, dropping the
/// least recently used; the counters logged at stop show it.
#[test]
fn store_evicts_past_capacity_and_counts() {
    let nodes = Nodes::start();
    let mut shoal =
        Shoal::start(&config(&nodes, "type = \"universal\"\nsource = \"header:X-Session\"\nmax_entries = 3"));
    for k in 0..5 {
        let mut s = connect(shoal.addr("web"));
        std::io::Write::write_all(
            &mut s,
            format!("GET /e HTTP/1.1\r\nHost: t\r\nX-Session: k{k}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(read_response(&mut s, false).status, 200);
    }
    shoal.proc.signal("TERM");
    shoal.proc.wait_exit(Duration::from_secs(30));
    let log = shoal.log();
    assert!(log.contains("persistence s: 3 entries (max 3), 2 evicted"), "{log}");
}

/// Proof 3: what happens when the pinned node goes (killed, or disabled):
/// a new node is chosen and remembered (default); or a redirect; or the
/// connection closes. A
/// draining node keeps its sessions and gets no new ones; a disabled node
/// gets nothing.
#[test]
fn failure_behaviours_draining_and_disabled() {
    let get = |shoal: &Shoal, session: &str| -> Option<Resp> {
        let mut s = connect(shoal.addr("web"));
        std::io::Write::write_all(
            &mut s,
            format!("GET /g HTTP/1.1\r\nHost: t\r\nX-Session: {session}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
        let mut first = [0u8; 1];
        if std::io::Read::read(&mut s, &mut first).ok()? == 0 {
            return None;
        }
        let mut rest = std::io::Read::chain(&first[..], s);
        Some(read_response(&mut rest, false))
    };
    let node = |shoal: &Shoal, session: &str| get(shoal, session).unwrap().header("x-node").unwrap().to_string();
    let names = ["a", "b", "c"];

    // Default: a new node, remembered.
    let mut nodes = Nodes::start();
    let shoal = Shoal::start(&config(&nodes, "type = \"universal\"\nsource = \"header:X-Session\""));
    let first = node(&shoal, "s1");
    let idx = names.iter().position(|n| *n == first).unwrap();
    nodes.0[idx].kill();
    let moved = node(&shoal, "s1");
    assert_ne!(moved, first);
    for _ in 0..20 {
        assert_eq!(node(&shoal, "s1"), moved, "the new node is remembered");
    }

    // Redirect and close, when the pinned node is disabled.
    for (action, check) in [
        ("on_failure = \"redirect\"\nfailure_url = \"https://sorry.example/\"", "redirect"),
        ("on_failure = \"close\"", "close"),
    ] {
        let nodes = Nodes::start();
        let shoal =
            Shoal::start(&config(&nodes, &format!("type = \"universal\"\nsource = \"header:X-Session\"\n{action}")));
        let pinned = node(&shoal, "s1");
        let addr = nodes.addr(names.iter().position(|n| *n == pinned).unwrap());
        set_state(&shoal, addr, "active", "disabled");
        let r = poll(Duration::from_secs(10), "the disabled state on every shard", || {
            let r = get(&shoal, "s1");
            (r.as_ref().map(|r| r.header("x-node") != Some(&pinned)).unwrap_or(true)).then_some(r)
        });
        match check {
            "redirect" => {
                let r = r.expect("a redirect");
                assert_eq!((r.status, r.header("location")), (302, Some("https://sorry.example/")));
            }
            _ => assert!(r.is_none(), "closed without an answer"),
        }
    }

    // Redirect when the pinned node dies: a monitor marks it failed.
    let mut nodes = Nodes::start();
    let class = "type = \"universal\"\nsource = \"header:X-Session\"\non_failure = \"redirect\"\nfailure_url = \"https://sorry.example/\"";
    let text = config(&nodes, class).replace("persistence = \"s\"\n", "persistence = \"s\"\nmonitors = [\"m\"]\n")
        + "\n[monitors.m]\ntype = \"tcp\"\ninterval = \"100ms\"\nfailures = 1\n";
    let shoal = Shoal::start(&format!("{text}\n{}", api_section()));
    let pinned = node(&shoal, "s9");
    let idx = names.iter().position(|n| *n == pinned).unwrap();
    let addr = nodes.addr(idx);
    nodes.0[idx].kill();
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("node {addr}: node down")));
    for _ in 0..5 {
        let r = get(&shoal, "s9").expect("a redirect");
        assert_eq!((r.status, r.header("location")), (302, Some("https://sorry.example/")));
    }
    // Each failure mode that answered raises persistence.failed (I4).
    let ev = poll(Duration::from_secs(5), "persistence.failed", || {
        let r = shoal.api("GET", "/api/tm/1.0/events?type=persistence.failed", "");
        r.json()["events"].as_array().and_then(|a| a.first().cloned())
    });
    assert!(ev["text"].as_str().unwrap().contains("the request was redirected to https://sorry.example/"), "{ev}");

    // Draining keeps sessions, takes no new ones; disabled takes nothing.
    let nodes = Nodes::start();
    let shoal = Shoal::start(&config(&nodes, "type = \"universal\"\nsource = \"header:X-Session\""));
    let pinned = node(&shoal, "old");
    let addr = nodes.addr(names.iter().position(|n| *n == pinned).unwrap());
    set_state(&shoal, addr, "active", "draining");
    poll(Duration::from_secs(10), "draining seen by every shard", || {
        (0..10).all(|i| node(&shoal, &format!("probe{i}")) != pinned).then_some(())
    });
    for i in 0..30 {
        assert_eq!(node(&shoal, "old"), pinned, "a draining node keeps its sessions");
        assert_ne!(node(&shoal, &format!("new{i}")), pinned, "a draining node takes no new sessions");
    }
    set_state(&shoal, addr, "draining", "disabled");
    poll(Duration::from_secs(10), "disabled seen by every shard", || {
        (0..10).all(|_| node(&shoal, "old") != pinned).then_some(())
    });
    for i in 0..30 {
        assert_ne!(node(&shoal, "old"), pinned);
        assert_ne!(node(&shoal, &format!("later{i}")), pinned, "a disabled node gets nothing");
    }
}

/// IP-address persistence on a generic protocol: every connection of a
/// client reaches the same node (both shards), where round robin alone
/// would rotate.
#[test]
fn ip_persistence_on_a_generic_protocol() {
    let origin = Origin::start("name-echo", &["a", "b", "c"]);
    let list = ["a", "b", "c"].iter().map(|n| format!("\"{}\"", origin.addr(n))).collect::<Vec<_>>().join(", ");
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"client_first\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [{list}]\npersistence = \"by-ip\"\n\n[persistence.by-ip]\ntype = \"ip\"\n"
    ));
    let mut seen = HashSet::new();
    for i in 0..40 {
        let mut s = connect(shoal.addr("v"));
        std::io::Write::write_all(&mut s, format!("hello {i}\n").as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let got = String::from_utf8(read_all(&mut s)).unwrap();
        seen.insert(got.split('\n').next().unwrap().to_string());
    }
    assert_eq!(seen.len(), 1, "one client address, one node: {seen:?}");
}

/// K5: with `hash = true` a new session's node is decided by its key, so
/// two separate instances (cluster members, or one before and after a
/// restart) that share no table put every session on the same node, even
/// when the sessions arrive in opposite orders; without it each balances
/// its own way. A node that is disabled is skipped the same way by all.
#[test]
fn hashed_persistence_agrees_across_instances_without_a_shared_table() {
    let nodes = Nodes::start();
    let class = "type = \"universal\"\nsource = \"header:X-Session\"";
    let node_of = |shoal: &Shoal, k: &str| -> String {
        let mut s = connect(shoal.addr("web"));
        std::io::Write::write_all(
            &mut s,
            format!("GET /h HTTP/1.1\r\nHost: t\r\nX-Session: {k}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.status, 200);
        r.header("x-node").unwrap().to_string()
    };
    let keys: Vec<String> = (0..24).map(|i| format!("session-{i}")).collect();
    let placements = |extra: &str| -> (Vec<String>, Vec<String>) {
        let a = Shoal::start(&config(&nodes, &format!("{class}\n{extra}")));
        let b = Shoal::start(&config(&nodes, &format!("{class}\n{extra}")));
        let on_a: Vec<String> = keys.iter().map(|k| node_of(&a, k)).collect();
        let mut on_b: Vec<String> = keys.iter().rev().map(|k| node_of(&b, k)).collect();
        on_b.reverse();
        // Each instance keeps its sessions, hashed or not.
        for (k, n) in keys.iter().zip(&on_a) {
            assert_eq!(&node_of(&a, k), n, "{k}");
        }
        (on_a, on_b)
    };
    let (a, b) = placements("hash = true");
    assert_eq!(a, b, "hashed sessions land on the same node on both instances");
    let used: HashSet<&String> = a.iter().collect();
    assert_eq!(used.len(), 3, "the hash spreads sessions over every node: {a:?}");
    let (a, b) = placements("");
    assert_ne!(a, b, "balanced sessions depend on arrival order (so the test above can fail)");
    // `hash` applies to key-based classes only.
    let dir = TempDir::new();
    let e = check_refused(&dir, &config(&nodes, "type = \"node_cookie\"\nhash = true"));
    assert!(e.contains("`hash` applies to the key-based types"), "{e}");
}
