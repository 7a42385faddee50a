//! The content cache (issue 16, docs/cache.md) against real nodes: the
//! RFC 9111 matrix, one test per requirement (what is stored, for how
//! long, what is served and when it is revalidated); `X-Cache-Info`; the
//! rules' cache functions and the seeds' cache examples; collapsed
//! forwarding of one cold object to hundreds of clients; byte ranges on a
//! gigabyte object while it fills and once stored, with a stalled client's
//! memory measured; purges and statistics through the API; quick mode.
//!
//! Node requests are counted from shoal-origin's request log; a request
//! straight to the origin (`sync`) orders the log before each count.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `?hdr=...&hdr=...` for each of `headers`, then `rest`.
fn q(headers: &[&str], rest: &str) -> String {
    let mut s: Vec<String> = headers.iter().map(|h| format!("hdr={}", enc(h))).collect();
    if !rest.is_empty() {
        s.push(rest.to_string());
    }
    format!("?{}", s.join("&"))
}

/// A node that logs its requests, and shoal caching in front of it.
struct Rig {
    origin: Origin,
    shoal: Shoal,
    syncs: AtomicU64,
    toml: String,
}

impl Rig {
    fn start(shards: usize, cache: &str, vs_extra: &str, rest: &str) -> Rig {
        Rig::start_with_origin(&[], shards, cache, vs_extra, rest)
    }

    fn start_with_origin(origin_args: &[&str], shards: usize, cache: &str, vs_extra: &str, rest: &str) -> Rig {
        let mut args = vec!["--log-requests"];
        args.extend_from_slice(origin_args);
        let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &args);
        let toml = format!(
            "[global]\nshards = {shards}\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\ncache = true\n{vs_extra}\n\n\
             [pools.p]\nnodes = [\"{}\"]\n\n[cache]\nverbose = true\n{cache}\n\n{rest}\n",
            origin.addr("a")
        );
        let shoal = Shoal::start(&toml);
        Rig { origin, shoal, syncs: AtomicU64::new(0), toml }
    }

    /// Stop shoal (SIGTERM) and start it again on the same configuration.
    fn restart(&mut self) {
        self.shoal.proc.signal("TERM");
        self.shoal.proc.wait_exit(Duration::from_secs(30));
        self.shoal = Shoal::start(&self.toml);
    }

    fn addr(&self) -> SocketAddr {
        self.shoal.addr("web")
    }

    fn get(&self, target: &str, headers: &str) -> Resp {
        send(self.addr(), &format!("GET {target} HTTP/1.1\r\nHost: site.example\r\n{headers}Connection: close\r\n\r\n"))
    }

    fn req(&self, method: &str, target: &str, headers: &str) -> Resp {
        send(
            self.addr(),
            &format!("{method} {target} HTTP/1.1\r\nHost: site.example\r\n{headers}Connection: close\r\n\r\n"),
        )
    }

    /// Requests the node has seen for exactly `target` with `method`.
    fn node_saw(&self, method: &str, target: &str) -> usize {
        // Everything the node logged before this request is read once this
        // request's own line is.
        let n = self.syncs.fetch_add(1, Ordering::Relaxed);
        let sync = format!("/sync-{n}");
        let mut s = connect(self.origin.addr("a"));
        s.write_all(format!("GET {sync} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        read_response(&mut s, false);
        let line = format!(" GET {sync} ");
        self.origin.proc.wait_count(1, Duration::from_secs(10), |l| l.contains(&line));
        let want = format!("request a {method} {target} ");
        self.origin.proc.count(|l| l.starts_with(&want))
    }
}

/// One request on a new connection (`req` is the whole request).
fn info(r: &Resp) -> &str {
    r.header("x-cache-info").unwrap_or("")
}

/// Byte `i` of shoal-origin's generated bodies (`pattern=mix` or not).
fn origin_byte(i: u64, mix: bool) -> u8 {
    if mix {
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 56) as u8 ^ (i as u8)
    } else {
        b'a' + (i % 26) as u8
    }
}

const FRESH: &str = "Cache-Control: max-age=600";

both_protocols! {
/// RFC 9111 §3, §4: a cacheable GET is stored once and answered from the
/// cache after, byte for byte, with an `Age`; the node sees one request.
fn get_is_stored_and_answered_with_age() {
    let rig = Rig::start(2, "", "", "");
    let t = format!("/a{}", q(&[FRESH], "size=5000"));
    let first = rig.get(&t, "");
    assert_eq!((first.status, info(&first)), (200, "caching"));
    for _ in 0..3 {
        let r = rig.get(&t, "");
        assert_eq!((r.status, info(&r), r.body.len()), (200, "cached", 5000));
        assert_eq!(r.body, first.body);
        assert!(r.header("age").and_then(|a| a.parse::<u64>().ok()).is_some(), "Age: {:?}", r.headers);
        assert_eq!(r.header("cache-control"), Some("max-age=600"));
    }
    assert_eq!(rig.node_saw("GET", &t), 1);
    // Another host is another object.
    let other = send(rig.addr(), &format!("GET {t} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n"));
    assert_eq!(info(&other), "caching");
}
}

both_protocols! {
/// RFC 9111 §4 (HEAD): a HEAD is answered from a stored GET, with the
/// GET's length and no body; a HEAD miss goes to the node and stores
/// nothing.
fn head_is_answered_from_a_stored_get() {
    let rig = Rig::start(1, "", "", "");
    let t = format!("/h{}", q(&[FRESH], "size=777"));
    let h = rig.req("HEAD", &t, "");
    assert_eq!((h.status, h.body.len()), (200, 0));
    let g = rig.get(&t, "");
    assert_eq!(info(&g), "caching", "a HEAD stores nothing");
    let h = rig.req("HEAD", &t, "");
    assert_eq!((h.status, info(&h), h.header("content-length"), h.body.len()), (200, "cached", Some("777"), 0));
    assert_eq!((rig.node_saw("HEAD", &t), rig.node_saw("GET", &t)), (1, 1));
}
}

