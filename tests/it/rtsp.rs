//! RTSP virtual servers (M2): `ffprobe` and `ffmpeg` (Debian's ffmpeg)
//! describe and play a stream of GStreamer's gst-rtsp-server through
//! shoal; the seeds' rule redirects `DESCRIBE` to the node its pool chose
//! and the client plays from that node; interleaved RTP passes byte for
//! byte both ways; sessions keep their node by the `Session` field; rules
//! read and change requests and responses; malformed messages from
//! either side get their status, are counted and close only their
//! connection; and the configuration refuses what does not apply.

use crate::support::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NODE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rtsp/rtsp_node.py");

/// Whether ffprobe, ffmpeg and gst-rtsp-server (Debian's python3 with its
/// GObject bindings) are here; CI requires them (SHOAL_REQUIRE_RTSP).
fn have_media_tools() -> bool {
    let gst = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer";
    have_probe(
        "gst-rtsp-server for /usr/bin/python3 (Debian: python3-gi gir1.2-gst-rtsp-server-1.0)",
        Command::new("/usr/bin/python3").args(["-c", gst]),
        "SHOAL_REQUIRE_RTSP",
    ) && have_tool("ffprobe", "SHOAL_REQUIRE_RTSP", "Debian package ffmpeg")
}

/// A gst-rtsp-server node serving `/stream` at `width`x`height`; its
/// stdout says each request it served.
struct GstNode {
    proc: Proc,
    addr: SocketAddr,
}

impl GstNode {
    fn start(width: u32, height: u32) -> GstNode {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args([NODE_SCRIPT, "0", &width.to_string(), &height.to_string()]);
        let proc = Proc::spawn(cmd, true);
        let ready = proc.wait_line(STARTUP, |l| l.starts_with("ready "));
        let port: u16 = ready[6..].trim().parse().unwrap();
        GstNode { proc, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    fn served(&self, method: &str) -> usize {
        self.proc.count(|l| l.starts_with(&format!("{method} ")))
    }
}

/// ffprobe's `codec,width,height` of `url`'s stream (over interleaved
/// TCP), and what it logged.
fn ffprobe(url: &str, user_agent: &str) -> (String, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "info", "-timeout", "20000000", "-rtsp_transport", "tcp", "-user_agent", user_agent])
        .args(["-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", url])
        .output()
        .expect("ffprobe");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "ffprobe {url} failed:\n{stderr}");
    (stdout, stderr)
}

/// A proof that `url` plays: ffmpeg decodes `frames` video frames from it.
fn ffmpeg_plays(url: &str, frames: u32) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-timeout", "20000000", "-rtsp_transport", "tcp", "-i", url])
        .args(["-frames:v", &frames.to_string(), "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg {url}: {}", String::from_utf8_lossy(&out.stderr));
}

fn rtsp_stats(shoal: &Shoal, vs: &str) -> serde_json::Value {
    shoal.status()["virtual_servers"][vs]["rtsp"].clone()
}

fn api_toml() -> String {
    api_section()
}

