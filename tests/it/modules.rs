//! Modules (issue 14, docs/phases.md): shoal builds with modules of their
//! own (examples/), driven by real clients: the documented example module,
//! shoal's own streamed responses, body filters in both directions, error
//! pages replaced by a module, and a tee whose stalled consumer is cut off
//! without slowing the client. Also: the driver names no feature.

use crate::support::*;
use sha2::Digest;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn config(nodes: &[SocketAddr]) -> String {
    crate::http::http_config(nodes, "", "")
}

/// The origin's generated body: byte i is `b'a' + i % 26`.
fn origin_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The lab's transform: upper-cased, then a suffix.
fn lab_rewrite(mut b: Vec<u8>) -> Vec<u8> {
    b.make_ascii_uppercase();
    b.extend_from_slice(b"\n(rewritten)\n");
    b
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the lab's generated body of `len` bytes (byte i is `i % 251`).
fn lab_pattern_sha(len: u64) -> String {
    let period: Vec<u8> = (0..251 * 4096).map(|i| (i % 251) as u8).collect();
    let mut h = sha2::Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(period.len() as u64) as usize;
        h.update(&period[..n]);
        left -= n as u64;
    }
    hex(h.finalize())
}

/// Proof 1: the example module of docs/phases.md, built as its own shoal
/// (examples/node_header.rs), names the node that served each response.
#[test]
fn example_module_names_the_node() {
    let origin = Origin::start("http", &["a", "b"]);
    let shoal = Shoal::start_bin(&example_bin("node_header"), &config(&[origin.addr("a"), origin.addr("b")]));
    let mut seen = std::collections::HashSet::new();
    let mut s = connect(shoal.addr("web"));
    for i in 0..6 {
        write!(s, "GET /n{i}?size=5 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, false);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
        let node = r.header("x-node").unwrap().to_string();
        // shoal names nodes as configured: by address.
        assert_eq!(r.header("x-served-by"), Some(origin.addr(&node).to_string().as_str()), "{r:?}");
        let timing = r.header("server-timing").unwrap();
        let ms: f64 = timing.strip_prefix("node;dur=").unwrap().parse().unwrap();
        assert!((0.0..10_000.0).contains(&ms), "{timing}");
        seen.insert(node);
    }
    assert_eq!(seen.len(), 2, "both nodes served");
}

/// Proof 4: a module answers from the request phase with its own headers
/// and a 1 GiB streamed body: SHA-256 exact, with a Content-Length or
/// chunked, HEAD answered with the head alone, keepalive kept, HTTP/1.0
/// given a body that ends at close; shoal's RSS stays bounded.
#[test]
fn own_response_streams_a_gibibyte() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start_bin(&example_bin("module_lab"), &config(&[origin.addr("a")]));
    let addr = shoal.addr("web");
    let gib: u64 = 1 << 30;
    for unknown in ["", "&unknown=1"] {
        let url = format!("http://{addr}/lab/generate?size={gib}{unknown}");
        let mut child = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "300", "-D", "-", &url])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        // The head, up to the empty line, then the body through SHA-256.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            out.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n") && head.contains("x-lab: generated"), "{head}");
        if unknown.is_empty() {
            assert!(head.contains(&format!("content-length: {gib}\r\n")), "{head}");
        } else {
            assert!(head.contains("transfer-encoding: chunked") && !head.contains("content-length"), "{head}");
        }
        let got = sha256_stream(&mut out);
        assert!(child.wait().unwrap().success());
        assert_eq!(got, (gib, lab_pattern_sha(gib)), "generated body{unknown}");
    }
    let rss = peak_rss_kib(shoal.proc.child.id());
    assert!(rss < 64 * 1024, "shoal peak RSS {rss} KiB while streaming 1 GiB");

    // HEAD: the head alone, with the length the body would have.
    let r = send(addr, "HEAD /lab/generate?size=1000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("1000"), 0));
    // Keepalive: two own responses and a proxied one on one connection.
    let mut s = connect(addr);
    for (req, want) in [
        ("GET /lab/generate?size=300 HTTP/1.1\r\nHost: t\r\n\r\n", 300),
        ("GET /lab/generate?size=70000&unknown=1 HTTP/1.1\r\nHost: t\r\n\r\n", 70000),
        ("GET /plain?size=10 HTTP/1.1\r\nHost: t\r\n\r\n", 10),
    ] {
        s.write_all(req.as_bytes()).unwrap();
        let r = read_response(&mut s, false);
        assert_eq!((r.status, r.body.len()), (200, want), "{req}");
        assert!(r.header("connection").is_none(), "{r:?}");
    }
    // HTTP/1.0 and a body of unknown length: it ends when the connection does.
    let r = send(addr, "GET /lab/generate?size=5000&unknown=1 HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.header("transfer-encoding"), r.body.len()), (200, None, 5000));
    assert_eq!(r.header("connection"), Some("close"));
}

/// Proof 4: response bodies of Content-Length and chunked responses are
/// rewritten by a Stream and by a Whole filter, with the framing
/// corrected (chunked, or the new Content-Length); request bodies too, on
/// their way to the node. A body over a Whole filter's limit fails.
#[test]
fn body_filters_rewrite_with_corrected_framing() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start_bin(&example_bin("module_lab"), &config(&[origin.addr("a")]));
    let addr = shoal.addr("web");
    for mode in ["stream", "whole"] {
        for chunked in ["0", "1"] {
            for size in [100usize, 300_000] {
                let mut s = connect(addr);
                let path = format!("/lab/upper-{mode}?size={size}&chunked={chunked}&limit=1000000");
                write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                let r = read_response(&mut s, false);
                assert_eq!(r.status, 200, "{path}");
                assert_eq!(r.body, lab_rewrite(origin_body(size)), "{path}");
                if mode == "whole" {
                    let want = (size + 13).to_string();
                    assert_eq!(
                        (r.header("content-length"), r.header("transfer-encoding")),
                        (Some(want.as_str()), None)
                    );
                } else {
                    assert_eq!((r.header("content-length"), r.header("transfer-encoding")), (None, Some("chunked")));
                }
                // The connection carries on.
                write!(s, "GET /after?size=3 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                assert_eq!(read_response(&mut s, false).body, b"abc", "{path}");
            }
        }
    }
    // An HTTP/1.0 client of a Stream filter: the body ends at close.
    let r = send(addr, "GET /lab/upper-stream?size=1000&chunked=1 HTTP/1.0\r\n\r\n");
    assert_eq!((r.header("transfer-encoding"), r.body.clone()), (None, lab_rewrite(origin_body(1000))));
    // Over a Whole filter's limit: shoal answers 502 (the lab's error page).
    let r = send(addr, "GET /lab/upper-whole?size=5000&limit=4000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("x-lab-error")), (502, Some("replaced")), "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("larger than a body filter"), "{r:?}");

    // Request bodies, Content-Length and chunked, through both modes: the
    // node receives the rewritten body (it reports its length and hash).
    let body = pattern(200_000, 5).iter().map(|b| b'a' + b % 26).collect::<Vec<u8>>();
    let want = lab_rewrite(body.clone());
    for mode in ["stream", "whole"] {
        for chunked in [false, true] {
            let mut s = connect(addr);
            let te =
                if chunked { "Transfer-Encoding: chunked".into() } else { format!("Content-Length: {}", body.len()) };
            write!(s, "PUT /lab/req-upper-{mode} HTTP/1.1\r\nHost: t\r\n{te}\r\n\r\n").unwrap();
            if chunked {
                for piece in body.chunks(70_000) {
                    write!(s, "{:x}\r\n", piece.len()).unwrap();
                    s.write_all(piece).unwrap();
                    s.write_all(b"\r\n").unwrap();
                }
                s.write_all(b"0\r\n\r\n").unwrap();
            } else {
                s.write_all(&body).unwrap();
            }
            let r = read_response(&mut s, false);
            assert_eq!(r.status, 200, "{mode} chunked={chunked}");
            assert_eq!(r.header("x-body-len"), Some(want.len().to_string().as_str()), "{mode} chunked={chunked}");
            assert_eq!(r.header("x-body-sha256"), Some(hex(sha2::Sha256::digest(&want)).as_str()));
        }
    }
    // Expect: 100-continue with a Whole request filter: shoal says 100
    // itself, reads the body, and the node gets it with a Content-Length.
    let mut s = connect(addr);
    write!(s, "PUT /lab/req-upper-whole HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let cont = read_response(&mut s, false);
    assert_eq!(cont.status, 100);
    s.write_all(b"hello").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.header("x-body-sha256"), Some(hex(sha2::Sha256::digest(lab_rewrite(b"hello".to_vec()))).as_str()));
}

both_protocols! {
/// Proof 4: a module replaces shoal's error page (and only where it
/// chooses to).
fn module_replaces_error_pages() {
    // A pool whose only node does not listen.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let shoal = Shoal::start_bin(&example_bin("module_lab"), &config(&[dead]));
    let addr = shoal.addr("web");
    let r = send(addr, "GET /lab/anything HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        (r.status, r.header("x-lab-error"), r.header("content-type")),
        (502, Some("replaced"), Some("text/html"))
    );
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.starts_with("<h1>lab error 502</h1>") && body.contains("could not connect"), "{body}");
    // Outside /lab/ the module leaves shoal's own page.
    let r = send(addr, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("x-lab-error"), r.body.as_slice()), (502, None, &b"502 Bad Gateway\n"[..]));
}
}

