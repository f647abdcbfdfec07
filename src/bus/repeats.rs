//! Copies of one record in a topic, told apart from records that say the same
//! thing, so a reader hands each record on once.
//!
//! Kafka's log can hold one record twice, even from an idempotent producer: when a
//! produce request times out while its partition's leader moves, librdkafka bumps
//! the producer's epoch and sends the batch again under new sequence numbers, and
//! the broker, which may already have appended the first copy, cannot recognise it
//! (librdkafka issue #4953, "Sporadic message duplication during leader transition
//! with idempotent producer"; its maintainers: only transactions avoid it). Seen
//! here with two brokers of three killed: one record appended three times.
//!
//! A copy is byte for byte the same record: same [`ID_HEADER`](super::ID_HEADER)
//! (every record this server publishes has a unique one), or, for a record without
//! one (another producer's), the same partition, timestamp and payload. Each
//! reader remembers what it handled within [`WINDOW`] of the newest record, at
//! most [`MAX_REMEMBERED`] records: every instance reads the same log in the same
//! order and so drops the same copies, and the event ids stay the same everywhere.
//! A producer that sends the same payload twice in one millisecond, without ids,
//! gets it delivered once.

use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use super::Record;

/// How far back, in record time, a copy is recognised. The copies librdkafka
/// makes are written within its message timeout (seconds) of the first.
pub const WINDOW: Duration = Duration::from_secs(600);
/// The most records remembered: 262,144, about 10 MB (a fingerprint in a set and
/// in a queue), [`WINDOW`] at 430 records/s. At higher rates less time is
/// remembered, still far more than the seconds between two copies.
pub const MAX_REMEMBERED: usize = 1 << 18;

/// What one reader handled lately.
#[derive(Debug, Default)]
pub struct Repeats {
    seen: HashSet<u64>,
    /// Fingerprints in the order seen, with their record time (ms).
    order: VecDeque<(i64, u64)>,
}

impl Repeats {
    /// Whether `record` is the first copy seen; remembers it.
    pub fn first_copy(&mut self, record: &Record) -> bool {
        let fingerprint = fingerprint(record);
        if self.seen.contains(&fingerprint) {
            return false;
        }
        let time = record.timestamp_ms.unwrap_or(0);
        self.seen.insert(fingerprint);
        self.order.push_back((time, fingerprint));
        let window = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
        while let Some(&(oldest, print)) = self.order.front() {
            if self.order.len() <= MAX_REMEMBERED && oldest >= time.saturating_sub(window) {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&print);
        }
        true
    }

    /// Records remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

fn fingerprint(record: &Record) -> u64 {
    let mut hasher = DefaultHasher::new();
    record.partition.hash(&mut hasher);
    match (&record.id, record.timestamp_ms) {
        (Some(id), _) => id.hash(&mut hasher),
        (None, Some(time)) => {
            time.hash(&mut hasher);
            record.payload.hash(&mut hasher);
        }
        // Nothing to know a copy by: every record is its own.
        (None, None) => record.offset.hash(&mut hasher),
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, time: i64, id: Option<&str>, payload: &str) -> Record {
        Record {
            payload: payload.as_bytes().to_vec(),
            partition: 0,
            offset,
            timestamp_ms: Some(time),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn a_record_appended_again_is_dropped() {
        let mut repeats = Repeats::default();
        assert!(repeats.first_copy(&record(1, 1000, Some("a"), "bob:hi")));
        assert!(!repeats.first_copy(&record(7, 1000, Some("a"), "bob:hi")));
        // Without an id, the same time and payload make the same record.
        assert!(repeats.first_copy(&record(8, 1001, None, "bob:hi")));
        assert!(!repeats.first_copy(&record(9, 1001, None, "bob:hi")));
    }

    #[test]
    fn records_that_say_the_same_thing_are_all_kept() {
        let mut repeats = Repeats::default();
        assert!(repeats.first_copy(&record(1, 1000, Some("a"), "bob:hi")));
        assert!(repeats.first_copy(&record(2, 1000, Some("b"), "bob:hi")));
        assert!(repeats.first_copy(&record(3, 1000, None, "bob:hi")));
        assert!(repeats.first_copy(&record(4, 1002, None, "bob:hi")));
        let mut other_partition = record(5, 1002, None, "bob:hi");
        other_partition.partition = 1;
        assert!(repeats.first_copy(&other_partition));
        let mut no_time = record(6, 0, None, "bob:hi");
        no_time.timestamp_ms = None;
        assert!(repeats.first_copy(&no_time.clone()));
        no_time.offset = 7;
        assert!(
            repeats.first_copy(&no_time),
            "without id or time, never a copy"
        );
    }

    #[test]
    fn what_is_older_than_the_window_is_forgotten() {
        let mut repeats = Repeats::default();
        let window = i64::try_from(WINDOW.as_millis()).unwrap();
        assert!(repeats.first_copy(&record(1, 0, Some("old"), "x")));
        assert!(repeats.first_copy(&record(2, window + 1, Some("new"), "x")));
        assert_eq!(repeats.len(), 1, "the old one is forgotten");
        assert!(repeats.first_copy(&record(3, window + 2, Some("old"), "x")));
    }
}
