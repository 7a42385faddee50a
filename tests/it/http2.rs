//! HTTP/2 to clients (B14) with real clients: curl over TLS (ALPN) and
//! cleartext with prior knowledge, byte-exact bodies both ways; h2load
//! with 100 streams on one connection; each defence driven by a raw frame
//! writer (tests/h2/h2probe.py, Python's hyperframe and hpack), with the
//! GOAWAY or reset it must cause and a neighbour left unaffected; the
//! graceful GOAWAY of an idle connection and of a stop.

use crate::pki::Pki;
use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Whether Python's h2 stack is here (CI sets SHOAL_REQUIRE_H2).
fn have_python_h2() -> bool {
    let ok = Command::new("python3").args(["-c", "import h2, hyperframe, hpack"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var_os("SHOAL_REQUIRE_H2").is_none(), "Python's h2 is required (pip install h2)");
        eprintln!("Python h2 missing: the frame-level checks are skipped");
    }
    ok
}

/// Run an attack of tests/h2/h2probe.py against `addr`; its JSON report.
fn probe(attack: &str, addr: SocketAddr, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h2/h2probe.py");
    let out = Command::new("python3")
        .arg(script)
        .args([attack, &addr.ip().to_string(), &addr.port().to_string()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("h2probe {attack}: bad report ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

/// HTTP/2 error codes (RFC 9113 §7).
const NO_ERROR: u64 = 0x0;
const FLOW_CONTROL_ERROR: u64 = 0x3;
const CANCEL: u64 = 0x8;
const REFUSED_STREAM: u64 = 0x7;
const ENHANCE_YOUR_CALM: u64 = 0xb;

/// curl's `%{http_version}`, status and body for `url` with `args`.
fn curl_h2(args: &[&str], url: &str) -> (String, u16, Vec<u8>) {
    let mut all = vec!["-w", "\n%{http_version} %{http_code}"];
    all.extend_from_slice(args);
    all.push(url);
    let (ok, out, err) = curl(&all);
    assert!(ok, "curl {all:?}: {err}");
    let cut = out.iter().rposition(|&b| b == b'\n').unwrap();
    let tail = String::from_utf8_lossy(&out[cut + 1..]).into_owned();
    let (version, code) = tail.split_once(' ').unwrap();
    (version.to_string(), code.parse().unwrap(), out[..cut].to_vec())
}

fn config(origin: &Origin, pki_leaf: Option<&crate::pki::Leaf>, http2: &str, vs_keys: &str) -> String {
    let mut t = format!(
        "[virtual_servers.clear]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n{vs_keys}\n\
         [virtual_servers.clear.http2]\nh2c = true\n{http2}\n\n"
    );
    if let Some(leaf) = pki_leaf {
        t += &format!(
            "[virtual_servers.secure]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n{vs_keys}\n\
             [virtual_servers.secure.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n\n\
             [virtual_servers.secure.http2]\n{http2}\n\n",
            leaf.cert.display(),
            leaf.key.display()
        );
    }
    t + &format!("[pools.p]\nnodes = [\"{}\"]\n\n{}", origin.addr("a"), api_section())
}

#[test]
fn curl_over_tls_and_prior_knowledge_byte_exact_both_ways() {
    let certs = TempDir::new();
    let pki = Pki::new(&certs.0, "shoal");
    let leaf = pki.server("a", &["a.test"]);
    let origin = Origin::start("http", &["a"]);
    let log = certs.0.join("access.log");
    let keys = format!("access_log = \"{}\"\naccess_log_format = \"%r %H %s\"", log.display());
    let shoal = Shoal::start(&config(&origin, Some(&leaf), "", &keys));
    let clear = shoal.addr("clear");
    let secure = shoal.addr("secure");
    let ca = pki.ca.to_string_lossy().into_owned();
    let resolve = format!("a.test:{}:127.0.0.1", secure.port());
    let upload = certs.write("upload.bin", "");
    let body = pattern(300_000, 7);
    std::fs::write(&upload, &body).unwrap();
    let upload_arg = format!("@{}", upload.display());
    let clients: [(Vec<&str>, String); 2] = [
        (vec!["--http2-prior-knowledge"], format!("http://{clear}")),
        (vec!["--http2", "--cacert", &ca, "--resolve", &resolve], format!("https://a.test:{}", secure.port())),
    ];
    for (args, base) in &clients {
        // Bodies from the node, length-framed and chunked, byte-exact.
        for target in ["/l?size=1000000&pattern=mix", "/c?size=700000&chunked=1&pattern=mix", "/s?size=5"] {
            let (version, code, got) = curl_h2(args, &format!("{base}{target}"));
            assert_eq!((version.as_str(), code), ("2", 200), "{base}{target}");
            let (_, _, want) = curl_h2(&[], &format!("http://{}{target}", origin.addr("a")));
            assert_eq!(sha256(&got), sha256(&want), "{base}{target}: {} bytes, want {}", got.len(), want.len());
        }
        // Request bodies to the node: with a content-length, and without
        // one (chunked towards the node).
        let mut with_len = args.clone();
        with_len.extend(["-i", "--data-binary", &upload_arg]);
        let (_, code, head) = curl_h2(&with_len, &format!("{base}/up"));
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert_eq!(code, 200);
        assert!(head.contains("x-body-len: 300000"), "{head}");
        assert!(head.contains(&format!("x-body-sha256: {}", sha256(&body))), "{head}");
        let mut streamed = args.clone();
        streamed.extend(["-i", "-T", upload.to_str().unwrap(), "-H", "content-length:"]);
        let (_, code, head) = curl_h2(&streamed, &format!("{base}/up2"));
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert_eq!(code, 200);
        assert!(head.contains(&format!("x-body-sha256: {}", sha256(&body))), "{head}");
        // HEAD, 204, 304: heads only.
        let mut h = args.clone();
        h.extend(["-I"]);
        let (_, code, head) = curl_h2(&h, &format!("{base}/h?size=1234"));
        assert_eq!(code, 200);
        assert!(String::from_utf8_lossy(&head).to_lowercase().contains("content-length: 1234"));
        let (_, code, got) = curl_h2(args, &format!("{base}/n?status=204"));
        assert_eq!((code, got.len()), (204, 0));
        let mut inm = args.clone();
        inm.extend(["-H", "if-none-match: \"v1\""]);
        let (_, code, got) = curl_h2(&inm, &format!("{base}/e?etag=v1&size=10"));
        assert_eq!((code, got.len()), (304, 0));
        // Crumbled cookies reach the node as one field.
        let mut ck = args.clone();
        ck.extend(["-H", "cookie: a=1", "-H", "cookie: b=2"]);
        let (_, _, got) = curl_h2(&ck, &format!("{base}/k?head=1"));
        assert!(String::from_utf8_lossy(&got).to_lowercase().contains("cookie: a=1; b=2"));
        // HTTP/1.1 still works beside it.
        let mut h1 = args.iter().map(|a| if a.starts_with("--http2") { "--http1.1" } else { a }).collect::<Vec<_>>();
        h1.retain(|a| !a.is_empty());
        let (version, code, got) = curl_h2(&h1, &format!("{base}/one?size=3"));
        assert_eq!((version.as_str(), code, got.as_slice()), ("1.1", 200, &b"abc"[..]));
    }
    // The access log names the protocol each request came in.
    poll(Duration::from_secs(10), "access log lines", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.lines().filter(|l| l.starts_with("GET /l?size=1000000&pattern=mix HTTP/2.0 HTTP/2.0 200")).count() == 2
            && text.lines().filter(|l| *l == "GET /one?size=3 HTTP/1.1 HTTP/1.1 200").count() == 2)
            .then_some(())
    });
    let st = shoal.status();
    for vs in ["clear", "secure"] {
        let v = &st["virtual_servers"][vs];
        assert_eq!(v["requests_by_version"]["h2"], 9, "{v}");
        assert_eq!(v["requests_by_version"]["http/1.1"].as_u64().unwrap(), 1, "{v}");
        assert_eq!(v["http2"]["connections"], 9, "{v}");
        assert_eq!(v["http2"]["protocol_errors"], 0, "{v}");
    }
}

#[test]
fn h2load_runs_100_streams_on_one_connection() {
    // A load of its own (a browser, floods, Python servers): not beside
    // the tests that time latencies.
    let _heavy = heavy();
    if !have_tool("h2load", "SHOAL_REQUIRE_H2", "nghttp2-client") {
        return;
    }
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&config(&origin, None, "max_concurrent_streams = 100", ""));
    let url = format!("http://{}/x?size=100", shoal.addr("clear"));
    let out = Command::new("h2load").args(["-n", "2000", "-c", "1", "-m", "100", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2000 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
    let st = shoal.status();
    let v = &st["virtual_servers"]["clear"];
    assert_eq!(v["http2"]["connections"], 1, "{v}");
    assert_eq!(v["requests_by_version"]["h2"], 2000, "{v}");
}

#[test]
fn each_defence_ends_the_abuser_and_spares_the_neighbour() {
    // A load of its own (a browser, floods, Python servers): not beside
    // the tests that time latencies.
    let _heavy = heavy();
    if !have_python_h2() {
        return;
    }
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&config(
        &origin,
        None,
        "max_concurrent_streams = 20\ncontrol_frames_per_second = 50\ncontrol_frames_burst = 200\nsend_timeout = \"1s\"",
        "max_header_size = 8192",
    ));
    let addr = shoal.addr("clear");
    let neighbour = || {
        let r = probe("get", addr, &["0", "/n?size=5"]);
        assert_eq!(r["status"]["1"], 200, "the neighbour's request failed: {r}");
        assert_eq!(r["data"]["1"], 5, "{r}");
    };
    neighbour();
    let goaway = |attack: &str, n: &str, code: u64| {
        let r = probe(attack, addr, &[n]);
        assert_eq!(r["goaway"].as_u64(), Some(code), "{attack}: {r}");
        assert!(r["seconds"].as_f64().unwrap() < 5.0, "{attack}: {r}");
        neighbour();
        r
    };
    // Floods of frames that make no progress: ENHANCE_YOUR_CALM after
    // the burst, long before the flood ends.
    for attack in ["ping", "settings", "empty-data", "window-tiny", "empty-continuation"] {
        goaway(attack, "20000", ENHANCE_YOUR_CALM);
    }
    // Rapid reset (CVE-2023-44487): streams opened and cancelled at once.
    let r = goaway("rapid-reset", "20000", ENHANCE_YOUR_CALM);
    assert!(r["last_stream"].as_u64().unwrap() < 2000, "few of the streams were processed: {r}");
    // CONTINUATION flood (2024): a header block that never ends.
    goaway("continuation", "100000", ENHANCE_YOUR_CALM);
    // Window overflow: FLOW_CONTROL_ERROR.
    goaway("window-overflow", "0", FLOW_CONTROL_ERROR);
    // A header list over the limit, and an HPACK bomb (small on the wire,
    // huge decoded): the stream gets 431 or a reset, or the connection its
    // GOAWAY; never a request to a node.
    let r = probe("big-header", addr, &["12000"]);
    let refused = r["status"]["1"] == 431 || r["rst"]["1"].is_u64() || r["goaway"].is_u64();
    assert!(refused, "big-header: {r}");
    let r = probe("hpack-bomb", addr, &["2000"]);
    assert!(r["block_bytes"].as_u64().unwrap() < 4000, "{r}");
    assert!(r["status"]["3"] == 431 || r["rst"]["3"].is_u64() || r["goaway"].is_u64(), "hpack-bomb: {r}");
    assert!(r["status"]["3"] != 200, "{r}");
    neighbour();
    // Streams over max_concurrent_streams are refused, one by one.
    let r = probe("streams", addr, &["30"]);
    let refused = r["rst"].as_object().unwrap().values().filter(|c| c.as_u64() == Some(REFUSED_STREAM)).count();
    assert_eq!(refused, 10, "{r}");
    neighbour();
    // A reader that gives no window holds its streams for send_timeout,
    // then each is cancelled; the neighbour is served meanwhile.
    let slow = std::thread::spawn(move || probe("slow-reader", addr, &["20", "/big?size=2000000", "10"]));
    neighbour();
    let r = slow.join().unwrap();
    let cancelled = r["rst"].as_object().unwrap().values().filter(|c| c.as_u64() == Some(CANCEL)).count();
    assert_eq!(cancelled, 20, "{r}");
    assert!(r["seconds"].as_f64().unwrap() < 8.0, "{r}");
    neighbour();
    // Bounded: the whole run stays small, and every abuse was counted.
    let rss = peak_rss_kib(shoal.proc.child.id());
    assert!(rss < 256 * 1024, "peak RSS {rss} KiB");
    let st = shoal.status();
    let v = &st["virtual_servers"]["clear"];
    assert!(v["http2"]["floods"].as_u64().unwrap() >= 5, "{v}");
}

#[test]
fn idle_connections_and_stops_get_a_graceful_goaway() {
    if !have_python_h2() {
        return;
    }
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let mut shoal = Shoal::start(&config(&origin, None, "idle_timeout = \"1s\"", ""));
    let addr = shoal.addr("clear");
    // Idle: the stream is answered, then GOAWAY NO_ERROR and a close.
    let r = probe("get-until-closed", addr, &["0", "/i?size=3"]);
    assert_eq!(r["status"]["1"], 200, "{r}");
    assert_eq!(r["goaway"].as_u64(), Some(NO_ERROR), "{r}");
    assert!(r["closed"].as_bool().unwrap(), "{r}");
    // Stop: a request in flight finishes, with GOAWAY NO_ERROR.
    let slow = std::thread::spawn(move || probe("get-until-closed", addr, &["0", "/slow?size=5&delay=1500"]));
    origin.proc.wait_line(Duration::from_secs(10), |l| l.contains("/slow?"));
    shoal.proc.signal("TERM");
    let r = slow.join().unwrap();
    assert_eq!(r["goaway"].as_u64(), Some(NO_ERROR), "{r}");
    assert_eq!(r["status"]["1"], 200, "{r}");
    assert_eq!(r["data"]["1"], 5, "{r}");
    shoal.proc.wait_exit(Duration::from_secs(20));
}

/// Whether grpcio is here (CI sets SHOAL_REQUIRE_H2).
fn have_grpc() -> bool {
    let ok = Command::new("python3").args(["-c", "import grpc"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var_os("SHOAL_REQUIRE_H2").is_none(), "grpcio is required (pip install grpcio)");
        eprintln!("grpcio missing: the gRPC checks are skipped");
    }
    ok
}

fn grpc_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/echo.py").to_string_lossy().into_owned()
}

#[test]
fn grpc_unary_and_streaming_calls_pass_byte_exact() {
    // A load of its own (a browser, floods, Python servers): not beside
    // the tests that time latencies.
    let _heavy = heavy();
    if !have_grpc() {
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.args([&grpc_script(), "server", "0"]);
    let node = Proc::spawn(cmd, true);
    let line = node.wait_line(Duration::from_secs(30), |l| l.starts_with("listening "));
    let port: u16 = line.split(' ').nth(1).unwrap().trim().parse().unwrap();
    let certs = TempDir::new();
    let pki = Pki::new(&certs.0, "shoal");
    let leaf = pki.server("a", &["a.test"]);
    let toml = format!(
        "[virtual_servers.clear]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"grpc\"\n\
         [virtual_servers.clear.http2]\nh2c = true\n\n\
         [virtual_servers.secure]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"grpc\"\n\
         [virtual_servers.secure.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n\
         [virtual_servers.secure.http2]\n\n\
         [pools.grpc]\nhttp2 = true\nnodes = [\"127.0.0.1:{port}\"]\n\n{}",
        leaf.cert.display(),
        leaf.key.display(),
        api_section()
    );
    let shoal = Shoal::start(&toml);
    let ca = pki.ca.to_string_lossy().into_owned();
    for (vs, extra) in [("clear", vec![]), ("secure", vec![ca.as_str(), "a.test"])] {
        let out = Command::new("python3")
            .args([&grpc_script(), "client", &shoal.addr(vs).to_string()])
            .args(&extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let r: serde_json::Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{vs}: {e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
        for u in r["unary"].as_array().unwrap() {
            assert_eq!(u["exact"], true, "{vs}: unary {u}");
        }
        assert_eq!(r["unary"].as_array().unwrap().len(), 5, "{vs}: {r}");
        assert_eq!(r["fail"]["code"], "INVALID_ARGUMENT", "{vs}: {r}");
        assert_eq!(r["fail"]["details"], "nope", "{vs}: {r}");
        assert_eq!((r["chat"]["received"].as_u64(), r["chat"]["exact"].as_bool()), (Some(30), Some(true)), "{vs}: {r}");
        assert_eq!(
            (r["count"]["messages"].as_u64(), r["count"]["exact"].as_bool()),
            (Some(200), Some(true)),
            "{vs}: {r}"
        );
    }
    let st = shoal.status();
    let h2 = st["virtual_servers"]["clear"]["requests_by_version"]["h2"].as_u64().unwrap();
    assert_eq!(h2, 8, "{st}");
}

/// A second shoal as the HTTP/2 node (h2c, and TLS with ALPN) in front
/// of an HTTP/1.1 origin: HTTP/1.1 clients of the first reach it, bodies
/// byte-exact both ways, over few node connections.
#[test]
fn http1_clients_reach_http2_nodes_by_alpn_and_prior_knowledge() {
    // A load of its own (a browser, floods, Python servers): not beside
    // the tests that time latencies.
    let _heavy = heavy();
    let certs = TempDir::new();
    let pki = Pki::new(&certs.0, "shoal");
    let leaf = pki.server("n", &["node.test"]);
    let origin = Origin::start("http", &["a"]);
    let node = Shoal::start(&config(&origin, Some(&leaf), "", ""));
    let toml = format!(
        "[virtual_servers.to_clear]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"h2c\"\n\n\
         [virtual_servers.to_tls]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"h2tls\"\n\n\
         [pools.h2c]\nhttp2 = true\nnodes = [\"{}\"]\n\n\
         [pools.h2tls]\nhttp2 = true\nnodes = [\"{}\"]\n[pools.h2tls.tls]\nca = \"{}\"\nserver_name = \"node.test\"\n\n{}",
        node.addr("clear"),
        node.addr("secure"),
        pki.ca.display(),
        api_section()
    );
    let shoal = Shoal::start(&toml);
    let upload = certs.write("up.bin", "");
    let body = pattern(200_000, 3);
    std::fs::write(&upload, &body).unwrap();
    let up = format!("@{}", upload.display());
    for vs in ["to_clear", "to_tls"] {
        let base = format!("http://{}", shoal.addr(vs));
        for target in ["/l?size=900000&pattern=mix", "/c?size=300000&chunked=1&pattern=mix", "/z?size=0"] {
            let (version, code, got) = curl_h2(&["--http1.1"], &format!("{base}{target}"));
            assert_eq!((version.as_str(), code), ("1.1", 200), "{vs}{target}");
            let (_, _, want) = curl_h2(&[], &format!("http://{}{target}", origin.addr("a")));
            assert_eq!(sha256(&got), sha256(&want), "{vs}{target}");
        }
        let (_, code, head) = curl_h2(&["--http1.1", "-i", "--data-binary", &up], &format!("{base}/up"));
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert_eq!(code, 200);
        assert!(head.contains(&format!("x-body-sha256: {}", sha256(&body))), "{vs}: {head}");
        let (_, code, got) = curl_h2(&["--http1.1"], &format!("{base}/n?status=204"));
        assert_eq!((code, got.len()), (204, 0));
        // A node that is HTTP/2 and a client that is too.
        let (_, code, _) = curl_h2(&["--http1.1", "-o", "/dev/null"], &format!("{base}/s?size=10"));
        assert_eq!(code, 200);
    }
    // The node saw HTTP/2 requests, on one connection per shard and pool.
    let st = node.status();
    for vs in ["clear", "secure"] {
        let v = &st["virtual_servers"][vs];
        assert_eq!(v["requests_by_version"]["h2"], 6, "{vs}: {v}");
        assert!(v["http2"]["connections"].as_u64().unwrap() <= 2, "{vs}: {v}");
    }
}

/// Whether headless Chromium can run the browser scripts here (CI sets
/// SHOAL_REQUIRE_H2, and installs them).
fn have_browser() -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/playwright-core");
    let ok = dir.exists() && Path::new("/usr/bin/chromium").exists();
    if !ok {
        assert!(std::env::var_os("SHOAL_REQUIRE_H2").is_none(), "chromium and tests/browser (npm ci) are required");
        eprintln!("chromium missing: the browser check is skipped");
    }
    ok
}

#[test]
fn chromium_loads_a_page_of_100_subresources_over_one_connection() {
    // A load of its own (a browser, floods, Python servers): not beside
    // the tests that time latencies.
    let _heavy = heavy();
    if !have_browser() {
        return;
    }
    let certs = TempDir::new();
    let pki = Pki::new(&certs.0, "shoal");
    let leaf = pki.server("a", &["a.test"]);
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&config(&origin, Some(&leaf), "", ""));
    let port = shoal.addr("secure").port();
    let imgs: String = (0..100).map(|i| format!("<img src=\"/img{i}?size={}&pattern=mix\">", 100 + i * 37)).collect();
    let page = format!(
        "https://127.0.0.1:{port}/page?type=text/html&text={}",
        enc(&format!("<html><body>{imgs}</body></html>"))
    );
    let checks: Vec<String> =
        [5, 50, 99].iter().map(|i| format!("/img{i}?size={}&pattern=mix", 100 + i * 37)).collect();
    let out = Command::new("node")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"))
        .arg("subresources.mjs")
        .arg(&page)
        .args(&checks)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(r["page"], "h2", "{r}");
    // The 100 images (and a favicon, if the browser asks), all over h2.
    let n = r["resources"].as_u64().unwrap();
    assert!((100..=101).contains(&n), "{r}");
    assert_eq!(r["protocols"]["h2"].as_u64(), Some(n), "{r}");
    for (sha, target) in r["sha256"].as_array().unwrap().iter().zip(&checks) {
        let want = send(origin.addr("a"), &format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
        assert_eq!(sha.as_str(), Some(sha256(&want.body).as_str()), "{target}");
    }
    let st = shoal.status();
    let v = &st["virtual_servers"]["secure"];
    assert_eq!(v["http2"]["connections"], 1, "{v}");
    // The page, its 100 images, the 3 fetches (and maybe a favicon).
    let h2 = v["requests_by_version"]["h2"].as_u64().unwrap();
    assert!((104..=105).contains(&h2), "{v}");
}

/// A reload that removes the virtual server ends its HTTP/2 connections
/// gracefully: the stream in flight finishes, then GOAWAY NO_ERROR (the
/// idle timeout is five minutes here, so only the reload can send it).
#[test]
fn a_reload_that_removes_the_virtual_server_sends_goaway() {
    if !have_python_h2() {
        return;
    }
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let shoal = Shoal::start(&config(&origin, None, "", ""));
    let addr = shoal.addr("clear");
    let slow = std::thread::spawn(move || probe("get-until-closed", addr, &["0", "/slow?size=5&delay=1500"]));
    origin.proc.wait_line(Duration::from_secs(10), |l| l.contains("/slow?"));
    let text = std::fs::read_to_string(&shoal.config).unwrap();
    write_file(&shoal.config, &text.replace("[virtual_servers.clear", "[virtual_servers.moved"));
    shoal.proc.signal("HUP");
    shoal.proc.wait_line(Duration::from_secs(10), |l| l.contains("configuration reloaded (generation 2)"));
    let r = slow.join().unwrap();
    assert_eq!(r["status"]["1"], 200, "{r}");
    assert_eq!(r["data"]["1"], 5, "{r}");
    assert_eq!(r["goaway"].as_u64(), Some(NO_ERROR), "{r}");
    assert!(r["closed"].as_bool().unwrap() && r["seconds"].as_f64().unwrap() < 10.0, "{r}");
}
