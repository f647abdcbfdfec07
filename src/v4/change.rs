//! A status change a user asks for, decided by the board before anything is
//! written: the report exists, the user owns it, and its status may move there
//! (`Status::can_move_to`). A change that passes becomes a command on the command
//! topic; the writers apply it (see the guarantees in `v4`). A refusal says why,
//! and how it is answered.

use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::Board;
use super::report::Status;
use super::store::{StatusChange, StoreError};
use crate::bus::BusError;
use crate::error::ApiError;

/// What a user asks: `report_id` to become `to`, as the command `command_id`.
pub struct Request {
    pub user_id: Uuid,
    pub report_id: Uuid,
    pub to: Status,
    pub command_id: Uuid,
}

/// The body of `PUT /v4/report`, as sent.
#[derive(Deserialize)]
struct Body {
    id: String,
    status: String,
}

impl Request {
    /// The request `user_id` sent as `body` (`{"id": "<report UUID>", "status": …}`),
    /// or why it cannot be one.
    pub fn read(user_id: Uuid, body: &[u8], command_id: Uuid) -> Result<Request, ApiError> {
        let body: Body = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "The body must be JSON like {{\"id\": \"<report UUID>\", \"status\": \"queued\"}} ({e})"
            ))
        })?;
        let report_id = body.id.trim().parse().map_err(|_| {
            ApiError::bad_request(format!("`id` must be a report UUID, not `{}`", body.id))
        })?;
        let to = body.status.trim().parse().map_err(|_| {
            ApiError::bad_request(format!(
                "Unknown status `{}`. Use one of: pending, queued, processing, canceled, failed, completed",
                body.status
            ))
        })?;
        Ok(Request {
            user_id,
            report_id,
            to,
            command_id,
        })
    }
}

/// Why a change was not accepted.
#[derive(Debug)]
pub enum Refusal {
    NoReport(Uuid),
    NotOwner(Uuid),
    /// The report's status cannot become the one asked for.
    NotAllowed {
        from: Status,
        to: Status,
    },
    Store(StoreError),
    /// The command topic did not take the command.
    NotPublished(BusError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

/// Decides `request` against the stored report and, when it may happen, publishes
/// its command: the command is what a `202` promises to settle.
pub async fn request(board: &Board, request: Request) -> Result<StatusChange, Refusal> {
    let Request {
        user_id,
        report_id,
        to,
        command_id,
    } = request;
    let report = board
        .store
        .get(report_id)
        .await?
        .ok_or(Refusal::NoReport(report_id))?;
    if report.user_id != user_id {
        return Err(Refusal::NotOwner(report_id));
    }
    let from = report.report_status;
    if !from.can_move_to(to) {
        return Err(Refusal::NotAllowed { from, to });
    }
    let command = StatusChange {
        command_id,
        user_id,
        report_id,
        from,
        to,
        expected_version: report.version,
        requested_at: Utc::now(),
    };
    // Plain fields and string keys: serializing cannot fail, and an empty command
    // must never be published in its place.
    let payload = serde_json::to_vec(&command).expect("a StatusChange always serializes");
    board
        .bus
        .publish(&board.command_topic, Some(&report_id.to_string()), &payload)
        .await
        .map_err(Refusal::NotPublished)?;
    Ok(command)
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::NoReport(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                format!("No report {id}. Create one with POST /v4/new/report"),
            ),
            Refusal::NotOwner(id) => ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Report {id} belongs to another user. Use that user's user_id"),
            ),
            Refusal::NotAllowed { from, to } => {
                let allowed: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
                let message = if allowed.is_empty() {
                    format!("A {from} report is final and cannot become {to}")
                } else {
                    format!(
                        "A {from} report cannot become {to}. From {from} it can become: {}",
                        allowed.join(", ")
                    )
                };
                ApiError::new(StatusCode::CONFLICT, message)
                    .with_extra(json!({ "current": from, "allowed": allowed }))
            }
            Refusal::Store(e) => e.into(),
            Refusal::NotPublished(e) => ApiError::not_acknowledged(&e, "change", "applied"),
        }
    }
}
