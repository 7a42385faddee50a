//! `shoal::fuzzing::rtsp_message` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal::fuzzing::rtsp_message(data));
