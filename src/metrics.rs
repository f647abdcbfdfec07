//! Prometheus metrics, kept per application instance (no global registry), so that
//! several servers started in one test process each count only their own traffic.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReaderLabels {
    /// The topic read, followed by the group when the readers share one.
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Default)]
pub struct Metrics {
    registry: Registry,
    open_streams: Family<VersionLabel, Gauge>,
    events_delivered: Family<VersionLabel, Counter>,
    overflow_closed: Family<VersionLabel, Counter>,
    kafka_consumed: Family<TopicLabel, Counter>,
    kafka_malformed: Family<TopicLabel, Counter>,
    kafka_repeated: Family<TopicLabel, Counter>,
    kafka_consumer_lag: Family<ReaderLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    kafka_unwritable_partitions: Family<TopicLabel, Gauge>,
    v4_commands_rejected: Family<ReasonLabel, Counter>,
    v4_commands_swept: Counter,
    dynamodb_errors: Counter,
    http_requests: Family<RequestLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics::default();
        let r = &mut m.registry;
        r.register(
            "sse_open_streams",
            "Open event streams",
            m.open_streams.clone(),
        );
        r.register(
            "sse_events_delivered",
            "Events handed to a connection's queue",
            m.events_delivered.clone(),
        );
        r.register(
            "sse_connections_closed_overflow",
            "Connections closed because their queue overflowed (too slow)",
            m.overflow_closed.clone(),
        );
        r.register(
            "kafka_records_consumed",
            "Kafka records read",
            m.kafka_consumed.clone(),
        );
        r.register(
            "kafka_records_malformed",
            "Kafka records skipped as malformed",
            m.kafka_malformed.clone(),
        );
        r.register(
            "kafka_records_repeated",
            "Copies of a Kafka record already handled, skipped (a producer retry appended twice)",
            m.kafka_repeated.clone(),
        );
        r.register(
            "kafka_consumer_lag",
            "Seconds a Kafka reader is behind: the age of the record it is handling (0 when idle)",
            m.kafka_consumer_lag.clone(),
        );
        r.register(
            "kafka_unwritable_partitions",
            "Partitions of a topic that take no writes now (leader unreachable, or too few in-sync replicas reachable)",
            m.kafka_unwritable_partitions.clone(),
        );
        r.register(
            "v4_commands_rejected",
            "/v4 commands announced as rejected, by reason",
            m.v4_commands_rejected.clone(),
        );
        r.register(
            "v4_commands_swept",
            "/v4 commands settled by this instance's sweeper (no outcome seen in time)",
            m.v4_commands_swept.clone(),
        );
        r.register(
            "dynamodb_errors",
            "DynamoDB calls that failed",
            m.dynamodb_errors.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A record of `topic` skipped as malformed (see `events::RecordSkipped`).
    pub(crate) fn count_malformed(&self, topic: &str) {
        self.kafka_malformed
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .inc();
    }

    /// A copy of a record already handled, skipped (see `events::RecordSkipped`).
    pub(crate) fn count_repeated(&self, topic: &str) {
        self.kafka_repeated
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .inc();
    }

    /// A /v4 command announced as rejected (see `events::CommandRejected`).
    pub(crate) fn count_rejected(&self, reason: &'static str) {
        self.v4_commands_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A command settled by the sweeper (see `events::CommandSwept`).
    pub(crate) fn count_swept(&self) {
        self.v4_commands_swept.inc();
    }

    /// A DynamoDB call that failed.
    pub fn count_dynamodb_error(&self) {
        self.dynamodb_errors.inc();
    }

    /// The counters of events handed to `version`'s connections, and of its
    /// connections closed for overflow (a hub keeps them, one lookup).
    pub fn delivery_counters(&self, version: &'static str) -> (Counter, Counter) {
        let label = VersionLabel { version };
        (
            self.events_delivered.get_or_create(&label).clone(),
            self.overflow_closed.get_or_create(&label).clone(),
        )
    }

    /// The counter of records read from `topic` (a reader keeps it).
    pub fn consumed_counter(&self, topic: &str) -> Counter {
        self.kafka_consumed
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .clone()
    }

    /// The lag gauge of the reader `name` (it keeps it).
    pub fn lag_gauge(&self, name: &str) -> Gauge<f64, std::sync::atomic::AtomicU64> {
        self.kafka_consumer_lag
            .get_or_create(&ReaderLabels {
                topic: name.to_owned(),
            })
            .clone()
    }

    /// How many partitions of `topic` take no writes now.
    pub fn set_unwritable(&self, topic: &str, partitions: i64) {
        self.kafka_unwritable_partitions
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .set(partitions);
    }

    /// Counts one open stream of `version` until the returned guard is dropped.
    pub fn stream_opened(&self, version: &'static str) -> OpenStreamGuard {
        let gauge = self
            .open_streams
            .get_or_create(&VersionLabel { version })
            .clone();
        gauge.inc();
        OpenStreamGuard(gauge)
    }
}

/// Decrements the open-streams gauge when the stream ends, however it ends.
pub struct OpenStreamGuard(Gauge);

impl Drop for OpenStreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
/// The layer that counts every request by route and status.
pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    metrics
        .http_requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
