//! Publish/subscribe between server instances: Kafka when brokers are configured,
//! an in-process channel otherwise (the embedded default).
//!
//! /v3 and /v4 only see this module's [`Bus`]: they publish records and register a
//! handler per topic. A handler says how it failed ([`Failure`]): a transient
//! failure is retried on the same record (backoff with jitter) and the record is
//! committed only after it succeeded, so a write that was acknowledged to a client
//! is never skipped; a permanent one (a record that can never be handled) is logged,
//! counted as malformed and passed, so it never stalls its partition.
//!
//! Every reader runs supervised ([`supervise`]): a reader task that panics or
//! returns is logged and restarted with backoff, and while one is down, catching
//! up, or handling a record more than [`LAG_LIMIT`] old, [`Bus::ready`] names it
//! (so `/readyz` answers 503). The `kafka_consumer_lag` gauge shows how far behind
//! each reader is, in seconds.

mod kafka;
mod memory;

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::lock::Locked;
use crate::metrics::{Metrics, ReaderLabels};

pub use kafka::{KafkaBus, produce_lines};
pub use memory::MemoryBus;

/// One record read from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub payload: Vec<u8>,
    pub partition: i32,
    pub offset: i64,
    /// When the record was written (ms since the epoch), when the bus knows.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// Where the record sits, as the SSE layer orders events.
    pub fn position(&self) -> crate::sse::Position {
        crate::sse::Position {
            partition: usize::try_from(self.partition).unwrap_or(0),
            offset: self.offset,
        }
    }
}

/// Who reads a topic.
#[derive(Debug, Clone)]
pub enum Group {
    /// Every instance reads every record (fan-out).
    EachInstance(FanOut),
    /// The instances share the records between them, each read once (work queue).
    Shared(String),
}

/// How a fan-out reader starts: it re-reads the records of the last `since`, and
/// tells `reading_from` the first offset of each partition it reads (everything
/// before is unknown to this instance). It is not ready until it has caught up
/// with the end the topic had when it started.
#[derive(Clone)]
pub struct FanOut {
    pub since: Duration,
    pub reading_from: Arc<ReadingFrom>,
}

/// Told, per partition, the first offset a fan-out reader reads.
pub type ReadingFrom = dyn Fn(&[i64]) + Send + Sync;

