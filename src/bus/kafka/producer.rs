//! Publishing. The producer is idempotent (`enable.idempotence`), so a retried
//! send neither duplicates nor reorders records of a partition; a producer that
//! librdkafka declares failed for good (a fatal error) is replaced by a new one on
//! the next publish or readiness check, so the server never needs a restart to
//! publish again.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::{KafkaBus, client_config};
use crate::bus::BusError;
use crate::lock::ReadWriteLocked;

/// How long a publish may wait for the broker's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn new_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
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
        .create()?)
}

impl KafkaBus {
    /// The current producer; first replaces it when librdkafka has declared it
    /// failed for good (an idempotent producer whose state it cannot recover).
    pub(super) fn producer(&self) -> FutureProducer {
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

    pub async fn publish(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        let mut record = FutureRecord::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        match self.producer().send(record, PUBLISH_TIMEOUT).await {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((e, _)) => Err(BusError::Unavailable(e.to_string())),
        }
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
        if let Err(e) = bus.publish(topic, key, &line).await {
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
    fn make_fatal(producer: &FutureProducer) {
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
            .publish(&topic.name, None, b"before")
            .await
            .expect("publish");
        make_fatal(&bus.producer.reading().clone());
        let (_, second) = bus
            .publish(&topic.name, None, b"after")
            .await
            .expect("publish after the fatal error");
        assert_eq!(second, first + 1);
    }
}
