//! A new report: made for its user, stored within the user's quota
//! (`--max-reports-per-user`), and announced to the user's other streams once
//! stored. With an Idempotency-Key the report's id comes from the key, so a repeat
//! sent to any instance finds the report the first one stored.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::Board;
use super::facts::{self, Fact, FactEvent};
use super::report::Report;
use super::store::{Created, StoreError};
use crate::error::ApiError;

/// Why no report was created.
#[derive(Debug)]
pub enum Refusal {
    /// The user has `count` reports, and `limit` is the most they may have.
    LimitReached {
        user_id: Uuid,
        count: usize,
        limit: usize,
    },
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

/// Creates a report for `user_id`, or returns the one a request with the same
/// key (`key_id`) already created for them.
pub async fn create(
    board: &Arc<Board>,
    user_id: Uuid,
    key_id: Option<Uuid>,
    limit: usize,
) -> Result<Report, Refusal> {
    let mut report = Report::new(user_id);
    if let Some(id) = key_id {
        report.report_id = id;
        if let Some(stored) = board.store.get(id).await?
            && stored.user_id == user_id
        {
            return Ok(stored);
        }
    }
    if let Created::LimitReached { count } = board.store.create(&report, limit).await? {
        return Err(Refusal::LimitReached {
            user_id,
            count,
            limit,
        });
    }
    // Announced after the reply: the report is stored, other tabs learn of it live.
    let announcer = board.clone();
    let fact = Fact {
        fact_id: report.report_id,
        user_id,
        event: FactEvent::NewReport(report.clone()),
    };
    tokio::spawn(async move {
        if let Err(e) = facts::announce(&announcer, &fact).await {
            tracing::warn!("new report stored but not announced before shutdown: {e}");
        }
    });
    Ok(report)
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            // 409, not 422: the request itself is valid (the same one for another
            // user succeeds); it conflicts with the current state of this user's
            // reports, as a refused status change does, and succeeds once the
            // limit is raised.
            Refusal::LimitReached {
                user_id,
                count,
                limit,
            } => ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "User {user_id} has {count} reports, and this server keeps at most {limit} per user (--max-reports-per-user). No report was created. Reports are not deleted, so use an existing one (GET /v4/reports lists them; a failed or canceled report can go back to pending), or ask the operator to raise the limit"
                ),
            )
            .with_extra(json!({ "limit": limit, "count": count })),
            Refusal::Store(e) => e.into(),
        }
    }
}