/// ffprobe describes the stream and ffmpeg plays it through shoal, over
/// interleaved TCP: the messages and the RTP frames are counted, and the
/// access log has a line per request.
#[test]
fn ffprobe_describes_and_ffmpeg_plays_through_shoal() {
    if !have_media_tools() {
        return;
    }
    let node = GstNode::start(320, 240);
    let shoal = Shoal::start(&format!(
        "[virtual_servers.media]\nlisten = \"127.0.0.1:0\"\nprotocol = \"rtsp\"\npool = \"media\"\naccess_log = \"access.log\"\n\n\
         [pools.media]\nnodes = [\"{}\"]\n\n{}",
        node.addr,
        api_toml()
    ));
    let url = format!("rtsp://{}/stream", shoal.addr("media"));
    let (streams, _) = ffprobe(&url, "Lavf");
    assert_eq!(streams, "mjpeg,320,240");
    ffmpeg_plays(&url, 20);
    assert_eq!(node.served("PLAY"), 2, "both clients played through shoal");
    let st = poll(Duration::from_secs(10), "the counts", || {
        let st = rtsp_stats(&shoal, "media");
        (st["responses"].as_u64() >= Some(8)).then_some(st)
    });
    // Every request got its response, except perhaps each client's last:
    // FFmpeg sends TEARDOWN without waiting for its answer and closes, so
    // the node's answer may find the client gone.
    let (requests, responses) = (st["requests"].as_u64().unwrap(), st["responses"].as_u64().unwrap());
    assert!(responses <= requests && requests - responses <= 2, "{st}");
    assert!(st["interleaved_frames"].as_u64() > Some(20), "RTP came over the connection: {st}");
    assert_eq!((st["client_malformed"].as_u64(), st["node_malformed"].as_u64()), (Some(0), Some(0)));
    let log = shoal.dir.0.join("access.log");
    let text = poll(Duration::from_secs(10), "access log lines", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        (t.matches("\"PLAY ").count() == 2).then_some(t)
    });
    assert!(text.contains(&format!("\"DESCRIBE {url} RTSP/1.0\" 200 ")), "{text}");
}

/// The seeds' RTSP example: the request rule picks the pool by
/// `User-Agent`, the response rule answers `DESCRIBE` with a redirect to
/// the node that pool chose, and the client plays from that node
/// directly: shoal sees no `SETUP` or `PLAY`.
#[test]
fn seeds_rule_redirects_describe_to_the_chosen_node() {
    if !have_media_tools() {
        return;
    }
    let quicktime = GstNode::start(320, 240);
    let helix = GstNode::start(640, 480);
    let shoal = Shoal::start(&format!(
        "[virtual_servers.media]\nlisten = \"127.0.0.1:0\"\nprotocol = \"rtsp\"\npool = \"Windows Media Servers\"\n\
         request_rules = [\"choose\"]\nresponse_rules = [\"redirect\"]\naccess_log = \"access.log\"\n\n\
         [pools.\"QuickTime Servers\"]\nnodes = [\"{}\"]\n\n[pools.\"Helix Servers\"]\nnodes = [\"{}\"]\n\n\
         [pools.\"Windows Media Servers\"]\nnodes = [\"127.0.0.1:9\"]\n\n\
         [rules.choose]\nsource = '''\n{}'''\n\n[rules.redirect]\nsource = '''\n{}'''\n\n{}",
        quicktime.addr,
        helix.addr,
        SEEDS_RTSP_REQUEST,
        SEEDS_RTSP_RESPONSE,
        api_toml()
    ));
    let url = format!("rtsp://{}/stream", shoal.addr("media"));
    for (agent, node, size) in [("RealMedia Player", &helix, "640,480"), ("QuickTime/7.6.9", &quicktime, "320,240")] {
        let (streams, log) = ffprobe(&url, agent);
        assert_eq!(streams, format!("mjpeg,{size}"), "{agent}");
        assert!(log.contains(&format!("Redirecting to rtsp://{}/stream", node.addr)), "{agent}:\n{log}");
        assert_eq!((node.served("SETUP"), node.served("PLAY")), (1, 1), "{agent} played from its node");
    }
    let st = rtsp_stats(&shoal, "media");
    assert_eq!(st["rule_answers"], 2, "{st}");
    let text = std::fs::read_to_string(shoal.dir.0.join("access.log")).unwrap_or_default();
    assert_eq!(text.matches(" 302 ").count(), 2, "{text}");
    assert!(!text.contains("\"SETUP ") && !text.contains("\"PLAY "), "the clients played elsewhere:\n{text}");
}

/// The seeds' request rule, with the `pool.use(` calls their text lost
/// restored (docs/rules.md says what changed).
const SEEDS_RTSP_REQUEST: &str = r#"$client = rtsp.getRequestHeader( "User-Agent" );

