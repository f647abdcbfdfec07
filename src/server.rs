//! The HTTP server: accepts connections and serves each one, on the stream path or
//! through hyper.
//!
//! An event stream lives for hours and does almost nothing, so what it holds while
//! idle decides how many users one machine serves. hyper keeps an 8 KiB read buffer
//! and an 8 KiB write buffer for every connection for as long as it lives, which was
//! three quarters of an idle stream's memory and cannot be configured smaller. So
//! the first request head of a connection is read here, with `httparse`: a plain
//! `GET /vN/sse` goes through the router like any request (every extractor,
//! middleware, error and metric is the same), and its response is written straight
//! to the socket by [`crate::sse::wire`], which keeps nothing between events. Every
//! other request, and the connection once its stream has ended, goes to hyper along
//! with the bytes already read.
//!
//! Every socket counts: past `--max-connections` a new connection gets a fast 503
//! and is closed, and so does one accepted while the process is out of file
//! descriptors (see [`net::Reserve`]), so the accept loop never stalls. Deadlines
//! on each socket, and the cap on connections waiting for a request, live in
//! [`crate::net`]; a request body's deadline is [`TimedBody`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, Version};
use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::net::{self, Accepted, ClosableStream, ConnectionHandle, Reserve, SocketSettings};
use crate::sse::wire::{self, Ending};

/// The routes whose responses are event streams.
pub(crate) const STREAM_PATHS: [&str; 4] = ["/v1/sse", "/v2/sse", "/v3/sse", "/v4/sse"];
/// A head longer than this is left to hyper (which allows far more).
const HEAD_LIMIT: usize = 8 * 1024;
/// Headers parsed on the stream path; a request with more goes to hyper.
pub(crate) const MAX_HEADERS: usize = 48;

/// How the server treats connections (from the flags).
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub socket: SocketSettings,
    pub max_connections: usize,
}

