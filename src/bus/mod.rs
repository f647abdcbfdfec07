//! Publish/subscribe between server instances: Kafka when brokers are configured,
//! an in-process channel otherwise (the embedded default).
//!
//! /v3 and /v4 only see this module's [`Bus`]: they publish records and register a
//! handler per topic. A handler that fails is retried on the same record (with
//! backoff) and the record is committed only after it succeeded, so a write that
//! was acknowledged to a client is never skipped.

mod kafka;
mod memory;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

pub use kafka::{KafkaBus, produce_lines};
pub use memory::MemoryBus;

/// One record read from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub partition: i32,
    pub offset: i64,
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
        E: std::fmt::Display + Send,
    {
        match self {
            Bus::Memory(bus) => bus.consume(topic, shutdown, handler),
            Bus::Kafka(bus) => bus.consume(topic, group, metrics, shutdown, handler),
        }
    }

    /// `Err` names what is not ready (broker unreachable, consumer not assigned).
    pub async fn ready(&self) -> Result<(), String> {
        match self {
            Bus::Memory(_) => Ok(()),
            Bus::Kafka(bus) => bus.ready().await,
        }
    }
}

/// Calls `handler` until it succeeds or shutdown, waiting longer after each failure.
/// Returns `false` when interrupted by shutdown.
async fn handle_until_done<H, F, E>(
    handler: &H,
    record: Record,
    shutdown: &CancellationToken,
) -> bool
where
    H: Fn(Record) -> F,
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display + Send,
{
    let mut backoff = Backoff::default();
    loop {
        match handler(record.clone()).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(
                    partition = record.partition,
                    offset = record.offset,
                    "handling a record failed, will retry: {e}"
                );
                if !backoff.wait(shutdown).await {
                    return false;
                }
            }
        }
    }
}

/// Exponential backoff from 100 ms to 5 s, interruptible by shutdown.
#[derive(Debug)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff(Duration::from_millis(100))
    }
}

impl Backoff {
    /// Sleeps for the current delay and doubles it. `false` when shut down instead.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}
