//! /v2: per-user channels. A POST reaches every open stream of its user (all tabs
//! and devices) through the shared [`UserHub`]; streams resume by `Last-Event-ID`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, Query, State};
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::post;

use crate::auth::Caller;
use crate::channels::{accepted_at, message_text, stream_route};
use crate::error::ApiError;
use crate::idempotency::remember;
use crate::sse::{Audience, EventName, Streams, UserHub};
use crate::user::UserQuery;

/// The /v2 hub: in-process by design (its ids resume on this instance only).
#[derive(Clone)]
pub struct Channel(pub Arc<UserHub>);

/// Where /v2's stream is.
pub const STREAM_PATH: &str = "/v2/sse";

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Channel: FromRef<S>,
    Streams: FromRef<S>,
{
    Router::new()
        .route(STREAM_PATH, stream_route(|channel: &Channel| &channel.0))
        .route("/v2/message", post(message).layer(from_fn(remember)))
        .route("/v2/broadcast", post(broadcast).layer(from_fn(remember)))
}

async fn message(
    State(Channel(hub)): State<Channel>,
    caller: Caller,
    Query(query): Query<UserQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.may_publish()?;
    let username = query.recipient(&caller)?;
    let text = message_text(&body)?;
    let posted = hub.post(Audience::User(&username), EventName::Message, text);
    Ok(accepted_at(posted.id, posted.delivered))
}

async fn broadcast(
    State(Channel(hub)): State<Channel>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.may_publish()?;
    let text = message_text(&body)?;
    let posted = hub.post(Audience::Everyone, EventName::Message, text);
    Ok(accepted_at(posted.id, posted.delivered))
}
