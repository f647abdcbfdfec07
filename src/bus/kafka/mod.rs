//! The Kafka bus, on `rdkafka` (bundled librdkafka).
//!
//! Fan-out topics (`Group::EachInstance`) are read by every instance from the
//! offsets of `now − since`, so every instance rebuilds the history it keeps for
//! resume (`fan_out`); work-queue topics (`Group::Shared`) use a consumer group with
//! manual commits (`reader`). The producer is idempotent and replaced when
//! librdkafka declares it failed for good (`producer`). A reader whose consumer
//! stops fetching is replaced (`stall`). Topics are created by the server itself
//! (`topics`).
//!
//! This file holds what they share: the bus, the client settings, and readiness.

mod fan_out;
mod producer;
mod reader;
mod stall;
mod topics;

use std::sync::RwLock;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, Producer};

use super::Readers;
use crate::config::Topic;

pub use producer::produce_lines;

pub struct KafkaBus {
    brokers: String,
    /// The server's topics, created with these partitions when missing.
    topics: Vec<Topic>,
    /// Replaced when librdkafka reports a fatal error (see `producer`).
    producer: RwLock<FutureProducer>,
    /// Unique per process: names this instance's own consumer group.
    instance: String,
    /// Every reader's health, for readiness and the lag gauge.
    readers: Readers,
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "sse-server")
        .set("reconnect.backoff.max.ms", "2000")
        .set("socket.connection.setup.timeout.ms", "5000")
        // Small records, sent at once: Nagle's algorithm would hold them back.
        .set("socket.nagle.disable", "true");
    config
}

impl KafkaBus {
    /// A bus on `brokers` for the server's `topics`.
    pub fn new(brokers: &str, topics: Vec<Topic>) -> anyhow::Result<KafkaBus> {
        Ok(KafkaBus {
            brokers: brokers.to_owned(),
            topics,
            producer: RwLock::new(producer::new_producer(brokers)?),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            readers: Readers::default(),
        })
    }

    pub async fn ready(&self) -> Result<(), String> {
        let producer = self.producer();
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|_| ())
        })
        .await;
        match metadata {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("Kafka at {} does not answer: {e}", self.brokers)),
            Err(e) => return Err(format!("Kafka check failed: {e}")),
        }
        self.readers.problem().map_or(Ok(()), Err)
    }

    pub fn readers(&self) -> &Readers {
        &self.readers
    }
}

#[cfg(test)]
mod test_support {
    use super::KafkaBus;
    use crate::config::Topic;

    /// A bus on the real broker (`SSE_TEST_KAFKA`) with a new topic of its own,
    /// named `PREFIX-<uuid>`.
    pub(super) async fn bus_with_fresh_topic(prefix: &str, partitions: i32) -> (KafkaBus, Topic) {
        let brokers = std::env::var("SSE_TEST_KAFKA").expect("SSE_TEST_KAFKA");
        let topic = Topic {
            name: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            partitions,
        };
        let bus = KafkaBus::new(&brokers, vec![topic.clone()]).expect("bus");
        bus.create_all_topics().await.expect("topic");
        (bus, topic)
    }
}
