//! A reader whose consumer stops fetching while records wait for it (a librdkafka
//! state seen after a broker pause) is replaced ([`StallWatch`]).

use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::Consumer;

use super::reports::KafkaConsumer;
use rdkafka::producer::Producer;

use super::KafkaBus;

/// How often a reader that has received nothing for as long asks the broker
/// whether records are waiting for it.
pub(super) const STALL_CHECK: Duration = Duration::from_secs(5);
/// How long records may wait on the broker without reaching a reader before its
/// consumer is replaced.
pub(super) const STALL_LIMIT: Duration = Duration::from_secs(10);
/// How long a watermark query may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// A reader's guard against a consumer that has stopped fetching.
///
/// librdkafka (2.12) can leave an assigned partition on its internal broker for
/// good after the partition's leader changed: seen here after a broker pause of
/// 13 s, when the node fenced itself and came back with new leader epochs, in
/// about 1 run in 5. The consumer reports nothing, readiness stays green, and the
/// stream is silent. So a reader that got no record for [`STALL_CHECK`] asks the
/// broker (through the producer's connection) whether records wait beyond its
/// position; when they still do [`STALL_LIMIT`] later, the reader returns, and
/// [`supervise`](crate::bus::supervisor::supervise) starts a fresh consumer that
/// goes on from the same position (a fan-out reader from the records it handled,
/// a shared one from its group's commits): nothing lost, nothing repeated.
pub(super) struct StallWatch {
    pub(super) check: tokio::time::Interval,
    pub(super) since_last_record: Instant,
    /// Since when records have been waiting, unread.
    waiting_since: Option<Instant>,
}

impl StallWatch {
    pub(super) fn new() -> StallWatch {
        let mut check = tokio::time::interval(STALL_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        StallWatch {
            check,
            since_last_record: Instant::now(),
            waiting_since: None,
        }
    }

    /// A record was handled: the reader is moving (called after the handler, so a
    /// long handling does not count as a stall either).
    pub(super) fn record_seen(&mut self) {
        self.since_last_record = Instant::now();
        self.waiting_since = None;
    }

    /// Takes the latest answer to "are records waiting?"; true once they have been
    /// for [`STALL_LIMIT`].
    pub(super) fn stuck(&mut self, waiting: bool) -> bool {
        if !waiting {
            self.waiting_since = None;
            return false;
        }
        self.waiting_since
            .get_or_insert_with(Instant::now)
            .elapsed()
            >= STALL_LIMIT
    }
}

impl KafkaBus {
    /// Whether the broker holds records of `topic` at or after any of `next`
    /// (`(partition, offset)`). Asked through the producer's client, since the
    /// reader's own consumer may be the one that is stuck; `false` when the
    /// broker does not answer (then nothing can be read anyway).
    pub(super) async fn records_waiting(&self, topic: &str, next: Vec<(i32, i64)>) -> bool {
        if next.is_empty() {
            return false;
        }
        let producer = self.producer();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            next.iter().any(|&(partition, next)| {
                matches!(
                    producer.client().fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT),
                    Ok((_, high)) if high > next
                )
            })
        })
        .await
        .unwrap_or(false)
    }
}

/// `(partition, next offset)` for a fan-out reader's handled positions.
pub(super) fn positions_of(handled: Option<&[i64]>) -> Vec<(i32, i64)> {
    handled
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(partition, &next)| Some((i32::try_from(partition).ok()?, next)))
        .collect()
}

/// `(partition, next offset)` for what a group member is assigned and has a
/// position in.
pub(super) fn assigned_positions(consumer: &KafkaConsumer) -> Vec<(i32, i64)> {
    let Ok(positions) = consumer.position() else {
        return Vec::new();
    };
    positions
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(next) => Some((e.partition(), next)),
            _ => None,
        })
        .collect()
}