both_protocols! {
/// RFC 9111 §3 and §5.2.2: no-store, private, no-cache without a
/// validator, `no-cache="field"`, `Vary: *` and a cookie keep a response
/// out of the cache; each says why in `X-Cache-Info`.
fn uncacheable_responses_say_why() {
    let rig = Rig::start(1, "", "", "");
    let cases = [
        ("Cache-Control: no-store", "not cacheable; response specified \"Cache-Control: no-store\""),
        ("Cache-Control: private, max-age=60", "not cacheable; response specified \"Cache-Control: private\""),
        ("Cache-Control: no-cache", "not cacheable; response specified \"Cache-Control: no-cache\""),
        (
            "Cache-Control: no-cache=\"X-A\", max-age=60",
            "not cacheable; response specified \"Cache-Control: no-cache=...\"",
        ),
        ("Vary: *", "not cacheable; response contains \"Vary: *\""),
        ("Set-Cookie: s=1", "not cacheable; response sets a cookie"),
        ("Cache-Control: max-age=0", "not cacheable; response specified max-age <= 0"),
    ];
    for (i, (header, why)) in cases.iter().enumerate() {
        let t = format!("/u{i}{}", q(&[header], "size=10"));
        for _ in 0..2 {
            let r = rig.get(&t, "");
            assert_eq!((r.status, info(&r)), (200, *why), "{header}");
        }
        assert_eq!(rig.node_saw("GET", &t), 2, "{header}");
    }
}
}

both_protocols! {
/// RFC 9111 §5.2.2.10 and §4.2.1: `s-maxage` wins over `max-age` in a
/// shared cache, both ways.
fn s_maxage_over_max_age() {
    let rig = Rig::start(1, "", "", "");
    let stored = format!("/s1{}", q(&["Cache-Control: max-age=0, s-maxage=600"], "size=10"));
    rig.get(&stored, "");
    assert_eq!(info(&rig.get(&stored, "")), "cached");
    let not = format!("/s2{}", q(&["Cache-Control: max-age=600, s-maxage=0"], "size=10"));
    assert_eq!(info(&rig.get(&not, "")), "not cacheable; response specified max-age <= 0");
    assert_eq!((rig.node_saw("GET", &stored), rig.node_saw("GET", &not)), (1, 1));
}
}

both_protocols! {
/// RFC 9111 §5.3 and §4.2.1: `Expires` (against `Date`) gives the
/// lifetime; one in the past, or one that is not a date, means expired.
fn expires_against_date() {
    let rig = Rig::start(1, "", "", "");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let date = |s: u64| shoal::cache::policy::fmt_http_date(s);
    let future =
        format!("/e1{}", q(&[&format!("Date: {}", date(now)), &format!("Expires: {}", date(now + 600))], "size=3"));
    rig.get(&future, "");
    assert_eq!(info(&rig.get(&future, "")), "cached");
    let past =
        format!("/e2{}", q(&[&format!("Date: {}", date(now)), &format!("Expires: {}", date(now - 10))], "size=3"));
    assert_eq!(info(&rig.get(&past, "")), "not cacheable; response has already expired");
    let bogus = format!("/e3{}", q(&["Expires: 0"], "size=3"));
    assert_eq!(info(&rig.get(&bogus, "")), "not cacheable; response has already expired");
}
}

both_protocols! {
/// RFC 9111 §4.2.2: heuristic freshness only for the statuses that allow
/// it (200, 404, ...); a 302 or a 500 needs an explicit lifetime.
fn heuristic_freshness_only_where_allowed() {
    let rig = Rig::start(1, "", "", "");
    for (status, stored, why) in [
        (200, true, "caching"),
        (404, true, "caching"),
        (302, false, "not cacheable; response is 302 without expiry time"),
        (500, false, "not cacheable; response code not cacheable"),
    ] {
        let t = format!("/x{status}?status={status}&size=4");
        assert_eq!(info(&rig.get(&t, "")), why, "status {status}");
        let again = rig.get(&t, "");
        assert_eq!((again.status, info(&again) == "cached"), (status, stored), "status {status}");
    }
    // An explicit lifetime makes a 500 storable.
    let t = format!("/y500{}", q(&["Cache-Control: max-age=60"], "status=500&size=4"));
    rig.get(&t, "");
    assert_eq!(info(&rig.get(&t, "")), "cached");
}
}

both_protocols! {
/// RFC 9111 §4.1: `Vary` keeps one variant per value of the named request
/// fields, up to `max_variants` (the oldest goes).
fn vary_selects_variants() {
    let rig = Rig::start(2, "max_variants = 2", "", "");
    let t = format!("/v{}", q(&[FRESH, "Vary: Accept-Language"], "head=1"));
    let lang = |l: &str| format!("Accept-Language: {l}\r\n");
    assert_eq!(info(&rig.get(&t, &lang("en"))), "caching");
    assert_eq!(info(&rig.get(&t, &lang("fr"))), "caching");
    let en = rig.get(&t, &lang("en"));
    assert_eq!(info(&en), "cached");
    // (Field names come lower-cased over HTTP/2.)
    assert!(String::from_utf8_lossy(&en.body).to_lowercase().contains("accept-language: en"), "the en variant");
    let fr = rig.get(&t, &lang("fr"));
    assert!(String::from_utf8_lossy(&fr.body).to_lowercase().contains("accept-language: fr"), "the fr variant");
    assert_eq!(info(&rig.get(&t, "")), "caching", "no Accept-Language is a variant of its own");
    assert_eq!(info(&rig.get(&t, &lang("fr"))), "cached");
    assert_eq!(info(&rig.get(&t, &lang("en"))), "caching", "the oldest variant went past max_variants");
}
}

