//! Response compression (H4) against real nodes and real clients: curl,
//! Python's requests and headless Chromium decode gzip, brotli and zstd
//! byte-exact; every "never" case; a streamed body leaves as it comes;
//! the cache keeps each coding as a variant; rules and quick mode.

use crate::support::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const CODINGS: [&str; 3] = ["gzip", "br", "zstd"];

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let r = match coding {
        "gzip" => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
        "br" => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(data).unwrap().read_to_end(&mut out),
        other => panic!("no decoder for {other}"),
    };
    r.unwrap_or_else(|e| panic!("{coding} did not decode: {e}"));
    out
}

/// One request on a new connection with these extra header lines.
fn get(addr: SocketAddr, target: &str, headers: &str) -> Resp {
    send(addr, &format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"))
}

fn head(addr: SocketAddr, target: &str, headers: &str) -> Resp {
    send(addr, &format!("HEAD {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"))
}

/// A virtual server named `name` with `[compression]` (its keys in
/// `settings`) over pool p.
fn vs(name: &str, keys: &str, settings: &str) -> String {
    format!(
        "[virtual_servers.{name}]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n{keys}\n\
         [virtual_servers.{name}.compression]\n{settings}\n"
    )
}

fn pool(origin: &Origin) -> String {
    format!("[pools.p]\nnodes = [\"{}\"]\n\n", origin.addr("a"))
}

/// What the node sends for `target`, fetched from it directly.
fn reference(origin: &Origin, target: &str) -> Vec<u8> {
    let r = get(origin.addr("a"), target, "");
    assert_eq!(r.status, 200);
    r.body
}

/// Whether the decoders of Python and the browser are here; CI sets
/// SHOAL_REQUIRE_DECODERS so that it cannot skip them.
fn have(what: &str, probe: &mut Command) -> bool {
    have_probe(what, probe, "SHOAL_REQUIRE_DECODERS")
}

const PY_GET: &str = r#"
import hashlib, json, sys, requests
url, coding = sys.argv[1], sys.argv[2]
r = requests.get(url, headers={"Accept-Encoding": coding}, timeout=60)
print(json.dumps({"status": r.status_code, "encoding": r.headers.get("content-encoding"),
                  "sha256": hashlib.sha256(r.content).hexdigest(), "length": len(r.content)}))
"#;

/// Proof 4: curl, Python's requests and headless Chromium get gzip,
/// brotli and zstd responses (one virtual server per coding, offering
/// only it) and decode them to the node's bytes exactly: text and
/// incompressible bytes, with a length and chunked from the node.
#[test]
fn real_clients_decode_every_coding_byte_exact() {
    let origin = Origin::start("http", &["a"]);
    let mut conf = String::new();
    for c in CODINGS {
        conf += &vs(&format!("v_{c}"), "", &format!("encodings = [\"{c}\"]\n"));
    }
    let shoal = Shoal::start(&format!("{conf}{}{}", pool(&origin), api_section()));
    let targets = [
        "/doc.html?size=300000&pattern=text&type=text/html",
        "/stream.txt?size=200000&pattern=text&chunked=1&type=text/plain",
        "/noise.json?size=100000&pattern=mix&type=application/json",
    ];
    // urllib3 decodes br with the brotli module and zstd with
    // backports.zstd (or zstandard, before 2.6): it says which it can.
    let python = have(
        "python3 with requests decoding br and zstd",
        Command::new("python3").args([
            "-c",
            "import requests, urllib3.util.request as r; assert {'br', 'zstd'} <= set(r.ACCEPT_ENCODING.split(','))",
        ]),
    );
    let browser = have(
        "node, playwright-core (tests/browser) and chromium",
        Command::new("node")
            .current_dir(format!("{}/tests/browser", env!("CARGO_MANIFEST_DIR")))
            .args(["-e", "import('playwright-core')"]),
    ) && have("chromium", Command::new("/usr/bin/chromium").arg("--version"));
    let mut browser_urls = Vec::new();
    let mut want_browser = Vec::new();
    for c in CODINGS {
        let addr = shoal.addr(&format!("v_{c}"));
        for t in targets {
            let want = reference(&origin, t);
            let what = format!("{c} {t}");
            // On the wire: the coding, Vary, no length, and the bytes.
            let r = get(addr, t, &format!("Accept-Encoding: {c}\r\n"));
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(r.header("content-encoding"), Some(c), "{what}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{what}");
            assert_eq!(r.header("content-length"), None, "{what}");
            assert_eq!(decode(c, &r.body), want, "{what}: decoded on the wire");
            if t.contains("pattern=text") {
                assert!(r.body.len() * 2 < want.len(), "{what}: {} bytes for {}", r.body.len(), want.len());
            }
            let url = format!("http://{addr}{t}");
            // curl: --compressed decodes what the server chose.
            let dir = TempDir::new();
            let headers = dir.0.join("h");
            let (ok, body, err) =
                curl(&["--compressed", "-H", &format!("Accept-Encoding: {c}"), "-D", headers.to_str().unwrap(), &url]);
            assert!(ok, "{what}: curl: {err}");
            let h = std::fs::read_to_string(&headers).unwrap().to_ascii_lowercase();
            assert!(h.contains(&format!("content-encoding: {c}\r\n")), "{what}: curl saw {h}");
            assert!(body == want, "{what}: curl decoded {} bytes, not the node's {}", body.len(), want.len());
            if python {
                let out = Command::new("python3").args(["-c", PY_GET, &url, c]).output().unwrap();
                assert!(out.status.success(), "{what}: python: {}", String::from_utf8_lossy(&out.stderr));
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["encoding"], c, "{what}: python {v}");
                assert_eq!(
                    (v["sha256"].as_str(), v["length"].as_u64()),
                    (Some(sha256(&want).as_str()), Some(want.len() as u64)),
                    "{what}: python"
                );
            }
            browser_urls.push(url);
            want_browser.push((c, sha256(&want), want.len()));
        }
    }
    if browser {
        let out = Command::new("node")
            .current_dir(format!("{}/tests/browser", env!("CARGO_MANIFEST_DIR")))
            .arg("fetch.mjs")
            .args(&browser_urls)
            .output()
            .unwrap();
        assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), browser_urls.len(), "{}", String::from_utf8_lossy(&out.stdout));
        for (v, (c, sha, len)) in lines.iter().zip(&want_browser) {
            assert_eq!(v["status"], 200, "{v}");
            assert_eq!(v["encoding"], *c, "chromium: {v}");
            assert_eq!(
                (v["sha256"].as_str(), v["length"].as_u64()),
                (Some(sha.as_str()), Some(*len as u64)),
                "chromium: {v}"
            );
            // What came over the wire was the compressed form.
            let encoded = v["encodedBodySize"].as_u64().unwrap_or(0);
            assert!(encoded > 0 && encoded != *len as u64, "chromium: {v}");
        }
    }
    // Every response was counted, by coding.
    let status = shoal.status();
    for c in CODINGS {
        let n = status["virtual_servers"][format!("v_{c}")]["compression"][c].as_u64().unwrap();
        assert!(n >= 6, "{c}: {n} counted");
    }
}

