//! `shoal::fuzzing::accept_encoding` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzzing::accept_encoding(data));
