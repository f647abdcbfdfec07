//! A client that stops reading must not slow anyone else down, and is cut off.

mod common;

use std::time::Instant;

use common::{SseClient, TestServer, embedded, eventually, stalled_reader};
use tokio::io::AsyncReadExt;

const MESSAGES: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_delay_another_tab_and_is_closed() {
    let mut config = embedded();
    config.queue = 256;
    let server = TestServer::start(config).await;
    let addr = server.base.trim_start_matches("http://").to_owned();

    // A raw TCP client with a tiny receive buffer that never reads.
    let mut stalled = stalled_reader(&addr, "/v2/sse?username=s").await;

    let mut reader = SseClient::connect(&server.url("/v2/sse?username=s")).await;
    eventually("both connections to be registered", || async {
        server
            .metrics()
            .await
            .contains(r#"sse_open_streams{version="v2"} 2"#)
    })
    .await;

    let started = Instant::now();
    let receiving = tokio::spawn(async move {
        let mut received = Vec::with_capacity(MESSAGES);
        for _ in 0..MESSAGES {
            received.push(reader.next().await.data);
        }
        (reader, received)
    });
    let client = reqwest::Client::new();
    let url = server.url("/v2/message?username=s");
    for i in 0..MESSAGES {
        let body = format!("{i:04}:{}", "x".repeat(1019));
        let reply = client.post(&url).body(body).send().await.expect("POST");
        assert_eq!(reply.status(), 202);
    }
    let (_reader, received) = receiving.await.expect("reader task");
    let elapsed = started.elapsed();
    println!("{MESSAGES} messages of 1 KB through, beside a stalled reader, in {elapsed:?}");
    for (i, data) in received.iter().enumerate() {
        assert!(
            data.starts_with(&format!("{i:04}:")),
            "message {i} in order"
        );
    }

    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"sse_connections_closed_overflow_total{version="v2"} 1"#),
        "{metrics}"
    );
    // The stalled socket gets what was already in flight, then the end.
    let mut sink = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(common::PATIENCE, async {
        loop {
            match stalled.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stalled connection was not closed");
    eventually("the stalled stream to be unregistered", || async {
        server
            .metrics()
            .await
            .contains(r#"sse_open_streams{version="v2"} 1"#)
    })
    .await;
    server.stop().await;
}