both_protocols! {
/// RFC 9111 §3.5: a response to a request with credentials is stored
/// only when it says it may be shared.
fn authorization_needs_an_explicit_permission() {
    let rig = Rig::start(1, "", "", "");
    let auth = "Authorization: Basic dTpw\r\n";
    let t = format!("/auth{}", q(&[FRESH], "size=3"));
    assert_eq!(info(&rig.get(&t, auth)), "not cacheable; request contained Authorization header");
    let public = format!("/auth{}", q(&["Cache-Control: public, max-age=600"], "size=3"));
    assert_eq!(info(&rig.get(&public, auth)), "caching");
    assert_eq!(info(&rig.get(&public, "")), "cached");
}
}

both_protocols! {
/// RFC 9111 §2-§3: only GET and HEAD use the cache; a request with a body
/// or `no-store` passes to the node and stores nothing.
fn other_requests_pass() {
    let rig = Rig::start(1, "", "", "");
    let t = format!("/p{}", q(&[FRESH], "size=3"));
    let post = send(
        rig.addr(),
        &format!("POST {t} HTTP/1.1\r\nHost: site.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"),
    );
    assert_eq!(info(&post), "not cacheable; request wasn't a GET or HEAD");
    let with_body = send(
        rig.addr(),
        &format!("GET {t} HTTP/1.1\r\nHost: site.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"),
    );
    assert_eq!(info(&with_body), "not cacheable; request had a content length");
    let no_store = rig.get(&t, "Cache-Control: no-store\r\n");
    assert_eq!(info(&no_store), "not cacheable; request specified \"Cache-Control: no-store\"");
    assert_eq!(info(&rig.get(&t, "")), "caching", "none of them stored anything");
}
}

both_protocols! {
/// RFC 9111 §4.3: a stale object with a validator is revalidated with
/// `If-None-Match` (or `If-Modified-Since`); a 304 freshens the stored
/// head (§4.3.4) and the client gets the stored body.
fn conditional_revalidation() {
    let rig = Rig::start(2, "", "", "");
    for (validator, rest) in [("etag", "etag=v1"), ("last-modified", "lm=1")] {
        let t = format!("/r-{validator}{}", q(&["Cache-Control: max-age=0"], &format!("{rest}&size=3000&pattern=mix")));
        let first = rig.get(&t, "");
        assert_eq!(info(&first), "caching", "{validator}: stored for revalidation");
        let again = rig.get(&t, "");
        assert_eq!((again.status, info(&again)), (200, "cached; revalidated"), "{validator}");
        assert_eq!(again.body, first.body, "{validator}: the stored body");
        // The 304's fields replaced the stored ones (X-Seq counts the
        // node's requests on its connection, X-Conn its connections).
        assert!(
            again.header("x-seq") != first.header("x-seq") || again.header("x-conn") != first.header("x-conn"),
            "{validator}: stored head updated"
        );
        assert_eq!(rig.node_saw("GET", &t), 2, "{validator}");
    }
    // The request asked for it: `no-cache` (and `max-age=0`) revalidate a
    // fresh object.
    let t = format!("/r-fresh{}", q(&[FRESH], "etag=v2&size=10"));
    rig.get(&t, "");
    assert_eq!(info(&rig.get(&t, "")), "cached");
    assert_eq!(info(&rig.get(&t, "Cache-Control: no-cache\r\n")), "cached; revalidated");
    assert_eq!(info(&rig.get(&t, "Cache-Control: max-age=0\r\n")), "cached; revalidated");
    assert_eq!(info(&rig.get(&t, "Pragma: no-cache\r\n")), "cached; revalidated");
    assert_eq!(rig.node_saw("GET", &t), 4);
}
}

both_protocols! {
/// RFC 9110 §13: a client's own conditional request is answered 304 from
/// the cache when the stored object matches, without the node.
fn client_conditionals_from_the_cache() {
    let rig = Rig::start(1, "", "", "");
    let t = format!("/c{}", q(&[FRESH], "etag=abc&lm=1&size=100"));
    rig.get(&t, "");
    let r = rig.get(&t, "If-None-Match: \"zzz\", W/\"abc\"\r\n");
    assert_eq!((r.status, r.header("etag"), r.body.len()), (304, Some("\"abc\""), 0));
    assert_eq!(rig.get(&t, "If-None-Match: \"zzz\"\r\n").status, 200);
    assert_eq!(rig.get(&t, "If-Modified-Since: Sun, 02 Jan 2022 00:00:00 GMT\r\n").status, 304);
    assert_eq!(rig.get(&t, "If-Modified-Since: Fri, 31 Dec 2021 00:00:00 GMT\r\n").status, 200);
    // A miss with a conditional: the node is asked for the whole object
    // (which is stored), the client still gets its 304.
    let u = format!("/c2{}", q(&[FRESH], "etag=abc&size=100"));
    let r = rig.get(&u, "If-None-Match: \"abc\"\r\n");
    assert_eq!((r.status, info(&r)), (304, "caching"));
    assert_eq!((rig.get(&u, "").status, rig.get(&u, "").body.len()), (200, 100));
    assert_eq!((rig.node_saw("GET", &t), rig.node_saw("GET", &u)), (1, 1));
}
}

