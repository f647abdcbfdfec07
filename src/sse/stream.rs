//! Turns a source of framed events into an HTTP `text/event-stream` response.
//!
//! Every stream starts with a `retry:` hint, then its prelude (snapshot, replayed
//! events), then live events interleaved with keep-alive comments.
//!
//! **A stream's lifetime, in one place.** A stream ends, and its task lets go of
//! the socket and of its [`StreamPermit`] (the open-stream count), when:
//!
//! 1. its source ends: the hub closes a connection's queue when it overflows
//!    (`hub`), when its connection's handle is closed, and for every connection
//!    at shutdown (`UserHub::close_all`), when the stream's last bytes are a
//!    `retry:` drawn at random (`crate::drain`), so clients come back spread out;
//! 2. the caller's token expires ([`Lifetime::expiry`]): the client reconnects
//!    with a fresh token and resumes by `Last-Event-ID`;
//! 3. the server shuts down, for a stream no hub holds (/v1,
//!    [`Lifetime::shutdown`]);
//! 4. the client goes away, or its socket's handle is closed (a write deadline,
//!    a slow reader): the server stops polling the stream and drops it
//!    (`crate::server`).
//!
//! The first three are decided by [`EventStream`], the fourth by the transport.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep, interval_at, sleep_until};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::event::{KEEP_ALIVE, retry};
use crate::limits::{StreamLimits, StreamPermit};

/// Per-stream settings shared by every version.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub retry: Duration,
    pub keep_alive: Duration,
    /// The server's stop: a stream that ends with it first tells its client to
    /// come back soon, at a random moment ([`crate::drain`]).
    pub shutdown: CancellationToken,
}

/// What opening a stream takes: a permit under the open-stream caps, and the
/// stream's `retry:` hint and keep-alive.
#[derive(Clone)]
pub struct Streams {
    pub limits: Arc<StreamLimits>,
    pub settings: StreamSettings,
}