impl FanOut {
    /// The fan-out group reading the last `since`.
    pub fn group(since: Duration, reading_from: impl Fn(&[i64]) + Send + Sync + 'static) -> Group {
        Group::EachInstance(FanOut {
            since,
            reading_from: Arc::new(reading_from),
        })
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("since", &self.since)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the message bus did not acknowledge the record in time: {0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub enum Bus {
    Memory(MemoryBus),
    Kafka(Arc<KafkaBus>),
}

impl Bus {
    /// Publishes and waits until the record is durably accepted; returns where it
    /// was written (partition, offset).
    pub async fn publish(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        match self {
            Bus::Memory(bus) => bus.publish(topic, key, payload).await,
            Bus::Kafka(bus) => bus.publish(topic, key, payload).await,
        }
    }

    /// Publishes, retrying with backoff until the bus accepts it or shutdown. For
    /// announcements whose cause is already durable (the report is stored).
    pub async fn publish_until_done(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        let mut backoff = Backoff::default();
        loop {
            match self.publish(topic, key, payload).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(topic, "publish failed, will retry: {e}");
                    if !backoff.wait(shutdown).await {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Runs `handler` for every record of `topic` until `shutdown`.
    pub fn consume<H, F, E>(
        &self,
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
        match self {
            Bus::Memory(bus) => bus.consume(topic, metrics, shutdown, handler),
            Bus::Kafka(bus) => bus.consume(topic, group, metrics, shutdown, handler),
        }
    }

    /// `Err` names what is not ready (broker unreachable, a reader down, catching
    /// up or behind).
    pub async fn ready(&self) -> Result<(), String> {
        match self {
            Bus::Memory(bus) => bus.readers().problem().map_or(Ok(()), Err),
            Bus::Kafka(bus) => bus.ready().await,
        }
    }

    /// Whether the reader `name` (a fan-out reader is named after its topic) is
    /// running and has caught up with its topic.
    pub fn caught_up(&self, name: &str) -> bool {
        match self {
            Bus::Memory(bus) => bus.readers().caught_up(name),
            Bus::Kafka(bus) => bus.readers().caught_up(name),
        }
    }

    /// Refreshes the `kafka_consumer_lag` gauges (called every second).
    pub fn update_lag_gauges(&self) {
        match self {
            Bus::Memory(bus) => bus.readers().update_gauges(),
            Bus::Kafka(bus) => bus.readers().update_gauges(),
        }
    }
}

/// How a handler failed on a record.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying (a service is unreachable): the record is handled again.
    Transient(String),
    /// Can never succeed (the record is malformed): logged, counted, passed.
    Permanent(String),
}

impl From<std::convert::Infallible> for Failure {
    fn from(never: std::convert::Infallible) -> Failure {
        match never {}
    }
}

/// Calls `handler` until it succeeds, fails permanently, or shutdown; waits longer
/// after each transient failure. Returns `false` when interrupted by shutdown.
async fn handle_until_done<H, F, E>(
    handler: &H,
    record: Record,
    topic: &str,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> bool
where
    H: Fn(Record) -> F,
    F: Future<Output = Result<(), E>>,
    E: Into<Failure>,
{
    #[cfg(debug_assertions)]
    test_hook::panic_once_on(&record.payload);
    let mut backoff = Backoff::default();
    loop {
        match handler(record.clone()).await.map_err(Into::into) {
            Ok(()) => return true,
            Err(Failure::Permanent(why)) => {
                tracing::warn!(
                    topic,
                    partition = record.partition,
                    offset = record.offset,
                    "skipping a record that can never be handled: {why}"
                );
                metrics.malformed(topic);
                return true;
            }
            Err(Failure::Transient(why)) => {
                tracing::warn!(
                    topic,
                    partition = record.partition,
                    offset = record.offset,
                    "handling a record failed, will retry: {why}"
                );
                if !backoff.wait(shutdown).await {
                    return false;
                }
            }
        }
    }
}

/// A test hook, compiled into debug builds only: with
/// `SSE_TEST_PANIC_ONCE=<text>` set, the first record whose payload contains
/// `<text>` makes its reader panic (once per process), so tests can watch a
/// reader being restarted.
#[cfg(debug_assertions)]
mod test_hook {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    static PANICKED: AtomicBool = AtomicBool::new(false);

    /// The trigger, read from the environment once.
    fn trigger() -> Option<&'static [u8]> {
        static TRIGGER: OnceLock<Option<Vec<u8>>> = OnceLock::new();
        TRIGGER
            .get_or_init(|| {
                std::env::var_os("SSE_TEST_PANIC_ONCE")
                    .map(|t| t.as_encoded_bytes().to_vec())
                    .filter(|t| !t.is_empty())
            })
            .as_deref()
    }

    pub fn panic_once_on(payload: &[u8]) {
        let Some(trigger) = trigger() else {
            return;
        };
        if !trigger.is_empty()
            && payload.windows(trigger.len()).any(|w| w == trigger)
            && !PANICKED.swap(true, Ordering::SeqCst)
        {
            panic!("SSE_TEST_PANIC_ONCE: test hook triggered");
        }
    }
}

/// A reader is "behind" when the record it is handling is older than this.
pub const LAG_LIMIT: Duration = Duration::from_secs(5);

/// The first wait before a failed reader is restarted (doubling up to 30 s).
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(2);

/// A reader that ran this long before failing starts its backoff afresh.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// The longest pause between two restarts of a reader.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// How one reader is doing, for `/readyz` and the lag gauge.
pub struct ReaderHealth {
    /// "topic" for a fan-out reader, "topic (group)" for a shared one.
    name: String,
    running: AtomicBool,
    /// A fan-out reader is not ready until it has read what its topic held when
    /// it (re)started; a shared reader is always "caught up".
    caught_up: AtomicBool,
    /// Kafka timestamp (ms) of the record being handled; 0 when idle.
    handling: AtomicI64,
    last_failure: Mutex<Option<String>>,
    lag: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ReaderHealth {
    fn new(name: String, fan_out: bool, metrics: &Metrics) -> ReaderHealth {
        let lag = metrics
            .kafka_consumer_lag
            .get_or_create(&ReaderLabels {
                topic: name.clone(),
            })
            .clone();
        ReaderHealth {
            name,
            running: AtomicBool::new(true),
            caught_up: AtomicBool::new(!fan_out),
            handling: AtomicI64::new(0),
            last_failure: Mutex::new(None),
            lag,
        }
    }

    /// Notes the record now being handled (its timestamp, ms since the epoch).
    fn handling(&self, timestamp_ms: Option<i64>) {
        let stamp = timestamp_ms.filter(|&t| t > 0).unwrap_or_else(now_ms);
        self.handling.store(stamp, Ordering::Relaxed);
    }

    fn idle(&self) {
        self.handling.store(0, Ordering::Relaxed);
    }

    /// How far behind the reader is: the age of the record it is handling.
    fn behind(&self) -> Duration {
        match self.handling.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(u64::try_from(now_ms() - since).unwrap_or(0)),
        }
    }

    /// What keeps this reader from being ready, if anything.
    fn problem(&self) -> Option<String> {
        let behind = self.behind();
        self.lag.set(behind.as_secs_f64());
        if !self.running.load(Ordering::Relaxed) {
            let why = self.last_failure.locked().clone().unwrap_or_default();
            return Some(format!(
                "the Kafka reader of {} is down ({why}) and being restarted",
                self.name
            ));
        }
        if !self.caught_up.load(Ordering::Relaxed) {
            return Some(format!(
                "the Kafka reader of {} has not caught up with the topic yet",
                self.name
            ));
        }
        if behind > LAG_LIMIT {
            return Some(format!(
                "the Kafka reader of {} is {:.0?} behind",
                self.name, behind
            ));
        }
        None
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Every reader of one bus, by name.
#[derive(Clone, Default)]
pub struct Readers(Arc<DashMap<String, Arc<ReaderHealth>>>);

impl Readers {
    fn register(&self, name: String, fan_out: bool, metrics: &Metrics) -> Arc<ReaderHealth> {
        let health = Arc::new(ReaderHealth::new(name.clone(), fan_out, metrics));
        self.0.insert(name, health.clone());
        health
    }

    /// The first reader that is down, catching up or behind, by name.
    fn problem(&self) -> Option<String> {
        self.0.iter().find_map(|reader| reader.problem())
    }

    fn caught_up(&self, name: &str) -> bool {
        self.0.get(name).is_none_or(|reader| {
            reader.running.load(Ordering::Relaxed) && reader.caught_up.load(Ordering::Relaxed)
        })
    }

    /// Keeps the lag gauges current even while nobody asks `/readyz`.
    fn update_gauges(&self) {
        for reader in self.0.iter() {
            reader.lag.set(reader.behind().as_secs_f64());
        }
    }
}

/// Runs `run` as a task, and again (after a growing pause) whenever it panics or
/// returns before shutdown; `health` says meanwhile that the reader is down.
fn supervise<R, F>(health: Arc<ReaderHealth>, shutdown: CancellationToken, mut run: R)
where
    R: FnMut() -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = Backoff::new(FIRST_RESTART_DELAY, MAX_RESTART_DELAY);
        loop {
            health.running.store(true, Ordering::Relaxed);
            let started = Instant::now();
            let ended = tokio::spawn(run()).await;
            if shutdown.is_cancelled() {
                return;
            }
            health.running.store(false, Ordering::Relaxed);
            health.idle();
            let why = match ended {
                Ok(()) => "its task returned".to_owned(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
                Err(e) => format!("its task failed: {e}"),
            };
            if started.elapsed() > STABLE_RUN {
                backoff = Backoff::new(FIRST_RESTART_DELAY, MAX_RESTART_DELAY);
            }
            tracing::error!(
                reader = health.name,
                "Kafka reader stopped ({why}); restarting it in {:?}",
                backoff.upcoming()
            );
            *health.last_failure.locked() = Some(why);
            if !backoff.wait(&shutdown).await {
                return;
            }
            tracing::info!(reader = health.name, "restarting the reader");
        }
    });
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}
