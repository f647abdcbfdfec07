//! Every request that is not a plain event-stream `GET` is served by hyper
//! (HTTP/1.1, or HTTP/2 with prior knowledge), as `axum::serve` would, and so is a
//! connection once its stream has ended. What is added to hyper here: the
//! connection's handle on every request, the request counted as in progress until
//! its response is written ([`InProgress`]), and a deadline on request bodies
//! ([`TimedBody`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::Version;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::connection::ConnectionHandle;
use super::socket::ClosableStream;

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    /// HTTP/1.1, or HTTP/2 if it starts with the HTTP/2 preface (h2c).
    Detect,
    /// HTTP/2 only (TLS with ALPN `h2`): anything else ends the connection, as
    /// RFC 9113 §3.4 asks of an invalid preface.
    Http2,
}

/// Serves the rest of the connection with hyper (HTTP/1.1, or HTTP/2 with prior
/// knowledge), as `axum::serve` would, with the connection's handle on every request.
///
/// Each request marks the connection busy for as long as it is in progress (see
/// [`InProgress`]). An HTTP/2 request gets a handle of its own: the streams of one
/// connection share its socket, so a stream closed for overflow must end only
/// itself (its queue is dropped by the hub), never the socket.
pub(super) async fn serve_with_hyper<S>(
    io: ClosableStream<S>,
    router: Router,
    body_timeout: Duration,
    shutdown: CancellationToken,
    protocol: Protocol,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection_handle = io.handle().clone();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let in_progress = InProgress::start(connection_handle.clone());
        let handle = if request.version() == Version::HTTP_2 {
            ConnectionHandle::detached()
        } else {
            connection_handle.clone()
        };
        let mut request = request.map(|body| {
            if body.is_end_stream() {
                Body::empty()
            } else {
                Body::new(TimedBody::new(body, body_timeout))
            }
        });
        request.extensions_mut().insert(ConnectInfo(handle));
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_progress: in_progress,
                })
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if protocol == Protocol::Http2 {
        builder = builder.http2_only();
    }
    let (io, service) = (TokioIo::new(io), TowerToHyperService::new(service));
    // Each arm drives its connection until it ends, or ends it gracefully at
    // shutdown; the two connection types differ.
    macro_rules! drive {
        ($connection:expr) => {{
            let connection = $connection;
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => result,
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        }};
    }
    let result = match protocol {
        Protocol::Detect => drive!(builder.serve_connection_with_upgrades(io, service)),
        // `http2_only` holds only without upgrades.
        Protocol::Http2 => drive!(builder.serve_connection(io, service)),
    };
    if let Err(e) = result {
        tracing::trace!("connection ended: {e}");
    }
}

/// One request in progress on a connection, from its head until its response is
/// written in full, or abandoned (the guard is dropped with the request's future
/// or the response's body, whichever lives last).
struct InProgress(ConnectionHandle);

impl InProgress {
    fn start(handle: ConnectionHandle) -> InProgress {
        handle.request_started();
        InProgress(handle)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request counted as in progress (until it is
/// dropped with the body).
struct Tracked {
    body: Body,
    _in_progress: InProgress,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that must arrive in full within `--body-timeout` of its head.
/// Past it, reading fails, so the handler answers 4xx and hyper closes the
/// connection instead of waiting on a client that never sends.
struct TimedBody {
    body: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(body: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(io::Error::other))),
            Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
