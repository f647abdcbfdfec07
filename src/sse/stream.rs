//! Turns a source of framed events into an HTTP `text/event-stream` response.
//!
//! Every stream starts with a `retry:` hint, then its prelude (snapshot, replayed
//! events), then live events interleaved with keep-alive comments, and ends cleanly
//! when its source ends (the hub ends every source when the server shuts down).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

const KEEP_ALIVE: Bytes = Bytes::from_static(b": keep-alive-text\n\n");

/// Per-stream settings shared by every version.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub retry: Duration,
    pub keep_alive: Duration,
}

/// The `Last-Event-ID` header, or the `lastEventId` query parameter for clients
/// that cannot set headers, as the client sent it. The hub decides whether it is
/// an id it can resume from.
#[derive(Debug, Clone)]
pub struct LastEventId(pub Option<String>);

impl LastEventId {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let from_header = parts
            .headers
            .get("last-event-id")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
        let from_query = || {
            parts.uri.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "lastEventId")
                    .map(|(_, v)| v.trim().to_owned())
            })
        };
        let id = from_header
            .or_else(from_query)
            .filter(|id| !id.is_empty())
            .map(|id| id.chars().take(MAX_ECHOED_ID).collect());
        Ok(LastEventId(id))
    }
}

/// How much of a client's id is kept (and echoed in a `reset`).
const MAX_ECHOED_ID: usize = 256;

/// An event-stream response: `prelude` first, then `live` until it ends, with a
/// keep-alive comment every `keep_alive`.
pub fn sse_response<S>(settings: &StreamSettings, prelude: Vec<Bytes>, live: S) -> Response
where
    S: Stream<Item = Bytes> + Send + Unpin + 'static,
{
    let mut first = Vec::with_capacity(prelude.len() + 1);
    first.push(Bytes::from(format!(
        "retry: {}\n\n",
        settings.retry.as_millis()
    )));
    first.extend(prelude);
    let mut keep_alive = interval_at(Instant::now() + settings.keep_alive, settings.keep_alive);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stream = EventStream {
        prelude: first.into_iter(),
        live,
        keep_alive,
    };
    let mut response = Body::from_stream(stream.map(Ok::<_, Infallible>)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

struct EventStream<S> {
    prelude: std::vec::IntoIter<Bytes>,
    live: S,
    keep_alive: Interval,
}

impl<S: Stream<Item = Bytes> + Unpin> Stream for EventStream<S> {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(bytes) = self.prelude.next() {
            return Poll::Ready(Some(bytes));
        }
        match self.live.poll_next_unpin(cx) {
            Poll::Ready(Some(bytes)) => return Poll::Ready(Some(bytes)),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match self.keep_alive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(KEEP_ALIVE)),
            Poll::Pending => Poll::Pending,
        }
    }
}
