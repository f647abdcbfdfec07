//! The transport: every byte in and out of a socket passes through this room.
//! A request's path, from the listener to the socket:
//!
//! 1. [`accept`] takes a connection and wraps it in a [`ClosableStream`]
//!    ([`socket`]) with a [`ConnectionHandle`] ([`connection`]): deadlines for
//!    every phase, and a way for a handler to close it;
//! 2. [`head`] reads its first request head;
//! 3. a plain `GET /vN/sse` goes through the router like any request (every
//!    extractor, middleware, error and metric is the same), and its response is
//!    written straight to the socket by [`response`], which keeps nothing between
//!    events;
//! 4. every other request, and the connection once its stream has ended, goes to
//!    hyper ([`hyper_service`]) with the bytes already read.
//!
//! Why not hyper for everything: an event stream lives for hours and does almost
//! nothing, so what it holds while idle decides how many users one machine serves.
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for every connection
//! for as long as it lives, which was three quarters of an idle stream's memory and
//! cannot be configured smaller.
//!
//! Every socket counts: past `--max-connections` a new connection gets a fast 503
//! and is closed, and so does one accepted while the process is out of file
//! descriptors (see [`accept::Reserve`]), so the accept loop never stalls.

mod accept;
mod connection;
mod head;
mod hyper_service;
mod response;
#[cfg(test)]
mod scripted;
mod socket;
mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use accept::{Accepted, Reserve};
pub use connection::{ConnectionHandle, Deadlines, SocketSettings, Waiting};
/// For `crate::fuzzing`, which cannot reach `head` itself.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use head::properties as head_properties;
use head::{Head, read_head};
use hyper_service::{Protocol, serve_with_hyper};
use response::Ending;
use socket::ClosableStream;

/// How the server treats connections (from the flags).
#[derive(Clone)]
pub struct ServerSettings {
    pub socket: SocketSettings,
    pub max_connections: usize,
    /// Set: every connection is TLS (`--tls-cert`, `--tls-key`).
    pub tls: Option<TlsAcceptor>,
    /// The routes whose responses are event streams, answered on the stream path.
    pub stream_paths: &'static [&'static str],
}

