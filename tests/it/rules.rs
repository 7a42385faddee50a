//! Rules (issue 15, docs/rules.md): the seeds' TrafficScript examples and
//! the F4 list, run as written (with the restorations docs/rules.md
//! lists) against real nodes; the API of the language on real requests;
//! declarative rules; layer-7 DSR as rules and built in; rules on byte
//! streams; configuration errors with file:line:column; rule files
//! through the API and quick mode; the budget and waiting subrequests,
//! which hold up their own connection only.

use crate::support::*;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Start shoal on `toml` with `files` written next to it.
fn start_with(toml: &str, files: &[(&str, &str)]) -> Shoal {
    let dir = TempDir::new();
    for (name, text) in files {
        dir.write(name, text);
    }
    let config = dir.write("shoal.toml", toml);
    let mut cmd = Command::new(shoal_bin());
    cmd.arg("run").arg("-c").arg(&config);
    Shoal::from_command(cmd, dir, config)
}

fn get(addr: SocketAddr, target: &str, headers: &str) -> Resp {
    send(addr, &format!("GET {target} HTTP/1.1\r\nHost: site.example\r\n{headers}Connection: close\r\n\r\n"))
}

fn body_text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A virtual server `web` on pool `p` over `nodes`, with `vs_extra` in it,
/// and `rest` after.
fn config(nodes: &[SocketAddr], vs_extra: &str, rest: &str) -> String {
    let nodes: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[global]\nshards = 1\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n{vs_extra}\n\n[pools.p]\nnodes = [{}]\n\n{rest}\n",
        nodes.join(", ")
    )
}

const REWRITE: &str = r#"$url = http.getResponseHeader( "Content-Type" ); if( !string.startsWith( $url, "text/html" ) ) break; $response = http.getResponseBody(); $response = string.replaceAll( $response, "http://intranet.mycorp.com/", "https://extranet.mycorp.com/" ); http.setResponseBody( $response );
"#;

const ANNOTATE: &str = r#"if( http.getResponseHeader( "Content-Type" ) != "text/html" ) break; $body = http.getResponseBody(); $html = '<div style="position:absolute;top:0;left:0;border:1px solid black;background:white">'. 'Served by ' . connection.getNode() . '</div>'; $body = string.regexsub( $body, "(<body[^>]*>)", "$1\n".$html."\n", "i" ); http.setResponseBody( $body );
"#;

both_protocols! {
/// Seeds, Example 2 and "annotate a page with the node" (F4: response
/// body rewrite, annotate page with node), as written: HTML pages are
/// rewritten whole (length and chunked framing), anything else streams
/// through untouched, byte for byte.
fn seeds_response_rewrite_and_annotation() {
    let origin = Origin::start("http", &["a"]);
    let a = origin.addr("a");
    let shoal = start_with(
        &config(
            &[a],
            "response_rules = [\"rewrite\", \"annotate\"]",
            "[rules.rewrite]\nfile = \"rewrite.ts\"\n\n[rules.annotate]\nfile = \"annotate.ts\"\n",
        ),
        &[("rewrite.ts", REWRITE), ("annotate.ts", ANNOTATE)],
    );
    let page =
        "<html><BODY class=\"x\">see http://intranet.mycorp.com/a and http://intranet.mycorp.com/b</BODY></html>";
    let want = format!(
        "<html><BODY class=\"x\">\n<div style=\"position:absolute;top:0;left:0;border:1px solid black;background:white\">Served by {a}</div>\nsee https://extranet.mycorp.com/a and https://extranet.mycorp.com/b</BODY></html>"
    );
    for chunked in ["0", "1"] {
        let r = get(shoal.addr("web"), &format!("/p?type=text/html&chunked={chunked}&text={}", enc(page)), "");
        assert_eq!(r.status, 200);
        assert_eq!(body_text(&r), want, "chunked={chunked}");
        assert_eq!(r.header("content-length"), Some(want.len().to_string().as_str()));
    }
    // Not HTML (the rules break before reading the body): 3 MB stream
    // through as the node sent them.
    let r = get(shoal.addr("web"), "/big?size=3000000&type=application/octet-stream", "");
    assert_eq!(r.body.len(), 3_000_000);
    assert!(r.body.iter().enumerate().all(|(i, &b)| b == b'a' + (i % 26) as u8));
    // A text/plain page mentioning the intranet is left alone too.
    let r = get(shoal.addr("web"), &format!("/t?type=text/plain&text={}", enc("http://intranet.mycorp.com/")), "");
    assert_eq!(body_text(&r), "http://intranet.mycorp.com/");
}
}

