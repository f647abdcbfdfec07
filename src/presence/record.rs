//! The presence topic's record: one instance's open streams per user, for one
//! step. A snapshot, not a change: each record replaces what the instance said
//! before, so a lost or repeated record is corrected by the next one, and a reader
//! that starts needs only the last few seconds of the topic.
//!
//! An instance with many users sends its snapshot in parts of at most
//! [`USERS_PER_PART`] users (sorted by name), so no record nears Kafka's 1 MB
//! default limit: 2,000 users of 128 bytes are about 280 kB.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::limits;

/// Users in one record at most.
pub const USERS_PER_PART: usize = 2_000;
/// Parts of one snapshot at most: 128,000 users with a stream on one instance.
pub const MAX_PARTS: u32 = 64;

/// One part of an instance's snapshot of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The instance's id (a UUID drawn at start-up).
    pub instance: String,
    /// `v3` or `v4`.
    pub step: String,
    /// This part's index, below `parts`.
    pub part: u32,
    /// How many parts the snapshot has: parts from an earlier, longer one are gone.
    pub parts: u32,
    /// Open streams per user on the instance.
    pub users: BTreeMap<String, u32>,
}

impl Snapshot {
    /// The records of `users`' open streams on `instance`: one part per
    /// [`USERS_PER_PART`] users, and one empty part when nobody is connected.
    pub fn parts(instance: &str, step: &str, mut users: Vec<(Arc<str>, usize)>) -> Vec<Snapshot> {
        users.sort_unstable();
        let chunks: Vec<_> = users.chunks(USERS_PER_PART).collect();
        let parts = u32::try_from(chunks.len().max(1))
            .unwrap_or(u32::MAX)
            .min(MAX_PARTS);
        (0..parts)
            .map(|part| Snapshot {
                instance: instance.to_owned(),
                step: step.to_owned(),
                part,
                parts,
                users: chunks
                    .get(part as usize)
                    .map(|chunk| {
                        chunk
                            .iter()
                            .map(|(user, n)| {
                                (user.to_string(), u32::try_from(*n).unwrap_or(u32::MAX))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Reads a record, checking every bound a reader's memory depends on.
    pub fn read(payload: &[u8]) -> Result<Snapshot, String> {
        let snapshot: Snapshot =
            serde_json::from_slice(payload).map_err(|e| format!("not a presence record: {e}"))?;
        if snapshot.parts == 0 || snapshot.parts > MAX_PARTS || snapshot.part >= snapshot.parts {
            return Err(format!(
                "part {} of {} is out of bounds (at most {MAX_PARTS} parts)",
                snapshot.part, snapshot.parts
            ));
        }
        if snapshot.users.len() > USERS_PER_PART {
            return Err(format!(
                "{} users in one part, above {USERS_PER_PART}",
                snapshot.users.len()
            ));
        }
        if snapshot.instance.is_empty() || snapshot.instance.len() > 64 {
            return Err("the instance id is empty or longer than 64 bytes".into());
        }
        if let Some(bad) = snapshot.users.keys().find(|u| limits::username(u).is_err()) {
            return Err(format!("{bad:?} is not a username"));
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<(Arc<str>, usize)> {
        (0..n).map(|i| (Arc::from(format!("u{i:05}")), 1)).collect()
    }

    #[test]
    fn nobody_connected_is_one_empty_part() {
        let parts = Snapshot::parts("i", "v3", Vec::new());
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].part, parts[0].parts), (0, 1));
        assert!(parts[0].users.is_empty());
    }

    #[test]
    fn many_users_are_split_into_bounded_parts_that_read_back() {
        let parts = Snapshot::parts("i", "v4", users(USERS_PER_PART * 2 + 1));
        assert_eq!(parts.len(), 3);
        let mut seen = 0;
        for part in &parts {
            let bytes = serde_json::to_vec(part).unwrap();
            assert_eq!(&Snapshot::read(&bytes).unwrap(), part);
            seen += part.users.len();
        }
        assert_eq!(seen, USERS_PER_PART * 2 + 1);
    }

    #[test]
    fn out_of_bounds_records_are_refused() {
        let record = |json: &str| Snapshot::read(json.as_bytes());
        assert!(record(r#"{"instance":"i","step":"v3","part":1,"parts":1,"users":{}}"#).is_err());
        assert!(record(r#"{"instance":"i","step":"v3","part":0,"parts":65,"users":{}}"#).is_err());
        assert!(record(r#"{"instance":"","step":"v3","part":0,"parts":1,"users":{}}"#).is_err());
        assert!(
            record(r#"{"instance":"i","step":"v3","part":0,"parts":1,"users":{"":1}}"#).is_err()
        );
        assert!(record("garbage").is_err());
        assert!(
            record(r#"{"instance":"i","step":"v3","part":0,"parts":1,"users":{"a":2}}"#).is_ok()
        );
    }
}
