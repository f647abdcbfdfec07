//! /v1: the simplest stream. `data: hi!` at once and then on an interval, with
//! keep-alive comments in between. No per-user state: each connection is its own.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use tokio_stream::wrappers::IntervalStream;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::sse::{frame, sse_response};
use crate::user::UserQuery;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/sse", get(stream))
}

async fn stream(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> Result<Response, ApiError> {
    let username = query.username(&caller)?;
    let permit = app.limits.admit(&username)?;
    tracing::debug!(username, "v1 stream opened");
    let open = app.metrics.stream_opened("v1");
    let every = app.config.v1_interval();
    // /v1 keeps nothing to resume: its ids just count the connection's events.
    let mut count = 0u64;
    let hi = IntervalStream::new(tokio::time::interval(every)).map(move |_| {
        // Keeps the stream counted as open for as long as it runs.
        let _ = &open;
        count += 1;
        frame(&count.to_string(), None, "hi!")
    });
    // No hub holds /v1 streams, so each one watches for shutdown itself.
    let hi = hi.take_until(app.shutdown.clone().cancelled_owned());
    let hi = caller.until_expiry(permit.hold(Box::pin(hi)));
    let settings = app.stream_settings(app.config.v1_keep_alive());
    Ok(sse_response(&settings, Vec::new(), hi))
}
