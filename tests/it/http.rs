//! The HTTP/1.1 proxy (B5, B10–B12, C4–C6) with real clients (curl and raw
//! sockets) and shoal-origin nodes.

use crate::support::*;
use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The body shoal-origin sends for `size=n`: byte i is b'a' + i % 26.
fn origin_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

pub fn http_config(nodes: &[SocketAddr], vs_extra: &str, pool_extra: &str) -> String {
    let nodes: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n{vs_extra}\n\n[pools.p]\nnodes = [{}]\n{pool_extra}\n",
        nodes.join(", ")
    )
}

fn url(shoal: &Shoal, path: &str) -> String {
    format!("http://{}{path}", shoal.addr("web"))
}

/// curl reuses its client connection; shoal reuses node connections: 200
/// keepalive requests reach two nodes over at most a handful of node
/// connections; bodies arrive exactly, content-length and chunked.
#[test]
fn keepalive_both_sides_and_exact_bodies() {
    let origin = Origin::start("http", &["a", "b"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a"), origin.addr("b")], "", ""));
    let (ok, out, err) = curl(&["-v", &url(&shoal, "/1?size=10"), &url(&shoal, "/2?size=70000&chunked=1")]);
    assert!(ok, "{err}");
    assert!(err.contains("Re-using existing connection"), "curl did not reuse its connection:\n{err}");
    let mut want = origin_body(10);
    want.extend(origin_body(70000));
    assert_eq!(out, want);

    let mut s = connect(shoal.addr("web"));
    let mut conns = HashSet::new();
    let mut nodes = HashSet::new();
    for i in 0..200 {
        write!(s, "GET /k{i}?size={i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), i);
        nodes.insert(r.header("x-node").unwrap().to_string());
        conns.insert(r.header("x-conn").unwrap().to_string());
    }
    assert_eq!(nodes.len(), 2, "round robin over both nodes");
    assert!(conns.len() <= 4, "200 sequential requests opened {} node connections", conns.len());
}

/// Chunked upload and `Expect: 100-continue` with curl; HEAD and
/// pipelined requests answered in order.
#[test]
fn uploads_expect_continue_head_and_pipelining() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a")], "", ""));
    let dir = TempDir::new();
    let data = pattern(3 << 20, 21);
    let file = dir.0.join("up.bin");
    std::fs::write(&file, &data).unwrap();
    let at = format!("@{}", file.display());
    // Chunked upload.
    let (ok, _, err) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &at,
        &url(&shoal, "/up"),
    ]);
    assert!(ok, "{err}");
    // Expect: 100-continue: curl waits up to 20 s for the 100 unless shoal forwards it.
    let t = Instant::now();
    let (ok, headers, err) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--expect100-timeout",
        "20",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &at,
        &url(&shoal, "/up"),
    ]);
    assert!(ok, "{err}");
    assert!(t.elapsed() < Duration::from_secs(15), "100 Continue was not forwarded ({:?})", t.elapsed());
    let headers = String::from_utf8(headers).unwrap();
    assert!(headers.contains("HTTP/1.1 100 Continue"), "{headers}");
    assert!(headers.to_ascii_lowercase().contains(&format!("x-body-sha256: {}", sha256(&data))), "{headers}");

    // HEAD with curl: the length of the GET, no body.
    let (ok, out, err) = curl(&["-sI", &url(&shoal, "/h?size=100")]);
    assert!(ok, "{err}");
    let out = String::from_utf8(out).unwrap().to_ascii_lowercase();
    assert!(out.starts_with("http/1.1 200") && out.contains("content-length: 100"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "HEAD response carried a body: {out:?}");

    let mut s = connect(shoal.addr("web"));
    s.write_all(b"HEAD /h?size=100 HTTP/1.1\r\nHost: t\r\n\r\nGET /g?size=5 HTTP/1.1\r\nHost: t\r\n\r\nPOST /p?echo=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nping").unwrap();
    let head = read_response(&mut s, true);
    assert_eq!((head.status, head.header("content-length")), (200, Some("100")));
    let get = read_response(&mut s, false);
    assert_eq!(get.body, b"abcde");
    let post = read_response(&mut s, false);
    assert_eq!(post.body, b"ping");
    assert_eq!(head.header("x-conn"), post.header("x-conn"), "pipelined requests share one node connection");
}

