//! The entry points of the cargo-fuzz targets in `fuzz/` (feature `fuzzing`; not
//! an API).
//!
//! Each takes arbitrary bytes, runs the real code on them and asserts what must
//! hold for every input; a failed assertion or any panic is a bug. The checks
//! themselves live beside the parsers they check, each in a `properties` module
//! that reaches its parser's private items, so no parser is made more visible for
//! them:
//!
//! * [`head`]: the first request head of a connection (`server/head/properties.rs`);
//! * [`event_id`]: `Last-Event-ID` and the ids the server writes
//!   (`sse/ids/properties.rs`);
//! * [`frame`]: the SSE framing (`sse/event/properties.rs`);
//! * [`record`]: the Kafka record parsers (`v3/reader/properties.rs`,
//!   `v4/store/properties.rs`, `v4/facts/properties.rs`).
//!
//! The tests below replay the committed seeds in `fuzz/seeds/` through the same
//! entry points the fuzzers run.

pub use crate::server::head_properties::head;
pub use crate::sse::event_properties::frame;
pub use crate::sse::ids_properties::event_id;

/// Kafka records: `data` as the payload of a /v3 record (and a /v3 POST), a /v4
/// command and a /v4 fact.
pub fn record(data: &[u8]) {
    crate::v3::reader_properties::record(data);
    crate::v4::store::properties::command(data);
    crate::v4::facts::properties::fact(data);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::strategies::config;

    /// Every file in `fuzz/seeds/<target>/` through its check.
    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn the_seed_corpus_passes() {
        replay("head", head);
        replay("event_id", event_id);
        replay("frame", frame);
        replay("record", record);
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_pass_every_check(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            head(&bytes);
            event_id(&bytes);
            frame(&bytes);
            record(&bytes);
        }
    }
}
