//! The Kafka bus, on `rdkafka` (bundled librdkafka).
//!
//! Fan-out topics (`Group::EachInstance`) are read by every instance from the
//! offsets of `now − since` (offsets for times), and the instance is ready once it
//! has read up to the end each partition had when it started: that rebuilds the
//! history every instance keeps for resume. The partitions are assigned directly,
//! so an instance reads from its first second without waiting for a rebalance.
//! Work-queue topics (`Group::Shared`) use a consumer group with manual commits
//! after each handled record. Both loops retry forever: librdkafka reconnects to a
//! broker that comes back by itself; a reader task that dies is restarted (see
//! [`KafkaBus::consume`]). The producer is idempotent (`enable.idempotence`), so a
//! retried send neither duplicates nor reorders records of a partition; a producer
//! that librdkafka declares failed for good (a fatal error) is replaced by a new
//! one on the next publish or readiness check, so the server never needs a restart
//! to publish again.
//!
//! A reader whose consumer stops fetching while records wait for it (a
//! librdkafka state seen after a broker pause) is replaced ([`StallWatch`]).
//!
//! Topics are created with the partitions [`Config::topics`](crate::config::Config::topics)
//! gives them: the broker is expected to have topic auto-creation off.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{
    BusError, Failure, Group, ReaderHealth, Readers, Record, handle_until_done, supervise,
};
use crate::backoff::Backoff;
use crate::config::Topic;
use crate::lock::{Locked, ReadWriteLocked};
use crate::metrics::{Metrics, TopicLabel};

/// How long a publish may wait for the broker's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a consumer error, so a persistent error cannot spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long the broker may hold a fetch that found nothing. Apache Kafka answers a
/// fetch as soon as a record arrives, so this costs no latency; it only sets how
/// often an idle reader asks (librdkafka's own default).
const FETCH_WAIT: Duration = Duration::from_millis(500);