both_protocols! {
/// RFC 9111 §4.4: a successful unsafe request invalidates the URL; a
/// failed one does not.
fn unsafe_methods_invalidate() {
    let rig = Rig::start(2, "", "", "");
    let t = format!("/i{}", q(&[FRESH], "size=3"));
    rig.get(&t, "");
    assert_eq!(info(&rig.get(&t, "")), "cached");
    let _ = send(
        rig.addr(),
        &format!(
            "POST {t}&status=500 HTTP/1.1\r\nHost: site.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(info(&rig.get(&t, "")), "cached", "another URL's failure changes nothing");
    let del = rig.req("DELETE", &t, "");
    assert_eq!(del.status, 200);
    // The invalidation reaches the owner shard asynchronously: poll.
    poll(Duration::from_secs(10), "the URL to be invalidated", || (info(&rig.get(&t, "")) == "caching").then_some(()));
}
}

both_protocols! {
/// RFC 5861: `stale-if-error` serves a stale object when no node can
/// answer; `stale-while-revalidate` serves it while another request
/// revalidates.
fn stale_if_error_and_while_revalidate() {
    let mut rig = Rig::start_with_origin(&["--delay", "300"], 1, "", "", &api_section());
    let swr = format!("/swr{}", q(&["Cache-Control: max-age=0, stale-while-revalidate=600"], "etag=s&size=50"));
    let first = rig.get(&swr, "");
    // The request that finds it stale is answered at once (the node takes
    // 300 ms) and starts a background revalidation; so is one that comes
    // while that runs.
    for _ in 0..2 {
        let started = Instant::now();
        let stale = rig.get(&swr, "");
        assert_eq!((stale.status, info(&stale)), (200, "cached; stale while revalidating"));
        assert_eq!(stale.body, first.body);
        assert!(started.elapsed() < Duration::from_millis(250), "served without waiting: {:?}", started.elapsed());
    }
    // The background request reaches the node (conditionally: a 304
    // freshens the object) with no client waiting on it.
    let line = format!("request a GET {swr} ");
    rig.origin.proc.wait_count(2, Duration::from_secs(10), |l| l.starts_with(&line));
    poll(Duration::from_secs(10), "the background revalidation's 304", || {
        let st = rig.shoal.status();
        (st["virtual_servers"]["web"]["cache"]["revalidated"].as_u64() >= Some(1)).then_some(())
    });

    let sie = format!("/sie{}", q(&["Cache-Control: max-age=0, stale-if-error=600"], "etag=e&size=60"));
    let first = rig.get(&sie, "");
    rig.origin.kill();
    let r = rig.get(&sie, "");
    assert_eq!((r.status, info(&r)), (200, "cached; stale, the node failed"));
    assert_eq!(r.body, first.body);
    let none = format!("/nosie{}", q(&["Cache-Control: max-age=0"], "etag=e&size=60"));
    assert!(rig.get(&none, "").status >= 500, "without stale-if-error the failure shows");
}
}

both_protocols! {
/// G2: `X-Cache-Info` only with `verbose = true`.
fn cache_info_only_when_verbose() {
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!(
        "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\ncache = true\n\n[pools.p]\nnodes = [\"{}\"]\n",
        origin.addr("a")
    ));
    let t = format!("/q{}", q(&[FRESH], "size=3"));
    for _ in 0..2 {
        let r = send(shoal.addr("web"), &format!("GET {t} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
        assert_eq!((r.status, r.header("x-cache-info")), (200, None));
    }
    let age = send(shoal.addr("web"), &format!("GET {t} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    assert!(age.header("age").is_some(), "a hit all the same");
}
}

/// G5 and the seeds' cache examples: a "default off" policy, a cache key
/// by client network, forcing a page into the cache, and Example 1's
/// `http.cache.disable()`.
#[test]
fn rules_control_the_cache() {
    let default_off = r#"# Only cache what we explicitly allow
http.cache.disable();
if( string.regexmatch( http.geturl(), "^/sales/(order|view).asp" )) {
   # these are our most painful pages for the DB, and are cacheable
   http.cache.enable();
}
"#;
    // The seeds' text sets $client and tests $ip: restored to one name;
    // and it is one rule that touches the request and the response, run
    // here as a request rule and a response rule (docs/rules.md lists
    // both restorations).
    let by_network = r#"# We're only concerned about the home page...
if( http.getPath() != "/" ) break;
# Set the cache key depending on where the client is located
$ip = request.getRemoteIP();
if( string.ipmaskmatch( $ip, "10.0.0.0/8" ) ) {
   http.cache.setkey( "internal" );
} else {
   http.cache.setkey( "external" );
}
"#;
    let by_network_response = r#"if( http.getPath() != "/" ) break;
# Remove the Cache-Control response header - it's no longer needed!
http.removeResponseHeader( "Cache-Control" );
"#;
    let force = r#"if( http.getpath() == "/testpage.jsp" ) {
   # We know this request is cacheable; remove the 'Cache-Control: no-cache'
   http.removeResponseHeader( "Cache-Control" );
}
"#;
    let dir = TempDir::new();
    for (name, text) in [
        ("off.ts", default_off),
        ("net.ts", by_network),
        ("net-response.ts", by_network_response),
        ("force.ts", force),
        ("ex1.ts", SEEDS_EXAMPLE_1),
    ] {
        dir.write(name, text);
    }
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let vs = |name: &str, req: &str, resp: &str| {
        format!(
            "[virtual_servers.{name}]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\ncache = true\nrequest_rules = [{req}]\nresponse_rules = [{resp}]\n\n"
        )
    };
    let toml = format!(
        "[global]\nshards = 2\n\n{}{}{}{}[pools.p]\nnodes = [\"{}\"]\n\n[cache]\nverbose = true\n\n\
         [rules.off]\nfile = \"off.ts\"\n[rules.net]\nfile = \"net.ts\"\n[rules.net-response]\nfile = \"net-response.ts\"\n[rules.force]\nfile = \"force.ts\"\n[rules.ex1]\nfile = \"ex1.ts\"\n\n\
         [bandwidth_classes.\"Videos 2Mbits\"]\nmax_rate = \"2Mbit\"\nper_connection = true\n",
        vs("off", "\"off\"", ""),
        vs("net", "\"net\"", "\"net-response\""),
        vs("force", "", "\"force\""),
        vs("ex1", "\"ex1\"", ""),
        origin.addr("a")
    );
    let config = dir.write("shoal.toml", &toml);
    let mut cmd = std::process::Command::new(shoal_bin());
    cmd.arg("run").arg("-c").arg(&config);
    let shoal = Shoal::from_command(cmd, dir, config);
    let get =
        |vs: &str, t: &str| send(shoal.addr(vs), &format!("GET {t} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));

    // Default off: only /sales/(order|view).asp is cached.
    let hot = format!("/sales/order.asp{}", q(&[FRESH], "size=3"));
    let cold = format!("/sales/list.asp{}", q(&[FRESH], "size=3"));
    get("off", &hot);
    assert_eq!(info(&get("off", &hot)), "cached");
    get("off", &cold);
    assert_eq!(info(&get("off", &cold)), "not cacheable; disabled by a rule");

    // Cache key by network: loopback is "external"; the page is stored
    // under that key, after its Cache-Control: no-cache was removed.
    let home = format!("/{}", q(&["Cache-Control: no-cache"], "size=5"));
    let first = get("net", &home);
    assert_eq!((info(&first), first.header("cache-control")), ("caching", None));
    assert_eq!(info(&get("net", &home)), "cached");
    // The same URL without the rule's key is another object.
    assert_eq!(info(&get("force", &home)), "not cacheable; response specified \"Cache-Control: no-cache\"");

    // Forcing a page: its no-cache removed by a response rule.
    let jsp = format!("/testpage.jsp{}", q(&["Cache-Control: no-cache"], "size=4"));
    get("force", &jsp);
    assert_eq!(info(&get("force", &jsp)), "cached");

    // Example 1: /videos/*.flv is rewritten to .f4v and never cached.
    let flv = format!("/videos/clip.flv{}", q(&[FRESH], "size=6"));
    for _ in 0..2 {
        let r = get("ex1", &flv);
        assert_eq!((r.status, info(&r)), (200, "not cacheable; disabled by a rule"));
    }
    let f4v = flv.replace(".flv", ".f4v");
    let want = format!("request a GET {f4v} ");
    poll(Duration::from_secs(10), "the rewritten requests", || {
        (origin.proc.count(|l| l.starts_with(&want)) == 2).then_some(())
    });
}

/// G8 (proof 2): 500 concurrent requests for one cold 100 MB object over
/// two shards reach the node once, and every client gets it exact.
#[test]
fn collapsed_forwarding_of_a_cold_object() {
    let _heavy = heavy();
    const SIZE: u64 = 100_000_000;
    const CLIENTS: usize = 500;
    // The node waits a second before answering: every client is in by then.
    let rig = Rig::start(2, "memory = \"512MiB\"\nmax_object = \"200MiB\"", "max_connections = 2000", &api_section());
    let t = format!("/big{}", q(&[FRESH], &format!("size={SIZE}&pattern=mix&delay=1000")));
    let expect = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < SIZE {
            let n = (SIZE - at).min(buf.len() as u64) as usize;
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = origin_byte(at + k as u64, true);
            }
            h.update(&buf[..n]);
            at += n as u64;
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let conns: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = connect(rig.addr());
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            s.write_all(format!("GET {t} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n").as_bytes())
                .unwrap();
            s
        })
        .collect();
    // Read them all, eight at a time (the rest wait in their socket
    // buffers: shoal holds no copy for them).
    let conns = std::sync::Mutex::new(conns);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| loop {
                let Some(mut s) = conns.lock().unwrap().pop() else { break };
                let mut r = std::io::BufReader::new(&mut s);
                let head = read_head(&mut r);
                let (len, sha) = sha256_stream(&mut r);
                results.lock().unwrap().push((head, len, sha));
            });
        }
    });
    let results = results.into_inner().unwrap();
    assert_eq!(results.len(), CLIENTS);
    for (head, len, sha) in &results {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!((*len, sha.as_str()), (SIZE, expect.as_str()), "{head}");
    }
    assert_eq!(rig.node_saw("GET", &t), 1, "one node request for {CLIENTS} clients");
    let st = rig.shoal.status();
    let cache = &st["virtual_servers"]["web"]["cache"];
    assert_eq!(cache["misses"].as_u64().unwrap() + cache["hits"].as_u64().unwrap(), CLIENTS as u64, "{cache}");
    assert!(cache["collapsed_waits"].as_u64().unwrap() >= CLIENTS as u64 - 1, "{cache}");
}