/// A 1 GiB download and a 1 GiB upload, content-length and chunked, pass
/// byte-exact while shoal's peak RSS stays under 64 MiB.
#[test]
fn gigabyte_bodies_exact_with_bounded_memory() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a")], "", ""));
    let gib: u64 = 1 << 30;
    // Downloads: the body is b'a' + i % 26; hash it as it streams.
    let expect = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let block = origin_body(26 * 40960);
        let mut left = gib;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            h.update(&block[..n]);
            left -= n as u64;
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    for chunked in ["0", "1"] {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "300", &url(&shoal, &format!("/big?size={gib}&chunked={chunked}"))]);
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let (total, got) = sha256_stream(&mut out);
        assert!(child.wait().unwrap().success());
        assert_eq!((total, got), (gib, expect.clone()), "download chunked={chunked}");
    }
    // Uploads: the origin hashes what arrives.
    for chunked in [false, true] {
        let mut s = connect(shoal.addr("web"));
        let te = if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {gib}") };
        write!(s, "PUT /up HTTP/1.1\r\nHost: t\r\n{te}\r\n\r\n").unwrap();
        let block = pattern(1 << 20, 77);
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for _ in 0..1024 {
            if chunked {
                write!(s, "{:x}\r\n", block.len()).unwrap();
            }
            s.write_all(&block).unwrap();
            if chunked {
                s.write_all(b"\r\n").unwrap();
            }
            h.update(&block);
        }
        if chunked {
            s.write_all(b"0\r\n\r\n").unwrap();
        }
        let r = read_response(&mut s, false);
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r.header("x-body-len"), Some(gib.to_string().as_str()), "upload chunked={chunked}");
        assert_eq!(r.header("x-body-sha256"), Some(want.as_str()), "upload chunked={chunked}");
    }
    let rss = peak_rss_kib(shoal.proc.child.id());
    assert!(rss < 64 * 1024, "shoal peak RSS {rss} KiB");
}

/// No node, a node answering 503, a node too slow for max_reply_time: 502,
/// 503 (forwarded after retrying the other node) and 504, with the
/// virtual server's error page.
#[test]
fn node_failures_map_to_statuses_and_error_page() {
    let dir = TempDir::new();
    dir.write("sorry.html", "<h1>sorry</h1>\n");
    let origin = Origin::start("http", &["a", "b"]);
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let page = dir.0.join("sorry.html");
    let cfg = format!(
        "[global]\nshards = 2\n\n\
         [virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nerror_file = \"{}\"\n\n\
         [virtual_servers.nodead]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"dead\"\n\n\
         [pools.p]\nnodes = [\"{}\", \"{}\"]\nmax_reply_time = \"500ms\"\nnode_connection_attempts = 100\n\n\
         [pools.dead]\nnodes = [\"{dead}\"]\n",
        page.display(),
        origin.addr("a"),
        origin.addr("b")
    );
    let shoal = Shoal::start(&cfg);
    let get = |vs: &str, path: &str| {
        let mut s = connect(shoal.addr(vs));
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        read_response(&mut s, false)
    };
    let r = get("nodead", "/");
    assert_eq!(r.status, 502);
    let r = get("web", "/x?status=503");
    assert_eq!(r.status, 503, "both nodes answer 503: the last is forwarded");
    assert!(r.header("x-node").is_some(), "the node's own 503 is forwarded");
    let t = Instant::now();
    let r = get("web", "/slow?delay=3000");
    assert_eq!(r.status, 504);
    assert_eq!(r.body, b"<h1>sorry</h1>\n");
    assert!(t.elapsed() < Duration::from_millis(2900), "504 after {:?}: both nodes waited 500 ms", t.elapsed());
    shoal.proc.wait_line(STARTUP, |l| l.contains("failure: node answered 503"));
    shoal.proc.wait_line(STARTUP, |l| l.contains("failure: no reply within max_reply_time"));
}

