#![no_main]
//! See `sse_server::fuzzing::event_id` for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| sse_server::fuzzing::event_id(data));
