//! The backing services go away and come back in the middle of a test: the server
//! answers 503 (never hangs), `/readyz` names the missing service, and everything
//! works again once it is back, with nothing produced after the restart lost.
//! One test function: the outages must not overlap other tests of this binary.

mod common;

use std::process::Command;

use common::{SseClient, TestServer, eventually, produce_with_python, unique, with_services};
use serde_json::Value;

fn services(action: &str, service: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");
    let status = Command::new(script)
        .args([action, service])
        .status()
        .expect("scripts/services.sh");
    assert!(status.success(), "services.sh {action} {service} failed");
}

async fn readyz(server: &TestServer) -> (u16, String) {
    match reqwest::get(server.url("/readyz")).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn kafka_and_dynamodb_outages() {
    let config = with_services();
    let brokers = config.kafka_brokers.clone().expect("brokers");
    let v3_topic = config.v3_topic.clone();
    let server = TestServer::start(config).await;
    let http = reqwest::Client::new();

    // --- Kafka goes away and comes back.
    let user = unique("outage");
    let mut stream = SseClient::connect(&server.url(&format!("/v3/sse?username={user}"))).await;
    let before = format!("{user}:before");
    produce_with_python(&brokers, &v3_topic, &user, &[before.as_bytes()]);
    assert_eq!(stream.next().await.data, "before");

    services("down", "kafka");
    eventually("/readyz to name Kafka", || async {
        let (code, body) = readyz(&server).await;
        code == 503 && body.contains("kafka")
    })
    .await;
    let refused = server
        .post(&format!("/v3/message?username={user}"), "while down")
        .await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.expect("JSON");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("Kafka")),
        "{body}"
    );
    services("up", "kafka");
    server.wait_ready().await;

    let after: Vec<String> = (1..=5).map(|i| format!("{user}:after {i}")).collect();
    let lines: Vec<&[u8]> = after.iter().map(|l| l.as_bytes()).collect();
    produce_with_python(&brokers, &v3_topic, &user, &lines);
    for i in 1..=5 {
        assert_eq!(stream.next().await.data, format!("after {i}"));
    }

    // --- DynamoDB goes away and comes back.
    let user_id = uuid::Uuid::new_v4();
    let create = || {
        http.post(server.url(&format!("/v4/new/report?user_id={user_id}")))
            .send()
    };
    services("down", "dynamodb");
    let refused = create().await.expect("answer");
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("DynamoDB")),
        "{body}"
    );
    let (code, body) = readyz(&server).await;
    assert_eq!(code, 503);
    assert!(body.contains("dynamodb"), "{body}");
    services("up", "dynamodb");
    server.wait_ready().await;
    assert_eq!(create().await.expect("answer").status(), 201);
    let listed: Vec<Value> = http
        .get(server.url(&format!("/v4/reports?user_id={user_id}")))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed.len(), 1, "only the report created after the outage");
    server.stop().await;

    // tansu 0.6 bug: when an idempotent producer from before its restart (this
    // server's, announcing the report above) produces again, tansu panics in
    // `lite::Delegate::idempotent_message_check` ("more or less than one row") and
    // then answers nothing at all. Apache Kafka does not. Restart it so the tests
    // after this one get a working broker.
    services("down", "kafka");
    services("up", "kafka");
}
