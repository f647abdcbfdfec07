//! The Kafka bus, on `rdkafka` (bundled librdkafka).
//!
//! Fan-out topics (`Group::EachInstance`) are read by every instance from the
//! offsets of `now − since` (offsets for times), and the instance is ready once it
//! has read up to the end each partition had when it started: that rebuilds the
//! history every instance keeps for resume. The partitions are assigned directly,
//! so an instance reads from its first second without waiting for a rebalance. Work-queue topics (`Group::Shared`) use a
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
                    "the Kafka reader of {} has not caught up with the topic yet",
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
        if matches!(group, Group::EachInstance(_)) {
            self.consumers.insert(topic.to_owned(), ready.clone());
        }
        let bus = self.clone();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let Some((consumer, mut catch_up)) =
                bus.start_consumer(&topic, &group, &shutdown).await
            else {
                return;
            };
            let caught_up_after = |records: u64| {
                ready.store(true, Ordering::Relaxed);
                if records > 0 {
                    tracing::info!(
                        topic,
                        records,
                        "caught up with the topic in {:.1?}",
                        started.elapsed()
                    );
                }
            };
            let mut replayed = 0u64;
            if catch_up.done() {
                caught_up_after(0);
            }
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
                        let (partition, offset) = (record.partition, record.offset);
                        if !handle_until_done(&handler, record, &shutdown).await {
                            return;
                        }
                        if !catch_up.done() {
                            replayed += 1;
                            if catch_up.read(partition, offset) {
                                caught_up_after(replayed);
                            }
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
        shutdown: &CancellationToken,
    ) -> Option<(Arc<StreamConsumer>, CatchUp)> {
        let mut backoff = Backoff::default();
        loop {
            match self.try_start_consumer(topic, group).await {
                Ok(started) => {
                    tracing::info!(topic, ?group, "Kafka consumer started");
                    return Some(started);
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
    ) -> anyhow::Result<(Arc<StreamConsumer>, CatchUp)> {
        self.create_topic(topic).await?;
        let group_id = match group {
            Group::EachInstance(_) => format!("sse-server-{}", self.instance),
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
        let catch_up = match group {
            Group::EachInstance(fan_out) => {
                let c = consumer.clone();
                let topic = topic.to_owned();
                let since = fan_out.since;
                let catch_up =
                    tokio::task::spawn_blocking(move || assign_from(&c, &topic, since)).await??;
                (fan_out.reading_from)(&catch_up.starts);
                catch_up
            }
            Group::Shared(_) => {
                consumer.subscribe(&[topic])?;
                CatchUp::default()
            }
        };
        Ok((consumer, catch_up))
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

/// Where a fan-out reader began, and how far it must read to have caught up.
#[derive(Debug, Default)]
struct CatchUp {
    /// Per partition, the first offset read.
    starts: Vec<i64>,
    /// Per partition, the end it had at the start; `i64::MIN` once reached.
    ends: Vec<i64>,
}

impl CatchUp {
    fn done(&self) -> bool {
        self.ends.iter().all(|&end| end == i64::MIN)
    }

    /// Notes a record read; `true` when that completes the catch-up.
    fn read(&mut self, partition: i32, offset: i64) -> bool {
        if let Some(end) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.ends.get_mut(p))
            && offset + 1 >= *end
        {
            *end = i64::MIN;
            return self.done();
        }
        false
    }
}

/// Assigns every partition of `topic` at the first offset of the last `since`
/// (its end when nothing is that recent).
fn assign_from(consumer: &StreamConsumer, topic: &str, since: Duration) -> anyhow::Result<CatchUp> {
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
    let count = partitions.iter().max().map_or(0, |p| *p as usize + 1);
    let mut catch_up = CatchUp {
        starts: vec![0; count],
        ends: vec![i64::MIN; count],
    };
    let from_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(since)
        .as_millis() as i64;
    let mut query = TopicPartitionList::new();
    for &partition in &partitions {
        query.add_partition_offset(topic, partition, Offset::Offset(from_ms))?;
    }
    let found = if since.is_zero() {
        None
    } else {
        Some(consumer.offsets_for_times(query, timeout)?)
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let start = match found
            .as_ref()
            .and_then(|f| f.find_partition(topic, partition))
            .map(|e| e.offset())
        {
            Some(Offset::Offset(offset)) => offset.clamp(low, high),
            // Nothing that recent (or no answer): start at the end.
            _ => high,
        };
        let p = partition as usize;
        catch_up.starts[p] = start;
        if start < high {
            catch_up.ends[p] = high;
        }
        assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    }
    consumer.assign(&assignment)?;
    Ok(catch_up)
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
