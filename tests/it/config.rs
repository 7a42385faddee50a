//! `shoal check`: every example in conf/ loads; bad files are refused with
//! file:line:column.

use crate::support::*;
use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(shoal_bin()).arg("check").arg("-c").arg(path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Copy `from` into `to`, recursively.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Every file in conf/ loads. They are checked in a copy of conf/ with the
/// throwaway certificates conf/tls.toml names generated beside them (no key
/// is committed).
#[test]
fn every_conf_example_loads() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let tmp = TempDir::new();
    let dir = tmp.0.join("conf");
    copy_tree(&src, &dir);
    let certs = dir.join("certs");
    let sites = crate::pki::Pki::new(&certs, "sites");
    sites.server("www", &["www.example.com", "example.com"]);
    sites.server("media", &["media.example.com"]);
    std::fs::copy(&sites.ca, certs.join("nodes-ca.pem")).unwrap();
    std::fs::copy(&crate::pki::Pki::new(&certs.join("c"), "clients").ca, certs.join("clients-ca.pem")).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let (ok, out, err) = check(&p);
            assert!(ok, "{} failed: {err}", p.display());
            assert!(out.contains("configuration OK"), "{out}");
            n += 1;
        }
    }
    assert!(n >= 2, "conf/ should hold the default and examples");
}

const GOOD: &str = "[virtual_servers.web]\nlisten = \"127.0.0.1:8080\"\nprotocol = \"client_first\"\npool = \"app\"\n\n[pools.app]\nnodes = [\"127.0.0.1:9001\"]\n";

fn refused(text: &str, expect_pos: &str, expect_msg: &str) {
    let dir = TempDir::new();
    let p = dir.write("bad.toml", text);
    let (ok, _, err) = check(&p);
    assert!(!ok, "accepted: {text}");
    let want = format!("{}:{expect_pos}:", p.display());
    assert!(err.starts_with(&want), "expected {want} in: {err}");
    assert!(err.contains(expect_msg), "expected {expect_msg:?} in: {err}");
}

#[test]
fn unknown_key_names_position() {
    refused(
        &GOOD.replace("pool = \"app\"", "pool = \"app\"\nmax_conections = 5"),
        "5:1",
        "unknown field `max_conections`",
    );
}

#[test]
fn bad_value_names_position() {
    refused(&GOOD.replace("\"client_first\"", "\"quic\""), "3:12", "unknown variant `quic`");
    refused(
        &GOOD.replace("[pools.app]", "[pools.app]\nnode_fail_time = \"10 fortnights\""),
        "7:18",
        "invalid duration",
    );
}

#[test]
fn dangling_pool_reference_names_position() {
    refused(&GOOD.replace("pool = \"app\"", "pool = \"api\""), "4:8", "no pool named \"api\"");
}

#[test]
fn includes_merge_and_duplicates_are_refused() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.0.join("pools.d")).unwrap();
    dir.write("pools.d/app.toml", "[pools.app]\nnodes = [\"127.0.0.1:9001\"]\n");
    let main = dir.write("main.toml", "include = [\"pools.d\"]\n\n[virtual_servers.web]\nlisten = \"127.0.0.1:8080\"\nprotocol = \"client_first\"\npool = \"app\"\n");
    let (ok, out, err) = check(&main);
    assert!(ok, "{err}");
    assert!(out.contains("pool app"), "{out}");
    dir.write("pools.d/again.toml", "[pools.app]\nnodes = [\"127.0.0.1:9002\"]\n");
    let (ok, _, err) = check(&main);
    assert!(!ok);
    assert!(err.contains("app.toml:1:") && err.contains("already defined"), "{err}");
}