/// Every "never" case of H4, and the negotiation: each response that must
/// not be compressed arrives byte for byte as the node sent it.
#[test]
fn never_compressed_and_negotiation() {
    let origin = Origin::start("http", &["a"]);
    let shoal =
        Shoal::start(&format!("{}{}", vs("web", "", "encodings = [\"zstd\", \"br\", \"gzip\"]\n"), pool(&origin)));
    let addr = shoal.addr("web");
    let all = "Accept-Encoding: gzip, deflate, br, zstd\r\n";
    let text = "size=5000&pattern=text&type=text/plain";
    let plain = |t: &str, headers: &str, what: &str| {
        let want = get(origin.addr("a"), t, headers);
        let r = get(addr, t, &format!("{all}{headers}"));
        assert_eq!(r.status, want.status, "{what}");
        assert_eq!(r.header("content-encoding"), want.header("content-encoding"), "{what}: left as it was");
        assert!(r.body == want.body, "{what}: the node's bytes");
        r
    };
    // HEAD: the head as the node sent it, with its length.
    let h = head(addr, &format!("/h?{text}"), all);
    assert_eq!((h.status, h.header("content-encoding"), h.header("content-length")), (200, None, Some("5000")));
    // 206, and any response with Content-Range.
    let r = plain(&format!("/p?{text}&status=206&hdr={}", enc("Content-Range: bytes 0-4999/9000")), "", "206");
    assert_eq!(r.status, 206);
    plain(&format!("/cr?{text}&hdr={}", enc("Content-Range: bytes 0-4999/9000")), "", "Content-Range");
    // Already encoded by the node.
    plain(&format!("/e?{text}&hdr={}", enc("Content-Encoding: gzip")), "", "encoded");
    plain(&format!("/e2?{text}&hdr={}", enc("Content-Encoding: br")), "", "encoded br");
    // no-transform, from the node or from the client.
    plain(&format!("/nt?{text}&hdr={}", enc("Cache-Control: public, no-transform")), "", "response no-transform");
    plain(&format!("/nt2?{text}"), "Cache-Control: no-transform\r\n", "request no-transform");
    // Too small, or a type that is not configured: no Vary either (no
    // client would get another answer).
    let r = plain("/s?size=1000&pattern=text&type=text/plain", "", "small");
    assert_eq!(r.header("vary"), None);
    let r = plain("/i?size=5000&type=image/png", "", "image");
    assert_eq!(r.header("vary"), None);
    plain("/n?size=5000", "", "no type");
    // No body: 204 and 304.
    plain("/nc?status=204&type=text/plain", "", "204");
    let r = plain("/nm?etag=v1&type=text/plain&size=5000", "If-None-Match: \"v1\"\r\n", "304");
    assert_eq!(r.status, 304);
    // The client accepts none of the codings: identity, with Vary.
    for ae in [
        "",
        "Accept-Encoding: identity\r\n",
        "Accept-Encoding: gzip;q=0, br;q=0, zstd;q=0\r\n",
        "Accept-Encoding: deflate\r\n",
    ] {
        let want = reference(&origin, &format!("/id?{text}"));
        let r = get(addr, &format!("/id?{text}"), ae);
        assert_eq!((r.header("content-encoding"), r.header("vary")), (None, Some("Accept-Encoding")), "{ae:?}");
        assert!(r.body == want, "{ae:?}");
    }
    // q-values, then the configured order.
    for (ae, want) in [
        ("gzip;q=0.5, br;q=0.9", "br"),
        ("gzip, br", "br"),
        ("gzip;q=1.0, br;q=0.5, zstd;q=0.001", "gzip"),
        ("*", "zstd"),
        ("*;q=0.1, gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP, ZSTD;Q=0", "gzip"),
    ] {
        let r = get(addr, &format!("/q?{text}"), &format!("Accept-Encoding: {ae}\r\n"));
        assert_eq!(r.header("content-encoding"), Some(want), "{ae}");
        assert_eq!(decode(want, &r.body), reference(&origin, &format!("/q?{text}")), "{ae}");
    }
    // The head of a compressed response: a weak ETag, no Accept-Ranges or
    // Content-Length, the node's Vary kept.
    let t = format!("/v?{text}&etag=abc&hdr={}&hdr={}", enc("Accept-Ranges: bytes"), enc("Vary: Cookie"));
    let r = get(addr, &t, "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("etag"), Some("W/\"abc\""));
    assert_eq!((r.header("accept-ranges"), r.header("content-length")), (None, None));
    assert_eq!(r.header("vary"), Some("Cookie, Accept-Encoding"));
    // An HTTP/1.0 client: the body ends with the connection.
    let r = send(addr, &format!("GET /old?{text} HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"));
    assert_eq!((r.header("content-encoding"), r.header("transfer-encoding")), (Some("gzip"), None));
    assert_eq!(decode("gzip", &r.body), reference(&origin, &format!("/old?{text}")));
}

