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

use crate::auth::Caller;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::sse::{EventName, Streams, frame};
use crate::user::UserQuery;

/// What a /v1 stream needs beyond [`Streams`]: its interval and keep-alive
/// (`--v1-interval`, and `--keep-alive`, 3 s for /v1 when unset), and the
/// metrics that count it.
#[derive(Clone)]
pub struct Ticker {
    pub every: Duration,
    pub keep_alive: Duration,
    pub metrics: Arc<Metrics>,
}

/// Where /v1's stream is.
pub const STREAM_PATH: &str = "/v1/sse";

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Ticker: FromRef<S>,
    Streams: FromRef<S>,
{
    Router::new().route(STREAM_PATH, get(stream))
}

async fn stream(
    State(ticker): State<Ticker>,
    State(streams): State<Streams>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> Result<Response, ApiError> {
    let username = query.username(&caller)?;
    let admitted = streams.admit(&username, caller.expiry())?;
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
    Ok(admitted.respond_unheld(ticker.keep_alive, hi))
}
