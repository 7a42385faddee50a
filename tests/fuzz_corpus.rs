//! The fuzz corpora as a regression test: every committed input of every
//! cargo-fuzz target (`fuzz/seeds/<target>/`, hand-written and captured;
//! `fuzz/corpus/<target>/`, minimized fuzzer output; and, when present,
//! `fuzz/regressions/<target>/`, inputs that once failed) runs through the
//! same `shoal::fuzzing` checks the fuzzer ran. Stable toolchain, no
//! fuzzer needed; docs/fuzzing.md says how the corpora are made.
//!
//! A missing or empty seeds or corpus directory fails the test, so it
//! cannot pass by testing nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A target's name (its directory under fuzz/) and its checks.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 8] = [
    ("request_head", shoal::fuzzing::request_head),
    ("response_head", shoal::fuzzing::response_head),
    ("chunked", shoal::fuzzing::chunked),
    ("tls_hello", shoal::fuzzing::tls_hello),
    ("rule", shoal::fuzzing::rule),
    ("accept_encoding", shoal::fuzzing::accept_encoding),
    ("h2_guard", shoal::fuzzing::h2_guard),
    ("rtsp_message", shoal::fuzzing::rtsp_message),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; `None` when it does not exist.
fn inputs(dir: &Path) -> Option<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("readable directory entry").path()).collect();
    files.retain(|p| p.is_file());
    files.sort();
    Some(files)
}

fn run_target(name: &str, check: fn(&[u8])) {
    let mut failed = Vec::new();
    let mut counts = Vec::new();
    for (kind, required) in [("seeds", true), ("corpus", true), ("regressions", false)] {
        let dir = fuzz_dir().join(kind).join(name);
        let files = match inputs(&dir) {
            Some(f) => f,
            None if required => panic!("{} is missing", dir.display()),
            None => continue,
        };
        assert!(!required || !files.is_empty(), "{} is empty", dir.display());
        counts.push(format!("{} {kind}", files.len()));
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    eprintln!("{name}: {}", counts.join(", "));
    assert!(failed.is_empty(), "{name}: {} inputs failed (panic messages above):\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn request_head() {
    run_target(TARGETS[0].0, TARGETS[0].1);
}

#[test]
fn response_head() {
    run_target(TARGETS[1].0, TARGETS[1].1);
}

#[test]
fn chunked() {
    run_target(TARGETS[2].0, TARGETS[2].1);
}

#[test]
fn tls_hello() {
    run_target(TARGETS[3].0, TARGETS[3].1);
}

#[test]
fn accept_encoding() {
    run_target(TARGETS[5].0, TARGETS[5].1);
}

#[test]
fn h2_guard() {
    run_target(TARGETS[6].0, TARGETS[6].1);
}

#[test]
fn rtsp_message() {
    run_target(TARGETS[7].0, TARGETS[7].1);
}

/// Every target directory under fuzz/ belongs to a target tested here (a
/// target added to fuzz/ without a test above fails this).
#[test]
fn every_target_is_tested() {
    let known: Vec<&str> = TARGETS.iter().map(|t| t.0).collect();
    for kind in ["seeds", "corpus", "regressions"] {
        for dir in subdirs(kind) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(known.contains(&name.as_str()), "{} is not a known target", dir.display());
        }
    }
    let targets = fuzz_dir().join("fuzz_targets");
    for file in inputs(&targets).unwrap_or_else(|| panic!("{} is missing", targets.display())) {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(known.contains(&name.as_str()), "fuzz target {name} has no corpus test");
    }
}

fn subdirs(kind: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else { return Vec::new() };
    entries.map(|e| e.expect("readable directory entry").path()).filter(|p| p.is_dir()).collect()
}

#[test]
fn rule() {
    run_target(TARGETS[4].0, TARGETS[4].1);
}
