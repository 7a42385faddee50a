//! Test harness: processes with captured output, polling with deadlines
//! (never sleeping to synchronise), temp directories, data helpers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Generous: the CI machine has 2 cores and runs tests in parallel.
pub const STARTUP: Duration = Duration::from_secs(30);

pub fn shoal_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shoal"))
}

/// A workspace tool's binary, built once per test run in the same profile
/// as the tests (cargo builds only the package under test for them).
fn tool_bin(package: &'static str, cell: &'static OnceLock<PathBuf>) -> PathBuf {
    cell.get_or_init(|| {
        let dir = shoal_bin().parent().unwrap().to_path_buf();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", package, "--bin", package]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo to build a test tool");
        assert!(st.success(), "building {package} failed");
        dir.join(package)
    })
    .clone()
}

pub fn origin_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    tool_bin("shoal-origin", &BUILT)
}

pub fn bench_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    tool_bin("shoal-bench", &BUILT)
}

/// An example program of the shoal package (shoal with modules of its
/// own, examples/), built once per test run in the tests' profile.
pub fn example_bin(name: &'static str) -> PathBuf {
    static BUILT: Mutex<Vec<(&str, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| *n == name) {
        return p.clone();
    }
    let dir = shoal_bin().parent().unwrap().to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "shoal", "--example", name]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("run cargo to build an example");
    assert!(st.success(), "building example {name} failed");
    let p = dir.join("examples").join(name);
    built.push((name, p.clone()));
    p
}

