//! /v3: the /v2 channels fed from a Kafka topic of `username:message` records.
//!
//! POSTs do not deliver locally: they publish to the topic and reply once the
//! broker acknowledged, and every instance (each reading the whole topic) delivers
//! to its own streams. A record `*:message` is a broadcast, so the username `*` is
//! reserved. Malformed records are logged, counted and skipped; they never stop
//! ingest.

mod reader;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRef, Query, State};
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};

use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::bus::{Bus, Repeats};
use crate::channels::{accepted_at, message_text, stream_route};
use crate::error::ApiError;
use crate::idempotency::{RequestKey, remember};
use crate::metrics::Metrics;
use crate::sse::{Streams, UserHub};
use crate::user::UserQuery;

/// The username that addresses every open /v3 stream.
const EVERYONE: &str = "*";

/// What /v3 works with, its routes and its topic reader alike.
pub struct Channel {
    /// The /v3 streams, fed only by the topic.
    pub hub: Arc<UserHub>,
    pub bus: Bus,
    /// `--v3-topic`.
    pub topic: String,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    /// How far back the reader starts (`--history-window`).
    pub history_window: Duration,
    /// What the topic reader delivered lately, to skip copies of a record.
    pub repeats: Mutex<Repeats>,
}

/// For `crate::fuzzing`, which cannot reach `reader` itself.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use reader::properties as reader_properties;
pub use reader::start_consumer;

/// Where /v3's stream is.
pub const STREAM_PATH: &str = "/v3/sse";

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Channel>: FromRef<S>,
    Streams: FromRef<S>,
{
    Router::new()
        .route(
            STREAM_PATH,
            stream_route(|channel: &Arc<Channel>| &channel.hub),
        )
        .route("/v3/message", post(message).layer(from_fn(remember)))
        .route("/v3/broadcast", post(broadcast).layer(from_fn(remember)))
}

async fn message(
    State(channel): State<Arc<Channel>>,
    caller: Caller,
    Query(query): Query<UserQuery>,
    key: Option<Extension<RequestKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.may_publish()?;
    let username = query.recipient(&caller)?;
    if username == EVERYONE || username.contains(':') {
        return Err(ApiError::bad_request(
            "The username `*` and usernames containing `:` cannot be used on /v3. Choose another username",
        ));
    }
    let text = message_text(&body)?;
    publish(&channel, &username, text, key).await
}

async fn broadcast(
    State(channel): State<Arc<Channel>>,
    caller: Caller,
    key: Option<Extension<RequestKey>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.may_publish()?;
    let text = message_text(&body)?;
    publish(&channel, EVERYONE, text, key).await
}

/// Publishes `username:text` keyed by username (one user's messages stay in order
/// on one partition) and replies once the broker acknowledged it. A request with
/// an `Idempotency-Key` names its record after it, so a repeat published by any
/// instance is dropped by every reader.
async fn publish(
    channel: &Channel,
    username: &str,
    text: &str,
    key: Option<Extension<RequestKey>>,
) -> Result<Response, ApiError> {
    let payload = format!("{username}:{text}");
    let topic = &channel.topic;
    let id = key
        .map_or_else(uuid::Uuid::new_v4, |k| k.0.id)
        .simple()
        .to_string();
    let (partition, offset) = channel
        .bus
        .publish_as(topic, Some(username), &id, payload.as_bytes())
        .await
        .map_err(|e| ApiError::not_acknowledged(&e, "message", "delivered"))?;
    let local = channel
        .hub
        .connection_count((username != EVERYONE).then_some(username));
    Ok(accepted_at(format!("{topic}/{partition}/{offset}"), local))
}
