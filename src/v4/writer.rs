//! The writer: applies status-change commands from the command topic.
//!
//! Instances share one consumer group on the command topic, and commands are keyed
//! by report id, so each report has exactly one writer at a time and its commands
//! are applied in order. Each command is a conditional write; the offset is
//! committed only after the write and the fact are done, so a crash re-delivers the
//! command, which then finds itself already applied and is announced (again, and
//! dropped as a duplicate by the readers) rather than applied twice.

use std::sync::Arc;

use super::facts::{self, Fact, FactEvent};
use super::store::{ChangeOutcome, StatusChange};
use crate::AppState;
use crate::bus::{Group, Record};

pub fn start(app: &Arc<AppState>) {
    let writer = app.clone();
    app.bus.consume(
        &app.config.v4_command_topic,
        Group::Shared(app.config.v4_writers_group.clone()),
        app.metrics.clone(),
        app.shutdown.clone(),
        move |record| {
            let app = writer.clone();
            async move { apply(&app, record).await }
        },
    );
}

/// Applies one command. `Err` means "not done, retry the same record".
async fn apply(app: &AppState, record: Record) -> Result<(), String> {
    let change: StatusChange = match serde_json::from_slice(&record.payload) {
        Ok(change) => change,
        Err(e) => {
            tracing::warn!(
                partition = record.partition,
                offset = record.offset,
                "skipping malformed command: {e}"
            );
            app.metrics.malformed(&app.config.v4_command_topic);
            return Ok(());
        }
    };
    let outcome = app
        .store
        .change_status(&change)
        .await
        .map_err(|e| e.to_string())?;
    let event = match outcome {
        ChangeOutcome::Applied(_) | ChangeOutcome::AlreadyApplied(_) => {
            FactEvent::ReportStatusUpdate {
                id: change.report_id,
                status: change.to,
            }
        }
        ChangeOutcome::Conflict(now) => FactEvent::ReportStatusRejected {
            id: change.report_id,
            status: change.to,
            reason: format!(
                "the report became {} before this change was applied; {} → {} is no longer possible",
                now.report_status, change.from, change.to
            ),
        },
        ChangeOutcome::Missing => FactEvent::ReportStatusRejected {
            id: change.report_id,
            status: change.to,
            reason: "the report no longer exists".to_owned(),
        },
    };
    let fact = Fact {
        fact_id: change.command_id,
        user_id: change.user_id,
        event,
    };
    facts::announce(app, &fact).await.map_err(|e| e.to_string())
}