/// A response head, read line by line up to its empty line.
fn read_head(r: &mut impl Read) -> String {
    let mut head = String::new();
    loop {
        let l = read_line(r);
        if l.is_empty() {
            return head;
        }
        head += &l;
        head += "\n";
    }
}

/// G6 and G7 (proofs 3 and 5): 200 random single ranges of a 1 GiB object
/// while it fills (the node sends 256 MiB/s), once stored in memory, and
/// from the disk tier after a restart, every byte exact; a full read, and
/// 416 past the end. Clients that stall on the stored gigabyte add no more
/// than their socket buffers to shoal's memory.
#[test]
fn ranges_of_a_gigabyte_while_filling_stored_and_on_disk() {
    let _heavy = heavy();
    const SIZE: u64 = 1 << 30;
    let disk = TempDir::new();
    let cache =
        format!("memory = \"3GiB\"\nmax_object = \"1GiB\"\ndisk_dir = \"{}\"\ndisk_size = \"4GiB\"", disk.0.display());
    let mut rig = Rig::start(2, &cache, "", &api_section());
    let t = format!("/gig{}", q(&[FRESH], &format!("size={SIZE}&pattern=mix&rate={}", 256 << 20)));
    let mut rng = fastrand::Rng::with_seed(16);
    let mut ranges = |n: usize| -> Vec<(u64, u64)> {
        (0..n)
            .map(|_| {
                let start = rng.u64(0..SIZE);
                let len = rng.u64(1..=(256 << 10)).min(SIZE - start);
                (start, start + len - 1)
            })
            .collect()
    };
    // One range, checked byte by byte; counts the answers whose
    // X-Cache-Info contains `note`.
    fn check(rig: &Rig, t: &str, (first, last): (u64, u64), note: &str, seen: &mut usize) {
        let r = rig.get(t, &format!("Range: bytes={first}-{last}\r\n"));
        assert_eq!(r.status, 206, "{first}-{last}: {:?}", r.headers);
        assert_eq!(r.header("content-range"), Some(format!("bytes {first}-{last}/{SIZE}").as_str()));
        assert_eq!(r.body.len() as u64, last - first + 1);
        for (k, b) in r.body.iter().enumerate() {
            assert_eq!(*b, origin_byte(first + k as u64, true), "byte {} of {first}-{last}", first + k as u64);
        }
        if info(&r).contains(note) {
            *seen += 1;
        }
    }
    let check_filling = |rig: &Rig, r: (u64, u64), seen: &mut usize| check(rig, &t, r, "still filling", seen);
    // The first request fills (its client asked for a range: it gets 206).
    let mut filling = 0;
    check_filling(&rig, (5, 1004), &mut filling);
    // While it fills, early and late ranges: the late ones wait for their
    // bytes to arrive.
    let mut during = ranges(200);
    during.sort_by_key(|r| r.0);
    for r in during {
        check_filling(&rig, r, &mut filling);
    }
    assert!(filling > 10, "ranges were served while the object filled ({filling})");
    poll(Duration::from_secs(60), "the object to be complete", || {
        let r = rig.get(&t, "Range: bytes=0-0\r\n");
        (!info(&r).contains("still filling")).then_some(())
    });
    let mut after = 0;
    for r in ranges(200) {
        check_filling(&rig, r, &mut after);
    }
    assert_eq!(after, 0);
    let r = rig.get(&t, &format!("Range: bytes={SIZE}-\r\n"));
    assert_eq!((r.status, r.header("content-range")), (416, Some(format!("bytes */{SIZE}").as_str())));
    let suffix = rig.get(&t, "Range: bytes=-10\r\n");
    assert_eq!(suffix.body, (SIZE - 10..SIZE).map(|i| origin_byte(i, true)).collect::<Vec<_>>());
    // If-Range with another validator: the whole object, not a part.
    let whole = {
        let mut s = connect(rig.addr());
        s.write_all(format!("GET {t} HTTP/1.1\r\nHost: site.example\r\nRange: bytes=0-9\r\nIf-Range: \"other\"\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let mut r = std::io::BufReader::new(s);
        let head = read_head(&mut r);
        (head, sha256_stream(&mut r).0)
    };
    assert!(whole.0.starts_with("HTTP/1.1 200"), "{}", whole.0);
    assert_eq!(whole.1, SIZE);
    assert_eq!(rig.node_saw("GET", &t), 1);

    // Stalled clients: ten requests of the whole gigabyte, never read.
    let pid = rig.shoal.proc.child.id();
    let rss = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
    };
    let before = rss();
    let stalled: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = connect(rig.addr());
            s.write_all(format!("GET {t} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n").as_bytes())
                .unwrap();
            s
        })
        .collect();
    // Each has filled its socket buffers once a fresh request is answered.
    poll(Duration::from_secs(10), "shoal to answer beside the stalled clients", || {
        (rig.get(&t, "Range: bytes=0-0\r\n").status == 206).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    let grown = rss().saturating_sub(before);
    assert!(grown < 32 * 1024, "10 stalled clients of a 1 GiB object grew shoal by {grown} KiB");
    drop(stalled);

    // The disk tier: once the gigabyte is written, a restarted shoal
    // serves ranges of it from disk, with no node request.
    poll(Duration::from_secs(120), "the gigabyte on disk", || {
        (rig.shoal.status()["cache"]["disk"]["objects"].as_u64() == Some(1)).then_some(())
    });
    rig.restart();
    let mut from_disk = 0;
    let mut on_disk = ranges(200);
    on_disk.push((SIZE - 1, SIZE - 1));
    for r in on_disk {
        check(&rig, &t, r, "from disk", &mut from_disk);
    }
    assert_eq!(from_disk, 201, "every range from disk");
    assert_eq!(rig.node_saw("GET", &t), 1, "the node was asked once, before the restart");
}

both_protocols! {
/// I1/I2: purges through the API (one URL, a prefix, everything) on every
/// shard, and the cache's figures in the status document and /metrics.
fn purge_and_statistics_through_the_api() {
    let rig = Rig::start(2, "memory = \"64MiB\"", "", &api_section());
    let urls: Vec<String> = (0..6).map(|i| format!("/m/{i}{}", q(&[FRESH], "size=1000"))).collect();
    for u in &urls {
        rig.get(u, "");
    }
    let other = format!("/n/x{}", q(&[FRESH], "size=10"));
    rig.get(&other, "");
    for u in &urls {
        assert_eq!(info(&rig.get(u, "")), "cached");
    }
    let purge = |body: &str| rig.shoal.api("POST", "/api/tm/1.0/cache/purge", body);
    let r = purge(&format!("{{\"url\": \"http://site.example{}\"}}", urls[0]));
    assert_eq!((r.status, r.json()["purged"].as_u64()), (200, Some(1)), "{}", r.text());
    assert_eq!(info(&rig.get(&urls[0], "")), "caching");
    assert_eq!(info(&rig.get(&urls[1], "")), "cached");
    let r = purge("{\"prefix\": \"/m/\"}");
    assert_eq!(r.json()["purged"].as_u64(), Some(6), "every host's /m/ objects: {}", r.text());
    assert_eq!(info(&rig.get(&urls[3], "")), "caching");
    assert_eq!(info(&rig.get(&other, "")), "cached");
    let r = purge("{\"all\": true}");
    assert!(r.json()["purged"].as_u64().unwrap() >= 2);
    assert_eq!(info(&rig.get(&other, "")), "caching");
    for bad in ["{}", "{\"url\": \"nope\"}", "{\"all\": true, \"x\": 1}", "[1]"] {
        assert_eq!(purge(bad).status, 400, "{bad}");
    }
    let st = rig.shoal.status();
    let c = &st["virtual_servers"]["web"]["cache"];
    assert!(c["hits"].as_u64().unwrap() >= 8 && c["misses"].as_u64().unwrap() >= 9, "{c}");
    assert!(c["hit_bytes"].as_u64().unwrap() >= 6000, "{c}");
    let mem = &st["cache"]["memory"];
    assert!(mem["objects"].as_u64().unwrap() >= 1 && mem["purged"].as_u64().unwrap() >= 9, "{mem}");
    assert_eq!(mem["limit_bytes"].as_u64(), Some(64 << 20));
    let metrics = rig.shoal.api("GET", "/metrics", "").text();
    for want in [
        "shoal_virtual_server_cache_events_total{virtual_server=\"web\",event=\"hits\"}",
        "shoal_cache_objects{tier=\"memory\"}",
        "shoal_cache_evictions_total{tier=\"memory\"} 0",
        "shoal_cache_limit_bytes{tier=\"memory\"} 67108864",
    ] {
        assert!(metrics.contains(want), "{want} in /metrics");
    }
}
}

both_protocols! {
/// G3: past its memory limit the cache evicts (counted), and keeps
/// serving.
fn eviction_keeps_within_the_limit() {
    let rig = Rig::start(1, "memory = \"2MiB\"\nmax_object = \"1MiB\"", "", &api_section());
    for i in 0..20 {
        let t = format!("/ev/{i}{}", q(&[FRESH], "size=200000"));
        assert_eq!(rig.get(&t, "").body.len(), 200_000);
    }
    let st = rig.shoal.status();
    let mem = &st["cache"]["memory"];
    assert!(mem["bytes"].as_u64().unwrap() <= 2 << 20, "{mem}");
    assert!(mem["evictions"].as_u64().unwrap() >= 10, "{mem}");
    let big = format!("/ev/big{}", q(&[FRESH], "size=1500000"));
    assert_eq!(info(&rig.get(&big, "")), "not cacheable; response file size too large");
}
}

/// Quick mode: `shoal proxy ... --cache SIZE` caches.
#[test]
fn quick_mode_cache() {
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = std::process::Command::new(shoal_bin());
    cmd.args([
        "proxy",
        "--listen",
        &listen,
        "--to",
        &origin.addr("a").to_string(),
        "--protocol",
        "http",
        "--cache",
        "16MiB",
    ]);
    let proc = Proc::spawn(cmd, false);
    let addr: SocketAddr = listen.parse().unwrap();
    let t = format!("/quick{}", q(&[FRESH], "size=100"));
    poll(Duration::from_secs(10), "shoal proxy to listen", || TcpStream::connect(addr).ok());
    for _ in 0..3 {
        assert_eq!(send(addr, &format!("GET {t} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).body.len(), 100);
    }
    let want = format!("request a GET {t} ");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(origin.proc.count(|l| l.starts_with(&want)), 1);
    drop(proc);
    let bad = std::process::Command::new(shoal_bin())
        .args(["proxy", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:1", "--protocol", "http", "--cache", "lots"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--cache: invalid size"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Configuration errors point at the key: a cache on a generic protocol,
/// an unknown policy, a size that is not one.
#[test]
fn configuration_errors() {
    let dir = TempDir::new();
    for (toml, want) in [
        ("[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"generic_streaming\"\npool = \"p\"\ncache = true\n[pools.p]\nnodes = [\"127.0.0.1:1\"]\n", "shoal.toml:5:9"),
        ("[cache]\npolicy = \"fifo\"\n", "shoal.toml:2:10"),
        ("[cache]\nmemory = \"12 parsecs\"\n", "shoal.toml:2:10"),
        ("[cache]\nmax_variants = 0\n", "shoal.toml:2:16"),
    ] {
        let path = dir.write("shoal.toml", toml);
        let out = std::process::Command::new(shoal_bin()).arg("check").arg("-c").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{toml}: {err}");
    }
}

/// G7 (proof 4): the disk tier keeps what memory evicts, served from
/// disk; a restarted shoal serves everything on disk as hits, with no
/// node request; a purge removes the files.
#[test]
fn disk_tier_keeps_evicted_objects_and_survives_a_restart() {
    let disk = TempDir::new();
    let origin = Origin::start_with("http", &[("a", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let toml = format!(
        "[global]\nshards = 2\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\ncache = true\n\n\
         [pools.p]\nnodes = [\"{}\"]\n\n[cache]\nverbose = true\nmemory = \"8MiB\"\nmax_object = \"4MiB\"\n\
         disk_dir = \"{}\"\ndisk_size = \"64MiB\"\n\n{}",
        origin.addr("a"),
        disk.0.display(),
        api_section()
    );
    let sizes = [100u64, 300_000, 1_500_000, 3_000_000, 3_000_001, 2_500_000, 10];
    let targets: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("/d/{i}{}", q(&[FRESH], &format!("size={n}&pattern=mix"))))
        .collect();
    let exact = |r: &Resp, n: u64| {
        r.body.len() as u64 == n && r.body.iter().enumerate().all(|(k, b)| *b == origin_byte(k as u64, true))
    };
    let get = |shoal: &Shoal, t: &str| {
        send(shoal.addr("web"), &format!("GET {t} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n"))
    };
    let mut first = Shoal::start(&toml);
    for (t, n) in targets.iter().zip(sizes) {
        let r = get(&first, t);
        assert!(exact(&r, n) && info(&r) == "caching", "{t}: {:?}", r.headers);
    }
    // Every object reaches the disk (written after its last byte).
    poll(Duration::from_secs(30), "every object on disk", || {
        let st = first.status();
        (st["cache"]["disk"]["objects"].as_u64() == Some(sizes.len() as u64)).then_some(())
    });
    // 10.4 MB do not fit 8 MiB of memory: some were evicted from memory and
    // are served from disk, all exact.
    let mut from_disk = 0;
    for (t, n) in targets.iter().zip(sizes) {
        let r = get(&first, t);
        assert!(exact(&r, n) && info(&r).starts_with("cached"), "{t}: {}", info(&r));
        from_disk += usize::from(info(&r) == "cached; from disk");
    }
    let st = first.status();
    assert!(st["cache"]["memory"]["evictions"].as_u64().unwrap() > 0, "{}", st["cache"]);
    assert!(from_disk > 0, "objects served from disk after their memory eviction");
    // A range from disk.
    let r = send(
        first.addr("web"),
        &format!(
            "GET {} HTTP/1.1\r\nHost: site.example\r\nRange: bytes=2999990-\r\nConnection: close\r\n\r\n",
            targets[3]
        ),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, (2_999_990..3_000_000).map(|i| origin_byte(i, true)).collect::<Vec<_>>());

    first.proc.signal("TERM");
    first.proc.wait_exit(Duration::from_secs(30));
    let second = Shoal::start(&toml);
    second.proc.wait_line(Duration::from_secs(10), |l| l.contains(" object(s) on disk in "));
    for (t, n) in targets.iter().zip(sizes) {
        let r = get(&second, t);
        assert!(exact(&r, n), "{t} after the restart");
        assert_eq!(info(&r), "cached; from disk", "{t} after the restart");
    }
    // The node's log is read up to a request of our own, then counted.
    let mut s = connect(origin.addr("a"));
    s.write_all(b"GET /sync-restart HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    read_response(&mut s, false);
    origin.proc.wait_count(1, Duration::from_secs(10), |l| l.contains(" GET /sync-restart "));
    for t in &targets {
        let want = format!("request a GET {t} ");
        assert_eq!(origin.proc.count(|l| l.starts_with(&want)), 1, "{t}: the node was asked once, before the restart");
    }
    let purged = second.api("POST", "/api/tm/1.0/cache/purge", "{\"all\": true}");
    assert_eq!(purged.json()["purged"].as_u64(), Some(sizes.len() as u64));
    poll(Duration::from_secs(10), "the files to be removed", || {
        let left = std::fs::read_dir(&disk.0)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".obj"))
            .count();
        (left == 0).then_some(())
    });
}

/// G7: an object too large for memory is written straight to the disk
/// tier as it arrives; clients read it while it fills (a second client and
/// a range), and from disk once complete; the node is asked once.
#[test]
fn objects_too_large_for_memory_go_straight_to_disk() {
    let disk = TempDir::new();
    let cache = format!(
        "memory = \"1MiB\"\nmax_object = \"64MiB\"\ndisk_dir = \"{}\"\ndisk_size = \"256MiB\"",
        disk.0.display()
    );
    let rig = Rig::start(1, &cache, "", &api_section());
    const SIZE: u64 = 20_000_000;
    // The node sends 16 MiB/s: the object takes over a second to arrive.
    let t = format!("/huge{}", q(&[FRESH], &format!("size={SIZE}&pattern=mix&rate={}", 16 << 20)));
    let exact = |r: &Resp, from: u64, n: u64| {
        r.body.len() as u64 == n && r.body.iter().enumerate().all(|(k, b)| *b == origin_byte(from + k as u64, true))
    };
    let addr = rig.addr();
    let t1 = t.clone();
    let first = std::thread::spawn(move || {
        send(addr, &format!("GET {t1} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n"))
    });
    let line = format!("request a GET {t} ");
    rig.origin.proc.wait_count(1, Duration::from_secs(10), |l| l.starts_with(&line));
    let second = rig.get(&t, "");
    let part = rig.get(&t, "Range: bytes=19999000-19999999\r\n");
    let first = first.join().unwrap();
    assert!(exact(&first, 0, SIZE) && info(&first) == "caching", "{:?}", first.headers);
    assert!(exact(&second, 0, SIZE), "the second client: {:?}", second.headers);
    assert!(info(&second).starts_with("cached"), "{}", info(&second));
    assert_eq!(part.status, 206);
    assert!(exact(&part, 19_999_000, 1000));
    poll(Duration::from_secs(30), "the object on disk", || {
        (rig.shoal.status()["cache"]["disk"]["objects"].as_u64() == Some(1)).then_some(())
    });
    let again = rig.get(&t, "");
    assert!(exact(&again, 0, SIZE));
    assert_eq!(info(&again), "cached; from disk");
    let st = rig.shoal.status();
    assert!(st["cache"]["memory"]["bytes"].as_u64().unwrap() < 1 << 20, "not in memory: {}", st["cache"]);
    assert_eq!(rig.node_saw("GET", &t), 1);
}
