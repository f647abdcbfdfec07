//! The proptest inputs that the parsers' `properties` modules share.
//!
//! Random bytes rarely get past a parser's first check, so the properties' unit
//! tests draw near-valid inputs instead: text full of the line ends SSE must
//! normalise, small edits of a valid input, and the parts of /v4's commands and
//! facts. They live here once because several parsers read the same kinds of
//! input (a /v3 POST and a /v4 rejection carry the same free text a frame does).

use proptest::prelude::*;

use crate::v4::report::Status;

/// How hard each property is tried: enough for the short run in `cargo test`,
/// and no regression files (a finding becomes a seed in `fuzz/seeds/` instead).
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `bytes` with up to three bytes replaced, inserted or removed.
pub(crate) fn mutated(bytes: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        bytes,
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..3),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, kind, byte) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = at.index(bytes.len());
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            bytes
        })
}

/// Free text as clients send it: every line end, separators, a BOM, NUL.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(\r\n|\r|\n|[a-z :]|é|\u{2028}|\u{feff}|\0){0,48}",
        "\\PC{0,24}",
        any::<String>(),
    ]
}

pub(crate) fn uuids() -> impl Strategy<Value = uuid::Uuid> {
    any::<u128>().prop_map(uuid::Uuid::from_u128)
}

pub(crate) fn statuses() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

/// Instants across most of chrono's range; nanoseconds past one second ask for a
/// leap second (the epoch when chrono refuses one).
pub(crate) fn times() -> impl Strategy<Value = chrono::DateTime<chrono::Utc>> {
    (-62_000_000_000i64..250_000_000_000, 0u32..2_000_000_000)
        .prop_map(|(s, n)| chrono::DateTime::from_timestamp(s, n).unwrap_or_default())
}
