//! Presence (src/presence): a user's open streams, told to their own streams as a
//! `presence` event and answered by `GET /vN/presence`; /v2 counts this instance,
//! /v3 and /v4 every instance through the bus, and a killed instance stops
//! counting within 15 s.

mod common;

use std::time::{Duration, Instant};

use common::{Binary, PATIENCE, SseClient, TestServer, embedded, unique, with_services};
use serde_json::{Value, json};

/// What a `presence` event says, as `{"connections", "instances"}`.
async fn next_count(client: &mut SseClient) -> Value {
    let event = client.next_presence(PATIENCE).await;
    serde_json::from_str(&event.data).expect("presence data is JSON")
}

/// Reads presence events until one says `want`; returns how long that took.
async fn until_count(client: &mut SseClient, want: Value) -> Duration {
    let started = Instant::now();
    loop {
        let count = next_count(client).await;
        if count == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "presence never said {want}; last {count}"
        );
    }
}

async fn presence_of(url: &str) -> Value {
    let response = reqwest::get(url).await.expect("GET presence");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

fn count(connections: usize, instances: usize) -> Value {
    json!({ "connections": connections, "instances": instances })
}

#[tokio::test]
async fn v2_counts_this_instances_streams_and_tells_each_of_them() {
    let server = TestServer::start(embedded()).await;
    let user = unique("present");
    let stream = server.url(&format!("/v2/sse?username={user}"));
    let presence = server.url(&format!("/v2/presence?username={user}"));
    assert_eq!(presence_of(&presence).await, count(0, 0));

    let mut first = SseClient::connect(&stream).await;
    assert_eq!(
        next_count(&mut first).await,
        count(1, 1),
        "a new stream is told"
    );
    server
        .post(&format!("/v2/message?username={user}"), "before")
        .await;
    let before = first.next().await;
    assert_eq!(before.data, "before");
    let mut second = SseClient::connect(&stream).await;
    until_count(&mut second, count(2, 1)).await;
    until_count(&mut first, count(2, 1)).await;
    assert_eq!(presence_of(&presence).await, count(2, 1));

    // A presence event is no message: a message posted now is the next event.
    let posted: Value = server
        .post(&format!("/v2/message?username={user}"), "after")
        .await
        .json()
        .await
        .expect("202");
    let event = first.next().await;
    assert_eq!(event.data, "after");
    assert_eq!(event.id, posted["id"].as_str().expect("id"));
    // And it is not kept: a stream resuming from before it replays the message only.
    let mut resumed = SseClient::connect_with(&stream, Some(&before.id)).await;
    assert_eq!(resumed.next().await.data, "after");
    drop(resumed);

    drop(second);
    until_count(&mut first, count(1, 1)).await;
    assert_eq!(presence_of(&presence).await, count(1, 1));
    server.stop().await;
}

/// Two real instances on Kafka and DynamoDB: each sees the other's streams, and
/// forgets those of one killed with `kill -9`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn v3_and_v4_count_every_instance_and_forget_a_killed_one() {
    let config = with_services();
    let brokers = config.kafka_brokers.clone().expect("brokers");
    let dynamodb = config.dynamodb_endpoint.clone().expect("dynamodb");
    let presence_topic = unique("test-presence");
    let table = unique("test-presence-table");
    let args = [
        "--kafka-brokers",
        &brokers,
        "--dynamodb-endpoint",
        &dynamodb,
        "--table",
        &table,
        "--v3-topic",
        &config.v3_topic,
        "--v4-command-topic",
        &config.v4_command_topic,
        "--v4-event-topic",
        &config.v4_event_topic,
        "--v4-writers-group",
        &config.v4_writers_group,
        "--presence-topic",
        &presence_topic,
    ];
    let a = Binary::start(&args).await;
    let b = Binary::start(&args).await;
    let user = unique("present");
    let user_id = uuid::Uuid::new_v4();
    let v3 = format!("/v3/sse?username={user}");
    let v4 = format!("/v4/sse?user_id={user_id}");

    let mut v3_on_a = SseClient::connect(&a.url(&v3)).await;
    let mut v4_on_a = SseClient::connect(&a.url(&v4)).await;
    until_count(&mut v3_on_a, count(1, 1)).await;
    until_count(&mut v4_on_a, count(1, 1)).await;

    let opened = Instant::now();
    let mut v3_on_b = SseClient::connect(&b.url(&v3)).await;
    let mut v4_on_b = SseClient::connect(&b.url(&v4)).await;
    until_count(&mut v3_on_a, count(2, 2)).await;
    let v3_seen = opened.elapsed();
    until_count(&mut v4_on_a, count(2, 2)).await;
    let v4_seen = opened.elapsed();
    until_count(&mut v3_on_b, count(2, 2)).await;
    until_count(&mut v4_on_b, count(2, 2)).await;
    println!(
        "presence: a stream opened on B reached A's streams after {v3_seen:?} (/v3), {v4_seen:?} (/v4)"
    );
    for instance in [&a, &b] {
        let v3 = presence_of(&instance.url(&format!("/v3/presence?username={user}"))).await;
        let v4 = presence_of(&instance.url(&format!("/v4/presence?user_id={user_id}"))).await;
        assert_eq!((v3, v4), (count(2, 2), count(2, 2)));
    }

    let killed = Instant::now();
    b.kill_9().await;
    until_count(&mut v3_on_a, count(1, 1)).await;
    let v3_gone = killed.elapsed();
    until_count(&mut v4_on_a, count(1, 1)).await;
    let v4_gone = killed.elapsed();
    println!(
        "presence: B's streams left A's counts {v3_gone:?} (/v3), {v4_gone:?} (/v4) after kill -9"
    );
    // The stated bound (src/presence: EXPIRY after the last heartbeat).
    assert!(v4_gone < Duration::from_secs(15), "{v4_gone:?}");
    assert_eq!(
        presence_of(&a.url(&format!("/v3/presence?username={user}"))).await,
        count(1, 1)
    );
    drop((v3_on_a, v4_on_a));
    a.kill_9().await;
}