pub use tls::acceptor as tls_acceptor;

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
            accepted = accept::accept(&listener, &settings.socket, &mut reserve) => accepted,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok(Accepted::Socket(io)) => {
                if open.fetch_add(1, Ordering::AcqRel) >= settings.max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    refuse(io.inner());
                    continue;
                }
                let counted = Open(open.clone());
                let (router, shutdown, watch) = (router.clone(), shutdown.clone(), open_rx.clone());
                let body_timeout = settings.socket.deadlines.body;
                let (tls, paths) = (settings.tls.clone(), settings.stream_paths);
                tokio::spawn(async move {
                    match tls {
                        None => serve_connection(io, router, paths, body_timeout, shutdown).await,
                        // Boxed: a task is as large as its largest branch, and the TLS
                        // one (rustls' connection state, the handshake) made every plain
                        // connection's task about 12 KiB larger (idle streams measured
                        // 4.0 KiB each before TLS, 15.9 KiB after; 4.5 KiB boxed).
                        Some(tls) => {
                            Box::pin(serve_tls(tls, io, router, paths, body_timeout, shutdown))
                                .await
                        }
                    }
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

/// Serves one TLS connection: the handshake, under the socket's deadlines (see
/// `tls`), then the connection as a plain one is served, over the TLS stream.
async fn serve_tls(
    tls: TlsAcceptor,
    io: ClosableStream,
    router: Router,
    stream_paths: &'static [&'static str],
    body_timeout: Duration,
    shutdown: CancellationToken,
) {
    let (handle, deadlines) = (io.handle().clone(), io.deadlines().clone());
    let handshake = tokio::select! {
        handshake = tls.accept(io) => handshake,
        _ = shutdown.cancelled() => return,
    };
    match handshake {
        Ok(stream) => {
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let io = ClosableStream::new(stream, handle, deadlines);
            if h2 {
                // Never the stream path: it reads HTTP/1.1 heads.
                serve_with_hyper(io, router, body_timeout, shutdown, Protocol::Http2).await;
            } else {
                serve_connection(io, router, stream_paths, body_timeout, shutdown).await;
            }
        }
        Err(e) => tracing::debug!("TLS handshake failed: {e}"),
    }
}

/// Serves one connection: its first request on the stream path if it is a plain
/// stream `GET`, then everything else with hyper.
async fn serve_connection<S>(
    mut io: ClosableStream<S>,
    router: Router,
    stream_paths: &'static [&'static str],
    body_timeout: Duration,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // What lives across an await here lives as long as a stream: the head's buffer
    // does not.
    let stream = {
        let mut read = BytesMut::new();
        let handle = io.handle().clone();
        // A client that opened a connection and sent nothing (yet) does not hold up
        // shutdown.
        let head = tokio::select! {
            head = read_head(&mut io, &handle, stream_paths, &mut read) => head,
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
        let ending = response::write_response(&mut io, response, close).await;
        io.handle().request_finished();
        match ending {
            Ok(Ending::KeepAlive(read_ahead)) if !shutdown.is_cancelled() => {
                io.unread(read_ahead);
            }
            _ => return,
        }
    }
    Box::pin(serve_with_hyper(
        io,
        router,
        body_timeout,
        shutdown,
        Protocol::Detect,
    ))
    .await;
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::routing::{get, post};
    use bytes::Bytes;

    use tokio::time::Instant;

    use super::scripted::{Client, Scripted};
    use super::*;

    /// Serves a connection from memory with a router that has one stream route and
    /// one that echoes a POST's body, every deadline 10 s.
    fn serve(chunks: &[&[u8]]) -> Client {
        let deadline = Duration::from_secs(10);
        serve_with(
            chunks,
            Deadlines {
                header: deadline,
                body: deadline,
                idle: deadline,
                write: deadline,
            },
        )
    }

    fn serve_with(chunks: &[&[u8]], deadlines: Deadlines) -> Client {
        let router = Router::new()
            .route(
                "/v2/sse",
                get(|| async {
                    let events = ["data: one\n\n", "data: two\n\n"]
                        .map(|e| Ok::<_, Infallible>(Bytes::from_static(e.as_bytes())));
                    Body::from_stream(futures_util::stream::iter(events))
                }),
            )
            .route("/echo", post(|body: String| async move { body }));
        let (io, client) = Scripted::new(chunks, false);
        let body = deadlines.body;
        let handle = ConnectionHandle::accepted(Waiting::new(4));
        let io = ClosableStream::new(io, handle, Arc::new(deadlines));
        let paths = &["/v2/sse"];
        tokio::spawn(serve_connection(
            io,
            router,
            paths,
            body,
            CancellationToken::new(),
        ));
        client
    }

    /// Deadlines all different, so a test sees which one closed the connection.
    const DEADLINES: Deadlines = Deadlines {
        header: Duration::from_secs(2),
        body: Duration::from_secs(3),
        idle: Duration::from_secs(5),
        write: Duration::from_secs(7),
    };

    /// Asserts that `took` is `deadline` give or take 10 %.
    fn near(took: Duration, deadline: Duration) {
        let (low, high) = (deadline.mul_f64(0.9), deadline.mul_f64(1.1));
        assert!(
            (low..=high).contains(&took),
            "closed after {took:?}, not within 10 % of {deadline:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_closed_at_the_header_deadline() {
        let opened = Instant::now();
        let mut client = serve_with(&[], DEADLINES);
        assert_eq!(client.until_closed().await, "");
        near(opened.elapsed(), DEADLINES.header);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_drips_is_closed_at_the_header_deadline() {
        let opened = Instant::now();
        let mut client = serve_with(&[b"GET /v2/sse HTTP/1.1\r\n"], DEADLINES);
        let sender = client.sender().expect("open");
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if sender.send(b"X-Drip: 1\r\n".to_vec()).is_err() {
                    break;
                }
            }
        });
        let all = client.until_closed().await;
        assert!(!all.contains("HTTP/1.1"), "no answer to half a head: {all}");
        near(opened.elapsed(), DEADLINES.header);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_after_its_answer_is_closed_at_the_idle_deadline() {
        let mut client = serve_with(
            &[b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"],
            DEADLINES,
        );
        client.until("\r\n\r\nhi").await;
        let answered = Instant::now();
        client.until_closed().await;
        near(answered.elapsed(), DEADLINES.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_is_answered_at_the_body_deadline() {
        let mut client = serve_with(
            &[b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf"],
            DEADLINES,
        );
        let sent = Instant::now();
        let all = client.until("HTTP/1.1 4").await;
        near(sent.elapsed(), DEADLINES.body);
        assert!(all.starts_with("HTTP/1.1 4"), "{all}");
    }

    #[tokio::test]
    async fn a_stream_then_a_post_each_in_pieces_on_one_connection() {
        let mut client = serve(&[b"GET /v2/s", b"se HTTP/1.1\r\nHost: t\r\n", b"\r\n"]);
        let stream = client.until("0\r\n\r\n").await;
        assert!(stream.starts_with("HTTP/1.1 200 OK\r\n"), "{stream}");
        assert!(
            stream.contains("transfer-encoding: chunked\r\n"),
            "{stream}"
        );
        assert!(
            stream.ends_with("\r\n\r\nb\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"),
            "{stream}"
        );

        // The next request, a POST, arrives in three reads and reaches hyper whole.
        let post = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nin 3 pieces";
        let (first, rest) = post.split_at(7);
        let (second, third) = rest.split_at(rest.len() - 4);
        for piece in [first, second, third] {
            client.send(piece.as_bytes());
        }
        let all = client.until("in 3 pieces").await;
        let answer = &all[stream.len()..];
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nin 3 pieces"), "{answer}");
    }

    #[tokio::test]
    async fn a_post_in_pieces_as_the_first_request_reaches_hyper_whole() {
        let mut client = serve(&[
            b"POST /ec",
            b"ho HTTP/1.1\r\nHost: t\r\nContent-Le",
            b"ngth: 5\r\n\r\nhel",
            b"lo",
        ]);
        let answer = client.until("hello").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
    }

    #[tokio::test]
    async fn a_client_that_asks_to_close_after_its_stream_is_closed() {
        let mut client = serve(&[b"GET /v2/sse HTTP/1.1\r\nConnection: close\r\n\r\n"]);
        let all = client.until_closed().await;
        assert!(all.contains("connection: close\r\n"), "{all}");
        assert!(all.ends_with("0\r\n\r\n"), "{all}");
    }
}
