//! The dashboard (I5) in headless Chromium (tests/browser/dashboard.mjs):
//! it refuses without credentials and loads with them; under load its
//! request rate and chart move; draining a node from the page changes the
//! node's state in the API; a page opened later draws the last seconds
//! from shoal's history; one URL, a prefix and the whole cache are purged
//! from it; the configuration view links virtual server → pool → monitor;
//! a killed node's row turns red with the monitor's reason; screenshots
//! for docs/dashboard.md.

use crate::support::*;
use std::process::Command;

/// Run one step of the browser script; `None` when no browser is here
/// (CI sets SHOAL_REQUIRE_DECODERS, which makes that a failure).
fn step(url: &str, args: &[&str]) -> Option<serde_json::Value> {
    let dir = format!("{}/tests/browser", env!("CARGO_MANIFEST_DIR"));
    let have = std::path::Path::new(&format!("{dir}/node_modules/playwright-core")).exists()
        && std::path::Path::new("/usr/bin/chromium").exists();
    if !have {
        assert!(std::env::var_os("SHOAL_REQUIRE_DECODERS").is_none(), "chromium and playwright-core are required");
        eprintln!("no browser here: the dashboard test is skipped");
        return None;
    }
    let out = Command::new("node")
        .current_dir(&dir)
        .arg("dashboard.mjs")
        .args([url, "admin", "secret"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).unwrap())
}