/// Malformed and hostile requests: each gets its status, none reaches a
/// node, and shoal closes the connection after answering.
#[test]
fn malformed_and_hostile_requests_table() {
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let shoal = Shoal::start(&http_config(
        &[origin.addr("a")],
        "max_header_size = 4096\nmax_headers = 20\nmax_uri_length = 512\nmax_body_size = 1000",
        "",
    ));
    let ok = "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(600));
    let huge_header = format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "h".repeat(5000));
    let flood =
        format!("GET /x HTTP/1.1\r\nHost: a\r\n{}\r\n", (0..30).map(|i| format!("X-{i}: 1\r\n")).collect::<String>());
    let endless_line = format!("GET /{}", "e".repeat(5000));
    let cases: Vec<(&str, String, Vec<u16>)> = vec![
        ("CL and TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), vec![400]),
        ("TE and CL", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n".into(), vec![400]),
        ("conflicting CL", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".into(), vec![400]),
        ("CL plus sign", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd".into(), vec![400]),
        ("CL negative", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -4\r\n\r\nabcd".into(), vec![400]),
        ("CL list", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd".into(), vec![400]),
        ("CL hex", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd".into(), vec![400]),
        ("CL overflow", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 184467440737095516160\r\n\r\n".into(), vec![400]),
        ("TE final not chunked", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n".into(), vec![400]),
        ("TE unknown", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".into(), vec![400]),
        ("TE chunked twice", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), vec![400]),
        ("TE lookalike", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".into(), vec![400]),
        ("TE on HTTP/1.0", "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), vec![400]),
        ("chunk size negative", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n".into(), vec![400]),
        ("chunk size leading space", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n".into(), vec![400]),
        ("chunk size overflow", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n".into(), vec![400]),
        ("chunk size junk", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".into(), vec![400]),
        ("chunk data overrun", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n".into(), vec![400]),
        ("chunk bare LF", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n".into(), vec![400]),
        ("obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n".into(), vec![400]),
        ("space before colon", "GET /x HTTP/1.1\r\nHost : a\r\n\r\n".into(), vec![400]),
        ("NUL in value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n".into(), vec![400]),
        ("CR in value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n".into(), vec![400]),
        ("bad method", "G(T /x HTTP/1.1\r\nHost: a\r\n\r\n".into(), vec![400]),
        ("unsupported version", "GET /x HTTP/2.0\r\nHost: a\r\n\r\n".into(), vec![505]),
        ("garbage version", "GET /x HTXP/1.1\r\nHost: a\r\n\r\n".into(), vec![400]),
        ("missing Host", "GET /x HTTP/1.1\r\nX-A: 1\r\n\r\n".into(), vec![400]),
        ("two Hosts", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), vec![400]),
        ("relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n".into(), vec![400]),
        ("fragment in target", "GET /x#frag HTTP/1.1\r\nHost: a\r\n\r\n".into(), vec![400]),
        ("asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n".into(), vec![400]),
        ("DEL in target", "GET /x\x7f HTTP/1.1\r\nHost: a\r\n\r\n".into(), vec![400]),
        ("bad header name", "GET /x HTTP/1.1\r\nHost: a\r\nX-A@: 1\r\n\r\n".into(), vec![400]),
        ("empty header name", "GET /x HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n".into(), vec![400]),
        ("CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n".into(), vec![405]),
        ("unknown Expect", "GET /x HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n".into(), vec![417]),
        ("URI too long", long_uri, vec![414]),
        ("request line never ends", endless_line, vec![414]),
        ("header too large", huge_header, vec![431]),
        ("header count flood", flood, vec![431]),
        ("body over max_body_size", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n".into(), vec![413]),
        ("pipelined smuggling: CL+TE after a good request", format!("{ok}POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"), vec![200, 400]),
        ("pipelined smuggling: two CLs after a good request", format!("{ok}POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"), vec![200, 400]),
    ];
    assert!(cases.len() >= 30);
    for (name, raw, statuses) in &cases {
        let mut s = connect(shoal.addr("web"));
        s.write_all(raw.as_bytes()).unwrap();
        for want in statuses {
            let r = read_response(&mut s, false);
            assert_eq!(r.status, *want, "case {name:?}");
            if *want >= 400 {
                assert_eq!(r.header("connection"), Some("close"), "case {name:?}");
                // shoal's own answers carry its clock (RFC 9110 §6.6.1).
                let date = r.header("date").unwrap_or_else(|| panic!("case {name:?}: no Date"));
                let at =
                    httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("case {name:?}: Date {date:?}: {e}"));
                let skew = std::time::SystemTime::now().duration_since(at).unwrap_or_default();
                assert!(skew < Duration::from_secs(5), "case {name:?}: Date {date} is {skew:?} old");
            }
            if *want == 405 {
                assert!(r.header("allow").is_some_and(|a| a.contains("GET")), "case {name:?}: 405 without Allow");
            }
        }
        // Nothing further: shoal closed the connection.
        assert!(read_all(&mut s).is_empty(), "case {name:?}: more data after the error response");
    }
    // Only the legitimate /ok requests reached the node (the origin's log
    // arrives through a pipe: wait for both lines before judging).
    origin.proc.wait_count(2, STARTUP, |l| l.starts_with("request "));
    let reached: Vec<String> = origin.proc.lines().into_iter().filter(|l| l.starts_with("request ")).collect();
    assert!(reached.iter().all(|l| l.contains(" GET /ok ")), "hostile requests reached the node: {reached:?}");
    assert_eq!(reached.len(), 2);
}

/// A client that stops mid-head gets 408 after header_read_timeout; one
/// that idles between requests is closed quietly after
/// client_keepalive_timeout.
#[test]
fn header_read_and_keepalive_timeouts() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&http_config(
        &[origin.addr("a")],
        "header_read_timeout = \"400ms\"\nclient_keepalive_timeout = \"300ms\"",
        "",
    ));
    let mut s = connect(shoal.addr("web"));
    let t = Instant::now();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: ").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 408);
    assert!(t.elapsed() >= Duration::from_millis(390), "{:?}", t.elapsed());
    let mut s = connect(shoal.addr("web"));
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    let t = Instant::now();
    assert!(read_all(&mut s).is_empty(), "idle keepalive connection closed without a response");
    assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
}

/// `Upgrade: websocket`: the node's 101 goes back to a real WebSocket
/// client, and messages then flow both ways through shoal.
#[test]
fn websocket_upgrade_relays_messages() {
    let origin = Origin::start("websocket", &["ws1"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("ws1")], "", ""));
    let stream = connect(shoal.addr("web"));
    let (mut ws, resp) =
        tungstenite::client(format!("ws://{}/chat", shoal.addr("web")), stream).expect("handshake through shoal");
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers().get("x-node").map(|v| v.to_str().unwrap()), Some("ws1"));
    for i in 0..50 {
        let msg = format!("message {i} {}", "x".repeat(i * 100));
        ws.send(tungstenite::Message::text(msg.clone())).unwrap();
        assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), msg);
    }
    let big = pattern(2 << 20, 5);
    ws.send(tungstenite::Message::binary(big.clone())).unwrap();
    assert_eq!(sha256(&ws.read().unwrap().into_data()), sha256(&big));
    ws.close(None).unwrap();
}

/// PROXY protocol v1 and v2 to nodes (B9), on HTTP and generic virtual
/// servers: the node learns the real client address.
#[test]
fn proxy_protocol_to_nodes() {
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--expect-proxy"]);
    let a = origin.addr("a");
    let mut cfg = String::from("[global]\nshards = 2\n");
    for (name, proto, version) in [("h1", "http", "v1"), ("h2", "http", "v2"), ("g2", "client_first", "v2")] {
        cfg += &format!(
            "\n[virtual_servers.{name}]\nlisten = \"127.0.0.1:0\"\nprotocol = \"{proto}\"\npool = \"{name}\"\n\n[pools.{name}]\nnodes = [\"{a}\"]\nproxy_protocol = \"{version}\"\n"
        );
    }
    let shoal = Shoal::start(&cfg);
    for vs in ["h1", "h2", "g2"] {
        let mut s = connect(shoal.addr(vs));
        let me = s.local_addr().unwrap().to_string();
        for i in 0..3 {
            write!(s, "GET /p{i}?size=3 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let r = read_response(&mut s, false);
            assert_eq!(
                (r.status, r.header("x-proxy-src")),
                (200, Some(me.as_str())),
                "virtual server {vs}, request {i}"
            );
        }
    }
}

/// max_connections_per_client: past the limit a client's new connection
/// gets 429 and is closed; once one of its connections closes it is served
/// again.
#[test]
fn connections_per_client_address_limit() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a")], "max_connections_per_client = 4\nshards = [0]", ""));
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect(shoal.addr("web"));
            write!(s, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut s, false).status, 200);
            s
        })
        .collect();
    let mut extra = connect(shoal.addr("web"));
    let r = read_response(&mut extra, false);
    assert_eq!((r.status, r.header("connection")), (429, Some("close")));
    drop(held.pop());
    poll(STARTUP, "a slot for the client after one connection closed", || {
        let mut s = connect(shoal.addr("web"));
        write!(s, "GET /again HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
        (read_response(&mut s, false).status == 200).then_some(())
    });
}

/// max_connections_per_node: a node limited to 2 concurrent requests never
/// sees more, whatever the client concurrency and across both shards;
/// extra requests wait in the queue and are served; past queue_timeout they
/// get 503.
#[test]
fn max_connections_per_node_queues_requests() {
    /// `n` GETs at once, each on its own connection; their statuses.
    fn concurrent_gets(addr: SocketAddr, n: usize) -> Vec<u16> {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut s = connect(addr);
                    write!(s, "GET /q{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                    read_response(&mut s, false).status
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    }

    let origin =
        Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--delay", "100", "--log-requests"]);
    let shoal =
        Shoal::start(&http_config(&[origin.addr("a")], "", "max_connections_per_node = 2\nqueue_timeout = \"20s\""));
    let addr = shoal.addr("web");
    let statuses = concurrent_gets(addr, 8);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    origin.proc.wait_count(8, STARTUP, |l| l.starts_with("request "));
    let max_inflight = origin
        .proc
        .lines()
        .iter()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("inflight=")).and_then(|v| v.parse::<u32>().ok()))
        .max()
        .unwrap();
    assert!(max_inflight <= 2, "the node saw {max_inflight} concurrent requests");

    // Two nodes, concurrent keepalive clients: slots are given back on
    // every path. (A leaked slot would leave a node "full" for good, and
    // the other node would then take everything.)
    let two = Origin::start("http", &["x", "y"]);
    let shoal2 = Shoal::start(&http_config(
        &[two.addr("x"), two.addr("y")],
        "",
        "max_connections_per_node = 4\nqueue_timeout = \"2s\"",
    ));
    let addr2 = shoal2.addr("web");
    let hs: Vec<_> = (0..6)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = connect(addr2);
                (0..200)
                    .map(|i| {
                        write!(s, "GET /c{c}/{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                        let r = read_response(&mut s, false);
                        (r.status, r.header("x-node").unwrap_or("-").to_string())
                    })
                    .collect::<Vec<(u16, String)>>()
            })
        })
        .collect();
    let mut late_nodes = std::collections::HashSet::new();
    for h in hs {
        let rs = h.join().unwrap();
        assert!(rs.iter().all(|(s, _)| *s == 200), "{rs:?}");
        late_nodes.extend(rs[150..].iter().map(|(_, n)| n.clone()));
    }
    assert_eq!(late_nodes.len(), 2, "late requests reached only {late_nodes:?}");

    // A short queue timeout: requests that cannot get a slot in time get 503.
    let shoal =
        Shoal::start(&http_config(&[origin.addr("a")], "", "max_connections_per_node = 1\nqueue_timeout = \"50ms\""));
    let addr = shoal.addr("web");
    let statuses = concurrent_gets(addr, 4);
    assert!(statuses.contains(&200) && statuses.contains(&503), "{statuses:?}");
}

/// Large Content-Length bodies are spliced between the sockets (zero
/// copy): byte-exact both ways on one keepalive connection, with the
/// copying path (`splice = false`) beside it. A node that closes or stalls
/// mid-body closes the client connection short of the declared length,
/// after every byte the node did send, and is logged as a node failure.
#[test]
fn spliced_bodies_exact_and_failures_close_the_client() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let cfg = format!(
        "{}\n[virtual_servers.copy]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nsplice = false\n",
        http_config(&[origin.addr("a")], "server_idle_timeout = \"500ms\"", "")
    );
    let shoal = Shoal::start(&cfg);
    for vs in ["web", "copy"] {
        let mut s = connect(shoal.addr(vs));
        for size in [3_000_000usize, 200_000, 100, 5_000_000] {
            write!(s, "GET /d?size={size} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let r = read_response(&mut s, false);
            assert_eq!(r.status, 200, "{vs} size {size}");
            assert!(r.body == origin_body(size), "{vs}: body of {size} bytes differs");
        }
        let up = pattern(3_000_000, 9);
        write!(s, "PUT /u HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", up.len()).unwrap();
        s.write_all(&up).unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.header("x-body-len"), Some("3000000"), "{vs} upload");
        assert_eq!(r.header("x-body-sha256"), Some(sha256(&up).as_str()), "{vs} upload");
        write!(s, "GET /again?size=10 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).body, origin_body(10), "{vs}: keepalive after large bodies");
    }

    // The node closes after 1,000,000 of 4,000,000 bytes: the client gets
    // all 1,000,000, then the connection closes.
    let mut s = connect(shoal.addr("web"));
    write!(s, "GET /cut?size=4000000&cut=1000000 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.header("content-length"), Some("4000000"));
    let got = read_all(&mut s);
    assert!(got == origin_body(1_000_000), "cut body: {} bytes, expected the node's 1000000 exactly", got.len());
    shoal.proc.wait_line(STARTUP, |l| l.contains("failure: node closed during the response body"));

    // The node stalls after its head: server_idle_timeout (500 ms) closes.
    let mut s = connect(shoal.addr("web"));
    let t = Instant::now();
    write!(s, "GET /stall?size=4000000&slow=3000 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.status, 200);
    assert!(read_all(&mut s).is_empty());
    assert!(t.elapsed() < Duration::from_millis(2500), "closed after {:?}", t.elapsed());
    shoal
        .proc
        .wait_line(STARTUP, |l| l.contains("failure: node idle past server_idle_timeout during the response body"));
}

/// Idle keepalive connections are parked after 200 ms (their buffers and
/// request task freed) and served again when the next request arrives:
/// single and pipelined requests after an idle gap, a head split across
/// the gap, and the keepalive timeout counted across the parked time.
#[test]
fn parked_keepalive_connections_resume_exactly() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a")], "client_keepalive_timeout = \"2s\"", ""));
    let mut conns: Vec<TcpStream> = (0..20).map(|_| connect(shoal.addr("web"))).collect();
    for round in 0..3 {
        for (i, s) in conns.iter_mut().enumerate() {
            let n = 10 + i + round;
            write!(s, "GET /p?size={n} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(read_response(s, false).body, origin_body(n), "round {round} conn {i}");
        }
        // Idle past the parking delay (the behaviour under test, not a
        // synchronisation).
        std::thread::sleep(Duration::from_millis(400));
    }
    // Two pipelined requests into a parked connection.
    let s = &mut conns[0];
    write!(s, "GET /a?size=5 HTTP/1.1\r\nHost: t\r\n\r\nGET /b?size=7 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(s, false).body, origin_body(5));
    assert_eq!(read_response(s, false).body, origin_body(7));
    // A head split across a parked gap.
    std::thread::sleep(Duration::from_millis(400));
    let s = &mut conns[1];
    s.write_all(b"GET /split?size=9 HT").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    s.write_all(b"TP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(s, false).body, origin_body(9));
    // The keepalive timeout (2 s) counts across the parked time.
    let s = &mut conns[2];
    write!(s, "GET /last?size=3 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(s, false).body, origin_body(3));
    let t = Instant::now();
    assert!(read_all(s).is_empty(), "closed without a byte");
    let idle = t.elapsed();
    assert!(idle > Duration::from_millis(1800) && idle < Duration::from_secs(4), "closed after {idle:?}");
}

/// Keepalive POSTs stay on their connection: a node's response that
/// arrives in the same scheduling round as the end of the request body
/// must not be taken for an early answer (which closes the connection).
#[test]
fn keepalive_posts_keep_their_connection() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&http_config(&[origin.addr("a")], "", ""));
    let body = pattern(100, 3);
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let addr = shoal.addr("web");
            let body = body.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut req =
                    format!("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                req.extend_from_slice(&body);
                for i in 0..4000 {
                    s.write_all(&req).unwrap();
                    let r = read_response(&mut s, false);
                    assert_eq!(r.status, 200, "client {k} request {i}");
                    assert_eq!(r.header("x-body-sha256"), Some(sha256(&body).as_str()), "client {k} request {i}");
                    assert_eq!(
                        r.header("connection"),
                        None,
                        "client {k} request {i}: shoal closed a keepalive connection"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
