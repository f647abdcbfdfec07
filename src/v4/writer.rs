//! The writer: applies status-change commands from the command topic.
//!
//! Instances share one consumer group on the command topic, and commands are keyed
//! by report id, so normally each report has one writer at a time and its commands
//! are applied in order. The group is not what the guarantee rests on (a broker may
//! leave a dead member's partitions stuck, see `sweeper`): [`settle`] may be run by
//! any instance, any number of times, for the same command, and the result is the
//! same single outcome.

use std::sync::Arc;

use super::Board;
use super::facts::{self, Fact, FactEvent};
use super::store::{ChangeOutcome, StatusChange, StoreError};
use crate::bus::{Failure, Group, Record};
use crate::events::CommandRejected;

pub fn start(board: &Arc<Board>) {
    let writer = board.clone();
    board.bus.consume(
        &board.command_topic,
        Group::Shared(board.writers_group.clone()),
        board.metrics.clone(),
        board.shutdown.clone(),
        move |record| {
            let board = writer.clone();
            async move { apply(&board, record).await }
        },
    );
}

/// Applies one command record. A transient failure is retried on the same record;
/// a malformed record is passed (the bus logs and counts it).
async fn apply(board: &Board, record: Record) -> Result<(), Failure> {
    let change = parse(&record.payload)
        .map_err(|why| Failure::Permanent(format!("not a command: {why}")))?;
    settle(board, &change).await.map_err(Failure::Transient)
}

/// A command as carried on the command topic; `Err` says why it is not one (not
/// JSON, wrong shape, unknown status).
pub fn parse(payload: &[u8]) -> Result<StatusChange, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// Applies `change` (conditional write) and announces its outcome on the event
/// topic, so the owner gets exactly one `report_status_update` or
/// `report_status_rejected` for it whoever runs this, and however often:
///
/// * applied now, or applied before and still the report's last change → an
///   update (a repeat has the same fact id, which readers drop);
/// * applied before and followed by later changes → nothing: its outcome was
///   announced before any later change was applied (commands of a report are
///   settled in topic order), and repeating it would show a stale status;
/// * not applicable (another change got there first, the report is gone, or the
///   store can never do it: unreadable item, missing table, access denied) → a
///   rejection whose `reason` says why, counted by reason.
///
/// `Err` only for a transient failure (store unreachable, or shutdown before the
/// fact was published): nothing was announced, try again.
pub async fn settle(board: &Board, change: &StatusChange) -> Result<(), String> {
    // `store_cannot`: the store can never apply it (an operator must act), not a
    // race another change won.
    let rejected = |reason: &'static str, why: String, store_cannot: bool| {
        let rejection = CommandRejected {
            command: change.command_id,
            report: change.report_id,
            reason,
            detail: why.clone(),
            store_cannot,
        };
        let event = FactEvent::ReportStatusRejected {
            id: change.report_id,
            status: change.to,
            reason: why,
        };
        (event, Some(rejection))
    };
    let update = FactEvent::ReportStatusUpdate {
        id: change.report_id,
        status: change.to,
    };
    let (event, rejection) = match board.store.change_status(change).await {
        Ok(ChangeOutcome::Applied(_)) => (update, None),
        Ok(ChangeOutcome::AlreadyApplied(now)) if now.last_applied_is(change.command_id) => {
            (update, None)
        }
        Ok(ChangeOutcome::AlreadyApplied(_)) => {
            tracing::debug!(command = %change.command_id, "re-delivered command already applied and superseded");
            return Ok(());
        }
        Ok(ChangeOutcome::Conflict(now)) => rejected(
            "conflict",
            format!(
                "the report became {} before this change was applied; {} → {} is no longer possible",
                now.report_status, change.from, change.to
            ),
            false,
        ),
        Ok(ChangeOutcome::Missing) => rejected(
            "missing_report",
            "the report does not exist".to_owned(),
            false,
        ),
        Err(StoreError::Permanent { kind, detail }) => rejected(
            kind.as_str(),
            format!(
                "the report store cannot apply this change ({}): {detail}",
                kind.as_str()
            ),
            true,
        ),
        Err(e @ StoreError::Unavailable(_)) => return Err(e.to_string()),
    };
    let fact = Fact {
        fact_id: change.command_id,
        user_id: change.user_id,
        event,
    };
    facts::announce(board, &fact)
        .await
        .map_err(|e| e.to_string())?;
    // Counted once announced: a rejection whose announcement failed is tried again.
    if let Some(rejection) = rejection {
        rejection.emit(&board.metrics);
    }
    Ok(())
}
