//! /v1: the simplest stream. `data: hi!` at once and then on an interval, with
//! keep-alive comments in between. No per-user state: each connection is its own.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Query, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use tokio_stream::wrappers::IntervalStream;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::sse::{EventName, Lifetime, StreamSettings, Streams, frame, sse_response};
use crate::user::UserQuery;

/// What a /v1 stream needs beyond [`Streams`]: its interval and keep-alive
/// (`--v1-interval`, and `--keep-alive`, 3 s for /v1 when unset), the
/// metrics that count it, and the shutdown signal (no hub holds /v1 streams).
#[derive(Clone)]
pub struct Ticker {
    pub every: Duration,
    pub keep_alive: Duration,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Ticker: FromRef<S>,
    Streams: FromRef<S>,
{
    Router::new().route("/v1/sse", get(stream))
}

async fn stream(
    State(ticker): State<Ticker>,
    State(streams): State<Streams>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> Result<Response, ApiError> {
    let username = query.username(&caller)?;
    let permit = streams.limits.admit(&username)?;
    tracing::debug!(username, "v1 stream opened");
    let open = ticker.metrics.stream_opened("v1");
    let every = ticker.every;
    // /v1 keeps nothing to resume: its ids just count the connection's events.
    let mut count = 0u64;
    let hi = IntervalStream::new(tokio::time::interval(every)).map(move |_| {
        // Keeps the stream counted as open for as long as it runs.
        let _ = &open;
        count += 1;
        frame(&count.to_string(), EventName::Message, "hi!")
    });
    let settings = StreamSettings {
        keep_alive: ticker.keep_alive,
        ..streams.settings
    };
    let lifetime = Lifetime {
        permit,
        expiry: caller.expiry(),
        // No hub holds /v1 streams, so each one watches for shutdown itself.
        shutdown: Some(ticker.shutdown),
    };
    Ok(sse_response(&settings, Vec::new(), hi, lifetime))
}
