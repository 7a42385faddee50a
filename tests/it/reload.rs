//! Live reconfiguration (A4): changes through SIGHUP and the REST API while
//! shoal-bench keeps 64 keepalive connections busy; nothing fails, nothing
//! is reset, and a broken configuration is refused while traffic goes on.

use crate::support::*;
use std::time::{Duration, Instant};

/// Apply `edit` to the configuration file and SIGHUP; wait for generation
/// `generation` to be reported applied.
fn sighup(shoal: &Shoal, generation: u64, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(&shoal.config).unwrap();
    let new = edit(&text);
    assert_ne!(new, text, "the edit changed nothing");
    write_file(&shoal.config, &new);
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains(&format!("SIGHUP: configuration reloaded (generation {generation})")));
}

fn put(shoal: &Shoal, path: &str, json: &str) -> ApiResp {
    let r = shoal.api("PUT", path, json);
    assert!(matches!(r.status, 200 | 201), "PUT {path}: {} {}", r.status, r.text());
    r
}

#[test]
fn changes_under_load_lose_nothing() {
    let _heavy = heavy();
    // Built (if need be) before the clock starts.
    bench_bin();
    let origin = Origin::start("http", &["a", "b", "c"]);
    let (a, b, c) = (origin.addr("a"), origin.addr("b"), origin.addr("c"));
    let shoal = Shoal::start(&format!(
        "# edge node\n[global]\nshards = 2\n\n{}\n\
         [virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [\"{a}\", \"{b}\"]\n",
        api_section()
    ));
    let url = format!("http://{}/x?size=200", shoal.addr("web"));
    let bench = std::thread::spawn(move || {
        bench_json(&["-c", "64", "-k", "-t", "30", "--threads", "2", "--max-errors", "0", &url])
    });
    let start = Instant::now();
    // Wait for traffic to flow before changing anything.
    poll(STARTUP, "traffic through web", || {
        let s = shoal.status();
        (s["virtual_servers"]["web"]["requests"].as_u64().unwrap_or(0) > 1000).then_some(())
    });

    // 1. SIGHUP: a third node.
    sighup(&shoal, 2, |t| t.replace(&format!("\"{b}\"]"), &format!("\"{b}\", \"{c}\"]")));
    // 2. API: another algorithm.
    put(&shoal, "/api/tm/1.0/config/active/pools/p", r#"{"properties":{"basic":{"algorithm":"least_connections"}}}"#);
    // 3. API: a new virtual server, which serves at once.
    let r = put(
        &shoal,
        "/api/tm/1.0/config/active/virtual_servers/web2",
        r#"{"properties":{"basic":{"listen":"127.0.0.1:0","protocol":"http","pool":"p"}}}"#,
    );
    assert_eq!(r.status, 201);
    let line = shoal.proc.wait_line(STARTUP, |l| l.contains("virtual server web2 listening on "));
    let web2: std::net::SocketAddr =
        line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let mut s = connect(web2);
    std::io::Write::write_all(&mut s, b"GET /y?size=5 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    // 4. API: drain a node in every pool that has it.
    put(&shoal, &format!("/api/tm/1.0/nodes/{a}"), r#"{"state":"draining"}"#);
    // 5. API: remove a node.
    put(
        &shoal,
        "/api/tm/1.0/config/active/pools/p",
        &format!(r#"{{"properties":{{"basic":{{"nodes":[{{"address":"{a}","state":"draining"}},"{c}"]}}}}}}"#),
    );
    // A broken configuration through SIGHUP: refused, traffic goes on.
    let good = std::fs::read_to_string(&shoal.config).unwrap();
    write_file(&shoal.config, &good.replace("protocol = \"http\"", "protocol = \"htp\""));
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(STARTUP, |l| l.contains("reload refused") && l.contains("htp"));
    write_file(&shoal.config, &good);
    // And through the API: refused with the reason, files unchanged.
    let r = shoal.api("PUT", "/api/tm/1.0/config/active/pools/p", r#"{"properties":{"basic":{"nodes":["nowhere"]}}}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("nowhere"), "{}", r.text());
    assert_eq!(std::fs::read_to_string(&shoal.config).unwrap(), good);
    // 6. API: the drained node back in service.
    put(&shoal, &format!("/api/tm/1.0/nodes/{a}"), r#"{"state":"active"}"#);
    // 7. SIGHUP: round robin again.
    sighup(&shoal, 8, |t| t.replace("algorithm = \"least_connections\"", "algorithm = \"round_robin\""));
    // 8. API: the new virtual server goes away.
    let r = shoal.api("DELETE", "/api/tm/1.0/config/active/virtual_servers/web2", "");
    assert_eq!(r.status, 204, "{}", r.text());
    // 9. SIGHUP: the removed node back.
    sighup(&shoal, 10, |t| t.replace(&format!("\"{c}\"]"), &format!("\"{c}\", \"{b}\"]")));
    // 10. API: a persistence class, used by the pool.
    put(&shoal, "/api/tm/1.0/config/active/persistence/by_ip", r#"{"properties":{"basic":{"type":"ip"}}}"#);
    put(&shoal, "/api/tm/1.0/config/active/pools/p", r#"{"properties":{"basic":{"persistence":"by_ip"}}}"#);
    assert!(start.elapsed() < Duration::from_secs(28), "the changes took longer than the load: {:?}", start.elapsed());
    assert_eq!(shoal.status()["generation"], 12);

    let (r, ok) = bench.join().unwrap();
    assert_eq!(r["errors"]["total"], 0, "requests failed or connections were reset: {r}");
    let requests = r["requests"].as_u64().unwrap();
    assert_eq!(r["statuses"]["200"].as_u64(), Some(requests), "{r}");
    assert!(ok, "{r}");
    assert!(requests > 10_000, "{r}");
    // Every request of the run, counted by shoal as by the client.
    let s = shoal.status();
    assert_eq!(s["virtual_servers"]["web"]["requests"].as_u64().unwrap(), requests, "{s}");
    assert!(std::fs::read_to_string(&shoal.config).unwrap().starts_with("# edge node\n"), "comments are kept");
}

/// The node that served a request with session header `key` (keepalive
/// off: each request is a new connection, on whichever shard).
fn node_for(addr: std::net::SocketAddr, key: &str) -> String {
    let mut s = connect(addr);
    std::io::Write::write_all(
        &mut s,
        format!("GET /s HTTP/1.1\r\nHost: t\r\nX-Session: {key}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    r.header("x-node").unwrap().to_string()
}

/// Persisted sessions survive reconfigurations that add nodes, remove
/// others, move the pool and change node states: a session stays on its
/// node while the node stays; sessions of a removed node settle on a new
/// one.
#[test]
fn sessions_survive_node_changes() {
    let origin = Origin::start("http", &["a", "b", "c"]);
    let (a, b, c) = (origin.addr("a"), origin.addr("b"), origin.addr("c"));
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [\"{a}\", \"{b}\"]\npersistence = \"s\"\n\n\
         [persistence.s]\ntype = \"universal\"\nsource = \"header:X-Session\"\n"
    ));
    let web = shoal.addr("web");
    let keys: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    let before: Vec<String> = keys.iter().map(|k| node_for(web, k)).collect();
    assert!(before.iter().any(|n| n == "a") && before.iter().any(|n| n == "b"), "{before:?}");
    // A new node, and a pool defined before this one (positions move).
    sighup(&shoal, 2, |t| {
        format!(
            "[pools.first]\nnodes = [\"{c}\"]\n\n{}",
            t.replace(&format!("\"{b}\"]"), &format!("\"{b}\", \"{c}\"]"))
        )
    });
    let after: Vec<String> = keys.iter().map(|k| node_for(web, k)).collect();
    assert_eq!(after, before, "sessions moved when a node was added");
    // b goes: its sessions settle elsewhere, a's stay.
    sighup(&shoal, 3, |t| t.replace(&format!("\"{b}\", "), ""));
    let moved: Vec<String> = keys.iter().map(|k| node_for(web, k)).collect();
    for (i, (was, now)) in before.iter().zip(&moved).enumerate() {
        if was == "a" {
            assert_eq!(now, "a", "session {i} left a");
        } else {
            assert_ne!(now, "b", "session {i} still on the removed node");
        }
    }
    let again: Vec<String> = keys.iter().map(|k| node_for(web, k)).collect();
    assert_eq!(again, moved, "the moved sessions settled");
}

/// shoal's own persistence cookies (no `secret`: a key random per process)
/// stay valid across reloads: the key is the process's, not the
/// generation's.
#[test]
fn transparent_cookies_survive_reloads() {
    let origin = Origin::start("http", &["a", "b"]);
    let (a, b) = (origin.addr("a"), origin.addr("b"));
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [\"{a}\", \"{b}\"]\npersistence = \"s\"\n\n[persistence.s]\ntype = \"transparent\"\n"
    ));
    let get = |cookie: Option<&str>| {
        let mut s = connect(shoal.addr("web"));
        let c = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
        std::io::Write::write_all(
            &mut s,
            format!("GET / HTTP/1.1\r\nHost: t\r\n{c}Connection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        read_response(&mut s, false)
    };
    let first = get(None);
    let cookie = first.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let node = first.header("x-node").unwrap().to_string();
    sighup(&shoal, 2, |t| t.replace(&format!("\"{b}\"]"), &format!("\"{b}\"]\nmax_idle_per_node = 4")));
    for _ in 0..6 {
        let r = get(Some(&cookie));
        assert_eq!(r.header("x-node").unwrap(), node, "the session moved after a reload");
        assert!(r.header("set-cookie").is_none(), "the cookie was not recognised after a reload");
    }
}