both_protocols! {
/// Seeds, Example 3: a response rule asks another server (a subrequest)
/// and puts what it says into the page.
fn seeds_external_source() {
    let origin = Origin::start("http", &["a", "news"]);
    let news = origin.addr("news");
    let json = r#"{"responseData": {"results": [{"unescapedUrl": "http://a.example/1", "titleNoFormatting": "One"}, {"unescapedUrl": "http://b.example/2", "titleNoFormatting": "Two"}]}}"#;
    let rule = format!(
        r#"$type = http.getResponseHeader( "Content-Type" ); if( $type != "text/html" ) break; # Stop processing this rule
$res = http.request.get( "http://{news}/news?v=1.0&q=Riverbed&type=application/json&text={}" ); $r = json.deserialize( $res ); $rs = $r['responseData']['results']; $html .= "<ul>\n"; foreach( $e in $rs ) {{ $html .= '<li>' . '<a href="'.$e['unescapedUrl'].'">'.$e['titleNoFormatting'].'</a>'. '</li>'; }} $html .= "</ul>\n"; $body = http.getResponseBody(); $body = string.replace( $body, "<!--RESULTS-->", $html); http.setResponseBody( $body );
"#,
        enc(json)
    );
    let shoal = start_with(
        &config(&[origin.addr("a")], "response_rules = [\"news\"]", "[rules.news]\nfile = \"news.ts\"\n"),
        &[("news.ts", &rule)],
    );
    let r =
        get(shoal.addr("web"), &format!("/?type=text/html&text={}", enc("<p>News</p><!--RESULTS--><p>end</p>")), "");
    assert_eq!(
        body_text(&r),
        "<p>News</p><ul>\n<li><a href=\"http://a.example/1\">One</a></li><li><a href=\"http://b.example/2\">Two</a></li></ul>\n<p>end</p>"
    );
}
}

