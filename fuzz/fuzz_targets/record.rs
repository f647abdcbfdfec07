#![no_main]
//! See `sse_server::fuzzing::record` for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sse_server::fuzzing::record(data));