/// The answer to a connection past `--max-connections` (or accepted with the
/// last file descriptor): written in one go, then the socket is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
content-length: 73\r\n\
retry-after: 1\r\n\
connection: close\r\n\r\n\
{\"error\": \"The server has too many open connections. Retry in a moment\"}\n";

/// Counts a connection while it is open.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Refuses a connection without waiting on it: a socket that cannot take the
/// whole answer at once gets what fits.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(REFUSAL);
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits for the
/// open connections to finish (streams end through their hubs on shutdown).
pub async fn run(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    shutdown: CancellationToken,
) {
    // Every connection task holds a receiver; `closed()` resolves when all are gone.
    let (open_tx, open_rx) = watch::channel(());
    let open = Arc::new(AtomicUsize::new(0));
    let mut reserve = Reserve::new();
    loop {
        let accepted = tokio::select! {
            accepted = net::accept(&listener, &settings.socket, &mut reserve) => accepted,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok(Accepted::Socket(io)) => {
                if open.fetch_add(1, Ordering::AcqRel) >= settings.max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    refuse(io.socket());
                    continue;
                }
                let counted = Open(open.clone());
                let (router, shutdown, watch) = (router.clone(), shutdown.clone(), open_rx.clone());
                let body_timeout = settings.socket.deadlines.body;
                tokio::spawn(async move {
                    serve_connection(io, router, body_timeout, shutdown).await;
                    drop((counted, watch));
                });
            }
            Ok(Accepted::OutOfFiles(stream)) => {
                tracing::warn!("out of file descriptors: refused a connection with a 503");
                refuse(&stream);
                drop(stream);
                reserve.refill();
            }
            Err(e) => {
                // Not a per-connection error and not EMFILE: do not spin on it.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(open_rx);
    drop(listener);
    open_tx.closed().await;
}

async fn serve_connection(
    mut io: ClosableStream,
    router: Router,
    body_timeout: Duration,
    shutdown: CancellationToken,
) {
    // What lives across an await here lives as long as a stream: the head's buffer
    // does not.
    let stream = {
        let mut read = BytesMut::new();
        // A client that opened a connection and sent nothing (yet) does not hold up
        // shutdown.
        let head = tokio::select! {
            head = read_head(&mut io, &mut read) => head,
            _ = shutdown.cancelled() => return,
        };
        match head {
            Ok(Some(Head::Stream { request, close })) => Some((request, close)),
            Ok(Some(Head::Other)) => {
                io.unread(read.freeze());
                None
            }
            // Closed (or failed) before a whole request arrived.
            Ok(None) | Err(_) => return,
        }
    };
    if let Some((request, close)) = stream {
        io.handle().request_started();
        // Boxed: the router's future is large and needed only until the response
        // exists.
        let response = match Box::pin(router.clone().oneshot(*request)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let ending = wire::write_response(&mut io, response, close).await;
        io.handle().request_finished();
        match ending {
            Ok(Ending::KeepAlive(read_ahead)) if !shutdown.is_cancelled() => {
                io.unread(read_ahead);
            }
            _ => return,
        }
    }
    Box::pin(serve_with_hyper(io, router, body_timeout, shutdown)).await;
}

/// What the first request of a connection is.
pub(crate) enum Head {
    /// A plain `GET` of an event stream, with nothing after its head.
    Stream { request: Box<Request>, close: bool },
    /// Anything else: hyper reads it again from the start.
    Other,
}

/// Reads until a whole request head is in `read` (or it is clearly not a stream
/// request). `None` when the client closed first.
async fn read_head(io: &mut ClosableStream, read: &mut BytesMut) -> io::Result<Option<Head>> {
    loop {
        read.reserve(1024);
        if io.read_buf(read).await? == 0 {
            return Ok(if read.is_empty() {
                None
            } else {
                Some(Head::Other)
            });
        }
        match parse_head(read, io.handle()) {
            Some(head) => return Ok(Some(head)),
            None if read.len() >= HEAD_LIMIT => return Ok(Some(Head::Other)),
            None => {}
        }
    }
}

/// `None` while the head is incomplete. `handle` is the connection's (a pure
/// function of its arguments: `fuzzing::head` checks it).
pub(crate) fn parse_head(read: &[u8], handle: &ConnectionHandle) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let length = match head.parse(read) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Head::Other),
    };
    let path = head.path.unwrap_or_default();
    let is_stream = head.method == Some("GET")
        && head.version == Some(1)
        && STREAM_PATHS.contains(&path.split('?').next().unwrap_or_default())
        // Pipelined requests, bodies and upgrades are hyper's business.
        && length == read.len()
        && !head.headers.iter().any(|h| {
            let name = h.name;
            (name.eq_ignore_ascii_case("content-length") && h.value != b"0")
                || name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("upgrade")
                || name.eq_ignore_ascii_case("expect")
        });
    if !is_stream {
        return Some(Head::Other);
    }
    let close = head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && h.value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    let mut request = Request::builder()
        .method(Method::GET)
        .version(Version::HTTP_11)
        .uri(path)
        .extension(ConnectInfo(handle.clone()));
    for header in head.headers.iter() {
        request = request.header(header.name, header.value);
    }
    // A name or value `http` refuses: let hyper answer it as it always did.
    Some(match request.body(Body::empty()) {
        Ok(request) => Head::Stream {
            request: Box::new(request),
            close,
        },
        Err(_) => Head::Other,
    })
}

/// Serves the rest of the connection with hyper (HTTP/1.1, or HTTP/2 with prior
/// knowledge), as `axum::serve` would, with the connection's handle on every request.
///
/// Each request marks the connection busy for as long as it is in progress (see
/// [`InProgress`]). An HTTP/2 request gets a handle of its own: the streams of one
/// connection share its socket, so a stream closed for overflow must end only
/// itself (its queue is dropped by the hub), never the socket.
async fn serve_with_hyper(
    io: ClosableStream,
    router: Router,
    body_timeout: Duration,
    shutdown: CancellationToken,
) {
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
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
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