pub struct KafkaBus {
    brokers: String,
    /// The server's topics, created with these partitions when missing.
    topics: Vec<Topic>,
    /// Replaced when librdkafka reports a fatal error (see the module doc).
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

fn new_producer(brokers: &str) -> anyhow::Result<FutureProducer> {
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
    /// A bus on `brokers` for the server's `topics`.
    pub fn new(brokers: &str, topics: Vec<Topic>) -> anyhow::Result<KafkaBus> {
        Ok(KafkaBus {
            brokers: brokers.to_owned(),
            topics,
            producer: RwLock::new(new_producer(brokers)?),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            readers: Readers::default(),
        })
    }

    /// The current producer; first replaces it when librdkafka has declared it
    /// failed for good (an idempotent producer whose state it cannot recover).
    fn producer(&self) -> FutureProducer {
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

    /// Reads `topic` with `handler`, supervised: a reader that panics or stops is
    /// restarted. A restarted fan-out reader goes on from the records it handled
    /// (the hub's cursor: each record either became an event or was skipped), not
    /// from `now − since` again, so it neither loses nor repeats an event; a
    /// restarted shared reader goes on from its group's committed offsets.
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
        E: Into<Failure> + Send,
    {
        let (name, fan_out) = match &group {
            Group::EachInstance(_) => (topic.to_owned(), true),
            Group::Shared(group) => (format!("{topic} (group {group})"), false),
        };
        let health = self.readers.register(name, fan_out, &metrics);
        let handled: Arc<Mutex<Option<Vec<i64>>>> = Arc::new(Mutex::new(None));
        let handler = Arc::new(handler);
        let bus = self.clone();
        let topic = topic.to_owned();
        let reader_health = health.clone();
        supervise(health, shutdown.clone(), move || {
            let reader = Reader {
                bus: bus.clone(),
                topic: topic.clone(),
                group: group.clone(),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
                health: reader_health.clone(),
                handled: handled.clone(),
            };
            let handler = handler.clone();
            async move { reader.run(&*handler).await }
        });
    }

    /// Creates the consumer and waits (retrying forever) until it reads its topic.
    async fn start_consumer(
        &self,
        topic: &str,
        group: &Group,
        handled: Option<Vec<i64>>,
        shutdown: &CancellationToken,
    ) -> Option<(Arc<StreamConsumer>, CatchUp)> {
        let mut backoff = Backoff::default();
        loop {
            match self.try_start_consumer(topic, group, handled.clone()).await {
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
        handled: Option<Vec<i64>>,
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
            .set("fetch.wait.max.ms", FETCH_WAIT.as_millis().to_string())
            // An instance that died is noticed within this session timeout
            // (its pending /v4 commands are settled sooner, by the sweepers)
            // and its partitions go to the others.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()?;
        let consumer = Arc::new(consumer);
        let catch_up = match group {
            Group::EachInstance(fan_out) => {
                let c = consumer.clone();
                let topic = topic.to_owned();
                let start = match handled {
                    Some(next) => Start::At(next),
                    None => Start::Since(fan_out.since),
                };
                let catch_up =
                    tokio::task::spawn_blocking(move || assign_from(&c, &topic, start)).await??;
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

    /// Whether the broker holds records of `topic` at or after any of `next`
    /// (`(partition, offset)`). Asked through the producer's client, since the
    /// reader's own consumer may be the one that is stuck; `false` when the
    /// broker does not answer (then nothing can be read anyway).
    async fn records_waiting(&self, topic: &str, next: Vec<(i32, i64)>) -> bool {
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

    /// Creates `topic` unless it exists, so a fresh broker works out of the box.
    async fn create_topic(&self, topic: &str) -> anyhow::Result<()> {
        let Some(spec) = self.topics.iter().find(|t| t.name == topic) else {
            anyhow::bail!("{topic} is not one of this server's topics");
        };
        self.create_topics(std::slice::from_ref(spec)).await?;
        Ok(())
    }

    /// Creates every topic of the server that is missing (`sse-server init`);
    /// returns the names of those it created.
    pub async fn create_all_topics(&self) -> anyhow::Result<Vec<String>> {
        self.create_topics(&self.topics).await
    }

    async fn create_topics(&self, topics: &[Topic]) -> anyhow::Result<Vec<String>> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.brokers).create()?;
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        let mut created = Vec::new();
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(topic) => {
                    tracing::info!(topic, "created Kafka topic");
                    created.push(topic);
                }
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, e)) => anyhow::bail!("cannot create topic {topic}: {e}"),
            }
        }
        Ok(created)
    }
}

/// One run of a supervised reader: what it needs to (re)start and to record its
/// progress.
struct Reader {
    bus: Arc<KafkaBus>,
    topic: String,
    group: Group,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    health: Arc<ReaderHealth>,
    /// Fan-out: the next offset per partition after the records handled so far,
    /// kept across restarts (`None` before the first start).
    handled: Arc<Mutex<Option<Vec<i64>>>>,
}

impl Reader {
    async fn run<H, F, E>(self, handler: &H)
    where
        H: Fn(Record) -> F,
        F: Future<Output = Result<(), E>>,
        E: Into<Failure>,
    {
        let Reader {
            bus,
            topic,
            group,
            metrics,
            shutdown,
            health,
            handled,
        } = self;
        let fan_out = matches!(group, Group::EachInstance(_));
        health.caught_up.store(!fan_out, Ordering::Relaxed);
        let started = Instant::now();
        let resume_at = handled.locked().clone();
        let Some((consumer, mut catch_up)) = bus
            .start_consumer(&topic, &group, resume_at, &shutdown)
            .await
        else {
            return;
        };
        if fan_out {
            *handled.locked() = Some(catch_up.starts.clone());
        }
        #[cfg(test)]
        tests::stall_if_asked(&topic, &consumer);
        let caught_up_after = |records: u64| {
            health.caught_up.store(true, Ordering::Relaxed);
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
        let mut stall = StallWatch::new();
        loop {
            let message = tokio::select! {
                m = consumer.recv() => m,
                _ = stall.check.tick() => {
                    if stall.since_last_record.elapsed() < STALL_CHECK {
                        continue;
                    }
                    let next = if fan_out {
                        positions_of(handled.locked().as_deref())
                    } else {
                        assigned_positions(&consumer)
                    };
                    let waiting = bus.records_waiting(&topic, next).await;
                    if stall.stuck(waiting) {
                        tracing::warn!(
                            topic,
                            "records have waited {STALL_LIMIT:?} on the broker without \
                             reaching this reader; replacing its consumer"
                        );
                        return;
                    }
                    continue;
                }
                _ = shutdown.cancelled() => return,
            };
            match message {
                Ok(message) => {
                    consumed.inc();
                    let record = Record {
                        payload: message.payload().unwrap_or_default().to_vec(),
                        partition: message.partition(),
                        offset: message.offset(),
                        timestamp_ms: message.timestamp().to_millis(),
                    };
                    let (partition, offset) = (record.partition, record.offset);
                    health.handling(record.timestamp_ms);
                    if !handle_until_done(handler, record, &topic, &metrics, &shutdown).await {
                        return;
                    }
                    health.idle();
                    stall.record_seen();
                    if fan_out
                        && let Some(next) = handled
                            .locked()
                            .as_mut()
                            .and_then(|h| h.get_mut(usize::try_from(partition).ok()?))
                    {
                        *next = offset + 1;
                    }
                    if !catch_up.done() {
                        replayed += 1;
                        if catch_up.read(partition, offset) {
                            caught_up_after(replayed);
                        }
                    }
                    if !fan_out && let Err(e) = consumer.commit_message(&message, CommitMode::Async)
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
    }
}

/// How often a reader that has received nothing for as long asks the broker
/// whether records are waiting for it.
const STALL_CHECK: Duration = Duration::from_secs(5);
/// How long records may wait on the broker without reaching a reader before its
/// consumer is replaced.
const STALL_LIMIT: Duration = Duration::from_secs(10);
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
/// [`supervise`] starts a fresh consumer that goes on from the same position (a
/// fan-out reader from the records it handled, a shared one from its group's
/// commits): nothing lost, nothing repeated.
struct StallWatch {
    check: tokio::time::Interval,
    since_last_record: Instant,
    /// Since when records have been waiting, unread.
    waiting_since: Option<Instant>,
}

impl StallWatch {
    fn new() -> StallWatch {
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
    fn record_seen(&mut self) {
        self.since_last_record = Instant::now();
        self.waiting_since = None;
    }

    /// Takes the latest answer to "are records waiting?"; true once they have been
    /// for [`STALL_LIMIT`].
    fn stuck(&mut self, waiting: bool) -> bool {
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

/// `(partition, next offset)` for a fan-out reader's handled positions.
fn positions_of(handled: Option<&[i64]>) -> Vec<(i32, i64)> {
    handled
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(partition, &next)| Some((i32::try_from(partition).ok()?, next)))
        .collect()
}

/// `(partition, next offset)` for what a group member is assigned and has a
/// position in.
fn assigned_positions(consumer: &StreamConsumer) -> Vec<(i32, i64)> {
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

/// Where a fan-out reader starts.
enum Start {
    /// At the first record of the last `since` (a new reader).
    Since(Duration),
    /// At these next offsets per partition (a restarted reader).
    At(Vec<i64>),
}

/// Assigns every partition of `topic` at `start`: the first offset of the last
/// `since` (the end when nothing is that recent), or the given next offsets.
fn assign_from(consumer: &StreamConsumer, topic: &str, start: Start) -> anyhow::Result<CatchUp> {
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
    let found = match &start {
        Start::Since(since) if !since.is_zero() => {
            let from_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(*since)
                .as_millis() as i64;
            let mut query = TopicPartitionList::new();
            for &partition in &partitions {
                query.add_partition_offset(topic, partition, Offset::Offset(from_ms))?;
            }
            Some(consumer.offsets_for_times(query, timeout)?)
        }
        _ => None,
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let start = match &start {
            // A partition the reader had not seen yet is read from its beginning.
            Start::At(next) => next
                .get(partition as usize)
                .copied()
                .unwrap_or(low)
                .clamp(low, high),
            Start::Since(_) => match found
                .as_ref()
                .and_then(|f| f.find_partition(topic, partition))
                .map(|e| e.offset())
            {
                Some(Offset::Offset(offset)) => offset.clamp(low, high),
                // Nothing that recent (or no answer): start at the end.
                _ => high,
            },
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
    use crate::bus::FanOut;
    use rdkafka::bindings::{rd_kafka_resp_err_t, rd_kafka_test_fatal_error};

    /// The topic whose next consumer [`stall_if_asked`] stops.
    static STALLED_TOPIC: Mutex<Option<String>> = Mutex::new(None);

    /// Pauses every partition of `consumer` (it fetches nothing more, as a consumer
    /// stuck in librdkafka) when it is the first one started for the topic a test
    /// named in [`STALLED_TOPIC`].
    pub(super) fn stall_if_asked(topic: &str, consumer: &StreamConsumer) {
        let mut stalled = STALLED_TOPIC.locked();
        if stalled.as_deref() == Some(topic) {
            let assignment = consumer.assignment().expect("assignment");
            consumer.pause(&assignment).expect("pause");
            *stalled = None;
        }
    }

    /// A bus on the real broker (`SSE_TEST_KAFKA`) with a new topic of its own,
    /// named `PREFIX-<uuid>`.
    async fn bus_with_fresh_topic(prefix: &str, partitions: i32) -> (KafkaBus, Topic) {
        let brokers = std::env::var("SSE_TEST_KAFKA").expect("SSE_TEST_KAFKA");
        let topic = Topic {
            name: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            partitions,
        };
        let bus = KafkaBus::new(&brokers, vec![topic.clone()]).expect("bus");
        bus.create_all_topics().await.expect("topic");
        (bus, topic)
    }

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

    /// Against the real broker: a fan-out reader whose consumer stops fetching is
    /// replaced by the stall watch, and the new one delivers every record once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
    async fn a_reader_whose_consumer_stops_fetching_is_replaced_and_loses_nothing() {
        let (bus, topic) = bus_with_fresh_topic("test-stall", 2).await;
        let bus = Arc::new(bus);
        *STALLED_TOPIC.locked() = Some(topic.name.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        bus.consume(
            &topic.name,
            FanOut::group(Duration::from_secs(60), |_| {}),
            Arc::new(Metrics::new()),
            shutdown.clone(),
            move |record: Record| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(String::from_utf8_lossy(&record.payload).into_owned());
                    Ok::<(), std::convert::Infallible>(())
                }
            },
        );
        let sent: Vec<String> = (0..6).map(|i| format!("record {i}")).collect();
        for (i, payload) in sent.iter().enumerate() {
            bus.publish(&topic.name, Some(&format!("key {i}")), payload.as_bytes())
                .await
                .expect("publish");
        }
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let record = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("every record within 60 s: the stall watch replaces the stopped consumer")
                .expect("the reader is still running");
            got.push(record);
        }
        assert!(
            STALLED_TOPIC.locked().is_none(),
            "the first consumer was stopped"
        );
        // Nothing more, and the reader still runs (a closed channel fails here).
        assert!(
            tokio::time::timeout(Duration::from_secs(2), rx.recv())
                .await
                .is_err(),
            "a record delivered twice, or the reader stopped"
        );
        got.sort();
        assert_eq!(got, sent);
        shutdown.cancel();
    }
}
