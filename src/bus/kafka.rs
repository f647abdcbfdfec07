//! The Kafka bus, on `rdkafka` (bundled librdkafka).
//!
//! Fan-out topics (`Group::EachInstance`) are read by every instance from the
//! offsets that were the end of each partition when the instance started: the
//! partitions are assigned directly, so an instance reads from its first second
//! without waiting for a group rebalance. Work-queue topics (`Group::Shared`) use a
//! consumer group with manual commits after each handled record. Both loops retry
//! forever: librdkafka reconnects to a broker that comes back by itself.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{Backoff, BusError, Group, Record, handle_until_done};
use crate::metrics::{Metrics, TopicLabel};

/// How long a publish may wait for the broker's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a consumer error, so a persistent error cannot spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Partitions for topics this server creates when they are missing.
const PARTITIONS: i32 = 3;

pub struct KafkaBus {
    brokers: String,
    producer: FutureProducer,
    /// Unique per process: names this instance's own consumer group.
    instance: String,
    /// Readiness per consumer ("topic" → assigned and reading).
    consumers: DashMap<String, Arc<AtomicBool>>,
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "sse-server")
        .set("reconnect.backoff.max.ms", "2000")
        .set("socket.connection.setup.timeout.ms", "5000");
    config
}

impl KafkaBus {
    pub fn new(brokers: &str) -> anyhow::Result<KafkaBus> {
        let producer: FutureProducer = client_config(brokers)
            .set(
                "message.timeout.ms",
                PUBLISH_TIMEOUT.as_millis().to_string(),
            )
            .set("acks", "all")
            .set("linger.ms", "1")
            .create()?;
        Ok(KafkaBus {
            brokers: brokers.to_owned(),
            producer,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            consumers: DashMap::new(),
        })
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
        match self.producer.send(record, PUBLISH_TIMEOUT).await {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((e, _)) => Err(BusError::Unavailable(e.to_string())),
        }
    }

    pub async fn ready(&self) -> Result<(), String> {
        let producer = self.producer.clone();
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
        for consumer in self.consumers.iter() {
            if !consumer.value().load(Ordering::Relaxed) {
                return Err(format!(
                    "the Kafka consumer of {} is not reading yet",
                    consumer.key()
                ));
            }
        }
        Ok(())
    }

    pub fn consume<H, F, E>(
        self: &Arc<Self>,
        topic: &str,
        group: Group,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        handler: H,
    ) where
        H: Fn(Record) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display + Send,
    {
        // Readiness waits for the fan-out readers only: a record published before
        // they read would be missed, while commands wait safely in their topic
        // until the group has handed out its partitions.
        let ready = Arc::new(AtomicBool::new(false));
        if matches!(group, Group::EachInstance) {
            self.consumers.insert(topic.to_owned(), ready.clone());
        }
        let bus = self.clone();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let consumer = match bus.start_consumer(&topic, &group, ready, &shutdown).await {
                Some(consumer) => consumer,
                None => return,
            };
            let consumed = metrics
                .kafka_consumed
                .get_or_create(&TopicLabel {
                    topic: topic.clone(),
                })
                .clone();
            let commit = matches!(group, Group::Shared(_));
            loop {
                let message = tokio::select! {
                    m = consumer.recv() => m,
                    _ = shutdown.cancelled() => return,
                };
                match message {
                    Ok(message) => {
                        consumed.inc();
                        let record = Record {
                            key: message.key().map(<[u8]>::to_vec),
                            payload: message.payload().unwrap_or_default().to_vec(),
                            partition: message.partition(),
                            offset: message.offset(),
                        };
                        if !handle_until_done(&handler, record, &shutdown).await {
                            return;
                        }
                        if commit
                            && let Err(e) = consumer.commit_message(&message, CommitMode::Async)
                        {
                            tracing::warn!(topic, "commit failed (record may be re-read): {e}");
                        }
                    }
                    // librdkafka reconnects by itself; its errors are reports,
                    // queued while the broker was away. Waiting long on each
                    // would only delay reading once the broker is back.
                    Err(e) => {
                        tracing::warn!(
                            topic,
                            "Kafka consumer error (librdkafka keeps retrying): {e}"
                        );
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            }
        });
    }

    /// Creates the consumer and waits (retrying forever) until it reads its topic.
    async fn start_consumer(
        &self,
        topic: &str,
        group: &Group,
        ready: Arc<AtomicBool>,
        shutdown: &CancellationToken,
    ) -> Option<Arc<StreamConsumer>> {
        let mut backoff = Backoff::default();
        loop {
            match self.try_start_consumer(topic, group, ready.clone()).await {
                Ok(consumer) => {
                    tracing::info!(topic, ?group, "Kafka consumer started");
                    return Some(consumer);
                }
                Err(e) => {
                    tracing::warn!(topic, "Kafka consumer cannot start yet, retrying: {e}");
                    if !backoff.wait(shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn try_start_consumer(
        &self,
        topic: &str,
        group: &Group,
        ready: Arc<AtomicBool>,
    ) -> anyhow::Result<Arc<StreamConsumer>> {
        self.create_topic(topic).await?;
        let group_id = match group {
            Group::EachInstance => format!("sse-server-{}", self.instance),
            Group::Shared(name) => name.clone(),
        };
        let consumer: StreamConsumer = client_config(&self.brokers)
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // Events are latency-sensitive: an idle fetch must not wait 500 ms.
            .set("fetch.wait.max.ms", "20")
            // An instance that died is noticed within seconds and its
            // partitions go to the others.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()?;
        let consumer = Arc::new(consumer);
        match group {
            Group::EachInstance => {
                let c = consumer.clone();
                let topic = topic.to_owned();
                tokio::task::spawn_blocking(move || assign_at_end(&c, &topic)).await??;
            }
            Group::Shared(_) => consumer.subscribe(&[topic])?,
        }
        ready.store(true, Ordering::Relaxed);
        Ok(consumer)
    }

    /// Creates `topic` unless it exists, so a fresh broker works out of the box.
    async fn create_topic(&self, topic: &str) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.brokers).create()?;
        let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        for result in admin.create_topics([&new], &options).await? {
            match result {
                Ok(_) => tracing::info!(topic, "created Kafka topic"),
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, e)) => anyhow::bail!("cannot create topic {topic}: {e}"),
            }
        }
        Ok(())
    }
}

/// Assigns every partition of `topic` at its current end offset.
fn assign_at_end(consumer: &StreamConsumer, topic: &str) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
        .unwrap_or_default();
    anyhow::ensure!(
        !partitions.is_empty(),
        "topic {topic} has no partitions yet"
    );
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        assignment.add_partition_offset(topic, partition, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    Ok(())
}

/// `sse-server produce`: each line of stdin becomes one record. Returns how many
/// records failed.
pub async fn produce_lines(brokers: &str, topic: &str, key: Option<&str>) -> anyhow::Result<usize> {
    use tokio::io::AsyncBufReadExt;
    let bus = KafkaBus::new(brokers)?;
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
