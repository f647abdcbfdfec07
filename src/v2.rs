//! /v2: per-user channels. A POST reaches every open stream of its user (all tabs
//! and devices) through the shared [`UserHub`]; streams resume by `Last-Event-ID`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::post;

use crate::AppState;
use crate::auth::Caller;
use crate::channels::{accepted_at, message_text, stream_route};
use crate::error::ApiError;
use crate::user::UserQuery;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/sse", stream_route(|app| &app.v2))
        .route("/v2/message", post(message))
        .route("/v2/broadcast", post(broadcast))
}

async fn message(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<UserQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.may_publish()?;
    let username = query.recipient(&caller)?;
    let text = message_text(&body)?;
    let (id, delivered) = app.v2.send(&username, None, text, None).unwrap_or_default();
    Ok(accepted_at(id, delivered))
}

async fn broadcast(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.may_publish()?;
    let text = message_text(&body)?;
    let (id, delivered) = app.v2.broadcast(None, text, None).unwrap_or_default();
    Ok(accepted_at(id, delivered))
}
