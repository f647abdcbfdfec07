//! /v3: the same channels fed from the `v3_messages` topic (a topic of its own per test
//! against the real broker, see `common::with_services`). The embedded test runs
//! over the in-process bus; the others need the Kafka broker of
//! `scripts/services.sh` (run with `--include-ignored` by scripts/test.sh).

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{
    SseClient, TestServer, embedded, eventually, produce_with_python, unique, with_services,
};

#[tokio::test]
async fn v3_posts_reach_streams_over_the_embedded_bus() {
    let server = TestServer::start(embedded()).await;
    let user = unique("v3");
    let mut tab1 = SseClient::connect(&server.url(&format!("/v3/sse?username={user}"))).await;
    let mut tab2 = SseClient::connect(&server.url(&format!("/v3/sse?username={user}"))).await;
    let reply = server
        .post(&format!("/v3/message?username={user}"), "a:b:c")
        .await;
    assert_eq!(reply.status(), 202);
    assert_eq!(tab1.next().await.data, "a:b:c");
    assert_eq!(tab2.next().await.data, "a:b:c");
    assert_eq!(server.post("/v3/broadcast", "all").await.status(), 202);
    assert_eq!(tab1.next().await.data, "all");
    let reserved = server.post("/v3/message?username=*", "x").await;
    assert_eq!(reserved.status(), 400);
    assert_eq!(
        server.post("/v3/message?username=u", "").await.status(),
        400
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn kafka_records_reach_streams_on_two_instances() {
    let config = with_services();
    let brokers = config.kafka_brokers.clone().expect("brokers");
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config.clone()).await;
    let user = unique("kafka");
    let stream = |s: &TestServer| s.url(&format!("/v3/sse?username={user}"));
    let mut on_a = SseClient::connect(&stream(&a)).await;
    let mut on_b = SseClient::connect(&stream(&b)).await;

    // An outside producer, malformed records among good ones.
    let hello = format!("{user}:hello");
    let colons = format!("{user}:a:b:c");
    let empty = format!("{user}:");
    let after = format!("{user}:after the bad ones");
    let mut bad_utf8 = format!("{user}:").into_bytes();
    bad_utf8.extend([0xff, 0xfe]);
    produce_with_python(
        &brokers,
        &config.v3_topic,
        &user,
        &[
            hello.as_bytes(),
            colons.as_bytes(),
            b"no colon at all",
            b":nobody",
            empty.as_bytes(),
            &bad_utf8,
            after.as_bytes(),
        ],
    );
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(client.next().await.data, "hello");
        assert_eq!(client.next().await.data, "a:b:c");
        assert_eq!(client.next().await.data, "after the bad ones");
    }
    let malformed = format!(
        r#"kafka_records_malformed_total{{topic="{}"}} 4"#,
        config.v3_topic
    );
    for server in [&a, &b] {
        eventually("malformed records to be counted", || async {
            server.metrics().await.contains(&malformed)
        })
        .await;
    }

    // `sse-server produce`, the console producer of the README.
    let mut produce = common::isolated(common::SERVER)
        .args([
            "--kafka-brokers",
            &brokers,
            "produce",
            &config.v3_topic,
            "--key",
            &user,
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("sse-server produce");
    writeln!(
        produce.stdin.take().expect("stdin"),
        "{user}:from the console"
    )
    .expect("write");
    assert!(produce.wait().expect("wait").success());
    assert_eq!(on_a.next().await.data, "from the console");
    assert_eq!(on_b.next().await.data, "from the console");

    // A POST on one instance reaches a stream on the other.
    let reply = a
        .post(&format!("/v3/message?username={user}"), "posted on A")
        .await;
    assert_eq!(reply.status(), 202);
    assert_eq!(on_b.next().await.data, "posted on A");
    assert_eq!(on_a.next().await.data, "posted on A");
    let reply = b.post("/v3/broadcast", "broadcast on B").await;
    assert_eq!(reply.status(), 202);
    assert_eq!(on_a.next().await.data, "broadcast on B");
    a.stop().await;
    b.stop().await;
}