/// Monitors: a pool naming an unknown monitor, a bad status range and a
/// bad pattern are refused at their position.
#[test]
fn monitor_errors_name_position() {
    let with =
        |extra: &str| GOOD.replace("nodes = [\"127.0.0.1:9001\"]\n", &format!("nodes = [\"127.0.0.1:9001\"]\n{extra}"));
    refused(&with("monitors = [\"nope\"]\n"), "8:13", "no monitor named \"nope\"");
    refused(
        &with("monitors = [\"m\"]\n[monitors.m]\ntype = \"http\"\nstatus = \"200-1\"\n"),
        "11:10",
        "expected a status or a range",
    );
    refused(
        &with("monitors = [\"m\"]\n[monitors.m]\ntype = \"send_expect\"\nexpect = \"(\"\n"),
        "11:10",
        "invalid regular expression",
    );
    refused(&with("[monitors.m]\ntype = \"send_expect\"\n"), "8:11", "needs `expect`");
}

/// `[http2]`: settings out of range, h2c on TLS, a cleartext listener
/// without h2c, `h2` offered by ALPN without HTTP/2, a generic protocol.
#[test]
fn http2_errors_name_position() {
    let http = GOOD.replace("\"client_first\"", "\"http\"");
    let with = |extra: &str| http.replace("[pools.app]", &format!("{extra}\n[pools.app]"));
    refused(&with("[virtual_servers.web.http2]\nh2c = true\nmax_frame_size = 1000\n"), "8:18", "between 16384");
    refused(
        &with("[virtual_servers.web.http2]\nh2c = true\ninitial_window_size = \"3GiB\"\n"),
        "8:23",
        "between 1 and 2147483647",
    );
    refused(&with("[virtual_servers.web.http2]\nh2c = true\nmax_concurrent_streams = 0\n"), "8:26", "at least 1");
    refused(&with("[virtual_servers.web.http2]\n"), "6:1", "set h2c = true");
    let certs = TempDir::new();
    let leaf = crate::pki::Pki::new(&certs.0, "t").server("w", &["w.test"]);
    refused(
        &with(&format!(
            "[virtual_servers.web.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\nalpn = [\"h2\"]\n",
            leaf.cert.display(),
            leaf.key.display()
        )),
        "6:1",
        "offers \"h2\" but HTTP/2 is not enabled",
    );
    refused(
        &GOOD.replace("[pools.app]", "[virtual_servers.web.http2]\nh2c = true\n[pools.app]"),
        "6:1",
        "HTTP/2 applies to http virtual servers",
    );
}

/// UDP keys: bad values, UDP keys on a TCP protocol, other protocols'
/// keys on a UDP virtual server; a UDP and a TCP virtual server may share
/// an address.
#[test]
fn udp_errors_name_position() {
    let udp = GOOD.replace("\"client_first\"", "\"udp\"");
    let with = |base: &str, extra: &str| base.replace("[pools.app]", &format!("{extra}\n[pools.app]"));
    refused(&with(&udp, "udp_mode = \"bursty\""), "6:12", "expected \"one_response\" or \"streaming\"");
    refused(&with(&udp, "udp_timeout = \"0s\""), "6:15", "longer than 0s");
    refused(&with(&udp, "udp_max_datagram = 100"), "6:20", "between 512 and 65507");
    refused(&with(GOOD, "udp_mode = \"streaming\""), "6:12", "applies to udp virtual servers only");
    refused(&with(&udp, "cache = true"), "6:9", "does not apply to udp virtual servers");
    let both = format!(
        "{udp}\n[virtual_servers.tcp]\nlisten = \"127.0.0.1:8080\"\nprotocol = \"client_first\"\npool = \"app\"\n"
    );
    let dir = TempDir::new();
    let (ok, out, err) = check(&dir.write("both.toml", &both));
    assert!(ok && out.contains("configuration OK"), "{out}{err}");
}

/// `[pools.NAME] http2` over TLS needs `h2` among the ALPN protocols.
#[test]
fn pool_http2_needs_h2_in_alpn() {
    let http = GOOD.replace("\"client_first\"", "\"http\"");
    refused(
        &http.replace(
            "nodes = [\"127.0.0.1:9001\"]\n",
            "http2 = true\nnodes = [\"127.0.0.1:9001\"]\n[pools.app.tls]\nalpn = [\"http/1.1\"]\n",
        ),
        "7:9",
        "add \"h2\" to tls.alpn",
    );
}