# Choose the pool based on the User-Agent
if( string.Contains( $client, "RealMedia" ) ) {
   pool.use( "Helix Servers" );
} else if ( string.Contains( $client, "QuickTime" ) ) {
   pool.use( "QuickTime Servers" );
} else if ( string.Contains( $client, "WMPlayer" ) ) {
   pool.use( "Windows Media Servers" );
}
"#;

/// The seeds' response rule; its `$path`, never set in the seeds, is the
/// request's path.
const SEEDS_RTSP_RESPONSE: &str = r#"# Wait for a DESCRIBE response since this contains the stream
$method = rtsp.getMethod();
if( $method != "DESCRIBE" ) break;

# Get the chosen node
$node = connection.getnode();
$path = rtsp.getPath();

# Instruct the client to retry directly against the chosen node
rtsp.redirect( "rtsp://" . $node . $path );
"#;

// ---------------------------------------------------------------------
// A scripted RTSP node, for what a real server will not do on demand.

/// One message read by [`read_message`]: head (start line and fields) and body.
struct Msg {
    head: String,
    body: Vec<u8>,
}

impl Msg {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn start(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
}

/// What [`read_frame`] read.
enum Got {
    Msg(Msg),
    Interleaved(u8, Vec<u8>),
    Closed,
}

fn read_frame(s: &mut impl Read) -> Got {
    let mut first = [0u8; 1];
    if s.read_exact(&mut first).is_err() {
        return Got::Closed;
    }
    if first[0] == b'$' {
        let mut h = [0u8; 3];
        s.read_exact(&mut h).unwrap();
        let mut payload = vec![0; usize::from(u16::from_be_bytes([h[1], h[2]]))];
        s.read_exact(&mut payload).unwrap();
        return Got::Interleaved(h[0], payload);
    }
    let mut head = vec![first[0]];
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).is_err() {
            return Got::Closed;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut m = Msg { head, body: Vec::new() };
    let len: usize = m.header("content-length").map_or(0, |v| v.parse().unwrap());
    m.body = vec![0; len];
    s.read_exact(&mut m.body).unwrap();
    Got::Msg(m)
}

fn read_message(s: &mut impl Read) -> Msg {
    match read_frame(s) {
        Got::Msg(m) => m,
        Got::Interleaved(c, p) => {
            panic!("an interleaved frame (channel {c}, {} bytes) where a message was due", p.len())
        }
        Got::Closed => panic!("closed where a message was due"),
    }
}

/// A scripted node named `name`: answers every request `200 OK` with its
/// `CSeq`, `X-Node: name` and `X-Seen-Path` (the request's URI); `SETUP`
/// gets `Session: name-N`; `DESCRIBE` a small SDP body; `PLAY` with
/// `X-Frames: N` is followed by N interleaved frames on channel 0
/// (payload `pattern(1000 + i, i)`); `GET_PARAMETER` answers the count and
/// SHA-256 of the interleaved payload bytes received so far; a request
/// with `X-Garbage` gets a malformed status line. Every request head is
/// kept in `seen`.
struct ScriptNode {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ScriptNode {
    fn start(name: &'static str) -> ScriptNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let sessions = Arc::new(Mutex::new(0u32));
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (seen, sessions) = (seen2.clone(), sessions.clone());
                std::thread::spawn(move || script_conn(name, conn, &seen, &sessions));
            }
        });
        ScriptNode { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn script_conn(name: &str, mut conn: TcpStream, seen: &Mutex<Vec<String>>, sessions: &Mutex<u32>) {
    let mut received: Vec<u8> = Vec::new();
    let mut frames_in = 0usize;
    loop {
        let m = match read_frame(&mut conn) {
            Got::Closed => return,
            Got::Interleaved(_, p) => {
                received.extend_from_slice(&p);
                frames_in += 1;
                continue;
            }
            Got::Msg(m) => m,
        };
        seen.lock().unwrap().push(m.head.clone());
        let mut parts = m.start().split(' ');
        let (method, uri) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        if m.header("x-garbage").is_some() {
            let _ = conn.write_all(b"RTSP/1.0 2x0 Odd\r\n\r\n");
            continue;
        }
        let cseq = m.header("cseq").unwrap_or("0").to_string();
        let mut out = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Node: {name}\r\nX-Seen-Path: {uri}\r\n");
        let mut body = Vec::new();
        match method.as_str() {
            "SETUP" => {
                let mut n = sessions.lock().unwrap();
                *n += 1;
                out += &format!("Session: {name}-{n};timeout=60\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n");
            }
            "DESCRIBE" => {
                body = format!("v=0\r\ns={name}\r\nm=video 0 RTP/AVP 26\r\n").into_bytes();
                out += "Content-Type: application/sdp\r\n";
            }
            "GET_PARAMETER" => body = format!("frames: {frames_in}\r\nsha256: {}\r\n", sha256(&received)).into_bytes(),
            _ => {}
        }
        if let Some(s) = m.header("session") {
            out += &format!("Session: {s}\r\n");
        }
        if !body.is_empty() {
            out += &format!("Content-Length: {}\r\n", body.len());
        }
        out += "\r\n";
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        if conn.write_all(&bytes).is_err() {
            return;
        }
        if method == "PLAY" {
            let n: usize = m.header("x-frames").map_or(0, |v| v.parse().unwrap());
            let mut batch = Vec::new();
            for i in 0..n {
                let p = pattern(1000 + i, i as u64);
                batch.extend_from_slice(&[b'$', 0]);
                batch.extend_from_slice(&(p.len() as u16).to_be_bytes());
                batch.extend_from_slice(&p);
                // Written in odd-sized pieces, so frames straddle reads.
                if batch.len() > 7777 {
                    conn.write_all(&batch).unwrap();
                    batch.clear();
                }
            }
            conn.write_all(&batch).unwrap();
        }
    }
}

/// Send `method uri` with `CSeq: cseq` and `extra` header lines; read the
/// response.
fn request(s: &mut TcpStream, method: &str, uri: &str, cseq: u32, extra: &str) -> Msg {
    s.write_all(format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n").as_bytes()).unwrap();
    let m = read_message(s);
    assert_eq!(m.header("cseq"), Some(cseq.to_string().as_str()), "{}", m.head);
    m
}

fn rtsp_vs(name: &str, pool: &str, extra: &str) -> String {
    format!("[virtual_servers.{name}]\nlisten = \"127.0.0.1:0\"\nprotocol = \"rtsp\"\npool = \"{pool}\"\n{extra}\n")
}

/// Interleaved frames pass byte for byte in both directions, whole or
/// split across reads, between the messages around them.
#[test]
fn interleaved_frames_pass_byte_for_byte_both_ways() {
    let node = ScriptNode::start("a");
    let shoal =
        Shoal::start(&format!("{}[pools.p]\nnodes = [\"{}\"]\n\n{}", rtsp_vs("media", "p", ""), node.addr, api_toml()));
    let mut c = connect(shoal.addr("media"));
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let setup = request(&mut c, "SETUP", "rtsp://x/s/track1", 1, "Transport: RTP/AVP/TCP;interleaved=0-1\r\n");
    let session = setup.header("session").unwrap().split(';').next().unwrap().to_string();
    // Down: 2,000 frames after the PLAY response.
    let play = request(&mut c, "PLAY", "rtsp://x/s", 2, &format!("Session: {session}\r\nX-Frames: 2000\r\n"));
    assert!(play.start().ends_with("200 OK"));
    for i in 0..2000usize {
        match read_frame(&mut c) {
            Got::Interleaved(0, p) => assert!(p == pattern(1000 + i, i as u64), "frame {i} differs"),
            _ => panic!("frame {i}: not an interleaved frame"),
        }
    }
    // Up: 2,000 frames of RTCP-sized payloads, written in pieces that cut
    // frames, then a request after them.
    let mut up = Vec::new();
    let mut payload = Vec::new();
    for i in 0..2000usize {
        let p = pattern(200 + i % 300, 7 + i as u64);
        up.extend_from_slice(&[b'$', 1]);
        up.extend_from_slice(&(p.len() as u16).to_be_bytes());
        up.extend_from_slice(&p);
        payload.extend_from_slice(&p);
    }
    for piece in up.chunks(4099) {
        c.write_all(piece).unwrap();
    }
    let got = request(&mut c, "GET_PARAMETER", "rtsp://x/s", 3, &format!("Session: {session}\r\n"));
    let body = String::from_utf8_lossy(&got.body).to_string();
    assert_eq!(body, format!("frames: 2000\r\nsha256: {}\r\n", sha256(&payload)));
    let st = rtsp_stats(&shoal, "media");
    assert_eq!((st["interleaved_frames"].as_u64(), st["requests"].as_u64()), (Some(4000), Some(3)), "{st}");
}

/// With an `rtsp_session` class, a session's later connections go to the
/// node that issued its `Session`, on any shard; connections with no
/// session are balanced.
#[test]
fn session_field_keeps_the_node_across_connections() {
    let (a, b) = (ScriptNode::start("a"), ScriptNode::start("b"));
    let shoal = Shoal::start(&format!(
        "{}[pools.p]\nnodes = [\"{}\", \"{}\"]\npersistence = \"rtsp\"\n\n\
         [persistence.rtsp]\ntype = \"rtsp_session\"\n\n{}",
        rtsp_vs("media", "p", ""),
        a.addr,
        b.addr,
        api_toml()
    ));
    let mut nodes_of_new = HashMap::new();
    for round in 0..6u32 {
        let mut c = connect(shoal.addr("media"));
        let setup = request(&mut c, "SETUP", "rtsp://x/s/track1", 1, "");
        let node = setup.header("x-node").unwrap().to_string();
        *nodes_of_new.entry(node.clone()).or_insert(0) += 1;
        let session = setup.header("session").unwrap().split(';').next().unwrap().to_string();
        drop(c);
        // Each later connection of the session comes back to its node.
        for n in 0..4 {
            let mut c = connect(shoal.addr("media"));
            let m = request(&mut c, "PLAY", "rtsp://x/s", 2 + n, &format!("Session: {session}\r\n"));
            assert_eq!(m.header("x-node"), Some(node.as_str()), "round {round}: session {session}");
        }
    }
    assert_eq!(nodes_of_new.len(), 2, "new sessions are balanced: {nodes_of_new:?}");
}

/// Request rules read and change the request (path, fields) and may answer
/// it; response rules read and change the response (fields, body, with
/// its Content-Length made right).
#[test]
fn rules_read_and_change_requests_and_responses() {
    let node = ScriptNode::start("a");
    let shoal = Shoal::start(&format!(
        "{}[pools.p]\nnodes = [\"{}\"]\n\n\
         [rules.req]\nsource = '''\n\
         if( rtsp.getPath() == \"/deny\" ) rtsp.sendResponse( \"403 Forbidden\", \"no\\n\" );\n\
         if( rtsp.getPath() == \"/old\" ) rtsp.setPath( \"/new\" );\n\
         rtsp.setRequestHeader( \"X-Rule\", rtsp.getMethod() . \" \" . rtsp.getVersion() );\n\
         rtsp.removeRequestHeader( \"X-Secret\" );\n'''\n\n\
         [rules.resp]\nsource = '''\n\
         rtsp.setResponseHeader( \"X-Code\", rtsp.getResponseCode() . \" for \" . rtsp.getMethod() );\n\
         if( rtsp.getMethod() == \"DESCRIBE\" ) rtsp.setResponseBody( string.replace( rtsp.getResponseBody(), \"s=a\", \"s=changed by shoal\" ) );\n\
         rtsp.removeResponseHeader( \"X-Node\" );\n'''\n\n{}",
        rtsp_vs("media", "p", "request_rules = [\"req\"]\nresponse_rules = [\"resp\"]"),
        node.addr,
        api_toml()
    ));
    let mut c = connect(shoal.addr("media"));
    let m = request(&mut c, "OPTIONS", "rtsp://x:554/old?q=1", 1, "X-Secret: s3cret\r\n");
    assert_eq!(m.header("x-seen-path"), Some("rtsp://x:554/new?q=1"));
    assert_eq!((m.header("x-code"), m.header("x-node")), (Some("200 for OPTIONS"), None));
    let seen = node.seen();
    assert!(seen[0].contains("X-Rule: OPTIONS RTSP/1.0\r\n") && !seen[0].contains("s3cret"), "{}", seen[0]);
    let m = request(&mut c, "DESCRIBE", "rtsp://x/s", 2, "");
    assert_eq!(String::from_utf8_lossy(&m.body), "v=0\r\ns=changed by shoal\r\nm=video 0 RTP/AVP 26\r\n");
    assert_eq!(m.header("content-length"), Some(m.body.len().to_string().as_str()));
    let m = request(&mut c, "DESCRIBE", "rtsp://x/deny", 3, "");
    assert_eq!((m.start(), m.body.as_slice()), ("RTSP/1.0 403 Forbidden", &b"no\n"[..]));
    assert_eq!(node.seen().len(), 2, "the denied request went to no node");
    let m = request(&mut c, "PLAY", "rtsp://x/s", 4, "");
    assert_eq!(m.header("x-code"), Some("200 for PLAY"), "the connection goes on after an answer");
    assert_eq!(rtsp_stats(&shoal, "media")["rule_answers"], 1);
}

/// Malformed messages: each client case gets its status and a close, the
/// node's gets the client a 502; every one is counted, and shoal serves
/// the next client as before. No node at all: 503.
#[test]
fn malformed_messages_get_their_status_and_are_counted() {
    let node = ScriptNode::start("a");
    let shoal = Shoal::start(&format!(
        "{}{}[pools.p]\nnodes = [\"{}\"]\n\n[pools.dead]\nnodes = [\"127.0.0.1:9\"]\n\n{}",
        rtsp_vs("media", "p", "max_header_size = 1024\nmax_body_size = 64"),
        rtsp_vs("nowhere", "dead", ""),
        node.addr,
        api_toml()
    ));
    let big = format!("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    let cases: &[(&str, &[u8], &str)] = &[
        ("bad version", b"OPTIONS * RTSP/3.0\r\nCSeq: 1\r\n\r\n", "RTSP/1.0 505 "),
        ("HTTP request line", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "RTSP/1.0 400 "),
        ("bad method", b"DESC(RIBE * RTSP/1.0\r\n\r\n", "RTSP/1.0 400 "),
        ("field without colon", b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n", "RTSP/1.0 400 "),
        ("two lengths", b"ANNOUNCE * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "RTSP/1.0 400 "),
        ("body over max_body_size", b"ANNOUNCE * RTSP/1.0\r\nContent-Length: 65\r\n\r\n", "RTSP/1.0 413 "),
        ("head over max_header_size", big.as_bytes(), "RTSP/1.0 494 "),
        ("interleaved before a request", b"$\x00\x00\x02ab", "RTSP/1.0 400 "),
        ("a response before a request", b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", "RTSP/1.0 400 "),
    ];
    for (what, input, status) in cases {
        let mut c = connect(shoal.addr("media"));
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(input).unwrap();
        let got = String::from_utf8_lossy(&read_all(&mut c)).to_string();
        assert!(got.starts_with(status), "{what}: got {got:?}");
    }
    // After a good request on the connection, a malformed one is answered
    // the same way.
    let mut c = connect(shoal.addr("media"));
    request(&mut c, "OPTIONS", "*", 1, "");
    c.write_all(b"PLAY rtsp://x/s RTSP/1.0\r\nCSeq: 2\r\nContent-Length: x\r\n\r\n").unwrap();
    let got = String::from_utf8_lossy(&read_all(&mut c)).to_string();
    assert!(got.starts_with("RTSP/1.0 400 "), "{got:?}");
    // The node's malformed answer: 502 with the request's CSeq.
    let mut c = connect(shoal.addr("media"));
    c.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 5\r\nX-Garbage: 1\r\n\r\n").unwrap();
    let got = String::from_utf8_lossy(&read_all(&mut c)).to_string();
    assert!(got.starts_with("RTSP/1.0 502 Bad Gateway\r\nCSeq: 5\r\n"), "{got:?}");
    // No node: 503 with the CSeq.
    let mut c = connect(shoal.addr("nowhere"));
    c.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n").unwrap();
    let got = String::from_utf8_lossy(&read_all(&mut c)).to_string();
    assert!(got.starts_with("RTSP/1.0 503 Service Unavailable\r\nCSeq: 9\r\n"), "{got:?}");
    // Still serving.
    let mut c = connect(shoal.addr("media"));
    assert_eq!(request(&mut c, "OPTIONS", "*", 7, "").header("x-node"), Some("a"));
    let st = rtsp_stats(&shoal, "media");
    assert_eq!((st["client_malformed"].as_u64(), st["node_malformed"].as_u64()), (Some(10), Some(1)), "{st}");
    assert_eq!(rtsp_stats(&shoal, "nowhere")["no_node"], 1);
    assert!(shoal.log().contains("malformed RTSP message: not RTSP/1.0 or RTSP/2.0; answered 505"), "{}", shoal.log());
}

/// `shoal proxy --protocol rtsp` serves RTSP with no configuration file.
#[test]
fn quick_mode_serves_rtsp() {
    let node = ScriptNode::start("q");
    let dir = TempDir::new();
    let cfg = dir.0.join("none.toml");
    let mut cmd = Command::new(shoal_bin());
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--protocol", "rtsp", "--to", &node.addr.to_string()]);
    let shoal = Shoal::from_command(cmd, dir, cfg);
    let mut c = connect(shoal.addr("proxy"));
    assert_eq!(request(&mut c, "DESCRIBE", "rtsp://x/s", 1, "").body, b"v=0\r\ns=q\r\nm=video 0 RTP/AVP 26\r\n");
}

/// What does not apply to RTSP is refused with its place in the file.
#[test]
fn configuration_refuses_what_rtsp_cannot_do() {
    let dir = TempDir::new();
    let check = |toml: &str| check_refused(&dir, toml);
    let pool = "[pools.p]\nnodes = [\"127.0.0.1:9\"]\n";
    let path = dir.0.join("shoal.toml").display().to_string();
    let e = check(&format!(
        "{}{pool}[rules.r]\nsource = '''\n$p = http.getPath();'''\n",
        rtsp_vs("m", "p", "request_rules = [\"r\"]")
    ));
    assert!(e.contains("http.getpath works on http virtual servers; this one is rtsp"), "{e}");
    let e = check(&format!(
        "[virtual_servers.w]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nrequest_rules = [\"r\"]\n{pool}\
         [rules.r]\nsource = '''\n$m = rtsp.getMethod();'''\n"
    ));
    assert!(e.contains("rtsp.getmethod works on rtsp virtual servers; this one is http"), "{e}");
    let e = check(&format!("{}{pool}", rtsp_vs("m", "p", "rules_run = \"every\"")));
    assert!(e.starts_with(&format!("{path}:5:")) && e.contains("rtsp rules run on every message"), "{e}");
    let e = check(&format!("{}{pool}", rtsp_vs("m", "p", "compression = { enabled = true }")));
    assert!(e.contains("`compression` does not apply to rtsp virtual servers"), "{e}");
    let e = check(&format!(
        "[virtual_servers.w]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n{pool}persistence = \"s\"\n\n\
         [persistence.s]\ntype = \"rtsp_session\"\n"
    ));
    assert!(e.contains("rtsp_session needs rtsp"), "{e}");
}