/// What ends a stream besides its source (see the module's doc).
pub struct Lifetime {
    /// Counts the stream as open until it is dropped.
    pub permit: StreamPermit,
    /// When the caller's token expires; `None`: never.
    pub expiry: Option<Instant>,
    /// The server's shutdown, for a stream no hub ends.
    pub shutdown: Option<CancellationToken>,
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

/// An event-stream response: `prelude` first, then `live` until it ends or its
/// `lifetime` does, with a keep-alive comment every `keep_alive`.
pub fn sse_response<S>(
    settings: &StreamSettings,
    prelude: Vec<Bytes>,
    live: S,
    lifetime: Lifetime,
) -> Response
where
    S: Stream<Item = Bytes> + Send + Unpin + 'static,
{
    let mut first = Vec::with_capacity(prelude.len() + 1);
    first.push(retry(settings.retry));
    first.extend(prelude);
    let mut keep_alive = interval_at(Instant::now() + settings.keep_alive, settings.keep_alive);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stream = EventStream {
        prelude: first.into_iter(),
        live,
        keep_alive,
        expiry: lifetime.expiry.map(|at| Box::pin(sleep_until(at))),
        shutdown: lifetime
            .shutdown
            .map(|token| Box::pin(token.cancelled_owned())),
        server_stop: settings.shutdown.clone(),
        ended: false,
        _permit: lifetime.permit,
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

/// The stream behind every event-stream response: where its end is decided.
struct EventStream<S> {
    prelude: std::vec::IntoIter<Bytes>,
    live: S,
    keep_alive: Interval,
    expiry: Option<Pin<Box<Sleep>>>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    server_stop: CancellationToken,
    /// The stream's last bytes have been handed out.
    ended: bool,
    _permit: StreamPermit,
}

impl<S> EventStream<S> {
    /// Whether the token expired or the server is shutting down.
    fn over(&mut self, cx: &mut Context<'_>) -> bool {
        let expired = self
            .expiry
            .as_mut()
            .is_some_and(|at| at.as_mut().poll(cx).is_ready());
        let shut_down = self
            .shutdown
            .as_mut()
            .is_some_and(|signal| signal.as_mut().poll(cx).is_ready());
        expired || shut_down
    }
}

impl<S> EventStream<S> {
    /// Ends the stream: when the server is stopping, with a last `retry:` drawn
    /// at random first, so its client comes back soon but not with everyone else.
    fn end(&mut self) -> Poll<Option<Bytes>> {
        if self.ended || !self.server_stop.is_cancelled() {
            self.ended = true;
            return Poll::Ready(None);
        }
        self.ended = true;
        Poll::Ready(Some(retry(crate::drain::retry_after_stop())))
    }
}

impl<S: Stream<Item = Bytes> + Unpin> Stream for EventStream<S> {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(bytes) = self.prelude.next() {
            return Poll::Ready(Some(bytes));
        }
        if self.ended || self.over(cx) {
            return self.end();
        }
        match self.live.poll_next_unpin(cx) {
            Poll::Ready(Some(bytes)) => return Poll::Ready(Some(bytes)),
            Poll::Ready(None) => return self.end(),
            Poll::Pending => {}
        }
        match self.keep_alive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(KEEP_ALIVE)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn settings(shutdown: &CancellationToken) -> StreamSettings {
        StreamSettings {
            retry: Duration::from_millis(2000),
            keep_alive: Duration::from_secs(3600),
            shutdown: shutdown.clone(),
        }
    }

    /// The whole body of a stream whose source never ends: it ends only if its
    /// lifetime does (the test times out otherwise).
    async fn body_until_its_end(lifetime: Lifetime) -> Bytes {
        let never = futures_util::stream::pending::<Bytes>();
        body_of(never, lifetime, &CancellationToken::new()).await
    }

    async fn body_of<S>(live: S, lifetime: Lifetime, shutdown: &CancellationToken) -> Bytes
    where
        S: Stream<Item = Bytes> + Send + Unpin + 'static,
    {
        let prelude = vec![Bytes::from_static(b"data: replayed\n\n")];
        let response = sse_response(&settings(shutdown), prelude, live, lifetime);
        let body = response.into_body().collect();
        tokio::time::timeout(Duration::from_secs(10), body)
            .await
            .expect("the stream did not end")
            .expect("body")
            .to_bytes()
    }

    #[tokio::test]
    async fn a_stream_ends_at_the_callers_expiry_after_its_prelude_and_frees_its_permit() {
        let limits = StreamLimits::new(1, 1);
        let lifetime = Lifetime {
            permit: limits.admit("a").expect("admitted"),
            expiry: Some(Instant::now() + Duration::from_millis(50)),
            shutdown: None,
        };
        assert!(limits.admit("b").is_err(), "one stream at most");
        let body = body_until_its_end(lifetime).await;
        assert_eq!(&body[..], b"retry: 2000\n\ndata: replayed\n\n");
        assert!(
            limits.admit("b").is_ok(),
            "the ended stream's permit is free"
        );
    }

    #[tokio::test]
    async fn a_stream_no_hub_holds_ends_at_shutdown() {
        let limits = StreamLimits::new(1, 1);
        let shutdown = CancellationToken::new();
        let lifetime = Lifetime {
            permit: limits.admit("a").expect("admitted"),
            expiry: None,
            shutdown: Some(shutdown.clone()),
        };
        let never = futures_util::stream::pending::<Bytes>();
        let token = shutdown.clone();
        let body = tokio::spawn(async move { body_of(never, lifetime, &token).await });
        shutdown.cancel();
        let body = body.await.expect("stream task");
        let text = std::str::from_utf8(&body).expect("UTF-8");
        let farewell = text
            .strip_prefix("retry: 2000\n\ndata: replayed\n\n")
            .expect("the prelude first");
        assert_farewell(farewell);
    }

    /// A `retry:` drawn within the stop's bounds, and nothing else.
    fn assert_farewell(text: &str) {
        let ms: u64 = text
            .strip_prefix("retry: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("a last retry, not {text:?}"));
        assert!(crate::drain::RETRY_AFTER_STOP.contains(&ms), "{ms}");
    }

    #[tokio::test]
    async fn a_stream_its_hub_ends_at_the_stop_says_when_to_come_back() {
        let limits = StreamLimits::new(1, 1);
        let lifetime = Lifetime {
            permit: limits.admit("a").expect("admitted"),
            expiry: None,
            shutdown: None,
        };
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        // The hub closed the queue: the source ends.
        let closed = futures_util::stream::empty::<Bytes>();
        let body = body_of(closed, lifetime, &shutdown).await;
        let text = std::str::from_utf8(&body).expect("UTF-8");
        assert_farewell(
            text.strip_prefix("retry: 2000\n\ndata: replayed\n\n")
                .expect("prelude"),
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_while_the_server_runs_adds_nothing() {
        let limits = StreamLimits::new(1, 1);
        let lifetime = Lifetime {
            permit: limits.admit("a").expect("admitted"),
            expiry: None,
            shutdown: None,
        };
        let closed = futures_util::stream::empty::<Bytes>();
        let body = body_of(closed, lifetime, &CancellationToken::new()).await;
        assert_eq!(&body[..], b"retry: 2000\n\ndata: replayed\n\n");
    }
}
