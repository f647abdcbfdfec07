//! The /v4 HTTP API: create and list reports, request status changes, and stream
//! the user's board (a `snapshot`, then live facts).
//!
//! A PUT is validated against the stored report before anything is written, so an
//! invalid change is refused up front with the reason; a valid one becomes a
//! command on the command topic and is answered `202` once the broker has it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::facts::{self, Fact, FactEvent};
use super::report::{Report, Status};
use super::store::{StatusChange, StoreError};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::net::ConnectionHandle;
use crate::sse::{LastEventId, frame, sse_response};
use crate::user::UserIdQuery;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v4/new/report", post(create))
        .route("/v4/reports", get(list))
        .route("/v4/report", put(change))
        .route("/v4/sse", get(stream))
}

fn store_down(e: StoreError) -> ApiError {
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

async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let report = Report::new(user_id);
    app.store.create(&report).await.map_err(store_down)?;
    // Announced after the reply: the report is stored, other tabs learn of it live.
    let announcer = app.clone();
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
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let reports = app.store.list(user_id).await.map_err(store_down)?;
    Ok(Json(reports).into_response())
}

#[derive(Debug, Deserialize)]
struct ChangeBody {
    id: String,
    status: String,
}

async fn change(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let body: ChangeBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "The body must be JSON like {{\"id\": \"<report UUID>\", \"status\": \"queued\"}} ({e})"
        ))
    })?;
    let report_id: Uuid = body.id.trim().parse().map_err(|_| {
        ApiError::bad_request(format!("`id` must be a report UUID, not `{}`", body.id))
    })?;
    let to: Status = body.status.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Unknown status `{}`. Use one of: pending, queued, processing, canceled, failed, completed",
            body.status
        ))
    })?;
    let report = app
        .store
        .get(report_id)
        .await
        .map_err(store_down)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("No report {report_id}. Create one with POST /v4/new/report"),
            )
        })?;
    if report.user_id != user_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Report {report_id} belongs to another user. Use that user's user_id"),
        ));
    }
    let from = report.report_status;
    if !from.can_move_to(to) {
        let allowed: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
        let message = if allowed.is_empty() {
            format!("A {from} report is final and cannot become {to}")
        } else {
            format!(
                "A {from} report cannot become {to}. From {from} it can become: {}",
                allowed.join(", ")
            )
        };
        return Err(ApiError::new(StatusCode::CONFLICT, message)
            .with_extra(json!({ "current": from, "allowed": allowed })));
    }
    let command = StatusChange {
        command_id: Uuid::new_v4(),
        user_id,
        report_id,
        from,
        to,
        expected_version: report.version,
        requested_at: Utc::now(),
    };
    let payload = serde_json::to_vec(&command).unwrap_or_default();
    app.bus
        .publish(
            &app.config.v4_command_topic,
            Some(&report_id.to_string()),
            &payload,
        )
        .await
        .map_err(|e| {
            ApiError::unavailable(format!(
                "Kafka did not acknowledge the change in time ({e}). If the broker received it, it is still applied; check that the broker is running and retry (a change already applied gets 409)"
            ))
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": report_id,
            "from": from,
            "status": to,
            "commandId": command.command_id,
        })),
    )
        .into_response())
}

async fn stream(
    State(app): State<Arc<AppState>>,
    ConnectInfo(connection): ConnectInfo<ConnectionHandle>,
    caller: Caller,
    last: LastEventId,
    Query(query): Query<UserIdQuery>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let permit = app.limits.admit(&user_id.to_string())?;
    let mut subscription =
        app.v4
            .subscribe(&user_id.to_string(), last.as_deref(), Some(connection));
    let resumes_exactly = last.0.is_some() && subscription.reset.is_none();
    // Exact resume: only the missed events. Otherwise (after a `reset` when the id
    // could not be resumed) the board: a snapshot whose id is the hub's position at
    // registration, read after it, so an event that lands in between is in both
    // (applying a status twice is harmless) and none is missed.
    let mut prelude = subscription.take_prelude(last.as_deref());
    if !resumes_exactly {
        let reports = app.store.list(user_id).await.map_err(store_down)?;
        prelude.push(frame(
            &subscription.position,
            Some("snapshot"),
            &serde_json::to_string(&reports).unwrap_or_default(),
        ));
    }
    Ok(sse_response(
        &app.stream_settings(app.config.keep_alive()),
        prelude,
        caller.until_expiry(permit.hold(subscription)),
    ))
}
