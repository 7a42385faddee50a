//! The dashboard (I5) in headless Chromium (tests/browser/dashboard.mjs):
//! it refuses without credentials and loads with them; under load its
//! request rate and chart move; draining a node from the page changes the
//! node's state in the API; the cache is purged from it; a killed node's
//! row turns red with the monitor's reason; screenshots for
//! docs/dashboard.md.

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
         [pools.p]\nnodes = [\"{na}\", \"{nb}\"]\nmonitors = [\"m\"]\n\n\
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
    // Screenshots under load (docs/dashboard.md shows them).
    let shots = TempDir::new();
    step(&url, &["shots", shots.0.to_str().unwrap()]).unwrap();
    let (report, ok) = load.join().unwrap();
    assert!(ok && report["errors"]["total"] == 0, "{report}");
    // Drain from the page (keyboard, then the confirmation).
    step(&url, &["drain", &na.to_string(), "p"]).unwrap();
    let node = shoal.api("GET", &format!("/api/tm/1.0/nodes/{na}"), "").json();
    assert!(node.to_string().contains("\"state\":\"draining\""), "{node}");
    // The cache and the classes are shown; the cache is purged from the page.
    let r = send(
        shoal.addr("web"),
        &format!(
            "GET /c?size=10&hdr={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            enc("Cache-Control: max-age=600")
        ),
    );
    assert_eq!(r.status, 200);
    let v = step(&url, &["purge"]).unwrap();
    assert!(
        v["before"].as_u64() >= Some(1) && v["said"].as_str().unwrap().starts_with("purged") && v["slm_rows"] == 1,
        "{v}"
    );
    assert_eq!(shoal.status()["cache"]["memory"]["objects"], 0);
    // A killed node turns red, with the monitor's reason.
    b.kill();
    let v = step(&url, &["down", &nb.to_string()]).unwrap();
    assert!(v["reason"].as_str().unwrap().contains("node down after 2 failed test(s)"), "{v}");
    assert_eq!(v["color"], "rgb(255, 235, 233)", "{v}");
    for f in ["dashboard-overview.png", "dashboard-pool.png"] {
        let png = std::fs::read(shots.0.join(f)).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{f}");
        if let Some(to) = std::env::var_os("SHOAL_DASHBOARD_SHOTS") {
            std::fs::copy(shots.0.join(f), std::path::Path::new(&to).join(f)).unwrap();
        }
    }
}