/// A child process whose output lines are collected as they arrive.
pub struct Proc {
    pub child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Proc {
    /// Spawn `cmd`, collecting stdout (`from_stdout`) or stderr lines. The
    /// other stream is inherited so it shows in a failing test's output.
    pub fn spawn(mut cmd: Command, from_stdout: bool) -> Proc {
        cmd.stdin(Stdio::null());
        if from_stdout {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::piped()).stdout(Stdio::inherit());
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let out: Box<dyn Read + Send> =
            if from_stdout { Box::new(child.stdout.take().unwrap()) } else { Box::new(child.stderr.take().unwrap()) };
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("SHOAL_TEST_ECHO").is_some() {
                    eprintln!("| {line}");
                }
                l.0.lock().unwrap().push(line);
                l.1.notify_all();
            }
        });
        Proc { child, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines.0.lock().unwrap().iter().filter(|l| pred(l)).count()
    }

    /// The first line (ever) satisfying `pred`, waiting up to `timeout`.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut g = self.lines.0.lock().unwrap();
        loop {
            if let Some(l) = g.iter().find(|l| pred(l)) {
                return l.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let all = g.join("\n");
                drop(g);
                panic!("no matching line within {timeout:?}; output so far:\n{all}");
            }
            g = self.lines.1.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Wait until `pred` holds for at least `n` lines.
    pub fn wait_count(&self, n: usize, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut g = self.lines.0.lock().unwrap();
        loop {
            if g.iter().filter(|l| pred(l)).count() >= n {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                let all = g.join("\n");
                drop(g);
                panic!("fewer than {n} matching lines within {timeout:?}; output so far:\n{all}");
            }
            g = self.lines.1.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Send a signal by name ("TERM", "HUP", ...).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").args(["-s", sig, &self.child.id().to_string()]).status().unwrap();
        assert!(st.success(), "kill -s {sig}");
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "process did not exit within {timeout:?}:\n{}", self.lines().join("\n"));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p =
            std::env::temp_dir().join(format!("shoal-it-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running shoal with its configuration file.
pub struct Shoal {
    pub proc: Proc,
    pub dir: TempDir,
    pub config: PathBuf,
    listen: HashMap<String, SocketAddr>,
}

impl Shoal {
    /// Start `shoal run -c` on `toml`; returns once every virtual server is
    /// listening and every shard has started.
    pub fn start(toml: &str) -> Shoal {
        Shoal::start_bin(&shoal_bin(), toml)
    }

    /// [`Shoal::start`] with another build of shoal (an example program).
    pub fn start_bin(bin: &Path, toml: &str) -> Shoal {
        let dir = TempDir::new();
        let config = dir.write("shoal.toml", toml);
        let mut cmd = Command::new(bin);
        cmd.arg("run").arg("-c").arg(&config);
        Shoal::from_command(cmd, dir, config)
    }

    pub fn from_command(cmd: Command, dir: TempDir, config: PathBuf) -> Shoal {
        let mut h2c = Vec::new();
        if proto() == Proto::H2c {
            // A test run over both protocols: its HTTP virtual servers also
            // take cleartext HTTP/2 (HTTP/1.1 stays served beside it).
            let text = std::fs::read_to_string(&config).unwrap();
            let (text, names) = with_h2c(&text);
            std::fs::write(&config, text).unwrap();
            h2c = names;
        }
        let proc = Proc::spawn(cmd, false);
        let running =
            proc.wait_line(STARTUP, |l| l.contains(" running ") && l.contains("shard(s)") || l.contains("ERROR"));
        assert!(!running.contains("ERROR"), "shoal failed to start: {running}");
        let n: usize = running.split(" running ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        proc.wait_count(n, STARTUP, |l| l.contains("] shard ") && l.contains(" on "));
        let mut listen = HashMap::new();
        for l in proc.lines() {
            if let Some(rest) = l.split("virtual server ").nth(1) {
                if let Some((name, tail)) = rest.split_once(" listening on ") {
                    let addr: SocketAddr = tail.split(' ').next().unwrap().parse().unwrap();
                    listen.insert(name.to_string(), addr);
                }
            }
        }
        for name in &h2c {
            if let Some(a) = listen.get(name) {
                H2C_ADDRS.with(|s| s.borrow_mut().push(*a));
            }
        }
        Shoal { proc, dir, config, listen }
    }

    pub fn addr(&self, vs: &str) -> SocketAddr {
        *self
            .listen
            .get(vs)
            .unwrap_or_else(|| panic!("virtual server {vs} is not listening; log:\n{}", self.proc.lines().join("\n")))
    }

    pub fn log(&self) -> String {
        self.proc.lines().join("\n")
    }
}

/// shoal-origin nodes: one process, one listener per name.
pub struct Origin {
    pub proc: Proc,
    pub addrs: HashMap<String, SocketAddr>,
}

impl Origin {
    pub fn start(mode: &str, names: &[&str]) -> Origin {
        Origin::start_at(mode, &names.iter().map(|n| (*n, "127.0.0.1:0".parse().unwrap())).collect::<Vec<_>>())
    }

    pub fn start_at(mode: &str, nodes: &[(&str, SocketAddr)]) -> Origin {
        Origin::start_with(mode, nodes, &[])
    }

    /// Like `start_at`, with extra command-line arguments.
    pub fn start_with(mode: &str, nodes: &[(&str, SocketAddr)], extra: &[&str]) -> Origin {
        let mut cmd = Command::new(origin_bin());
        cmd.args(["--mode", mode]).args(extra);
        for (n, a) in nodes {
            cmd.arg("--listen").arg(format!("{n}={a}"));
        }
        let proc = Proc::spawn(cmd, true);
        proc.wait_count(nodes.len(), STARTUP, |l| l.starts_with("listening "));
        let addrs = proc
            .lines()
            .iter()
            .filter_map(|l| {
                let mut p = l.split(' ').skip(1);
                Some((p.next()?.to_string(), p.next()?.parse().ok()?))
            })
            .collect();
        Origin { proc, addrs }
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    pub fn kill(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Read until end of stream.
pub fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap_or_else(|e| panic!("read: {e} after {} bytes", v.len()));
    v
}

/// Read one `\n`-terminated line, byte by byte (so nothing after it is
/// consumed; wrap the stream in a `BufReader` for speed).
pub fn read_line(s: &mut impl Read) -> String {
    let mut v = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = match s.read(&mut b) {
            // A signal to this process (a child's exit) is no error.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.unwrap_or_else(|e| panic!("read line: {e} after {:?}", String::from_utf8_lossy(&v))),
        };
        assert!(n == 1, "end of stream inside a line: {:?}", String::from_utf8_lossy(&v));
        if b[0] == b'\n' {
            return String::from_utf8_lossy(&v).trim_end_matches('\r').to_string();
        }
        v.push(b[0]);
    }
}

/// Read `r` to its end through SHA-256, in 1 MiB pieces (gigabytes cost
/// no memory): the byte count and the hex digest.
pub fn sha256_stream(r: &mut impl Read) -> (u64, String) {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    (total, h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Connect, read the whole reply of a one-shot node, return it as a string.
/// The seeds' Example 1, as written: a video rewrite with its bandwidth
/// class ("Videos 2Mbits") and the cache turned off for it.
pub const SEEDS_EXAMPLE_1: &str = r#"# Is this request a video download?
$url = http.getPath();
if( string.wildmatch( $url, "/videos/*.flv" ) ) {
   # Rewrite the request to target an f4v container, not flv
   $url = string.replace( $url, ".flv", ".f4v" );
   http.setPath( $url );
   # We encode flash videos at 1088 Kbits max. Apply a limit to 2 Gbit
   # to control download tools and other greedy clients
   response.setBandwidthClass( "Videos 2Mbits" );
   # We don't want to cache the response in the Stingray cache, even if
   # the HTTP headers state that it is cacheable
   http.cache.disable();
}
"#;

/// The client protocol a test runs over (see [`both_protocols!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    /// Cleartext HTTP/2 with prior knowledge, through curl.
    H2c,
}

thread_local! {
    static PROTO: std::cell::Cell<Proto> = const { std::cell::Cell::new(Proto::Http1) };
    static H2_SENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Listeners that take h2c (the others, nodes, are sent HTTP/1.1).
    static H2C_ADDRS: std::cell::RefCell<Vec<SocketAddr>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The protocol of this test thread's [`send`]s and virtual servers.
pub fn proto() -> Proto {
    PROTO.with(|p| p.get())
}

/// Run `test` with [`send`] speaking `p` (on this thread) and every HTTP
/// virtual server [`Shoal`] starts taking it. Over HTTP/2 the test must
/// have made HTTP/2 requests, so a test that bypasses `send` cannot pass
/// for one that ran over both.
pub fn over(p: Proto, test: impl FnOnce()) {
    PROTO.with(|c| c.set(p));
    H2_SENT.with(|c| c.set(0));
    H2C_ADDRS.with(|s| s.borrow_mut().clear());
    test();
    if p == Proto::H2c {
        assert!(H2_SENT.with(|c| c.get()) > 0, "the test made no HTTP/2 request");
    }
}

/// A test run twice, over HTTP/1.1 and over HTTP/2 (`NAME::http1`,
/// `NAME::h2c`): its [`send`]s (and the helpers built on it) use the
/// protocol, its configurations take `h2c`. Requests on raw sockets stay
/// HTTP/1.1, so tests of HTTP/1.1 framing are not wrapped.
macro_rules! both_protocols {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body() $body
            #[test]
            fn http1() {
                crate::support::over(crate::support::Proto::Http1, body)
            }
            #[test]
            fn h2c() {
                crate::support::over(crate::support::Proto::H2c, body)
            }
        }
    };
}

/// `toml` with `[virtual_servers.NAME.http2] h2c = true` for each
/// cleartext HTTP virtual server that has no `[http2]` of its own, and
/// their names.
pub fn with_h2c(toml: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let mut extra = String::new();
    let lines: Vec<&str> = toml.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = l.trim().strip_prefix("[virtual_servers.").and_then(|r| r.strip_suffix(']')) else {
            continue;
        };
        if name.contains('.') {
            continue;
        }
        let table = lines[i + 1..].iter().take_while(|l| !l.trim_start().starts_with('['));
        let http = table.into_iter().any(|l| l.replace(' ', "") == "protocol=\"http\"");
        let own = |t: &str| toml.contains(&format!("[virtual_servers.{name}.{t}]"));
        if http && !own("tls") && !own("http2") {
            extra += &format!("\n[virtual_servers.{name}.http2]\nh2c = true\n");
            names.push(name.to_string());
        }
    }
    (format!("{toml}\n{extra}"), names)
}

/// One request on a new connection (`req` is the whole request); the
/// response read whole. Over HTTP/2 (see [`over`]) curl sends it with
/// prior knowledge: the same method, target, fields and body (de-chunked),
/// without the fields HTTP/2 forbids.
pub fn send(addr: SocketAddr, req: &str) -> Resp {
    if proto() == Proto::H2c && H2C_ADDRS.with(|s| s.borrow().contains(&addr)) {
        return send_h2(addr, req);
    }
    let mut s = connect(addr);
    s.write_all(req.as_bytes()).unwrap();
    read_response(&mut s, req.starts_with("HEAD "))
}

fn send_h2(addr: SocketAddr, req: &str) -> Resp {
    H2_SENT.with(|c| c.set(c.get() + 1));
    let (head, body) = req.split_once("\r\n\r\n").expect("a whole request head");
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let (method, target) = (first.next().unwrap(), first.next().unwrap());
    let url = if target.starts_with('/') { format!("http://{addr}{target}") } else { target.to_string() };
    let mut args: Vec<String> =
        ["-sS", "-i", "--http2-prior-knowledge", "--path-as-is", "--max-time", "60"].map(String::from).to_vec();
    if method == "HEAD" {
        args.push("-I".into());
    } else if method != "GET" || !body.is_empty() {
        args.extend(["-X".into(), method.into()]);
    }
    let mut chunked = false;
    let mut named = Vec::new();
    for l in lines {
        let (k, v) = l.split_once(':').unwrap();
        let (k, v) = (k.trim(), v.trim());
        let lower = k.to_ascii_lowercase();
        chunked |= lower == "transfer-encoding" && v.contains("chunked");
        if ["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "content-length"]
            .contains(&lower.as_str())
        {
            continue;
        }
        named.push(lower);
        // curl's syntax for a field with an empty value is `Name;`.
        args.extend(["-H".into(), if v.is_empty() { format!("{k};") } else { format!("{k}: {v}") }]);
    }
    // No fields of curl's own beyond what the request had.
    for k in ["user-agent", "accept"] {
        if !named.iter().any(|n| n == k) {
            args.extend(["-H".into(), format!("{k}:")]);
        }
    }
    let body = if chunked { dechunk(body.as_bytes()) } else { body.as_bytes().to_vec() };
    if !body.is_empty() {
        args.extend(["--data-binary".into(), "@-".into()]);
    }
    args.push(url);
    let mut child = Command::new("curl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl is installed");
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut rest: &[u8] = &out.stdout;
    loop {
        let mut r = read_response(&mut rest, true);
        if (100..200).contains(&r.status) {
            continue;
        }
        r.body = rest.to_vec();
        return r;
    }
}

/// The payload of a chunked body.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = b.iter().position(|&c| c == b'\n').unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line]).unwrap().trim().split(';').next().unwrap(), 16)
                .unwrap();
        b = &b[line + 1..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

pub fn oneshot(addr: SocketAddr) -> String {
    let mut s = connect(addr);
    let v = read_all(&mut s);
    String::from_utf8(v).unwrap().trim_end().to_string()
}

/// Deterministic pseudo-random bytes (xorshift64*), so data is not
/// compressible or repetitive and two runs send the same bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// Send `data` and half-close on one thread while reading everything back
/// on this one: both directions move at once. Returns what was read.
pub fn exchange(s: TcpStream, data: Arc<Vec<u8>>) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for c in data.chunks(256 * 1024) {
            w.write_all(c).unwrap();
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = s;
    let got = read_all(&mut r);
    writer.join().unwrap();
    got
}

/// `s` percent-encoded for a query parameter.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Poll `f` until it returns `Some`, or panic after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A minimal HTTP/1.1 response read from a stream: status, headers
/// (lower-cased names), body. Handles content-length, chunked and
/// read-until-close bodies; `head_only` for responses to HEAD.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

pub fn read_response(s: &mut impl Read, head_only: bool) -> Resp {
    let status_line = read_line(s);
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let l = read_line(s);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header {l:?}"));
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut r = Resp { status, headers, body: Vec::new() };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return r;
    }
    if r.header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let size = usize::from_str_radix(read_line(s).split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                while !read_line(s).is_empty() {}
                break;
            }
            let at = r.body.len();
            r.body.resize(at + size, 0);
            s.read_exact(&mut r.body[at..]).unwrap();
            assert_eq!(read_line(s), "");
        }
    } else if let Some(n) = r.header("content-length") {
        r.body.resize(n.parse().unwrap(), 0);
        s.read_exact(&mut r.body).unwrap();
    } else {
        s.read_to_end(&mut r.body).unwrap();
    }
    r
}

/// Run curl with `args`; returns (exit success, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "120"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Peak resident memory of a process, in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

/// Tests that load the machine hard (long loads, gigabytes) take this lock,
/// so they do not run at the same time as each other on a 2-core machine.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A password hash made by `shoal passwd` (so the command is exercised).
pub fn password_hash(password: &str) -> String {
    let mut child = Command::new(shoal_bin())
        .arg("passwd")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "shoal passwd failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The `[api]` section for tests: loopback, OS-chosen port, user
/// `admin` with password `secret`.
pub fn api_section() -> String {
    use std::sync::OnceLock;
    static HASH: OnceLock<String> = OnceLock::new();
    let hash = HASH.get_or_init(|| password_hash("secret"));
    format!("[api]\nlisten = \"127.0.0.1:0\"\nusers = {{ admin = \"{hash}\" }}\n")
}

/// One answer of the REST API.
#[derive(Debug)]
pub struct ApiResp {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl ApiResp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Shoal {
    /// The REST API's address, from its startup line.
    pub fn api_addr(&self) -> SocketAddr {
        let line = self.proc.wait_line(STARTUP, |l| l.contains("REST API listening on "));
        line.split("REST API listening on ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
    }

    /// One API request as `admin:secret` (or `auth`, a `user:password`, or
    /// none with `Some("")`).
    pub fn api_as(&self, auth: Option<&str>, method: &str, path: &str, ctype: &str, body: &[u8]) -> ApiResp {
        let mut s = connect(self.api_addr());
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n");
        let auth = auth.unwrap_or("admin:secret");
        if !auth.is_empty() {
            req.push_str(&format!("Authorization: Basic {}\r\n", shoal::api::client::base64(auth.as_bytes())));
        }
        if !body.is_empty() || method == "PUT" {
            req.push_str(&format!("Content-Type: {ctype}\r\nContent-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let raw = read_all(&mut s);
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
        let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
        ApiResp { status, headers, body: raw[split + 4..].to_vec() }
    }

    pub fn api(&self, method: &str, path: &str, json: &str) -> ApiResp {
        self.api_as(None, method, path, "application/json", json.as_bytes())
    }

    /// The summed status document.
    pub fn status(&self) -> serde_json::Value {
        let r = self.api("GET", "/api/tm/1.0/status", "");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

/// `shoal check` on `toml`, written as `dir`/shoal.toml, which must refuse
/// it: the error it printed.
pub fn check_refused(dir: &TempDir, toml: &str) -> String {
    let path = dir.write("shoal.toml", toml);
    let out = Command::new(shoal_bin()).arg("check").arg("-c").arg(&path).output().unwrap();
    assert!(!out.status.success(), "accepted:\n{toml}");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Whether `probe` (a command that checks for `what`) succeeds here. When
/// it does not: false with a line saying the check was skipped, or a
/// panic when `require_var` is set (CI sets it, so CI cannot skip).
pub fn have_probe(what: &str, probe: &mut Command, require_var: &str) -> bool {
    let ok = probe.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os(require_var).is_none(),
            "{what} is required ({require_var}) but missing (.ci/run installs it)"
        );
        eprintln!("{what} missing: its check is skipped");
    }
    ok
}

/// Whether the external checker `tool` runs here (`tool --help`). When it
/// does not: false with a line saying the check was skipped, or a panic
/// when `require_var` is set (CI sets it, so CI cannot skip the check).
pub fn have_tool(tool: &str, require_var: &str, install: &str) -> bool {
    let ok = Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !ok {
        assert!(std::env::var_os(require_var).is_none(), "{tool} is required ({require_var}) but not installed");
        eprintln!("{tool} not installed ({install}): its check is skipped");
    }
    ok
}

/// Run shoal-bench with `args` and `--json`; returns the parsed report and
/// whether it exited 0.
pub fn bench_json(args: &[&str]) -> (serde_json::Value, bool) {
    let out = Command::new(bench_bin()).args(args).args(["--json", "-q"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (v, out.status.success())
}
