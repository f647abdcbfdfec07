//! `Idempotency-Key` (src/idempotency.rs): a repeat gets the first answer on the
//! instance that answered it, and takes effect once on any instance: on /v3 the
//! key names the Kafka record and every reader drops the copy; on /v4 it names the
//! report created. The cross-instance tests need the services of scripts/test.sh.

mod common;

use common::{SseClient, TestServer, embedded, unique, with_services};
use serde_json::Value;

async fn post_with_key(
    server: &TestServer,
    path: &str,
    key: &str,
    body: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(path))
        .header("Idempotency-Key", key)
        .body(body.to_owned())
        .send()
        .await
        .expect("answer")
}

#[tokio::test]
async fn a_repeat_on_one_instance_gets_the_first_answer_and_is_delivered_once() {
    let server = TestServer::start(embedded()).await;
    let user = unique("idem");
    let mut stream = SseClient::connect(&server.url(&format!("/v2/sse?username={user}"))).await;
    let path = format!("/v2/message?username={user}");
    let first = post_with_key(&server, &path, "key-1", "once").await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("JSON");
    let again = post_with_key(&server, &path, "key-1", "once").await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.expect("JSON"),
        first,
        "the first answer"
    );
    let other = post_with_key(&server, &path, "key-1", "another body").await;
    assert_eq!(other.status(), 422);
    // Nothing arrived twice: the next event is the marker sent after.
    assert_eq!(stream.next().await.data, "once");
    assert_eq!(server.post(&path, "marker").await.status(), 202);
    assert_eq!(stream.next().await.data, "marker");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn a_v3_repeat_sent_to_another_instance_is_delivered_once() {
    let config = with_services();
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let user = unique("idem-v3");
    let mut on_a = SseClient::connect(&a.url(&format!("/v3/sse?username={user}"))).await;
    let mut on_b = SseClient::connect(&b.url(&format!("/v3/sse?username={user}"))).await;
    let path = format!("/v3/message?username={user}");
    // The client got no answer from A (say), and retries through B.
    assert_eq!(
        post_with_key(&a, &path, "retry-me", "once").await.status(),
        202
    );
    assert_eq!(
        post_with_key(&b, &path, "retry-me", "once").await.status(),
        202
    );
    assert_eq!(a.post(&path, "marker").await.status(), 202);
    for stream in [&mut on_a, &mut on_b] {
        assert_eq!(stream.next().await.data, "once");
        assert_eq!(stream.next().await.data, "marker", "the copy was dropped");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn a_v4_create_repeated_on_another_instance_makes_one_report() {
    let config = with_services();
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let user_id = uuid::Uuid::new_v4();
    let path = format!("/v4/new/report?user_id={user_id}");
    let first: Value = post_with_key(&a, &path, "create-once", "")
        .await
        .json()
        .await
        .expect("JSON");
    let again = post_with_key(&b, &path, "create-once", "").await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.expect("JSON");
    assert_eq!(again["reportId"], first["reportId"], "the same report");
    let listed: Vec<Value> = reqwest::get(a.url(&format!("/v4/reports?user_id={user_id}")))
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed.len(), 1, "{listed:?}");
    a.stop().await;
    b.stop().await;
}
