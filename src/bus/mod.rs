//! Publish/subscribe between server instances: Kafka when brokers are configured,
//! an in-process channel otherwise (the embedded default).
//!
//! /v3 and /v4 only see this module's [`Bus`]: they publish records and register a
//! handler per topic. A handler says how it failed ([`Failure`], see `handler`): a
//! transient failure is retried on the same record, a permanent one is passed. Every
//! reader runs supervised (`supervisor`): one that dies is restarted, and while it
//! is down, catching up or more than [`LAG_LIMIT`] behind, [`Bus::ready`] names it
//! (`readers`).

mod group;
mod handler;
mod kafka;
mod memory;
mod readers;
mod record;
mod repeats;
mod supervisor;

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::metrics::Metrics;

pub use group::{FanOut, Group, ReadingFrom};
pub use handler::Failure;
pub use kafka::{KafkaBus, TopicState, Unwritable, produce_lines};
pub use memory::MemoryBus;
pub use readers::{LAG_LIMIT, ReaderHealth, Readers};
pub use record::{ID_HEADER, Record};
pub use repeats::Repeats;

/// Why a publish was not acknowledged, and so whether the record may still land.
///
/// A client retries safely only after [`BusError::NotWritten`]; after
/// [`BusError::MaybeWritten`] the record may be delivered later (a broker appended
/// it, then the acknowledgement was lost or came too late), so a blind retry could
/// deliver it twice.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Surely not written: no broker took it (no leader, too few in-sync replicas
    /// before the append, the queue full, shutting down).
    #[error("the message bus did not take the record: {0}")]
    NotWritten(String),
    /// Sent, but not acknowledged in time: it may have been written.
    #[error("the message bus did not acknowledge the record in time: {0}")]
    MaybeWritten(String),
}

impl BusError {
    /// The answer's `written` field: `"no"` or `"maybe"` (docs/openapi.json).
    pub fn written(&self) -> &'static str {
        match self {
            BusError::NotWritten(_) => "no",
            BusError::MaybeWritten(_) => "maybe",
        }
    }
}

/// What `/readyz` reports of the bus.
#[derive(Debug, Default)]
pub struct BusReadiness {
    /// Why this instance should take no traffic, if it should not.
    pub not_ready: Option<String>,
    /// Partitions that take no writes now, while others do: the users whose
    /// messages go there are refused, everyone else is served.
    pub unwritable: Vec<Unwritable>,
}

#[derive(Clone)]
pub enum Bus {
    Memory(MemoryBus),
    Kafka(Arc<KafkaBus>),
}

impl Bus {
    /// Publishes and waits until the record is durably accepted; returns where it
    /// was written (partition, offset). The record gets a fresh id.
    pub async fn publish(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.publish_as(topic, key, &id, payload).await
    }

    /// Publishes a record named `id` ([`ID_HEADER`]): a reader that has handled a
    /// record of that id drops this one (`repeats`), so publishing the same
    /// request again (an `Idempotency-Key` retry, on any instance) delivers once.
    pub async fn publish_as(
        &self,
        topic: &str,
        key: Option<&str>,
        id: &str,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        match self {
            Bus::Memory(bus) => bus.publish(topic, key, id, payload).await,
            Bus::Kafka(bus) => bus.publish(topic, key, id, payload).await,
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

    /// What keeps this instance from serving (no partition takes writes, a reader
    /// down, catching up or behind), and the partitions that take no writes.
    pub fn ready(&self) -> BusReadiness {
        match self {
            Bus::Memory(bus) => BusReadiness {
                not_ready: bus.readers().problem(),
                unwritable: Vec::new(),
            },
            Bus::Kafka(bus) => bus.ready(),
        }
    }

    /// Keeps the bus's view of which partitions take writes current, until
    /// `shutdown` (Kafka only: the in-process bus always takes writes).
    pub fn watch_writability(&self, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        if let Bus::Kafka(bus) = self {
            bus.watch_writability(metrics, shutdown);
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
