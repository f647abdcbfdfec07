//! The /v4 HTTP API: create and list reports, request status changes, and stream
//! the user's board (a `snapshot`, then live facts).
//!
//! A PUT is validated against the stored report before anything is written, so an
//! invalid change is refused up front with the reason; a valid one becomes a
//! command on the command topic and is answered `202` once the broker has it.
//!
//! Sizes are bounded: a user has at most `--max-reports-per-user` reports (a create
//! past it is refused), `GET /v4/reports` lists at most that many, and the
//! stream's `snapshot` fits the connection's byte budget (`--queue-bytes`), see
//! [`super::snapshot`]. What a change may do is the board's to decide
//! ([`super::change`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, Query, State};
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::Board;
use super::snapshot::snapshot;
use super::{change, new_report};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::{RequestKey, remember};
use crate::server::ConnectionHandle;
use crate::sse::{LastEventId, Streams};
use crate::user::UserIdQuery;

/// What the routes need beyond the [`Board`]: how many reports a user may keep
/// (`--max-reports-per-user`), and the bytes a stream's prelude may take
/// (`--queue-bytes`), which bounds the snapshot.
#[derive(Clone, Copy)]
pub struct Quotas {
    pub max_reports: usize,
    pub prelude_bytes: usize,
}

/// Where /v4's stream is.
pub const STREAM_PATH: &str = "/v4/sse";

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Board>: FromRef<S>,
    Quotas: FromRef<S>,
    Streams: FromRef<S>,
{
    Router::new()
        .route("/v4/new/report", post(create).layer(from_fn(remember)))
        .route("/v4/reports", get(list))
        .route("/v4/report", put(request_change).layer(from_fn(remember)))
        .route(STREAM_PATH, get(stream))
}

async fn create(
    State(board): State<Arc<Board>>,
    State(quotas): State<Quotas>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
    key: Option<Extension<RequestKey>>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let key_id = key.map(|Extension(key)| key.id);
    let report = new_report::create(&board, user_id, key_id, quotas.max_reports).await?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

async fn list(
    State(board): State<Arc<Board>>,
    State(quotas): State<Quotas>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let reports = board.store.list(user_id, quotas.max_reports).await?;
    Ok(Json(reports).into_response())
}

async fn request_change(
    State(board): State<Arc<Board>>,
    caller: Caller,
    Query(query): Query<UserIdQuery>,
    key: Option<Extension<RequestKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    // With an Idempotency-Key the command's id comes from it: a repeat is the same
    // command, applied once (the report keeps its applied ids).
    let command_id = key.map_or_else(Uuid::new_v4, |k| k.0.id);
    let request = change::Request::read(user_id, &body, command_id)?;
    let command = change::request(&board, request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": command.report_id,
            "from": command.from,
            "status": command.to,
            "commandId": command.command_id,
        })),
    )
        .into_response())
}

async fn stream(
    State(board): State<Arc<Board>>,
    State(quotas): State<Quotas>,
    State(streams): State<Streams>,
    ConnectInfo(connection): ConnectInfo<ConnectionHandle>,
    caller: Caller,
    last: LastEventId,
    Query(query): Query<UserIdQuery>,
) -> Result<Response, ApiError> {
    let user_id = query.user_id(&caller)?;
    let user = user_id.to_string();
    let admitted = streams.admit(&user, caller.expiry())?;
    let mut subscribed = admitted
        .subscribe(&board.hub, &user, &last, connection)
        .await;
    // Exact resume: only the missed events. Otherwise (no id, or a `reset` when
    // the id could not be resumed) the board too: a snapshot whose id is the hub's
    // position at registration, read after it, so an event that lands in between
    // is in both (applying a status twice is harmless) and none is missed.
    if !subscribed.resumes_exactly() {
        let reports = board.store.list(user_id, quotas.max_reports).await?;
        let budget = quotas
            .prelude_bytes
            .saturating_sub(subscribed.prelude_bytes());
        let board_now = snapshot(subscribed.position(), &reports, budget);
        subscribed.extend_prelude(board_now);
    }
    Ok(subscribed.respond())
}
