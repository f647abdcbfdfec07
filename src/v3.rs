//! /v3: the /v2 channels fed from a Kafka topic of `username:message` records.
//!
//! POSTs do not deliver locally: they publish to the topic and reply once the
//! broker acknowledged, and every instance (each reading the whole topic) delivers
//! to its own streams. A record `*:message` is a broadcast, so the username `*` is
//! reserved. Malformed records are logged, counted and skipped; they never stop
//! ingest.

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
use crate::bus::{Bus, FanOut, Record, Repeats};
use crate::channels::{accepted_at, message_text, stream_route};
use crate::error::ApiError;
use crate::idempotency::{RequestKey, remember};
use crate::lock::Locked;
use crate::metrics::Metrics;
use crate::sse::{Audience, EventName, Streams, UserHub};
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

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Channel>: FromRef<S>,
    Streams: FromRef<S>,
{
    Router::new()
        .route(
            "/v3/sse",
            stream_route(|channel: &Arc<Channel>| &channel.hub),
        )
        .route("/v3/message", post(message).layer(from_fn(remember)))
        .route("/v3/broadcast", post(broadcast).layer(from_fn(remember)))
}

/// Starts this instance's reader of the v3 topic.
pub fn start_consumer(channel: &Arc<Channel>) {
    let reader = channel.clone();
    channel.hub.fed_by({
        let (bus, topic) = (channel.bus.clone(), channel.topic.clone());
        move || bus.caught_up(&topic)
    });
    channel.bus.consume(
        &channel.topic,
        FanOut::group(channel.history_window, {
            let hub = channel.hub.clone();
            move |starts| hub.reading_from(starts)
        }),
        channel.metrics.clone(),
        channel.shutdown.clone(),
        move |record| {
            deliver(&reader, record);
            std::future::ready(Ok::<(), std::convert::Infallible>(()))
        },
    );
}

/// Why a record is skipped.
#[derive(Debug, PartialEq)]
pub(crate) enum Malformed {
    NotUtf8,
    NoColon,
    EmptyUsername,
    EmptyMessage,
}

/// Splits `username:message` at the first colon (the message may contain more).
pub(crate) fn parse(payload: &[u8]) -> Result<(&str, &str), Malformed> {
    let text = std::str::from_utf8(payload).map_err(|_| Malformed::NotUtf8)?;
    let (username, message) = text.split_once(':').ok_or(Malformed::NoColon)?;
    let username = username.trim();
    if username.is_empty() {
        return Err(Malformed::EmptyUsername);
    }
    if message.trim().is_empty() {
        return Err(Malformed::EmptyMessage);
    }
    Ok((username, message))
}

fn deliver(channel: &Channel, record: Record) {
    if !channel.repeats.locked().first_copy(&record) {
        return skip(channel, &record, Skipped::Copy);
    }
    let position = record.position();
    match parse(&record.payload) {
        Ok((username, message)) => {
            let to = if username == EVERYONE {
                Audience::Everyone
            } else {
                Audience::User(username)
            };
            channel.hub.apply(position, to, EventName::Message, message);
        }
        Err(why) => skip(channel, &record, Skipped::Malformed(why)),
    }
}

/// Why a record is not delivered.
enum Skipped {
    /// A copy of a record already delivered (`bus::repeats`).
    Copy,
    Malformed(Malformed),
}

/// Passes over `record`: the hub's position still moves past it, and the skip is
/// logged and counted.
fn skip(channel: &Channel, record: &Record, why: Skipped) {
    channel.hub.skip(record.position());
    let (topic, partition, offset) = (&channel.topic, record.partition, record.offset);
    match why {
        Skipped::Copy => {
            tracing::debug!(
                topic,
                partition,
                offset,
                "skipping a copy of a record already delivered"
            );
            channel.metrics.repeated(topic);
        }
        Skipped::Malformed(why) => {
            tracing::warn!(
                topic,
                partition,
                offset,
                "skipping malformed record ({why:?}); expected `username:message`"
            );
            channel.metrics.malformed(topic);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_colon_only() {
        assert_eq!(parse(b"demo:a:b:c"), Ok(("demo", "a:b:c")));
    }

    #[test]
    fn rejects_malformed_records() {
        assert_eq!(parse(b"no colon"), Err(Malformed::NoColon));
        assert_eq!(parse(b":message"), Err(Malformed::EmptyUsername));
        assert_eq!(parse(b"demo:"), Err(Malformed::EmptyMessage));
        assert_eq!(parse(b"demo:\xff\xfe"), Err(Malformed::NotUtf8));
    }
}
