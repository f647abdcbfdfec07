//! The reading loops. Fan-out readers are assigned their partitions (`fan_out`);
//! work-queue topics (`Group::Shared`) use a consumer group with manual commits
//! after each handled record. Both loops retry forever: librdkafka reconnects to a
//! broker that comes back by itself; a reader task that dies is restarted (see
//! [`KafkaBus::consume`]), as is one whose consumer stalled (`stall`).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use tokio_util::sync::CancellationToken;

use super::fan_out::{CatchUp, Start, assign_from};
use super::reports::{KafkaConsumer, Reports};
use super::stall::{STALL_CHECK, STALL_LIMIT, StallWatch, assigned_positions, positions_of};
use super::{KafkaBus, client_config};
use crate::backoff::Backoff;
use crate::bus::handler::handle_until_done;
use crate::bus::supervisor::supervise;
use crate::bus::{Failure, Group, ID_HEADER, ReaderHealth, Record};
use crate::lock::Locked;
use crate::metrics::Metrics;

/// Pause after a consumer error, so a persistent error cannot spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long the broker may hold a fetch that found nothing. Apache Kafka answers a
/// fetch as soon as a record arrives, so this costs no latency; it only sets how
/// often an idle reader asks (librdkafka's own default).
const FETCH_WAIT: Duration = Duration::from_millis(500);

impl KafkaBus {
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
    ) -> Option<(Arc<KafkaConsumer>, CatchUp)> {
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
    ) -> anyhow::Result<(Arc<KafkaConsumer>, CatchUp)> {
        self.create_topic(topic).await?;
        let group_id = match group {
            Group::EachInstance(_) => format!("sse-server-{}", self.instance),
            Group::Shared(name) => name.clone(),
        };
        let consumer: KafkaConsumer = client_config(&self.brokers)
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", FETCH_WAIT.as_millis().to_string())
            // An instance that died is noticed within this session timeout
            // (its pending /v4 commands are settled sooner, by the sweepers)
            // and its partitions go to the others.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create_with_context(Reports)?;
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
        /// The record's [`ID_HEADER`], when it has one in UTF-8.
        fn record_id(message: &impl Message) -> Option<String> {
            let headers = message.headers()?;
            headers
                .iter()
                .find(|h| h.key == ID_HEADER)
                .and_then(|h| std::str::from_utf8(h.value?).ok())
                .map(str::to_owned)
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
        let consumed = metrics.consumed_counter(&topic);
        let mut stall = StallWatch::new();
        // Set from a consumer error until the next record: an outage is logged
        // when it starts and when it ends, not at every retry (`reports`).
        let mut failing = false;
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
                    if std::mem::take(&mut failing) {
                        tracing::info!(topic, "the Kafka consumer reads again");
                    }
                    consumed.inc();
                    let record = Record {
                        payload: message.payload().unwrap_or_default().to_vec(),
                        partition: message.partition(),
                        offset: message.offset(),
                        timestamp_ms: message.timestamp().to_millis(),
                        id: record_id(&message),
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
                    if failing {
                        tracing::debug!(topic, "Kafka consumer error: {e}");
                    } else {
                        tracing::warn!(
                            topic,
                            "Kafka consumer error (librdkafka keeps retrying; logged again when it reads): {e}"
                        );
                        failing = true;
                    }
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::FanOut;
    use crate::bus::kafka::test_support::bus_with_fresh_topic;

    /// The topic whose next consumer [`stall_if_asked`] stops.
    static STALLED_TOPIC: Mutex<Option<String>> = Mutex::new(None);

    /// Pauses every partition of `consumer` (it fetches nothing more, as a consumer
    /// stuck in librdkafka) when it is the first one started for the topic a test
    /// named in [`STALLED_TOPIC`].
    pub(super) fn stall_if_asked(topic: &str, consumer: &KafkaConsumer) {
        let mut stalled = STALLED_TOPIC.locked();
        if stalled.as_deref() == Some(topic) {
            let assignment = consumer.assignment().expect("assignment");
            consumer.pause(&assignment).expect("pause");
            *stalled = None;
        }
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
            bus.publish(
                &topic.name,
                Some(&format!("key {i}")),
                payload,
                payload.as_bytes(),
            )
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
