//! Internal events, in the way of vector's `internal_events`: each outcome an
//! operator watches is one typed event whose `emit` writes its log line and counts
//! its metric together, so the two never drift apart and each is written once.
//! The counters live in `metrics.rs`, whose fields nothing else touches.

use std::fmt::Display;

use uuid::Uuid;

use crate::metrics::Metrics;

/// A bus record passed over without an event.
pub struct RecordSkipped<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub why: Skip<'a>,
}

/// Why a record is passed over.
pub enum Skip<'a> {
    /// It can never be handled (not what the topic carries); says what is wrong.
    Malformed(&'a dyn Display),
    /// A copy of a record already handled (a producer's retry appended twice).
    Copy,
}

impl RecordSkipped<'_> {
    pub fn emit(self, metrics: &Metrics) {
        let RecordSkipped {
            topic,
            partition,
            offset,
            why,
        } = self;
        match why {
            Skip::Malformed(what) => {
                tracing::warn!(
                    topic,
                    partition,
                    offset,
                    "skipping a malformed record: {what}"
                );
                metrics.count_malformed(topic);
            }
            Skip::Copy => {
                tracing::debug!(
                    topic,
                    partition,
                    offset,
                    "skipping a copy of a record already handled"
                );
                metrics.count_repeated(topic);
            }
        }
    }
}

/// A /v4 command announced as rejected.
pub struct CommandRejected {
    pub command: Uuid,
    pub report: Uuid,
    /// The metric's label: `conflict`, `missing_report`, or the store's permanent kind.
    pub reason: &'static str,
    pub detail: String,
    /// The store can never apply it (unreadable item, missing table, access
    /// denied): a warning, as an operator must act; a lost race is routine.
    pub store_cannot: bool,
}

impl CommandRejected {
    pub fn emit(self, metrics: &Metrics) {
        let (command, report, reason) = (self.command, self.report, self.reason);
        if self.store_cannot {
            tracing::warn!(%command, %report, reason, "rejecting a command the store can never apply: {}", self.detail);
        } else {
            tracing::info!(%command, %report, reason, "command rejected: {}", self.detail);
        }
        metrics.count_rejected(self.reason);
    }
}

/// A /v4 command settled by this instance's sweeper, as no outcome came in time.
pub struct CommandSwept {
    pub command: Uuid,
    pub report: Uuid,
    pub after: std::time::Duration,
}

impl CommandSwept {
    pub fn emit(self, metrics: &Metrics) {
        tracing::info!(command = %self.command, report = %self.report, "settled a command that had no outcome after {:?}", self.after);
        metrics.count_swept();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skipped(metrics: &Metrics, topic: &str, why: Skip<'_>) {
        RecordSkipped {
            topic,
            partition: 0,
            offset: 7,
            why,
        }
        .emit(metrics);
    }

    #[test]
    fn each_event_counts_its_own_metric_once() {
        let metrics = Metrics::new();
        skipped(&metrics, "a", Skip::Malformed(&"no colon"));
        skipped(&metrics, "a", Skip::Malformed(&"empty"));
        skipped(&metrics, "a", Skip::Copy);
        skipped(&metrics, "b", Skip::Copy);
        CommandRejected {
            command: Uuid::new_v4(),
            report: Uuid::new_v4(),
            reason: "conflict",
            detail: "the report moved on".to_owned(),
            store_cannot: false,
        }
        .emit(&metrics);
        let text = metrics.render();
        for line in [
            r#"kafka_records_malformed_total{topic="a"} 2"#,
            r#"kafka_records_repeated_total{topic="a"} 1"#,
            r#"kafka_records_repeated_total{topic="b"} 1"#,
            r#"v4_commands_rejected_total{reason="conflict"} 1"#,
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
        assert!(!text.contains(r#"kafka_records_malformed_total{topic="b"}"#));
    }
}
