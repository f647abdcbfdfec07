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
mod reports;
mod stall;
mod topics;
mod writable;

use std::sync::RwLock;
use std::time::Duration;

use rdkafka::config::ClientConfig;

use dashmap::DashMap;

use super::{BusReadiness, Readers};
use crate::config::Topic;

pub use producer::produce_lines;
pub use topics::TopicState;
pub use writable::Unwritable;

pub struct KafkaBus {
    brokers: String,
    /// The server's topics, created with these partitions when missing.
    topics: Vec<Topic>,
    /// Replaced when librdkafka reports a fatal error (see `producer`).
    producer: RwLock<producer::KafkaProducer>,
    /// Unique per process: names this instance's own consumer group.
    instance: String,
    /// Every reader's health, for readiness and the lag gauge.
    readers: Readers,
    /// Each topic's `min.insync.replicas`, learnt when it is created or checked.
    min_insync: DashMap<String, i32>,
    /// Which partitions take writes, as last checked (`watch_writability`).
    writability: writable::Writability,
}

/// How long a request may wait for a broker's answer (see `client_config`).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// How often every client refreshes the cluster's metadata (see `client_config`).
const METADATA_REFRESH: Duration = Duration::from_secs(1);

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "sse-server")
        .set("reconnect.backoff.max.ms", "2000")
        .set("socket.connection.setup.timeout.ms", "5000")
        // A hung broker (paused, or cut off) answers nothing: after this, a request
        // to it fails and the client asks the cluster again, so a produce is sent
        // again within its PUBLISH_TIMEOUT and a fetch moves to the new leader
        // instead of waiting librdkafka's 60 s default.
        .set("socket.timeout.ms", SOCKET_TIMEOUT.as_millis().to_string())
        // Leadership moves without an error reaching a client whose requests to
        // the old leader just hang: metadata asked this often finds the new leader
        // (librdkafka's default is 5 minutes). A paused leader is fenced after the
        // cluster's broker session (3 s in docs/deploy.md) and a publish waits 8 s:
        // asking every 3 s, 12 of 12 publishes sent as a leader paused ran out of
        // time in 1 run of 3, as the new leader was learnt too late. One small
        // request a second per client.
        .set(
            "topic.metadata.refresh.interval.ms",
            METADATA_REFRESH.as_millis().to_string(),
        )
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
            min_insync: DashMap::new(),
            writability: writable::Writability::default(),
        })
    }

    /// What keeps this instance from serving, and which partitions take no
    /// writes (see `writable`).
    pub fn ready(&self) -> BusReadiness {
        let writes = self.writability.state();
        let not_ready = writes
            .none_writable
            .map(|why| format!("Kafka at {} takes no writes: {why}", self.brokers))
            .or_else(|| self.readers.problem());
        BusReadiness {
            not_ready,
            unwritable: writes.unwritable,
        }
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
            replicas: None,
            retention: None,
        };
        let bus = KafkaBus::new(&brokers, vec![topic.clone()]).expect("bus");
        bus.create_all_topics().await.expect("topic");
        (bus, topic)
    }
}
