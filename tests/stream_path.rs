//! The stream path (`src/server/`) at the byte level: event
//! streams are written by the server itself, everything else by hyper, and one
//! connection can move from the first to the second. Raw sockets, because an HTTP
//! client library would hide exactly what is tested here (framing, keep-alive, the
//! bytes of a request split or pipelined).

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{PATIENCE, TestServer, embedded, unique};
use sse_server::auth::mint;
use sse_server::config::{Config, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw HTTP/1.1 connection and everything read from it so far.
struct Raw {
    socket: TcpStream,
    read: Vec<u8>,
}

impl Raw {
    async fn connect(server: &TestServer) -> Raw {
        let address = server.base.trim_start_matches("http://");
        let socket = TcpStream::connect(address).await.expect("connect");
        Raw {
            socket,
            read: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.socket
            .write_all(bytes.as_bytes())
            .await
            .expect("write");
    }

    /// Reads until `pattern` has arrived and returns everything up to and including
    /// it, leaving the rest for the next call.
    async fn until(&mut self, pattern: &str) -> String {
        let pattern = pattern.as_bytes();
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(at) = self
                    .read
                    .windows(pattern.len())
                    .position(|window| window == pattern)
                {
                    let taken: Vec<u8> = self.read.drain(..at + pattern.len()).collect();
                    return String::from_utf8_lossy(&taken).into_owned();
                }
                let mut buffer = [0u8; 4096];
                let n = self.socket.read(&mut buffer).await.expect("read");
                assert!(
                    n > 0,
                    "closed before {:?}; read {:?}",
                    String::from_utf8_lossy(pattern),
                    String::from_utf8_lossy(&self.read)
                );
                self.read.extend_from_slice(&buffer[..n]);
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no {:?} within {PATIENCE:?}; read {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(&self.read)
            )
        })
    }

    /// Reads until the server closes the connection.
    async fn until_closed(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.socket.read_to_end(&mut self.read))
            .await
            .expect("the server to close the connection")
            .expect("read");
        String::from_utf8_lossy(&std::mem::take(&mut self.read)).into_owned()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[tokio::test]
async fn a_stream_is_chunked_and_the_connection_serves_on_after_it_ends() {
    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
    let server = TestServer::start(Config {
        auth_secret: Some(Secret::from_str(SECRET).expect("secret")),
        ..embedded()
    })
    .await;
    let secret = Secret::from_str(SECRET).expect("secret");
    let user = unique("raw");
    // The token expires in a second or two, which ends the stream.
    let token = mint(&secret, &user, false, Duration::from_secs(2)).expect("token");
    let mut raw = Raw::connect(&server).await;
    raw.send(&get(&format!(
        "/v2/sse?username={user}&access_token={token}"
    )))
    .await;
    let head = raw.until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-cache\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(head.contains("date: "), "{head}");
    let retry = "retry: 2000\n\n";
    assert_eq!(
        raw.until(retry).await,
        format!("{:x}\r\n{retry}", retry.len())
    );
    // The last chunk, then the same connection answers another request.
    raw.until("\r\n0\r\n\r\n").await;
    raw.send(&get("/healthz")).await;
    let next = raw.until("\r\n\r\n").await;
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
    server.stop().await;
}

#[tokio::test]
async fn an_error_on_a_stream_route_keeps_the_connection_unless_the_client_closes_it() {
    let server = TestServer::start(embedded()).await;
    let mut raw = Raw::connect(&server).await;
    raw.send(&get("/v2/sse?username=")).await;
    let head = raw.until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert!(
        head.contains("content-type: application/json\r\n"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .expect("content-length")
        .trim()
        .parse()
        .expect("a number");
    let body = raw.until("}").await;
    assert_eq!(body.len(), length, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    // Kept alive: hyper answers the next request on it.
    raw.send(&get("/healthz")).await;
    let next = raw.until("\r\n\r\n").await;
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");

    let mut closing = Raw::connect(&server).await;
    closing
        .send("GET /v2/sse?username= HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    let all = closing.until_closed().await;
    assert!(all.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{all}");
    assert!(all.contains("connection: close\r\n"), "{all}");
    server.stop().await;
}

#[tokio::test]
async fn requests_that_are_not_streams_reach_hyper_whole_however_they_arrive() {
    let server = TestServer::start(embedded()).await;
    let user = unique("pieces");
    let mut stream = Raw::connect(&server).await;
    stream.send(&get(&format!("/v2/sse?username={user}"))).await;
    stream.until("retry: 2000\n\n").await;

    // A POST whose head and body arrive in several writes.
    let mut post = Raw::connect(&server).await;
    let request = format!(
        "POST /v2/message?username={user} HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nin 3 pieces"
    );
    let (first, rest) = request.split_at(7);
    let (second, third) = rest.split_at(rest.len() - 4);
    for piece in [first, second, third] {
        post.send(piece).await;
        post.socket.flush().await.expect("flush");
        tokio::task::yield_now().await;
    }
    let answer = post.until("}").await;
    assert!(answer.starts_with("HTTP/1.1 202 Accepted\r\n"), "{answer}");
    assert!(answer.contains("\"delivered\":1"), "{answer}");
    assert!(stream.until("data: in 3 pieces\n\n").await.contains("id: "));

    // Two requests in one write, the first on a stream route: both answered, in order.
    let mut pipelined = Raw::connect(&server).await;
    pipelined
        .send(&format!("{}{}", get("/v2/sse?username="), get("/healthz")))
        .await;
    let first = pipelined.until("\r\n\r\n").await;
    assert!(first.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{first}");
    pipelined.until("}").await;
    let second = pipelined.until("\r\n\r\n").await;
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");

    // Not a request at all: hyper's answer, as before.
    let mut garbage = Raw::connect(&server).await;
    garbage.send("\u{1}\u{2} nonsense\r\n\r\n").await;
    let all = garbage.until_closed().await;
    assert!(all.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{all}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_closes_its_stream_frees_it_at_once() {
    let server = TestServer::start(Config {
        max_streams_per_user: 1,
        ..embedded()
    })
    .await;
    let user = unique("closes");
    let path = format!("/v2/sse?username={user}");
    let mut first = Raw::connect(&server).await;
    first.send(&get(&path)).await;
    first.until("retry: 2000\n\n").await;
    let mut refused = Raw::connect(&server).await;
    refused.send(&get(&path)).await;
    let head = refused.until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    // An idle stream, so only the server's read of the socket can notice the close.
    drop(first);
    common::eventually("the closed stream's slot to be free", || {
        let server = &server;
        let path = &path;
        async move {
            let mut again = Raw::connect(server).await;
            again.send(&get(path)).await;
            again
                .until("\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 200 OK\r\n")
        }
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_connections_that_have_not_sent_a_whole_request() {
    let server = TestServer::start(embedded()).await;
    let mut silent = Raw::connect(&server).await;
    let mut partial = Raw::connect(&server).await;
    partial
        .send("GET /v2/sse?username=half HTTP/1.1\r\nHost: te")
        .await;
    server.stop().await;
    // Closed by the server (a reset when it had unread bytes), not left waiting for a
    // request that will never be served.
    for (name, raw) in [("silent", &mut silent), ("partial", &mut partial)] {
        let read = tokio::time::timeout(PATIENCE, raw.socket.read_to_end(&mut raw.read)).await;
        match read {
            Ok(Ok(_)) => assert!(raw.read.is_empty(), "{name}: {:?}", raw.read),
            Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{name}"),
            Err(_) => panic!("{name}: still open {PATIENCE:?} after shutdown"),
        }
    }
}
