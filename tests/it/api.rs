//! The REST API (I1), node operations (C1, C8) and statistics (I2), against
//! a running shoal with real nodes.

use crate::support::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;

const BASE: &str = "/api/tm/1.0/config/active";

fn get_node(addr: SocketAddr, path: &str, session: Option<&str>) -> String {
    let mut s = connect(addr);
    let extra = session.map_or(String::new(), |k| format!("X-Session: {k}\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    r.header("x-node").unwrap().to_string()
}

/// Every type: list, create, read, partly update, delete; 401 without or
/// with wrong credentials; 409 naming the referrers when deleting a pool in
/// use; 400 with the reason for an invalid result (files untouched); the
/// file on disk after a PUT keeps the operator's comments.
#[test]
fn objects_crud_auth_and_integrity() {
    let origin = Origin::start("http", &["a", "b"]);
    let (a, b) = (origin.addr("a"), origin.addr("b"));
    let shoal = Shoal::start(&format!(
        "# Edge node eu-1: change with care.\n[global]\nshards = 2\n\n{}\n\
         [virtual_servers.web]\nlisten = \"127.0.0.1:0\" # public\nprotocol = \"http\"\npool = \"p\"\n\n\
         [pools.p]\nnodes = [\"{a}\"]  # the first node\n",
        api_section()
    ));
    // Authentication.
    let r = shoal.api_as(Some(""), "GET", BASE, "", b"");
    assert_eq!(r.status, 401);
    assert!(r.headers.contains("WWW-Authenticate: Basic"), "{}", r.headers);
    assert_eq!(r.json()["error_id"], "auth.required");
    assert_eq!(shoal.api_as(Some("admin:wrong"), "GET", BASE, "", b"").status, 401);
    assert_eq!(shoal.api_as(Some("nobody:secret"), "GET", BASE, "", b"").status, 401);
    let r = shoal.api("GET", BASE, "");
    assert_eq!(r.status, 200);
    let types: Vec<String> =
        r.json()["children"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        types,
        [
            "virtual_servers",
            "pools",
            "persistence",
            "monitors",
            "responders",
            "rules",
            "rate_classes",
            "bandwidth_classes",
            "service_levels",
            "event_handlers",
            "traffic_ip_groups",
            "files"
        ]
    );

    // GET lists and objects.
    let r = shoal.api("GET", &format!("{BASE}/pools"), "");
    assert_eq!(r.json()["children"][0]["name"], "p");
    assert_eq!(r.json()["children"][0]["href"], format!("{BASE}/pools/p"));
    let r = shoal.api("GET", &format!("{BASE}/virtual_servers/web"), "");
    assert_eq!(r.json()["properties"]["basic"]["protocol"], "http");
    assert_eq!(shoal.api("GET", &format!("{BASE}/pools/nope"), "").status, 404);
    for kind in ["persistence", "monitors", "responders", "rules"] {
        let r = shoal.api("GET", &format!("{BASE}/{kind}"), "");
        assert_eq!((r.status, r.json()["children"].as_array().map(Vec::len)), (200, Some(0)), "{kind}");
    }
    assert_eq!(shoal.api("GET", &format!("{BASE}/gadgets"), "").status, 404);

    // Create one object of each type that can change live.
    let created = [
        ("persistence", "by_ip", r#"{"properties":{"basic":{"type":"ip","max_entries":1000}}}"#.to_string()),
        ("monitors", "ping", r#"{"properties":{"basic":{"type":"tcp","interval":"1s"}}}"#.to_string()),
        (
            "pools",
            "q",
            format!(r#"{{"properties":{{"basic":{{"nodes":["{b}"],"monitors":["ping"],"persistence":"by_ip"}}}}}}"#),
        ),
        (
            "virtual_servers",
            "web2",
            r#"{"properties":{"basic":{"listen":"127.0.0.1:0","protocol":"http","pool":"q"},"http":null}}"#.to_string(),
        ),
    ];
    for (kind, name, body) in &created {
        let r = shoal.api("PUT", &format!("{BASE}/{kind}/{name}"), body);
        assert_eq!(r.status, 201, "PUT {kind}/{name}: {}", r.text());
        let r = shoal.api("GET", &format!("{BASE}/{kind}/{name}"), "");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The new virtual server serves through the new pool.
    let line = shoal.proc.wait_line(STARTUP, |l| l.contains("virtual server web2 listening on "));
    let web2: SocketAddr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert_eq!(get_node(web2, "/", None), "b");
    // Responders cannot change live: refused, files untouched.
    let before = std::fs::read_to_string(&shoal.config).unwrap();
    let r = shoal.api(
        "PUT",
        &format!("{BASE}/responders/hello"),
        r#"{"properties":{"basic":{"listen":"127.0.0.1:0","greeting":"hi"}}}"#,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("responders cannot change while running"), "{}", r.text());
    assert_eq!(std::fs::read_to_string(&shoal.config).unwrap(), before);

    // Partial update: one key changes, the others stay.
    let r =
        shoal.api("PUT", &format!("{BASE}/pools/q"), r#"{"properties":{"basic":{"algorithm":"least_connections"}}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let props = &r.json()["properties"]["basic"];
    assert_eq!(props["algorithm"], "least_connections");
    assert_eq!(props["persistence"], "by_ip");
    assert_eq!(props["nodes"][0], b.to_string());

    // Invalid results are refused with their reason; nothing is written.
    let before = std::fs::read_to_string(&shoal.config).unwrap();
    let r = shoal.api("PUT", &format!("{BASE}/pools/q"), r#"{"properties":{"basic":{"algorithm":"coin_toss"}}}"#);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("coin_toss") && r.text().contains("shoal.toml:"), "{}", r.text());
    assert_eq!(shoal.api("PUT", &format!("{BASE}/pools/q"), "{not json").status, 400);
    assert_eq!(shoal.api("PUT", &format!("{BASE}/pools/q"), r#"{"basic":{}}"#).status, 400);
    assert_eq!(std::fs::read_to_string(&shoal.config).unwrap(), before);

    // Integrity: a pool in use cannot go; its referrers are named.
    let r = shoal.api("DELETE", &format!("{BASE}/pools/q"), "");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("virtual_servers/web2"), "{}", r.text());
    let r = shoal.api("DELETE", &format!("{BASE}/monitors/ping"), "");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("pools/q"), "{}", r.text());
    // The shaping classes are objects too, with the same integrity.
    let r = shoal.api("PUT", &format!("{BASE}/rate_classes/api"), r#"{"properties":{"basic":{"max_per_second":50}}}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let r =
        shoal.api("PUT", &format!("{BASE}/virtual_servers/web2"), r#"{"properties":{"basic":{"rate_class":"api"}}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = shoal.api("DELETE", &format!("{BASE}/rate_classes/api"), "");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("virtual_servers/web2"), "{}", r.text());
    let r =
        shoal.api("PUT", &format!("{BASE}/virtual_servers/web2"), r#"{"properties":{"basic":{"rate_class":null}}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(shoal.api("DELETE", &format!("{BASE}/rate_classes/api"), "").status, 204);

    // The file after the PUTs: comments and layout kept, new tables added.
    let text = std::fs::read_to_string(&shoal.config).unwrap();
    assert!(text.starts_with("# Edge node eu-1: change with care.\n[global]\nshards = 2\n"), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:0\" # public\n"), "{text}");
    assert!(text.contains(&format!("nodes = [\"{a}\"]  # the first node\n")), "{text}");
    assert!(text.contains("[pools.q]") && text.contains("algorithm = \"least_connections\""), "{text}");
    // What is on disk is what runs: shoal check agrees.
    let check = Command::new(shoal_bin()).args(["check", "-c"]).arg(&shoal.config).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // Delete in dependency order.
    for (kind, name) in [("virtual_servers", "web2"), ("pools", "q"), ("monitors", "ping"), ("persistence", "by_ip")] {
        let r = shoal.api("DELETE", &format!("{BASE}/{kind}/{name}"), "");
        assert_eq!(r.status, 204, "DELETE {kind}/{name}: {}", r.text());
        assert_eq!(shoal.api("GET", &format!("{BASE}/{kind}/{name}"), "").status, 404);
    }
    poll(STARTUP, "web2 stops listening", || std::net::TcpStream::connect(web2).is_err().then_some(()));
    let text = std::fs::read_to_string(&shoal.config).unwrap();
    assert!(!text.contains("[pools.q]") && text.contains("# the first node"), "{text}");

    // Files: stored, listed, read back byte for byte, deleted.
    let blob: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let r = shoal.api_as(None, "PUT", &format!("{BASE}/files/blob.bin"), "application/octet-stream", &blob);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = shoal.api("GET", &format!("{BASE}/files"), "");
    assert_eq!(r.json()["children"][0]["name"], "blob.bin");
    assert_eq!(shoal.api("GET", &format!("{BASE}/files/blob.bin"), "").body, blob);
    assert_eq!(shoal.api("GET", &format!("{BASE}/files/..%2Fshoal.toml"), "").status, 400);
    assert_eq!(shoal.api("DELETE", &format!("{BASE}/files/blob.bin"), "").status, 204);
    assert_eq!(shoal.api("GET", &format!("{BASE}/files/blob.bin"), "").status, 404);

    // Unknown methods name the allowed ones.
    let r = shoal.api("POST", &format!("{BASE}/pools/p"), "{}");
    assert_eq!(r.status, 405);
    assert!(r.headers.contains("Allow: GET, PUT, DELETE"), "{}", r.headers);
    // The served OpenAPI document is the repository's.
    let r = shoal.api("GET", "/api/tm/1.0/openapi.json", "");
    assert_eq!(r.text(), std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).unwrap());
}

/// C8 across pools, with one call of the `shoal node` wrapper: a drained
/// node gets no new sessions or connections in any pool, keeps its
/// persisted sessions, loses its idle keepalive connections, and its "last
/// used" stops moving; disabled, it loses its sessions too.
#[test]
fn drain_a_node_across_all_its_pools() {
    let origin = Origin::start("http", &["a", "b"]);
    let (a, b) = (origin.addr("a"), origin.addr("b"));
    let shoal = Shoal::start(&format!(
        "[global]\nshards = 2\n\n{}\n\
         [virtual_servers.plain]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p1\"\n\n\
         [virtual_servers.sticky]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p2\"\n\n\
         [pools.p1]\nnodes = [\"{a}\", \"{b}\"]\n\n\
         [pools.p2]\nnodes = [\"{a}\", \"{b}\"]\npersistence = \"s\"\n\n\
         [persistence.s]\ntype = \"universal\"\nsource = \"header:X-Session\"\n",
        api_section()
    ));
    let (plain, sticky) = (shoal.addr("plain"), shoal.addr("sticky"));
    // Keepalive connections to both nodes, and a session on a.
    let mut on_a = None;
    for i in 0..20 {
        let key = format!("k{i}");
        if get_node(sticky, "/s", Some(&key)) == "a" && on_a.is_none() {
            on_a = Some(key);
        }
        get_node(plain, "/p", None);
    }
    let on_a = on_a.expect("round robin put some session on a");
    let node_in = |pool: &str| {
        let r = shoal.api("GET", &format!("/api/tm/1.0/nodes/{a}"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["pools"].as_array().unwrap().iter().find(|p| p["pool"] == pool).unwrap().clone()
    };
    assert!(node_in("p1")["idle_connections"].as_u64().unwrap() > 0, "{}", node_in("p1"));
    assert_eq!(node_in("p1")["state"], "active");

    let run = |action: &str| {
        let out = Command::new(shoal_bin())
            .args(["node", action, &a.to_string(), "--api", &format!("http://{}", shoal.api_addr())])
            .args(["--user", "admin:secret"])
            .output()
            .unwrap();
        assert!(out.status.success(), "shoal node {action}: {}", String::from_utf8_lossy(&out.stdout));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["pools"].as_array().unwrap().len(), 2, "{v}");
        v
    };
    let v = run("drain");
    for p in v["pools"].as_array().unwrap() {
        assert_eq!(p["state"], "draining", "{v}");
        assert_eq!(p["idle_connections"], 0, "draining closes idle keepalives: {v}");
    }
    let last_used = node_in("p1")["last_used"].as_f64().unwrap();
    for i in 0..20 {
        assert_eq!(get_node(plain, "/p", None), "b", "a new connection went to the draining node");
        assert_eq!(get_node(sticky, "/s", Some(&format!("new{i}"))), "b", "a new session went to the draining node");
        assert_eq!(get_node(sticky, "/s", Some(&on_a)), "a", "the draining node's session moved");
    }
    assert_eq!(node_in("p1")["last_used"].as_f64().unwrap(), last_used, "a drained node was used in p1");
    assert!(node_in("p2")["last_used"].as_f64().unwrap() >= last_used);
    let text = std::fs::read_to_string(&shoal.config).unwrap();
    assert_eq!(text.matches(&format!("{{ address = \"{a}\", state = \"draining\" }}")).count(), 2, "{text}");

    // Disabled: the session goes too.
    run("disable");
    assert_eq!(get_node(sticky, "/s", Some(&on_a)), "b");
    // Back in service everywhere.
    run("enable");
    let seen: std::collections::HashSet<String> = (0..10).map(|_| get_node(plain, "/p", None)).collect();
    assert_eq!(seen.len(), 2, "a is back in p1");
    let r = shoal.api("PUT", "/api/tm/1.0/nodes/127.0.0.1:1", r#"{"state":"draining"}"#);
    assert_eq!(r.status, 404, "{}", r.text());
    let r = shoal.api("PUT", &format!("/api/tm/1.0/nodes/{a}"), r#"{"state":"sleeping"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
}

/// A reader that counts the bytes read through it.
struct Counting<'a>(&'a mut std::net::TcpStream, u64);

impl std::io::Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// Statistics after a known load equal it exactly, summed over both
/// shards; Prometheus' own checker accepts /metrics.
#[test]
fn statistics_equal_the_load() {
    let origin = Origin::start("http", &["a", "b"]);
    let shoal = Shoal::start(&format!(
        "{}\n{}",
        api_section(),
        crate::http::http_config(&[origin.addr("a"), origin.addr("b")], "", "")
    ));
    let addr = shoal.addr("web");
    // 8 connections (spread over both shards by the kernel), 25 keepalive
    // requests each with a 100-byte body, responses of 1000 bytes.
    let (mut sent, mut received) = (0u64, 0u64);
    for c in 0..8 {
        let mut s = connect(addr);
        for i in 0..25 {
            let req = format!(
                "POST /r{c}-{i}?size=1000 HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n{}\r\n{}",
                if i == 24 { "Connection: close\r\n" } else { "" },
                "x".repeat(100)
            );
            s.write_all(req.as_bytes()).unwrap();
            sent += req.len() as u64;
            let mut counted = Counting(&mut s, 0);
            let r = read_response(&mut counted, false);
            assert_eq!((r.status, r.body.len()), (200, 1000));
            received += counted.1;
        }
    }
    let v = poll(STARTUP, "all 200 requests counted", || {
        let s = shoal.status();
        (s["virtual_servers"]["web"]["current_connections"] == 0).then_some(s)
    });
    let web = &v["virtual_servers"]["web"];
    assert_eq!(web["requests"], 200, "{v}");
    assert_eq!(web["total_connections"], 8, "{v}");
    assert_eq!(web["responses"]["2xx"], 200, "{v}");
    assert_eq!(web["bytes_in"].as_u64(), Some(sent), "{v}");
    assert_eq!(web["bytes_out"].as_u64(), Some(received), "{v}");
    assert_eq!(v["shards"], 2);
    let nodes = v["pools"]["p"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.iter().map(|n| n["requests"].as_u64().unwrap()).sum::<u64>(), 200, "{v}");
    assert_eq!(v["pools"]["p"]["requests"], 200);

    let metrics = shoal.api("GET", "/metrics", "");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(text.contains("shoal_virtual_server_requests_total{virtual_server=\"web\"} 200\n"), "{text}");
    assert!(
        text.contains(&format!("shoal_virtual_server_received_bytes_total{{virtual_server=\"web\"}} {sent}\n")),
        "{text}"
    );
    if have_tool("promtool", "SHOAL_REQUIRE_PROMTOOL", "Debian package prometheus") {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
    }
}

/// Schemathesis (PyPI) generates requests from the served OpenAPI document
/// and checks every answer against it: every check but
/// `positive_data_acceptance`, because whether a configuration object is
/// valid (keys each type requires, references between objects, addresses
/// that resolve, ports that are free) is decided by shoal's loader and
/// cannot be written as a JSON schema; such a body gets a 400 naming the
/// problem, which that check counts as a schema-valid request rejected.
/// The stateful phase runs apart without `negative_data_rejection` as well:
/// there schemathesis marks a case negative for a mutated Authorization
/// header that `--auth` then puts back, or a body that a link then fills
/// with valid data, and reports the valid request that was sent as
/// "schema-violating request accepted" (schemathesis issues 2983 and 3367);
/// the other phases keep that check.
#[test]
fn schemathesis_finds_no_failures() {
    if !have_tool("schemathesis", "SHOAL_REQUIRE_SCHEMATHESIS", "pip install schemathesis") {
        return;
    }
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!("{}\n{}", api_section(), crate::http::http_config(&[origin.addr("a")], "", "")));
    let base = format!("http://{}", shoal.api_addr());
    let runs = [
        ("examples,coverage,fuzzing", "positive_data_acceptance"),
        ("stateful", "positive_data_acceptance,negative_data_rejection"),
    ];
    for (phases, excluded) in runs {
        let out = Command::new("schemathesis")
            .args(["run", &format!("{base}/api/tm/1.0/openapi.json"), "--url", &base, "--auth", "admin:secret"])
            .args(["--phases", phases, "--checks", "all", "--exclude-checks", excluded])
            .args(["--max-examples", "25", "--request-timeout", "10"])
            .env("NO_COLOR", "1")
            // Its cache directory goes with the test's, not into the checkout.
            .current_dir(&shoal.dir.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "schemathesis ({phases}) found failures:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The API over TLS (required off loopback): curl verifies the listener's
/// certificate and gets the status with Basic credentials; plain HTTP on
/// the TLS port gets nothing.
#[test]
fn api_over_tls() {
    let certs = TempDir::new();
    let pki = crate::pki::Pki::new(&certs.0, "shoal");
    let leaf = pki.server("api", &["localhost", "127.0.0.1"]);
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!(
        "{}tls = {{ cert = \"{}\", key = \"{}\" }}\n\n{}",
        api_section(),
        leaf.cert.display(),
        leaf.key.display(),
        crate::http::http_config(&[origin.addr("a")], "", "")
    ));
    let api = shoal.api_addr();
    let url = format!("https://127.0.0.1:{}/api/tm/1.0/status", api.port());
    let ca = pki.ca.to_str().unwrap().to_string();
    let (ok, out, err) = curl(&["--cacert", &ca, "-u", "admin:secret", &url]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["shards"], 2, "{v}");
    let (ok, out, _) = curl(&["--cacert", &ca, "-o", "/dev/null", "-w", "%{http_code}", &url]);
    assert!(ok);
    assert_eq!(out, b"401");
    let (ok, _, _) = curl(&[&format!("http://127.0.0.1:{}/api/tm/1.0/status", api.port()), "-u", "admin:secret"]);
    assert!(!ok, "plain HTTP answered on the TLS port");
}

/// `status/history` (the dashboard's charts): a sample a second whose
/// rates times their measured seconds add up to the requests, bytes and
/// errors that happened; `since` returns only newer samples; a bad
/// parameter is a 400.
#[test]
fn history_samples_every_second() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!("{}\n{}", api_section(), crate::http::http_config(&[origin.addr("a")], "", "")));
    let history = |q: &str| {
        let r = shoal.api("GET", &format!("/api/tm/1.0/status/history{q}"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let first = history("");
    assert_eq!((first["interval_seconds"].as_u64(), first["capacity"].as_u64()), (Some(1), Some(600)), "{first}");
    let start_ms = first["samples"].as_array().unwrap().last().map_or(0, |s| s["time_ms"].as_u64().unwrap());
    // 100 requests with 1000-byte answers, and 3 bad ones.
    let mut s = connect(shoal.addr("web"));
    for i in 0..100 {
        s.write_all(format!("GET /h{i}?size=1000 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
        let r = read_response(&mut s, false);
        assert_eq!((r.status, r.body.len()), (200, 1000));
    }
    for _ in 0..3 {
        let r = send(shoal.addr("web"), "GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n");
        assert_eq!(r.status, 400);
    }
    drop(s);
    // Every sample taken since: they add up once the last request is in one.
    let sum = |samples: &[serde_json::Value], key: &str| -> f64 {
        samples.iter().map(|s| s[key].as_f64().unwrap() * s["seconds"].as_f64().unwrap()).sum()
    };
    // (A request refused as malformed is an error, not a request.)
    let samples = poll(STARTUP, "the 100 requests and 3 errors in the history", || {
        let v = history(&format!("?since={start_ms}"));
        let samples = v["samples"].as_array().unwrap().clone();
        (sum(&samples, "requests_per_second").round() >= 100.0
            && sum(&samples, "errors_per_second").round() >= 3.0
            && samples.last()?["connections"] == 0)
            .then_some(samples)
    });
    assert_eq!(sum(&samples, "requests_per_second").round(), 100.0, "{samples:?}");
    assert_eq!(sum(&samples, "errors_per_second").round(), 3.0, "{samples:?}");
    assert!(sum(&samples, "bytes_out_per_second") > 100_000.0, "{samples:?}");
    assert!(samples.iter().any(|s| s["response_time_avg_ms"].as_f64().unwrap() > 0.0), "{samples:?}");
    for w in samples.windows(2) {
        let (a, b) = (w[0]["time_ms"].as_u64().unwrap(), w[1]["time_ms"].as_u64().unwrap());
        assert!(b > a && w[1]["seconds"].as_f64().unwrap() > 0.5, "{samples:?}");
    }
    // `since` the newest: nothing, until the next second's sample.
    let newest = samples.last().unwrap()["time_ms"].as_u64().unwrap();
    let next = poll(STARTUP, "the next sample", || {
        let v = history(&format!("?since={newest}"));
        v["samples"].as_array().unwrap().first().cloned()
    });
    assert!(next["time_ms"].as_u64().unwrap() > newest, "{next}");
    assert_eq!(history("?since=99999999999999999999999")["samples"].as_array().unwrap().len(), 0);
    for bad in ["?since=-1", "?since=x", "?limit=3"] {
        let r = shoal.api("GET", &format!("/api/tm/1.0/status/history{bad}"), "");
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

/// `shoal passwd` on a terminal prompts and does not echo the password
/// (a pseudo-terminal from Python's pty module); the hash it prints
/// verifies against the password.
#[test]
fn passwd_on_a_terminal_does_not_echo() {
    const PTY: &str = r#"
import os, pty, select, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "passwd"])
out, sent, end = b"", False, time.time() + 30
while time.time() < end:
    # Type only once the prompt is out and the terminal's echo is off, as
    # a person would: typed before that, the terminal itself echoes.
    if not sent and b"Password:" in out and not termios.tcgetattr(fd)[3] & termios.ECHO:
        os.write(fd, b"s3cret-pw\n")
        sent = True
    r, _, _ = select.select([fd], [], [], 0.5 if sent or b"Password:" not in out else 0.01)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
os.waitpid(pid, 0)
sys.stdout.write(out.decode("latin-1"))
"#;
    let out = Command::new("python3").args(["-c", PTY]).arg(shoal_bin()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("Password:"), "no prompt: {text:?}");
    assert!(!text.contains("s3cret-pw"), "the password was echoed: {text:?}");
    let hash = text.split_whitespace().find(|w| w.contains('$')).unwrap_or_else(|| panic!("no hash: {text:?}"));
    assert!(shoal::api::auth::verify_password(hash, "s3cret-pw"), "{hash}");
}
