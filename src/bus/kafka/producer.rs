//! Publishing. The producer is idempotent (`enable.idempotence`), so a retried
//! send neither duplicates nor reorders records of a partition. A record that is
//! not acknowledged is reported as surely not written or as maybe written
//! ([`BusError`]), from librdkafka's own record status. A producer that
//! librdkafka declares failed for good (a fatal error) is replaced by a new one on
//! the next publish or readiness check, so the server never needs a restart to
//! publish again.

use std::time::Duration;

use rdkafka::bindings::{rd_kafka_message_status, rd_kafka_msg_status_t};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::oneshot;

use super::{KafkaBus, client_config, reports};
use crate::bus::{BusError, ID_HEADER};
use crate::lock::ReadWriteLocked;

/// How long a publish may wait for the broker's acknowledgement. Longer than a
/// replicated cluster takes to fence a dead or hung broker and move its
/// partitions (a new controller if it was the controller, then the broker's
/// session, 3 s in `scripts/kafka/cluster.properties`, then a metadata refresh):
/// losing one broker of three slows publishes, to 3.9-6.9 s, but refuses none;
/// short enough that every answer leaves within 10 s.
pub(super) const PUBLISH_TIMEOUT: Duration = Duration::from_secs(8);

/// The producer every publish goes through.
pub(super) type KafkaProducer = ThreadedProducer<Acknowledgements>;

/// What a publish waits for: where the record was written, or why not.
type Acknowledgement = Result<(i32, i64), BusError>;

/// Hands each record's outcome to the publish waiting for it, telling a record
/// that surely was not written from one that may have been
/// (`rd_kafka_message_status`), which the futures-based producer does not expose.
pub(super) struct Acknowledgements;

impl ClientContext for Acknowledgements {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        reports::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        reports::client_error(&error, reason);
    }
}

impl ProducerContext for Acknowledgements {
    type DeliveryOpaque = Box<oneshot::Sender<Acknowledgement>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((e, message)) if surely_not_written(message) => {
                Err(BusError::NotWritten(e.to_string()))
            }
            Err((e, _)) => Err(BusError::MaybeWritten(e.to_string())),
        };
        // The publish may have gone (its request was cancelled): nobody to tell.
        let _ = waiting.send(outcome);
    }
}

/// librdkafka's own verdict on a failed record: `NOT_PERSISTED` when no broker
/// can have appended it (never sent, or refused before the append).
fn surely_not_written(message: &BorrowedMessage<'_>) -> bool {
    // SAFETY: the message is alive for the duration of the delivery callback,
    // and the call only reads its status.
    let status = unsafe { rd_kafka_message_status(message.ptr()) };
    status == rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED
}

pub(super) fn new_producer(brokers: &str) -> anyhow::Result<KafkaProducer> {
    Ok(client_config(brokers)
        .set(
            "message.timeout.ms",
            PUBLISH_TIMEOUT.as_millis().to_string(),
        )
        .set("acks", "all")
        // The broker drops a retried batch it already has and keeps each
        // partition's records in the order sent: no duplicates, no overtaking.
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create_with_context(Acknowledgements)?)
}

impl KafkaBus {
    /// The current producer; first replaces it when librdkafka has declared it
    /// failed for good (an idempotent producer whose state it cannot recover).
    pub(super) fn producer(&self) -> KafkaProducer {
        let current = self.producer.reading().clone();
        let Some((code, why)) = current.client().fatal_error() else {
            return current;
        };
        let mut slot = self.producer.writing();
        // Another caller may have replaced it already.
        if slot.client().fatal_error().is_none() {
            return slot.clone();
        }
        match new_producer(&self.brokers) {
            Ok(fresh) => {
                tracing::error!(
                    "the Kafka producer failed for good ({code:?}: {why}); replaced it"
                );
                *slot = fresh;
            }
            Err(e) => tracing::error!(
                "the Kafka producer failed for good ({code:?}: {why}) and cannot be replaced yet: {e}"
            ),
        }
        slot.clone()
    }

    /// Publishes a record named `id` and waits for the acknowledgement of every
    /// in-sync replica; says
    /// whether a record that was not acknowledged may still have been written.
    pub async fn publish(
        &self,
        topic: &str,
        key: Option<&str>,
        id: &str,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        let (acknowledged, outcome) = oneshot::channel();
        let headers = OwnedHeaders::new().insert(Header {
            key: ID_HEADER,
            value: Some(id),
        });
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(acknowledged))
            .payload(payload)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        // Refused before it was queued (queue full, unknown topic): never sent.
        self.producer()
            .send(record)
            .map_err(|(e, _)| BusError::NotWritten(e.to_string()))?;
        outcome.await.unwrap_or_else(|_| {
            Err(BusError::MaybeWritten(
                "the producer was closed before the broker answered".into(),
            ))
        })
    }
}

/// `sse-server produce`: each line of stdin becomes one record. Returns how many
/// records failed.
pub async fn produce_lines(brokers: &str, topic: &str, key: Option<&str>) -> anyhow::Result<usize> {
    use tokio::io::AsyncBufReadExt;
    let bus = KafkaBus::new(brokers, Vec::new())?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).split(b'\n');
    let mut failed = 0;
    while let Some(mut line) = lines.next_segment().await? {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        if let Err(e) = bus.publish(topic, key, &id, &line).await {
            eprintln!("record not delivered: {e}");
            failed += 1;
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::kafka::test_support::bus_with_fresh_topic;
    use rdkafka::bindings::{rd_kafka_resp_err_t, rd_kafka_test_fatal_error};

    /// Puts `producer` in the state an idempotent producer reaches when librdkafka
    /// cannot recover its sequence numbers, through librdkafka's own test hook.
    fn make_fatal(producer: &KafkaProducer) {
        let reason = c"test: the producer failed for good";
        // SAFETY: the client pointer is alive (`producer` holds it) and `reason` is
        // a NUL-terminated string that outlives the call, which copies it.
        let code = unsafe {
            rd_kafka_test_fatal_error(
                producer.client().native_ptr(),
                rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            )
        };
        assert_eq!(code, rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
        assert!(producer.client().fatal_error().is_some());
    }

    #[test]
    fn a_producer_that_failed_for_good_is_replaced() {
        // No broker needed: creating a producer does not connect.
        let bus = KafkaBus::new("127.0.0.1:9", Vec::new()).expect("bus");
        let failed = bus.producer();
        make_fatal(&failed);
        let next = bus.producer();
        assert!(next.client().fatal_error().is_none());
        assert_ne!(failed.client().native_ptr(), next.client().native_ptr());
        assert_eq!(
            bus.producer().client().native_ptr(),
            next.client().native_ptr(),
            "a healthy producer is kept"
        );
    }

    /// Against the real broker: the publish after the fatal error is acknowledged.
    #[tokio::test]
    #[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
    async fn publishing_works_again_after_the_producer_failed_for_good() {
        let (bus, topic) = bus_with_fresh_topic("test-fatal", 1).await;
        let (_, first) = bus
            .publish(&topic.name, None, "before", b"before")
            .await
            .expect("publish");
        make_fatal(&bus.producer.reading().clone());
        let (_, second) = bus
            .publish(&topic.name, None, "after", b"after")
            .await
            .expect("publish after the fatal error");
        assert_eq!(second, first + 1);
    }
}
