//! Autoscaling (J1) end to end with the example driver
//! (tools/autoscale/origin-driver), which runs shoal-origin nodes on
//! loopback addresses: a slow pool grows to its maximum under load and
//! shrinks back when the load stops, with no request failing; a driver
//! that fails pauses autoscaling, with an event, until it answers again.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

/// The example driver's state directory; its nodes are killed at the end.
struct Driver {
    dir: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.dir.0.join("state.json")) else { return };
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        for n in state["nodes"].as_array().into_iter().flatten() {
            if let Some(pid) = n["pid"].as_u64() {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

/// shoal with pool p (one static node, `node`) autoscaled by the example
/// driver with `autoscale` keys; the driver's nodes run shoal-origin with
/// `origin_args`.
fn start(node: std::net::SocketAddr, autoscale: &str, origin_args: &str, driver: &Driver) -> Shoal {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = TempDir::new();
    let config = dir.write(
        "shoal.toml",
        &format!(
            "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n\
             [pools.p]\nnodes = [\"{node}\"]\n\n\
             [pools.p.autoscale]\ndriver = \"{}/tools/autoscale/origin-driver\"\ncredentials = \"local\"\n\
             imageid = \"shoal-origin\"\nname_prefix = \"web\"\nport = {port}\n{autoscale}\n\n{}",
            env!("CARGO_MANIFEST_DIR"),
            api_section()
        ),
    );
    let origin_bin = origin_bin();
    let mut cmd = Command::new(shoal_bin());
    cmd.arg("run").arg("-c").arg(&config);
    cmd.env("SHOAL_ORIGIN_DRIVER_DIR", &driver.dir.0)
        .env("SHOAL_ORIGIN_BIN", origin_bin)
        .env("SHOAL_ORIGIN_PORT", port.to_string())
        .env("SHOAL_ORIGIN_ARGS", origin_args);
    Shoal::from_command(cmd, dir, config)
}

fn pool_nodes(shoal: &Shoal) -> usize {
    shoal.status()["pools"]["p"]["nodes"].as_array().map_or(0, Vec::len)
}

fn events(shoal: &Shoal, kind: &str) -> Vec<serde_json::Value> {
    let r = shoal.api("GET", &format!("/api/tm/1.0/events?type={kind}"), "");
    r.json()["events"].as_array().cloned().unwrap_or_default()
}

/// Proof 3: one slow node (150 ms a response, 100 ms wanted) under load:
/// the pool grows to its maximum of 3, one node at a time, with the
/// configured waits; when the load stops it shrinks back to 1, the
/// oldest added node first; shoal-bench sees no error.
#[test]
fn a_slow_pool_scales_up_under_load_and_back_down() {
    let _heavy = heavy();
    bench_bin();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let origin = Origin::start_with("http", &[("a", any)], &["--delay", "150"]);
    let driver = Driver { dir: TempDir::new() };
    let shoal = start(
        origin.addr("a"),
        "response_time = \"100ms\"\nscale_up_below = 50\nscale_down_above = 90\nhysteresis = \"1s\"\n\
         refractory = \"2s\"\nmin_nodes = 1\nmax_nodes = 3\ndrain_time = \"5s\"",
        "--delay 150",
        &driver,
    );
    let url = format!("http://{}/x", shoal.addr("web"));
    let load = std::thread::spawn(move || bench_json(&["-c", "16", "-r", "40", "-t", "20", "--timeout", "10", &url]));
    poll(Duration::from_secs(20), "the pool to grow to 3 nodes", || (pool_nodes(&shoal) == 3).then_some(()));
    let added = events(&shoal, "autoscale.action");
    assert_eq!(
        added.iter().filter(|e| e["text"].as_str().unwrap().starts_with("added node web")).count(),
        2,
        "{added:?}"
    );
    let (report, ok) = load.join().unwrap();
    assert!(ok && report["errors"]["total"] == 0 && report["requests"].as_u64().unwrap() > 500, "{report}");
    // No load: every (no) response conforms, and the added nodes go, the
    // oldest first.
    poll(Duration::from_secs(30), "the pool to shrink to 1 node", || (pool_nodes(&shoal) == 1).then_some(()));
    let removed: Vec<String> = events(&shoal, "autoscale.action")
        .iter()
        .filter_map(|e| e["text"].as_str().filter(|t| t.starts_with("removed node")).map(str::to_owned))
        .collect();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(
        removed[0].starts_with("removed node web1 ") && removed[1].starts_with("removed node web2 "),
        "{removed:?}"
    );
    let status = std::fs::read_to_string(driver.dir.0.join("state.json")).unwrap();
    assert!(status.contains("\"nodes\": []"), "the driver still runs nodes: {status}");
}

/// Proof 4: a driver that answers code 500 (and says why on standard
/// error) pauses autoscaling for its credentials and raises an event;
/// when it answers again, autoscaling resumes (here: up to min_nodes).
#[test]
fn a_failing_driver_pauses_autoscaling_until_it_answers() {
    let origin = Origin::start("http", &["a"]);
    let driver = Driver { dir: TempDir::new() };
    std::fs::write(driver.dir.0.join("fail"), "").unwrap();
    let shoal = start(origin.addr("a"), "min_nodes = 2\nmax_nodes = 2", "", &driver);
    let err = poll(Duration::from_secs(10), "autoscale.error", || events(&shoal, "autoscale.error").into_iter().next());
    let text = err["text"].as_str().unwrap();
    assert!(text.contains("the fail switch is on") && text.contains("paused for credentials local"), "{err}");
    assert_eq!(err["level"], "SERIOUS");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pool_nodes(&shoal), 1, "paused: no node added");
    std::fs::remove_file(driver.dir.0.join("fail")).unwrap();
    poll(Duration::from_secs(15), "the pool to reach min_nodes", || (pool_nodes(&shoal) == 2).then_some(()));
    let actions: Vec<String> =
        events(&shoal, "autoscale.action").iter().map(|e| e["text"].as_str().unwrap().to_owned()).collect();
    assert!(actions[0].contains("autoscaling resumes") && actions[1].starts_with("added node web1 "), "{actions:?}");
    // The new node serves.
    let added = poll(Duration::from_secs(5), "a request answered by web1", || {
        let r = send(shoal.addr("web"), "GET /q HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        (r.header("x-node") == Some("web1")).then_some(r)
    });
    assert_eq!(added.status, 200);
}

/// Configuration errors name the file, line and key.
#[test]
fn autoscale_configuration_errors() {
    let base = "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n[pools.p]\nnodes = [\"127.0.0.1:9\"]\n\n\
                [pools.p.autoscale]\ndriver = \"d\"\ncredentials = \"c\"\nimageid = \"i\"\nname_prefix = \"web\"\nport = 80\n";
    for (extra, want) in [
        ("scale_up_below = 90\nscale_down_above = 80\n", "must be above scale_up_below (90%)"),
        ("min_nodes = 5\nmax_nodes = 2\n", "pools.p.autoscale.max_nodes"),
        ("scale_up_below = 101\n", "a percentage, 0 to 100"),
        ("response_time = \"0ms\"\n", "pools.p.autoscale.response_time"),
        ("cooldown = \"1s\"\n", "unknown field `cooldown`"),
    ] {
        let dir = TempDir::new();
        let path = dir.write("c.toml", &format!("{base}{extra}"));
        let out = Command::new(shoal_bin()).args(["check", "-c"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want) && err.contains("c.toml:"), "{want}: {err}");
    }
    let dir = TempDir::new();
    let path = dir.write("c.toml", &base.replace("name_prefix = \"web\"", "name_prefix = \"web node\""));
    let out = Command::new(shoal_bin()).args(["check", "-c"]).arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("letters, digits, - and _ only"));
}