#[test]
fn the_dashboard_in_a_real_browser() {
    let _heavy = heavy();
    bench_bin();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = Origin::start_with("http", &[("a", any)], &[]);
    let mut b = Origin::start_with("http", &[("b", any)], &[]);
    let (na, nb) = (a.addr("a"), b.addr("b"));
    let shoal = Shoal::start(&format!(
        "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\ncache = true\nservice_level = \"web\"\n\n\
         [service_levels.web]\nresponse_time = \"100ms\"\n\n\
         [pools.p]\nnodes = [\"{na}\", \"{nb}\"]\nmonitors = [\"m\"]\npersistence = \"s\"\n\n\
         [pools.q]\nnodes = [\"{na}\"]\n\n\
         [persistence.s]\ntype = \"transparent\"\nsecret = \"do-not-show\"\n\n\
         [monitors.m]\ntype = \"tcp\"\ninterval = \"200ms\"\nfailures = 2\n\n{}",
        api_section()
    ));
    let url = format!("http://{}/", shoal.api_addr());
    // Credentials.
    let Some(v) = step(&url, &["auth"]) else { return };
    assert_eq!(
        (v["without"].as_u64(), v["with"].as_u64(), v["title"].as_str()),
        (Some(401), Some(200), Some("shoal")),
        "{v}"
    );
    assert_eq!(v["loaded_without"], false, "{v}");
    // Under load, the figures and the chart move.
    let target = format!("http://{}/x", shoal.addr("web"));
    let load = std::thread::spawn(move || bench_json(&["-c", "8", "-r", "300", "-t", "20", &target]));
    let v = step(&url, &["live"]).unwrap();
    assert!(v["second"]["rate"].as_f64().unwrap() > 50.0, "{v}");
    assert!(
        v["second"]["points"].as_u64() > v["first"]["points"].as_u64() && v["second"]["line"] != v["first"]["line"],
        "{v}"
    );
    // A page opened now draws the last seconds at once, from shoal's
    // history (it has not polled long enough to have them itself).
    let v = step(&url, &["history"]).unwrap();
    assert!(v["points"].as_u64() >= Some(5) && v["charts"] == 5 && v["ms"].as_u64() < Some(5_000), "{v}");
    // Screenshots under load (docs/dashboard.md shows them).
    let shots = TempDir::new();
    step(&url, &["shots", shots.0.to_str().unwrap()]).unwrap();
    let (report, ok) = load.join().unwrap();
    assert!(ok && report["errors"]["total"] == 0, "{report}");
    // Drain from the page (keyboard, then the confirmation).
    // Drain in one pool (the other pool that has the node keeps it active),
    // then disable in every pool, then enable in every pool again.
    let node_states = || {
        let v = shoal.api("GET", &format!("/api/tm/1.0/nodes/{na}"), "").json();
        let mut s: Vec<(String, String)> = v["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["pool"].as_str().unwrap().to_owned(), p["state"].as_str().unwrap().to_owned()))
            .collect();
        s.sort();
        s
    };
    let pair = |p: &str, s: &str| (p.to_owned(), s.to_owned());
    let v = step(&url, &["drain", &na.to_string(), "p"]).unwrap();
    assert_eq!(v["offered_all"], true, "{v}");
    assert_eq!(node_states(), [pair("p", "draining"), pair("q", "active")]);
    let v = step(&url, &["drain", &na.to_string(), "p", "disabled", "all"]).unwrap();
    assert_eq!(v["rows"], serde_json::json!(["disabled", "disabled"]), "{v}");
    assert_eq!(node_states(), [pair("p", "disabled"), pair("q", "disabled")]);
    step(&url, &["drain", &na.to_string(), "q", "active", "all"]).unwrap();
    assert_eq!(node_states(), [pair("p", "active"), pair("q", "active")]);
    step(&url, &["drain", &na.to_string(), "p"]).unwrap();
    // The cache and the classes are shown; one URL is purged from the
    // form, then a prefix, then the whole cache.
    for path in ["/c?size=10", "/c?size=11", "/d/1?size=12", "/d/2?size=13"] {
        let r = send(
            shoal.addr("web"),
            &format!(
                "GET {path}&hdr={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                enc("Cache-Control: max-age=600")
            ),
        );
        assert_eq!(r.status, 200);
    }
    // (The load's own URL may be cached too.)
    let objects = || shoal.status()["cache"]["memory"]["objects"].as_u64().unwrap();
    let before = objects();
    assert!(before >= 4, "{before}");
    let v = step(&url, &["purge-one", "url", &format!("http://t/c?size=11&hdr={}", enc("Cache-Control: max-age=600"))])
        .unwrap();
    assert_eq!(v["said"], "purged 1 object(s)", "{v}");
    let v = step(&url, &["purge-one", "prefix", "/d/"]).unwrap();
    assert_eq!(v["said"], "purged 2 object(s)", "{v}");
    assert_eq!(objects(), before - 3);
    let v = step(&url, &["purge"]).unwrap();
    assert!(
        v["before"].as_u64() >= Some(1) && v["said"].as_str().unwrap().starts_with("purged") && v["slm_rows"] == 1,
        "{v}"
    );
    assert_eq!(shoal.status()["cache"]["memory"]["objects"], 0);
    // The configuration, read-only: virtual server → pool → monitor, the
    // pool used by the virtual server, the persistence secret hidden.
    let v = step(&url, &["config", "web"]).unwrap();
    assert_eq!(
        (v["pool"].as_str(), v["monitor"].as_str(), v["hash"].as_str()),
        (Some("p"), Some("m"), Some("#cfg-monitors-m")),
        "{v}"
    );
    assert!(v["pool_heading"].as_str().unwrap().contains("used by web"), "{v}");
    assert!(v["monitor_text"].as_str().unwrap().contains("200ms") && v["hidden"] == 1, "{v}");
    // A killed node turns red, with the monitor's reason.
    b.kill();
    let v = step(&url, &["down", &nb.to_string()]).unwrap();
    assert!(v["reason"].as_str().unwrap().contains("node down after 2 failed test(s)"), "{v}");
    assert_eq!(v["color"], "rgb(255, 235, 233)", "{v}");
    for f in ["dashboard-overview.png", "dashboard-pool.png", "dashboard-config.png"] {
        let png = std::fs::read(shots.0.join(f)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{f}");
        if let Some(to) = std::env::var_os("SHOAL_DASHBOARD_SHOTS") {
            std::fs::copy(shots.0.join(f), std::path::Path::new(&to).join(f)).unwrap();
        }
    }
}
