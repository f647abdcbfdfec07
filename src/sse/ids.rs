//! Event ids: how a position in a hub's order is written into `id:` and read back
//! from a reconnecting client's `Last-Event-ID`.
//!
//! An id is a *cursor*: for each partition the stream reads, the first offset the
//! client has not seen. A cursor rather than the event's own position because a
//! /v3 stream merges a user's records with broadcasts that may sit in other
//! partitions; the cursor says exactly what the client has, whatever the
//! interleaving, so any instance can replay exactly what follows it.
//!
//! * Kafka: the next offset of every partition of the topic, joined by `.`
//!   (`"1042"` for a one-partition topic). Offsets are the broker's, so every
//!   instance and every restart reads the same id the same way.
//! * In process (/v2, and /v3–/v4 without Kafka): `<epoch>-<seq>`. The epoch is
//!   random per hub and process, so an id from another process is recognised as
//!   foreign instead of being mistaken for a position here.

/// For each partition, the first offset the client has not seen.
pub type Cursor = Vec<i64>;

#[derive(Debug, Clone)]
pub enum IdScheme {
    Local { epoch: String },
    Kafka,
}

/// Longest `Last-Event-ID` considered: anything longer is not one of ours.
const MAX_ID_LEN: usize = 256;

impl IdScheme {
    /// Process-local ids with a fresh random epoch.
    pub fn local() -> IdScheme {
        let random = u32::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        IdScheme::Local {
            epoch: base36(u64::from(random)),
        }
    }

    /// The id of the position just after `cursor`'s events.
    pub fn format(&self, cursor: &[i64]) -> String {
        match self {
            IdScheme::Local { epoch } => {
                format!("{epoch}-{}", cursor.first().copied().unwrap_or(0) - 1)
            }
            IdScheme::Kafka => {
                let parts: Vec<String> = cursor.iter().map(i64::to_string).collect();
                parts.join(".")
            }
        }
    }

    /// The cursor an id stands for, or `None` when it is not an id of this hub
    /// (malformed, another process's, or made for a different partition count).
    pub fn parse(&self, raw: &str, partitions: usize) -> Option<Cursor> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > MAX_ID_LEN {
            return None;
        }
        match self {
            IdScheme::Local { epoch } => {
                let (their_epoch, seq) = raw.split_once('-')?;
                if their_epoch != epoch {
                    return None;
                }
                let seq: i64 = seq.parse().ok().filter(|s| *s >= 0)?;
                Some(vec![seq.checked_add(1)?])
            }
            IdScheme::Kafka => {
                let cursor: Option<Cursor> = raw
                    .split('.')
                    .map(|part| part.parse::<i64>().ok().filter(|o| *o >= 0))
                    .collect();
                cursor.filter(|c| c.len() == partitions)
            }
        }
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_ids_round_trip_and_need_every_partition() {
        let ids = IdScheme::Kafka;
        assert_eq!(ids.format(&[12, 0, 7]), "12.0.7");
        assert_eq!(ids.parse("12.0.7", 3), Some(vec![12, 0, 7]));
        assert_eq!(ids.parse("1042", 1), Some(vec![1042]));
        assert_eq!(ids.parse("12.0", 3), None);
        assert_eq!(ids.parse("12.-1.7", 3), None);
        assert_eq!(ids.parse("garbage", 1), None);
    }

    #[test]
    fn local_ids_are_refused_by_another_process() {
        let here = IdScheme::local();
        let id = here.format(&[42]);
        assert_eq!(here.parse(&id, 1), Some(vec![42]));
        let elsewhere = IdScheme::Local {
            epoch: "other".into(),
        };
        assert_eq!(elsewhere.parse(&id, 1), None);
        assert_eq!(here.parse("12345", 1), None);
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod properties;
