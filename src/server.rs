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

use std::io;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, Version};
use bytes::BytesMut;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::net::{self, ClosableStream};
use crate::sse::wire::{self, Ending};

/// The routes whose responses are event streams.
const STREAM_PATHS: [&str; 4] = ["/v1/sse", "/v2/sse", "/v3/sse", "/v4/sse"];
/// A head longer than this is left to hyper (which allows far more).
const HEAD_LIMIT: usize = 8 * 1024;
/// Headers parsed on the stream path; a request with more goes to hyper.
const MAX_HEADERS: usize = 48;

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits for the
/// open connections to finish (streams end through their hubs on shutdown).
pub async fn run(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    // Every connection task holds a receiver; `closed()` resolves when all are gone.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = net::accept(&listener) => accepted,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((io, _)) => {
                let (router, shutdown, open) = (router.clone(), shutdown.clone(), open_rx.clone());
                tokio::spawn(async move {
                    serve_connection(io, router, shutdown).await;
                    drop(open);
                });
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(open_rx);
    drop(listener);
    open_tx.closed().await;
}

async fn serve_connection(mut io: ClosableStream, router: Router, shutdown: CancellationToken) {
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
        // Boxed: the router's future is large and needed only until the response
        // exists.
        let response = match Box::pin(router.clone().oneshot(*request)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        match wire::write_response(&mut io, response, close).await {
            Ok(Ending::KeepAlive(read_ahead)) if !shutdown.is_cancelled() => {
                io.unread(read_ahead);
            }
            _ => return,
        }
    }
    Box::pin(serve_with_hyper(io, router, shutdown)).await;
}

/// What the first request of a connection is.
enum Head {
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
        match parse_head(read, io) {
            Some(head) => return Ok(Some(head)),
            None if read.len() >= HEAD_LIMIT => return Ok(Some(Head::Other)),
            None => {}
        }
    }
}

/// `None` while the head is incomplete.
fn parse_head(read: &[u8], io: &ClosableStream) -> Option<Head> {
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
        .extension(ConnectInfo(io.handle().clone()));
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
async fn serve_with_hyper(io: ClosableStream, router: Router, shutdown: CancellationToken) {
    let handle = io.handle().clone();
    let service = router.map_request(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(handle.clone()));
        request
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