/// Streamed, never buffered: a node that sends 1 KiB every 50 ms (2 s in
/// all) is compressed piece by piece, so the client decodes the first
/// pieces long before the node has finished, and the whole at the end.
#[test]
fn a_slow_body_is_compressed_as_it_comes() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!("{}{}", vs("web", "", ""), pool(&origin)));
    let t = "/slow?size=40960&slow=50&chunked=1&pattern=text&type=text/plain";
    let want = reference(&origin, t);
    for c in CODINGS {
        let mut s = std::net::TcpStream::connect(shoal.addr("web")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let started = Instant::now();
        write!(s, "GET {t} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {c}\r\nConnection: close\r\n\r\n").unwrap();
        // Read until some decoded text has arrived.
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let first = loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{c}: closed early");
            raw.extend_from_slice(&buf[..n]);
            let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let payload = dechunk_partial(&raw[split + 4..]);
            let got = decode_partial(c, &payload);
            if got.len() >= 1024 {
                break (started.elapsed(), got);
            }
        };
        assert!(first.0 < Duration::from_millis(1200), "{c}: first text after {:?}", first.0);
        assert_eq!(first.1[..], want[..first.1.len()], "{c}: the first pieces");
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert_eq!(decode(c, &dechunk_partial(&raw[split + 4..])), want, "{c}: the whole body");
        assert!(started.elapsed() >= Duration::from_millis(1800), "{c}: the node's pace");
    }
}

