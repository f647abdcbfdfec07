//! Where reports live. DynamoDB when an endpoint is configured, memory otherwise;
//! both give the same guarantees, and the same tests run against both.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::report::{Report, Status};

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the report store is unreachable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores a new report; it is durable when this returns.
    async fn create(&self, report: &Report) -> Result<(), StoreError>;

    async fn get(&self, report_id: Uuid) -> Result<Option<Report>, StoreError>;

    /// All of a user's reports, oldest first.
    async fn list(&self, user_id: Uuid) -> Result<Vec<Report>, StoreError>;

    /// Writes `change.to` only if the report is still at `change.expected_version`
    /// (and so still in `change.from`).
    async fn change_status(&self, change: &StatusChange) -> Result<ChangeOutcome, StoreError>;

    /// Answers when the store can be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}