/// Proof 4: a 64 MiB response is teed to a consumer that stalls while the
/// client reads at 1 MB/s. The client keeps its rate (8 s at 1 MB/s gets
/// 8 MB through, more than the proxy's and the kernel's buffers could
/// hold, so a tee that made the client wait would show), the body arrives
/// exact, and the consumer is cut off. A consumer that keeps up gets every
/// byte.
#[test]
fn stalled_tee_consumer_is_cut_off_not_the_client() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start_bin(&example_bin("module_lab"), &config(&[origin.addr("a")]));
    let addr = shoal.addr("web");
    let status = || String::from_utf8(send(addr, "GET /lab/status HTTP/1.1\r\nHost: t\r\n\r\n").body).unwrap();
    let size = 64usize << 20;

    // A small receive buffer: the client's pace reaches shoal quickly.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    write!(s, "GET /lab/tee?size={size}&stall=3000&limit=2097152 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::with_capacity(size + 4096);
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let window = Duration::from_secs(8);
    // 1 MB/s: never ahead of the schedule (catching up at once when behind).
    while start.elapsed() < window {
        let due = (start.elapsed().as_secs_f64() * 1_000_000.0) as usize;
        if got.len() >= due {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let want = (due - got.len()).min(buf.len());
        let n = s.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let paced = got.len();
    s.read_to_end(&mut got).unwrap();
    assert!(paced >= 7_000_000, "the client got only {paced} bytes in 8 s at 1 MB/s: the tee held it back");
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&got[..head_end]));
    assert_eq!(got.len() - head_end, size, "body length");
    assert!(got[head_end..] == origin_body(size)[..], "body bytes");
    let st = poll(Duration::from_secs(30), "the stalled consumer to see its cut-off", || {
        let st = status();
        st.contains("tee_cut_off=1").then_some(st)
    });
    assert!(st.contains("tee_end=0"), "{st}");

    // A consumer that keeps up reads the whole body.
    let r = send(addr, "GET /lab/tee?size=1048576&chunked=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (200, 1 << 20));
    let st = poll(Duration::from_secs(30), "the consumer to finish", || {
        let st = status();
        st.contains("tee_end=1").then_some(st)
    });
    assert!(st.contains("tee_bytes=1048576") && st.contains("tee_cut_off=1"), "{st}");
}

/// Proof 2: the driver calls no feature by name. Persistence, the
/// forwarding headers, error pages, the access log and the PROXY protocol
/// are modules (src/proxy/modules/); the driver only runs phases.
#[test]
fn the_driver_names_no_feature() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/proxy/pipeline.rs")).unwrap();
    let code: String =
        src.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| l.to_ascii_lowercase() + "\n").collect();
    for word in [
        "persist",
        "access_log",
        "error_page",
        "error_file",
        "forwarded",
        "ssl_header",
        "proxy_protocol",
        "via",
        "cookie",
        "modules::",
    ] {
        assert!(!code.contains(word), "src/proxy/pipeline.rs names {word:?}");
    }
}
