//! `shoal check`: every example in conf/ loads; bad files are refused with
//! file:line:column.

use crate::support::*;
use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(shoal_bin()).arg("check").arg("-c").arg(path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn every_conf_example_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
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
    refused(&GOOD.replace("\"client_first\"", "\"udp\""), "3:12", "unknown variant `udp`");
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
