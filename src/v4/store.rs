//! Where reports live. DynamoDB when an endpoint is configured, memory otherwise;
//! both give the same guarantees, and the same tests run against both.
//!
//! A store error says what kind it is ([`StoreError`]): a transient one (the store
//! cannot be reached, or throttles) is worth retrying, a permanent one (the item
//! cannot be read, the table is missing, access is denied) never succeeds however
//! often it is retried, so a command that meets one is rejected with its reason.

use async_trait::async_trait;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::report::{Report, Status};
use crate::error::ApiError;

/// How many applied command ids each report remembers (see [`Report::applied_commands`]).
pub const REMEMBERED_COMMANDS: usize = 16;

/// A status change command, as carried on the command topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    /// Unique per PUT: recognises a command delivered twice.
    pub command_id: Uuid,
    pub user_id: Uuid,
    pub report_id: Uuid,
    pub from: Status,
    pub to: Status,
    /// The report's version when the change was validated: a command re-delivered
    /// after later changes were applied finds a newer version and is not applied.
    pub expected_version: u64,
    pub requested_at: DateTime<Utc>,
}

/// What a conditional status write did.
#[derive(Debug)]
pub enum ChangeOutcome {
    /// The status was still `from`; it is now `to`.
    Applied(Report),
    /// This very command was applied before (a re-delivery); nothing changed.
    AlreadyApplied(Report),
    /// Another change got there first; the report as it is now.
    Conflict(Report),
    /// The report does not exist (any more).
    Missing,
}

/// Why a store call failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, throttled: retry with backoff.
    #[error("the report store is unreachable: {0}")]
    Unavailable(String),
    /// Retrying cannot help; `kind` names why (also the metric's `reason`).
    #[error("the report store cannot do this ({}): {detail}", kind.as_str())]
    Permanent { kind: Permanent, detail: String },
}

/// How a request that needed the store is answered when it failed: 503 when a
/// retry may help, 500 when it cannot.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(_) => {
                ApiError::unavailable(format!("{e}. Check that DynamoDB is running and retry"))
            }
            StoreError::Permanent { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{e}. Retrying will not help: check the table and the server's access"),
            ),
        }
    }
}

/// The kinds of failure that no retry can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permanent {
    /// The item exists but is not a report this server can read.
    UnreadableItem,
    /// The table does not exist (`ResourceNotFoundException`).
    MissingTable,
    /// The credentials may not use the table.
    AccessDenied,
    /// The store refused the request as invalid (e.g. an attribute of the wrong type).
    InvalidRequest,
}

impl Permanent {
    pub fn as_str(self) -> &'static str {
        match self {
            Permanent::UnreadableItem => "unreadable_item",
            Permanent::MissingTable => "missing_table",
            Permanent::AccessDenied => "access_denied",
            Permanent::InvalidRequest => "invalid_request",
        }
    }
}

impl StoreError {
    pub fn unreadable(detail: impl Into<String>) -> StoreError {
        StoreError::Permanent {
            kind: Permanent::UnreadableItem,
            detail: detail.into(),
        }
    }
}

/// What [`ReportStore::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The report is stored (durable).
    Stored,
    /// The user already has `count` reports, at least the limit: nothing stored.
    LimitReached { count: usize },
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores a new report, unless its user already has `limit` reports; it is
    /// durable when this returns `Stored`. How exact the limit is under concurrent
    /// creates is each store's to say (memory: exact; DynamoDB: see there).
    async fn create(&self, report: &Report, limit: usize) -> Result<Created, StoreError>;

    async fn get(&self, report_id: Uuid) -> Result<Option<Report>, StoreError>;

    /// The user's newest `limit` reports by `created_at` (all of them when they are
    /// no more), oldest first, each as strongly consistent as a `get` (never older
    /// than a status already announced).
    async fn list(&self, user_id: Uuid, limit: usize) -> Result<Vec<Report>, StoreError>;

    /// Writes `change.to` only if the report is still at `change.expected_version`
    /// (and so still in `change.from`), and remembers `change.command_id` among the
    /// report's last [`REMEMBERED_COMMANDS`] applied commands, so that the same
    /// command delivered again, however much later, is `AlreadyApplied`.
    async fn change_status(&self, change: &StatusChange) -> Result<ChangeOutcome, StoreError>;

    /// Answers when the store can be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The applied-command list after `command` is applied: newest last, at most
/// [`REMEMBERED_COMMANDS`].
pub fn remember_command(applied: &[Uuid], command: Uuid) -> Vec<Uuid> {
    let mut next: Vec<Uuid> = applied.to_vec();
    next.push(command);
    let excess = next.len().saturating_sub(REMEMBERED_COMMANDS);
    next.drain(..excess);
    next
}

/// `reports` in list order (oldest first by `created_at`, then id), keeping the
/// newest `limit`.
pub fn newest(mut reports: Vec<Report>, limit: usize) -> Vec<Report> {
    reports.sort_by_key(|r| (r.created_at, r.report_id));
    let excess = reports.len().saturating_sub(limit);
    reports.drain(..excess);
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_the_newest_reports_oldest_first() {
        let user = Uuid::new_v4();
        let at = |seconds| DateTime::<Utc>::from_timestamp(seconds, 0).expect("time");
        let reports: Vec<Report> = [30, 10, 40, 20]
            .into_iter()
            .map(|t| Report {
                created_at: at(t),
                ..Report::new(user)
            })
            .collect();
        let times = |list: Vec<Report>| {
            list.iter()
                .map(|r| r.created_at.timestamp())
                .collect::<Vec<_>>()
        };
        assert_eq!(times(newest(reports.clone(), 2)), [30, 40]);
        assert_eq!(times(newest(reports.clone(), 10)), [10, 20, 30, 40]);
    }

    #[test]
    fn the_applied_list_keeps_the_newest_ids() {
        let ids: Vec<Uuid> = (0..REMEMBERED_COMMANDS + 3)
            .map(|_| Uuid::new_v4())
            .collect();
        let mut applied = Vec::new();
        for id in &ids {
            applied = remember_command(&applied, *id);
        }
        assert_eq!(applied, ids[3..]);
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod properties;