/// The chunk payloads of a chunked body read so far (complete chunks).
fn dechunk_partial(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let Ok(size) = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16) else { break };
        if size == 0 || b.len() < eol + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// What a truncated stream decodes to so far.
fn decode_partial(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let mut r: Box<dyn Read> = match coding {
        "gzip" => Box::new(flate2::read::GzDecoder::new(data)),
        "br" => Box::new(brotli::Decompressor::new(data, 4096)),
        _ => Box::new(zstd::stream::read::Decoder::new(data).unwrap()),
    };
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

both_protocols! {
/// With the cache, each coding is stored as its own variant, selected by
/// the canonical Accept-Encoding: equivalent fields hit, others miss and
/// store their own, and every hit decodes to the node's bytes.
fn the_cache_keeps_each_coding_as_a_variant() {
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let shoal = Shoal::start(&format!(
        "{}{}{}",
        vs("web", "cache = true\n", "encodings = [\"br\", \"gzip\"]\n"),
        pool(&origin),
        api_section()
    ));
    let addr = shoal.addr("web");
    let t = format!("/c.html?size=100000&pattern=text&type=text/html&hdr={}", enc("Cache-Control: max-age=600"));
    let want = reference(&origin, &t);
    let node_gets = || origin.proc.lines().iter().filter(|l| l.starts_with("request a GET /c.html")).count();
    // (Accept-Encoding, coding served, node requests after it)
    for (ae, coding, n) in [
        ("gzip, deflate", Some("gzip"), 2),
        ("deflate,gzip", Some("gzip"), 2),
        ("DEFLATE, x-gzip;q=1.0", Some("gzip"), 2),
        ("br", Some("br"), 3),
        ("br", Some("br"), 3),
        ("", None, 4),
        ("", None, 4),
        ("gzip, deflate, br", Some("br"), 5),
        ("br, gzip, deflate", Some("br"), 5),
    ] {
        let headers = if ae.is_empty() { String::new() } else { format!("Accept-Encoding: {ae}\r\n") };
        let r = get(addr, &t, &headers);
        assert_eq!(r.status, 200, "{ae:?}");
        assert_eq!(r.header("content-encoding"), coding, "{ae:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ae:?}");
        let body = match coding {
            Some(c) => decode(c, &r.body),
            None => r.body.clone(),
        };
        assert!(body == want, "{ae:?}: the node's bytes");
        // One request for the reference, then one per variant stored.
        poll(Duration::from_secs(5), "the node's count", || (node_gets() == n).then_some(()));
    }
    let st = shoal.status();
    let v = &st["virtual_servers"]["web"];
    assert_eq!((v["compression"]["gzip"].as_u64(), v["compression"]["br"].as_u64()), (Some(1), Some(2)), "{v}");
    assert_eq!(v["cache"]["hits"].as_u64(), Some(5), "{v}");
}
}

both_protocols! {
/// `http.compress.enable()` on a virtual server without `[compression]`,
/// `http.compress.disable()` on one with it.
fn rules_turn_compression_on_and_off() {
    let origin = Origin::start("http", &["a"]);
    let dir = TempDir::new();
    dir.write("on.ts", "if( string.startsWith( http.getPath(), \"/z\" ) ) { http.compress.enable(); }\n");
    dir.write("off.ts", "if( string.startsWith( http.getPath(), \"/raw\" ) ) { http.compress.disable(); }\n");
    let shoal = Shoal::start(&format!(
        "[virtual_servers.plain]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nrequest_rules = [\"on\"]\n\n\
         {}{}[rules.on]\nfile = \"{}\"\n\n[rules.off]\nfile = \"{}\"\n",
        vs("comp", "response_rules = [\"off\"]\n", ""),
        pool(&origin),
        dir.0.join("on.ts").display(),
        dir.0.join("off.ts").display()
    ));
    let ae = "Accept-Encoding: gzip\r\n";
    let q = "?size=5000&pattern=text&type=text/plain";
    let enc_of = |vs: &str, path: &str| {
        get(shoal.addr(vs), &format!("{path}{q}"), ae).header("content-encoding").map(str::to_owned)
    };
    assert_eq!(enc_of("plain", "/z/a"), Some("gzip".into()));
    assert_eq!(enc_of("plain", "/other"), None);
    assert_eq!(enc_of("comp", "/raw/a"), None);
    assert_eq!(enc_of("comp", "/other"), Some("gzip".into()));
}
}

/// Quick mode: `--compress`.
#[test]
fn quick_mode_compress() {
    let origin = Origin::start("http", &["a"]);
    let mut cmd = Command::new(shoal_bin());
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--protocol", "http", "--compress", "--to"]);
    cmd.arg(origin.addr("a").to_string());
    let shoal = Shoal::from_command(cmd, TempDir::new(), std::path::PathBuf::new());
    let addr = shoal.addr("proxy");
    let t = "/q?size=50000&pattern=text&type=text/html";
    let r = get(addr, t, "Accept-Encoding: gzip, br\r\n");
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(decode("br", &r.body), reference(&origin, t));
}

/// Configuration errors name the file, line and key.
#[test]
fn compression_configuration_errors() {
    let pools = "[pools.p]\nnodes = [\"127.0.0.1:9\"]\n";
    for (conf, want) in [
        (vs("w", "", "encodings = [\"deflate\"]"), "expected \"gzip\", \"br\" or \"zstd\", found \"deflate\""),
        (vs("w", "", "encodings = [\"gzip\", \"gzip\"]"), "\"gzip\" is listed twice"),
        (vs("w", "", "encodings = []"), "lists no coding"),
        (vs("w", "", "gzip_level = 10"), "virtual_servers.w.compression.gzip_level"),
        (vs("w", "", "brotli_level = 12"), "must be between 0 and 11"),
        (vs("w", "", "zstd_level = 22"), "virtual_servers.w.compression.zstd_level"),
        (vs("w", "", "types = [\"html\"]"), "expected a media type"),
        (vs("w", "", "types = [\"*/*\"]"), "expected a media type"),
        (vs("w", "", "level = 3"), "unknown field `level`"),
        (vs("w", "", "").replace("\"http\"", "\"client_first\""), "compression applies to http virtual servers"),
    ] {
        let dir = TempDir::new();
        let path = dir.write("c.toml", &format!("{conf}{pools}"));
        let out = Command::new(shoal_bin()).args(["check", "-c"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want) && err.contains("c.toml:"), "{want}: {err}");
    }
}
