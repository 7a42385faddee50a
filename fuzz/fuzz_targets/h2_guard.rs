//! `shoal::fuzzing::h2_guard` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzzing::h2_guard(data));