/// Seeds, layer-7 DSR by redirect, as request and response rules (with
/// the restorations docs/rules.md lists): `/media/...` becomes a `HEAD /`
/// probe through the media pool, answered by a redirect to the node that
/// took it; other requests are proxied.
#[test]
fn seeds_layer7_dsr_rules() {
    let origin = Origin::start_with("http", &[("m1", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let web = Origin::start("http", &["w"]);
    let m1 = origin.addr("m1");
    let request = r#"$path = http.getPath();
if( string.startsWith( $path, "/media/" ) ) {
   # Store the real path
   connection.data.set( "path", $path );
   # Convert the request to a lightweight HEAD for '/'
   http.setMethod( "HEAD" );
   http.setPath( "/" );
   pool.use( "Media Servers" );
}
"#;
    let response = r#"$saved_path = connection.data.get( "path" );
if( string.startsWith( $saved_path, "/media" ) ) {
   $chosen_node = connection.getNode();
   http.redirect( "http://".$chosen_node.$saved_path );
}
"#;
    let shoal = start_with(
        &config(
            &[web.addr("w")],
            "request_rules = [\"dsr-request\"]\nresponse_rules = [\"dsr-response\"]",
            &format!(
                "[pools.\"Media Servers\"]\nnodes = [\"{m1}\"]\n\n[rules.dsr-request]\nfile = \"req.ts\"\n\n[rules.dsr-response]\nfile = \"resp.ts\"\n"
            ),
        ),
        &[("req.ts", request), ("resp.ts", response)],
    );
    let r = get(shoal.addr("web"), "/media/film.mp4", "");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some(format!("http://{m1}/media/film.mp4").as_str()));
    origin.proc.wait_line(Duration::from_secs(10), |l| l.starts_with("request m1 HEAD / "));
    assert_eq!(origin.proc.count(|l| l.contains("/media/")), 0, "the node never saw the real path");
    // Other pages are proxied as usual, on the same connection too.
    let mut s = connect(shoal.addr("web"));
    s.write_all(b"GET /page?size=5 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!((r.status, r.header("x-node"), r.body.as_slice()), (200, Some("w"), &b"abcde"[..]));
}

both_protocols! {
/// M1 built in: `[virtual_servers.NAME.dsr]` probes with a HEAD and
/// redirects to the node's public name, with no rule; a probe answered
/// 5xx moves on to another node; other paths are proxied.
fn dsr_built_in() {
    let good = Origin::start_with("http", &[("good", "127.0.0.1:0".parse().unwrap())], &["--log-requests"]);
    let bad = Origin::start_with("http", &[("bad", "127.0.0.1:0".parse().unwrap())], &["--status", "500"]);
    let web = Origin::start("http", &["w"]);
    let (g, b) = (good.addr("good"), bad.addr("bad"));
    let shoal = Shoal::start(&config(
        &[web.addr("w")],
        &format!(
            "[virtual_servers.web.dsr]\npaths = [\"/media/*\", \"*.iso\"]\npool = \"media\"\nprobe = \"/health\"\nstatus = 307\npublic = {{ \"{g}\" = \"media1.example.com\" }}"
        ),
        &format!("[pools.media]\nnodes = [\"{b}\", \"{g}\"]\n"),
    ));
    for i in 0..4 {
        let r = get(shoal.addr("web"), &format!("/media/f{i}.mp4?start=10"), "");
        assert_eq!(r.status, 307, "{r:?}");
        assert_eq!(r.header("location"), Some(format!("http://media1.example.com/media/f{i}.mp4?start=10").as_str()));
    }
    let r = get(shoal.addr("web"), "/dl/linux.iso", "");
    assert_eq!(r.header("location"), Some("http://media1.example.com/dl/linux.iso"));
    // The node logs a probe before answering it; the log is read on
    // another thread.
    good.proc.wait_count(5, Duration::from_secs(10), |l| l.starts_with("request good HEAD /health "));
    let r = get(shoal.addr("web"), "/index.html?size=3", "");
    assert_eq!((r.status, r.header("x-node"), r.body.as_slice()), (200, Some("w"), &b"abc"[..]));
    // A POST to a media path is not a download: proxied.
    let r = send(
        shoal.addr("web"),
        "POST /media/upload HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(r.header("x-node"), Some("w"));
}
}

both_protocols! {
/// F4: pool by User-Agent (the seeds' RTSP rule, in HTTP, with `pool.use`
/// restored).
fn seeds_pool_by_user_agent() {
    let origin = Origin::start("http", &["helix", "qt", "wm", "default"]);
    let rule = r#"$client = http.getHeader( "User-Agent" );
# Choose the pool based on the User-Agent
if( string.Contains( $client, "RealMedia" ) ) {
   pool.use( "Helix Servers" );
} else if ( string.Contains( $client, "QuickTime" ) ) {
   pool.use( "QuickTime Servers" );
} else if ( string.Contains( $client, "WMPlayer" ) ) {
   pool.use( "Windows Media Servers" );
}
"#;
    let pools = format!(
        "[pools.\"Helix Servers\"]\nnodes = [\"{}\"]\n[pools.\"QuickTime Servers\"]\nnodes = [\"{}\"]\n[pools.\"Windows Media Servers\"]\nnodes = [\"{}\"]\n[rules.by-agent]\nfile = \"agent.ts\"\n",
        origin.addr("helix"),
        origin.addr("qt"),
        origin.addr("wm")
    );
    let shoal =
        start_with(&config(&[origin.addr("default")], "request_rules = [\"by-agent\"]", &pools), &[("agent.ts", rule)]);
    for (ua, node) in [
        ("RealMedia Player/10", "helix"),
        ("QuickTime/7.6", "qt"),
        ("NSPlayer WMPlayer/12", "wm"),
        ("curl/8", "default"),
        ("", "default"),
    ] {
        let r = get(shoal.addr("web"), "/", &format!("User-Agent: {ua}\r\n"));
        assert_eq!(r.header("x-node"), Some(node), "{ua}");
    }
}
}

both_protocols! {
/// F4: pool by local address (the seeds' multi-site rule, with loopback
/// addresses for the sites' traffic IPs).
fn seeds_pool_by_local_address() {
    let origin = Origin::start("http", &["docklands", "nj", "default"]);
    let rule = r#"$ip = request.getLocalIP();
# Traffic IPs in the range 127.0.0.2/32 are hosted in Docklands
if( string.ipmaskMatch( $ip, "127.0.0.2/32" ) ) pool.select( "Docklands Webservers" );
# Traffic IPs in the range 127.0.0.3/32 are hosted in New Jersey
if( string.ipmaskMatch( $ip, "127.0.0.3/255.255.255.255" ) ) pool.select( "New Jersey Webservers" );
"#;
    let toml = format!(
        "[global]\nshards = 1\n\n[virtual_servers.web]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\", \"127.0.0.3:0\"]\nprotocol = \"http\"\npool = \"p\"\nrequest_rules = [\"site\"]\n\n[pools.p]\nnodes = [\"{}\"]\n[pools.\"Docklands Webservers\"]\nnodes = [\"{}\"]\n[pools.\"New Jersey Webservers\"]\nnodes = [\"{}\"]\n[rules.site]\nfile = \"site.ts\"\n",
        origin.addr("default"),
        origin.addr("docklands"),
        origin.addr("nj")
    );
    let shoal = start_with(&toml, &[("site.ts", rule)]);
    let ports: Vec<(String, SocketAddr)> = shoal
        .proc
        .lines()
        .iter()
        .filter_map(|l| l.split("listening on ").nth(1).map(|t| t.split(' ').next().unwrap().parse().unwrap()))
        .map(|a: SocketAddr| (a.ip().to_string(), a))
        .collect();
    for (ip, node) in [("127.0.0.1", "default"), ("127.0.0.2", "docklands"), ("127.0.0.3", "nj")] {
        let addr = ports.iter().find(|(i, _)| i == ip).unwrap_or_else(|| panic!("no listener on {ip}: {ports:?}")).1;
        assert_eq!(get(addr, "/", "").header("x-node"), Some(node), "{ip}");
    }
}
}

both_protocols! {
/// F4: servlet persistence: `/servlet` requests use the "servlet
/// persistence" class (JSESSIONID), others are balanced.
fn seeds_servlet_persistence() {
    let origin = Origin::start("http", &["a", "b"]);
    let rule = r#"if( string.startswith( http.getPath(), "/servlet" ) ) { connection.setPersistenceClass( "servlet persistence" ); }"#;
    let shoal = start_with(
        &config(
            &[origin.addr("a"), origin.addr("b")],
            "request_rules = [\"servlet\"]",
            "[persistence.\"servlet persistence\"]\ntype = \"j2ee\"\n\n[rules.servlet]\nfile = \"servlet.ts\"\n",
        ),
        &[("servlet.ts", rule)],
    );
    let first = get(shoal.addr("web"), "/servlet/login?cookie=JSESSIONID", "");
    let node = first.header("x-node").unwrap().to_string();
    let cookie = first.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    for i in 0..8 {
        let r = get(shoal.addr("web"), &format!("/servlet/page{i}"), &format!("Cookie: {cookie}\r\n"));
        assert_eq!(r.header("x-node"), Some(node.as_str()), "servlet request {i} stays with its session");
    }
    // The same cookie outside /servlet is not a session: balanced.
    let nodes: std::collections::HashSet<String> = (0..6)
        .map(|i| {
            get(shoal.addr("web"), &format!("/other{i}"), &format!("Cookie: {cookie}\r\n"))
                .header("x-node")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(nodes.len(), 2);
}
}

both_protocols! {
/// The seeds' page made cacheable: a response rule removes the node's
/// `Cache-Control` for one page.
fn seeds_cacheable_page() {
    let origin = Origin::start("http", &["a"]);
    let rule = "if( http.getpath() == \"/testpage.jsp\" ) {\n   # We know this request is cacheable; remove the 'Cache-Control: no-cache'\n   http.removeResponseHeader( \"Cache-Control\" );\n}\n";
    let shoal = start_with(
        &config(&[origin.addr("a")], "response_rules = [\"cacheable\"]", "[rules.cacheable]\nfile = \"c.ts\"\n"),
        &[("c.ts", rule)],
    );
    let q = format!("?hdr={}", enc("Cache-Control: no-cache"));
    assert_eq!(get(shoal.addr("web"), &format!("/testpage.jsp{q}"), "").header("cache-control"), None);
    assert_eq!(get(shoal.addr("web"), &format!("/other.jsp{q}"), "").header("cache-control"), Some("no-cache"));
}
}

both_protocols! {
/// F4: retry on a bad response: a node that answers 500 is passed over
/// for the other by `request.retry()`; without the rule, clients see the
/// 500s.
fn retry_on_bad_response() {
    let bad = Origin::start_with("http", &[("bad", "127.0.0.1:0".parse().unwrap())], &["--status", "500"]);
    let good = Origin::start("http", &["good"]);
    let nodes = format!("\"{}\", \"{}\"", bad.addr("bad"), good.addr("good"));
    let toml = format!(
        "[global]\nshards = 1\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nresponse_rules = [\"retry\"]\n\n\
         [virtual_servers.plain]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"q\"\n\n\
         [pools.p]\nnodes = [{nodes}]\n[pools.q]\nnodes = [{nodes}]\n\n[rules.retry]\nsource = 'if( http.getResponseCode() >= 500 ) request.retry();'\n"
    );
    let shoal = Shoal::start(&toml);
    for i in 0..6 {
        let r = get(shoal.addr("web"), &format!("/r{i}?size=2"), "");
        assert_eq!((r.status, r.header("x-node"), r.body.as_slice()), (200, Some("good"), &b"ab"[..]), "request {i}");
    }
    let statuses: Vec<u16> = (0..6).map(|i| get(shoal.addr("plain"), &format!("/r{i}"), "").status).collect();
    assert!(statuses.contains(&500), "without the rule the 500s reach the client: {statuses:?}");
}
}

/// The request API on real requests: headers, path, query, method,
/// cookies, `connection.data` across a keepalive connection, answers of
/// shoal's own, a named node and an explicit address.
#[test]
fn request_functions() {
    let origin = Origin::start("http", &["a", "b", "x"]);
    let (a, b, x) = (origin.addr("a"), origin.addr("b"), origin.addr("x"));
    let rule = format!(
        r#"$p = http.getPath();
if( $p == "/answer" ) http.sendResponse( "503 Come Back Later", "text/plain", "busy " . http.getMethod(), "Retry-After: 30\r\nX-Why: rule" );
if( $p == "/go" ) http.redirect( "https://elsewhere.example" . http.getQueryString() );
if( $p == "/site" ) http.changeSite( "https://www.example.com/" );
if( $p == "/close" ) connection.close();
$n = connection.data.get( "n" ) + 1;
connection.data.set( "n", $n );
http.setHeader( "X-Count", $n );
http.addHeader( "X-Seen", http.getHeader( "X-Drop" ) . "|" . http.getCookie( "sid" ) . "|" . http.getFormParam( "q" ) );
http.removeHeader( "X-Drop" );
http.setCookie( "sid", "new" );
http.removeCookie( "track" );
if( string.startsWith( $p, "/old/" ) ) {{ http.setPath( "/new/" . string.skip( $p, 5 ) ); http.setQueryString( "head=1&q=" . string.urlEncode( "a b" ) ); }}
if( $p == "/named" ) pool.use( "p", "{b}" );
if( $p == "/explicit" ) pool.use( "p", "{x}" );
if( http.getMethod() == "DELETE" ) http.setMethod( "GET" );
"#
    );
    let shoal =
        Shoal::start(&config(&[a, b], "request_rules = [\"api\"]", &format!("[rules.api]\nsource = '''\n{rule}'''\n")));
    let web = shoal.addr("web");
    let r = get(web, "/answer", "");
    assert_eq!((r.status, body_text(&r).as_str()), (503, "busy GET"));
    assert_eq!((r.header("retry-after"), r.header("x-why")), (Some("30"), Some("rule")));
    let r = get(web, "/go?x=1", "");
    assert_eq!((r.status, r.header("location")), (302, Some("https://elsewhere.examplex=1")));
    let r = get(web, "/site?a=b", "");
    assert_eq!(r.header("location"), Some("https://www.example.com/site?a=b"));
    // The rewritten request as the node got it (head=1 echoes it).
    let mut s = connect(web);
    s.write_all(
        b"DELETE /old/x/y.html?q=zz HTTP/1.1\r\nHost: h\r\nX-Drop: gone\r\nCookie: sid=old; track=1; keep=2\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, false);
    let head = body_text(&r);
    assert!(head.starts_with("GET /new/x/y.html?head=1&q=a%20b HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("X-Count: 1\r\n") && head.contains("X-Seen: gone|old|zz\r\n"), "{head}");
    assert!(!head.contains("X-Drop"), "{head}");
    assert!(head.contains("Cookie: sid=new; keep=2\r\n"), "{head}");
    // connection.data lives as long as the connection.
    s.write_all(b"GET /old/z?ignored HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert!(body_text(&read_response(&mut s, false)).contains("X-Count: 2\r\n"));
    let r = get(web, "/old/z", "");
    assert!(body_text(&r).contains("X-Count: 1\r\n"), "a new connection starts again");
    // A named node; an explicit address that is no node of the pool.
    for _ in 0..3 {
        assert_eq!(get(web, "/named", "").header("x-node"), Some("b"));
        assert_eq!(get(web, "/explicit", "").header("x-node"), Some("x"));
    }
    // connection.close(): no answer.
    let mut s = connect(web);
    s.write_all(b"GET /close HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert!(read_all(&mut s).is_empty());
}

both_protocols! {
/// Request bodies: a rule reads a form body, replaces the body; the node
/// gets the new one with its length.
fn request_body_functions() {
    let origin = Origin::start("http", &["a"]);
    let rule = r#"if( http.getFormParam( "user" ) == "bob" ) http.setHeader( "X-User", "bob" );
$b = http.getBody();
http.setBody( string.uppercase( $b ) . "&checked=1" );
"#;
    let shoal = Shoal::start(&config(
        &[origin.addr("a")],
        "request_rules = [\"form\"]",
        &format!("[rules.form]\nsource = '''\n{rule}'''\n"),
    ));
    let body = "user=bob&x=y";
    let r = send(
        shoal.addr("web"),
        &format!("POST /f?echo=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    );
    assert_eq!(body_text(&r), "USER=BOB&X=Y&checked=1");
    assert_eq!(r.header("x-body-len"), Some("22"));
    // Chunked in, the same.
    let r = send(shoal.addr("web"), "POST /f?echo=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(body_text(&r), "ABC&checked=1");
    // Over the rule body limit: 413, and the node never sees it.
    let limited =
        config(&[origin.addr("a")], "request_rules = [\"form\"]", &format!("[rules.form]\nsource = '''\n{rule}'''\n"))
            .replace("[global]\nshards = 1\n", "[global]\nshards = 1\nrule_body_limit = 1024\n");
    let shoal2 = Shoal::start(&limited);
    let big = "x".repeat(5000);
    let r = send(
        shoal2.addr("web"),
        &format!("POST /f?echo=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n{big}"),
    );
    assert_eq!(r.status, 413);
}
}

both_protocols! {
/// E1 keyed by a rule: a `universal` class whose key a rule sets.
fn persistence_key_from_a_rule() {
    let origin = Origin::start("http", &["a", "b", "c"]);
    let nodes = [origin.addr("a"), origin.addr("b"), origin.addr("c")];
    let shoal = Shoal::start(&config(
        &nodes,
        "request_rules = [\"key\"]",
        "[persistence.byuser]\ntype = \"universal\"\nsource = \"rule\"\n\n[rules.key]\nsource = '''\n$u = http.getHeader( \"X-User\" );\nif( $u != \"\" ) { connection.setPersistenceClass( \"byuser\" ); connection.setPersistenceKey( \"user-\" . $u ); }\n'''\n",
    ));
    for user in ["ann", "bob", "cy", "dee"] {
        let first = get(shoal.addr("web"), "/", &format!("X-User: {user}\r\n")).header("x-node").unwrap().to_string();
        for _ in 0..4 {
            assert_eq!(
                get(shoal.addr("web"), "/", &format!("X-User: {user}\r\n")).header("x-node"),
                Some(first.as_str())
            );
        }
    }
}
}

/// F3: a declarative rule runs as the script `shoal rules show` prints.
#[test]
fn declarative_rules() {
    let origin = Origin::start("http", &["web", "mobile"]);
    let toml = config(
        &[origin.addr("web")],
        "request_rules = [\"mobile\"]",
        &format!(
            r#"[pools.mobile]
nodes = ["{}"]

[rules.mobile]
when = "any"
conditions = [
  {{ on = "header:User-Agent", match = "wildcard", value = "*iPhone*" }},
  {{ on = "path", match = "prefix", value = "/m/" }},
  {{ on = "query:app", value = "1" }},
]
actions = [
  {{ do = "set_header", name = "X-Device", value = "mobile \"1\"" }},
  {{ do = "rewrite_path", value = "/mobile" }},
  {{ do = "use_pool", pool = "mobile" }},
]
"#,
            origin.addr("mobile")
        ),
    );
    let shoal = Shoal::start(&toml);
    for (target, ua, node) in [
        ("/?head=1", "Mozilla (iPhone; CPU)", "mobile"),
        ("/m/x?head=1", "curl", "mobile"),
        ("/?app=1&head=1", "curl", "mobile"),
        ("/?app=2&head=1", "curl", "web"),
    ] {
        let r = get(shoal.addr("web"), target, &format!("User-Agent: {ua}\r\n"));
        assert_eq!(r.header("x-node"), Some(node), "{target} {ua}");
        if node == "mobile" {
            let head = body_text(&r);
            assert!(head.starts_with("GET /mobile?") && head.contains("X-Device: mobile \"1\"\r\n"), "{head}");
        }
    }
    let out = Command::new(shoal_bin()).args(["rules", "show", "mobile", "-c"]).arg(&shoal.config).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "# Declarative rule \"mobile\", written as a script.\n\
         if (string.wildMatch(http.getHeader(\"User-Agent\"), \"*iPhone*\")\n   \
         || string.startsWith(http.getPath(), \"/m/\")\n   \
         || http.getFormParam(\"app\") == \"1\") {\n   \
         http.setHeader(\"X-Device\", \"mobile \\\"1\\\"\");\n   \
         http.setPath(\"/mobile\");\n   \
         pool.use(\"mobile\");\n}\n"
    );
}

/// F1 on byte streams: the request rules choose the pool from the
/// client's first bytes and rewrite every read; response rules wrap what
/// the node sends; `connection.close()` ends the connection.
#[test]
fn rules_on_byte_streams() {
    let origin = Origin::start("echo", &["main", "other"]);
    let toml = format!(
        r#"[global]
shards = 1

[virtual_servers.echo]
listen = "127.0.0.1:0"
protocol = "client_first"
pool = "main"
request_rules = ["route"]
response_rules = ["wrap"]
rules_run = "every"

[pools.main]
nodes = ["{}"]
[pools.other]
nodes = ["{}"]

[rules.route]
source = '''
$d = request.get();
if( string.startsWith( $d, "other:" ) ) pool.select( "other" );
if( string.startsWith( $d, "bye" ) ) connection.close();
request.set( string.uppercase( $d ) );
'''

[rules.wrap]
source = 'response.set( "[" . response.getLength() . ":" . response.get() . "]" );'
"#,
        origin.addr("main"),
        origin.addr("other")
    );
    let shoal = Shoal::start(&toml);
    let read_exact = |s: &mut TcpStream, want: &str| {
        let mut buf = vec![0u8; want.len()];
        std::io::Read::read_exact(s, &mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf), want);
    };
    let mut s = connect(shoal.addr("echo"));
    s.write_all(b"hello\n").unwrap();
    read_exact(&mut s, "[6:HELLO\n]");
    s.write_all(b"again\n").unwrap();
    read_exact(&mut s, "[6:AGAIN\n]");
    s.write_all(b"bye\n").unwrap();
    assert!(read_all(&mut s).is_empty(), "closed by the rule");
    // The first bytes chose the other pool (the echo proves the node
    // answered; the log names the node).
    let mut s = connect(shoal.addr("echo"));
    s.write_all(b"other:x\n").unwrap();
    read_exact(&mut s, "[8:OTHER:X\n]");
    // With rules_run = "once" (the default) only the first read is seen.
    let once = toml.replace("rules_run = \"every\"\n", "");
    let shoal = Shoal::start(&once);
    let mut s = connect(shoal.addr("echo"));
    s.write_all(b"first\n").unwrap();
    read_exact(&mut s, "[6:FIRST\n]");
    s.write_all(b"second\n").unwrap();
    read_exact(&mut s, "second\n");
}

both_protocols! {
/// A run-time error abandons the rule only: the request is served, the
/// error is logged with the rule's name and line, and counted.
fn runtime_errors_are_logged_and_counted() {
    let origin = Origin::start("http", &["a"]);
    let toml = format!(
        "{}{}",
        config(&[origin.addr("a")], "request_rules = [\"bad\", \"good\"]", "[rules.bad]\nsource = '''\n$x = 1;\n$y = $x / 0;\nhttp.setHeader( \"X-Bad\", \"ran\" );\n'''\n\n[rules.good]\nsource = 'http.setHeader( \"X-Good\", \"1\" );'\n"),
        api_section()
    );
    let shoal = Shoal::start(&toml);
    for _ in 0..3 {
        let r = get(shoal.addr("web"), "/?head=1", "");
        assert_eq!(r.status, 200);
        let head = body_text(&r);
        assert!(head.contains("X-Good: 1") && !head.contains("X-Bad"), "{head}");
    }
    shoal.proc.wait_line(Duration::from_secs(10), |l| l.contains("rule bad line 2: division by zero"));
    let st = shoal.status();
    assert_eq!(st["virtual_servers"]["web"]["rule_errors"], 3, "{st}");
    let m = shoal.api("GET", "/metrics", "").text();
    assert!(m.contains("shoal_virtual_server_rule_errors_total{virtual_server=\"web\"} 3"), "{m}");
}
}

/// Proof 3: `while( 1 ) {}` is cut off by the budget and the request is
/// still answered; the other connections of the same shard keep their
/// latency (p99 with and without the loops running).
#[test]
fn budget_cuts_off_a_loop_without_slowing_others() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let shoal = Shoal::start(&format!(
        "{}{}",
        config(
            &[origin.addr("a")],
            "request_rules = [\"loop\"]",
            "[rules.loop]\nsource = 'if( http.getPath() == \"/loop\" ) { while( 1 ) {} }'\n"
        ),
        api_section()
    ));
    let web = shoal.addr("web");
    let p99 = |n: usize| {
        let mut s = connect(web);
        let mut lat: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                s.write_all(b"GET /fast HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
                assert_eq!(read_response(&mut s, false).status, 200);
                t.elapsed()
            })
            .collect();
        lat.sort();
        lat[n * 99 / 100]
    };
    let base = p99(400);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = get(web, "/loop", "");
                assert_eq!(r.status, 200, "the request goes on after the rule is cut off");
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let loaded = p99(400);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let loops = looper.join().unwrap();
    assert!(loops >= 2, "the loop requests ran ({loops})");
    eprintln!("p99 of other requests: {base:?} alone, {loaded:?} with {loops} looping requests");
    assert!(loaded <= base * 3 + Duration::from_millis(15), "p99 {base:?} alone, {loaded:?} with loops running");
    poll(Duration::from_secs(10), "rule errors counted", || {
        (shoal.status()["virtual_servers"]["web"]["rule_errors"].as_u64() == Some(loops)).then_some(())
    });
    assert!(shoal.log().contains("rule loop line 1: over its budget of 1000000 instructions"));
}

/// Proof 4: a rule waiting 2 s on `http.request.get` holds up its own
/// connection only: 1,000 other requests on the same shard finish
/// meanwhile.
#[test]
fn a_waiting_subrequest_holds_up_only_its_connection() {
    let _heavy = heavy();
    let origin = Origin::start("http", &["a"]);
    let slow = Origin::start_with("http", &[("slow", "127.0.0.1:0".parse().unwrap())], &["--delay", "2000"]);
    let rule = format!(
        "if( http.getPath() == \"/slow\" ) {{ $r = http.request.get( \"http://{}/x?size=4\" ); http.setHeader( \"X-Sub\", $1 . \" \" . $r ); }}",
        slow.addr("slow")
    );
    let shoal = Shoal::start(&config(
        &[origin.addr("a")],
        "request_rules = [\"sub\"]",
        &format!("[rules.sub]\nsource = '{rule}'\n"),
    ));
    let web = shoal.addr("web");
    let started = Instant::now();
    let waiting = std::thread::spawn(move || {
        let r = get(web, "/slow?head=1", "");
        (Instant::now(), body_text(&r))
    });
    std::thread::sleep(Duration::from_millis(50));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(web);
                for _ in 0..250 {
                    s.write_all(b"GET /fast?size=1 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
                    assert_eq!(read_response(&mut s, false).status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let others_done = Instant::now();
    let (slow_done, head) = waiting.join().unwrap();
    assert!(head.contains("X-Sub: 200 abcd\r\n"), "{head}");
    assert!(slow_done.duration_since(started) >= Duration::from_secs(2));
    assert!(others_done < slow_done, "1000 requests finished while the rule waited");
}

/// `shoal check` errors point into the rule's own text: file, line,
/// column; unknown and later functions; the wrong phase; a pool that does
/// not exist; http.* on a byte stream.
#[test]
fn configuration_errors_point_into_rules() {
    let dir = TempDir::new();
    let check = |toml: &str| check_refused(&dir, toml);
    let base = "[virtual_servers.web]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\nrequest_rules = [\"r\"]\n\n[pools.p]\nnodes = [\"127.0.0.1:9\"]\n\n";
    // Inline, line 3 of the rule (line 13 of the file).
    let e = check(&format!("{base}[rules.r]\nsource = '''\n$a = 1;\n$b = 2;\n$c = string.nosuch( $a );\n'''\n"));
    let path = dir.0.join("shoal.toml").display().to_string();
    assert_eq!(e, format!("{path}:14:6: unknown function string.nosuch (key `rules.r`)"));
    // In a file.
    dir.write("r.ts", "# a rule\nif( http.getPath() == \"/\" {\n}\n");
    let e = check(&format!("{base}[rules.r]\nfile = \"r.ts\"\n"));
    assert!(e.starts_with(&format!("{}:2:", dir.0.join("r.ts").display())), "{e}");
    let e = check(&format!("{base}[rules.r]\nsource = 'rtsp.getPath();'\n"));
    assert!(e.contains("rtsp.getpath works on rtsp virtual servers; this one is http"), "{e}");
    let e = check(&format!("{base}[rules.r]\nsource = 'string.len( 1, 2 );'\n"));
    assert!(e.contains("string.len takes 1 argument(s), given 2"), "{e}");
    let e = check(&format!("{base}[rules.r]\nsource = '''\nhttp.setResponseHeader( \"a\", \"b\" );'''\n"));
    assert!(e.contains("cannot be a request rule") && e.contains("works in response rules only"), "{e}");
    let e = check(&format!("{base}[rules.r]\nsource = '''\n\npool.use( \"nope\" );'''\n"));
    assert!(e.contains(&format!("{path}:13:1: pool.use: no pool named \"nope\"")), "{e}");
    let e = check(&base.replace("request_rules = [\"r\"]", "request_rules = [\"missing\"]"));
    assert!(e.contains("no rule named \"missing\""), "{e}");
    let e = check(&format!(
        "{}[rules.r]\nsource = 'http.setHeader( \"a\", \"b\" );'\n",
        base.replace("\"http\"", "\"client_first\"")
    ));
    assert!(e.contains("works on http virtual servers; this one is client_first"), "{e}");
    let e = check(&format!("{base}[rules.r]\nactions = [{{ do = \"use_pool\", pool = \"nope\" }}]\n"));
    assert!(e.contains("no pool named \"nope\""), "{e}");
    let e = check(&format!("{base}[rules.r]\nconditions = [{{ on = \"path\", match = \"regex\", value = \"(\" }}]\nactions = [{{ do = \"close\" }}]\n"));
    assert!(e.contains("invalid regular expression"), "{e}");
    let e = check(&format!("[global]\nrule_instructions = 5\n\n{base}[rules.r]\nsource = ''\n"));
    assert!(e.contains("global.rule_instructions must be between 1000"), "{e}");
}

/// Rule files are API files (I1): uploading one re-applies the
/// configuration; one that does not compile is refused with its
/// file:line:column and the old rule keeps running.
#[test]
fn rule_files_through_the_api() {
    let origin = Origin::start("http", &["a"]);
    let toml = format!(
        "{}{}",
        config(&[origin.addr("a")], "request_rules = [\"tag\"]", "[rules.tag]\nfile = \"files/tag.ts\"\n"),
        api_section()
    );
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("files")).unwrap();
    dir.write("files/tag.ts", "http.setHeader( \"X-Tag\", \"one\" );\n");
    let config_path = dir.write("shoal.toml", &toml);
    let mut cmd = Command::new(shoal_bin());
    cmd.arg("run").arg("-c").arg(&config_path);
    let shoal = Shoal::from_command(cmd, dir, config_path);
    let tag = || {
        body_text(&get(shoal.addr("web"), "/?head=1", "")).lines().find(|l| l.starts_with("X-Tag")).map(str::to_string)
    };
    assert_eq!(tag().as_deref(), Some("X-Tag: one"));
    let put = |text: &str| {
        shoal.api_as(None, "PUT", "/api/tm/1.0/config/active/files/tag.ts", "application/octet-stream", text.as_bytes())
    };
    let r = put("http.setHeader( \"X-Tag\", \"two\" );\n");
    assert_eq!(r.status, 204, "{}", r.text());
    poll(Duration::from_secs(10), "the new rule runs", || (tag().as_deref() == Some("X-Tag: two")).then_some(()));
    let r = put("# broken\nhttp.setHeader( \"X-Tag\" \"three\" );\n");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("tag.ts:2:"), "{}", r.text());
    assert_eq!(tag().as_deref(), Some("X-Tag: two"));
    assert_eq!(
        std::fs::read_to_string(shoal.dir.0.join("files/tag.ts")).unwrap(),
        "http.setHeader( \"X-Tag\", \"two\" );\n"
    );
    // Rules are objects of the API, and one in use cannot be deleted.
    let r = shoal.api("GET", "/api/tm/1.0/config/active/rules", "");
    assert!(r.text().contains("\"tag\""), "{}", r.text());
    let r = shoal.api("DELETE", "/api/tm/1.0/config/active/rules/tag", "");
    assert_eq!(r.status, 409, "{}", r.text());
}

/// Quick mode takes rules from files.
#[test]
fn quick_mode_rules() {
    let origin = Origin::start("http", &["a"]);
    let dir = TempDir::new();
    let req = dir.write("req.ts", "http.setHeader( \"X-Quick\", \"req\" );\n");
    let resp = dir.write("resp.ts", "http.setResponseHeader( \"X-Quick-Resp\", http.getResponseCode() );\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(shoal_bin());
    cmd.args([
        "proxy",
        "--listen",
        &listen,
        "--protocol",
        "http",
        "--shards",
        "1",
        "--to",
        &origin.addr("a").to_string(),
    ])
    .arg("--request-rule")
    .arg(&req)
    .arg("--response-rule")
    .arg(&resp);
    let config = dir.0.join("none");
    let shoal = Shoal::from_command(cmd, dir, config);
    let r = get(shoal.addr("proxy"), "/?head=1", "");
    assert!(body_text(&r).contains("X-Quick: req\r\n"));
    assert_eq!(r.header("x-quick-resp"), Some("200"));
    // A broken rule file: the command names the file, line and column.
    let bad = shoal.dir.write("bad.ts", "\n\n  nosuch();\n");
    let out = Command::new(shoal_bin())
        .args(["proxy", "--listen", "127.0.0.1:0", "--protocol", "http", "--to", "127.0.0.1:9", "--request-rule"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains(&format!("{}:3:3: unknown function nosuch", bad.display())), "{e}");
}
