//! The backing services go away and come back in the middle of a test: the server
//! answers 503 (never hangs), `/readyz` names the missing service, and everything
//! works again once it is back, with nothing produced after the restart lost.
//!
//! Two ways of going away: stopped (`scripts/services.sh down`, connections
//! refused) and paused (`services.sh pause`, SIGSTOP: connections hang, as with a
//! GC pause or a stalled disk) for longer than the producer's timeouts, then resumed.
//! No restart of sse-server in between, and no restart of a service beyond the one
//! under test. One test function: the outages must not overlap other tests of this
//! binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    PATIENCE, SseClient, TestServer, eventually, eventually_within, produce_with_python, unique,
    with_services,
};
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
    // The server's log, for when a recovery goes wrong (shown with --nocapture).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_test_writer()
        .try_init();
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
    // No broker to send it to: librdkafka never sent it.
    assert_eq!(body["written"], "no", "{body}");
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

    kafka_paused(&server, &brokers, &v3_topic).await;
    dynamodb_paused(&server).await;
    server.stop().await;
}

/// The longest a request may take to be refused while a service hangs.
const REFUSED_WITHIN: Duration = Duration::from_secs(10);
/// How long a paused service stays paused: longer than every timeout of the
/// producer (8 s) and of the DynamoDB client (4 s).
const PAUSE: Duration = Duration::from_secs(13);
/// How soon after the resume everything must work again.
const RECOVERED_WITHIN: Duration = Duration::from_secs(30);
/// How long a stream that stayed open may take to get its first event after the
/// resume: the bound. Usually well under a second. When librdkafka leaves
/// a partition unfetched after the broker's leader epochs moved (about 1 pause in
/// 5 to 30 here), the reader's stall watch replaces its consumer after 10 to 15 s
/// (src/bus/kafka/stall.rs, `StallWatch`); the time is printed.
const STREAM_AFTER_RESUME: Duration = Duration::from_secs(30);

/// Sends `request`; it must be answered (whatever the status) within
/// [`REFUSED_WITHIN`]. Returns the status and how long the answer took.
async fn answered(request: reqwest::RequestBuilder) -> (u16, Duration, Value) {
    let started = Instant::now();
    let response = request
        .timeout(REFUSED_WITHIN)
        .send()
        .await
        .expect("an answer within 10 s (the server must not hang on a paused service)");
    let code = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (code, started.elapsed(), body)
}

/// Polls `check` until it holds, failing after [`RECOVERED_WITHIN`]; returns how
/// long it took.
async fn recovered<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(
        &format!("{what} to recover after the resume"),
        RECOVERED_WITHIN,
        check,
    )
    .await
}

/// Kafka hangs (SIGSTOP) for longer than the producer's timeouts, then resumes.
async fn kafka_paused(server: &TestServer, brokers: &str, v3_topic: &str) {
    let http = reqwest::Client::new();
    let user = unique("paused");
    let user_id = uuid::Uuid::new_v4();
    let mut v2 = SseClient::connect(&server.url(&format!("/v2/sse?username={user}"))).await;
    let mut v3 = SseClient::connect(&server.url(&format!("/v3/sse?username={user}"))).await;
    let mut v4 = SseClient::connect(&server.url(&format!("/v4/sse?user_id={user_id}"))).await;
    assert_eq!(v4.next().await.event, "snapshot");
    let create = || http.post(server.url(&format!("/v4/new/report?user_id={user_id}")));
    let created: Value = create()
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("JSON");
    let report_id = created["reportId"]
        .as_str()
        .expect("a report id")
        .to_owned();
    assert_eq!(v4.next().await.event, "new_report");
    let change = |id: &str, status: &str| {
        http.put(server.url(&format!("/v4/report?user_id={user_id}")))
            .json(&serde_json::json!({"id": id, "status": status}))
    };

    services("pause", "kafka");
    let paused_at = Instant::now();
    let (code, took, body) = answered(
        http.post(server.url(&format!("/v3/message?username={user}")))
            .body("while paused"),
    )
    .await;
    assert_eq!(code, 503, "POST /v3/message while Kafka is paused");
    let message_written = body["written"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["no", "maybe"].contains(&message_written.as_str()),
        "a refused publish says whether it may land: {body}"
    );
    eprintln!("kafka paused: POST /v3/message answered {code} in {took:?}: {body}");
    let (code, took, body) = answered(change(&report_id, "queued")).await;
    assert_eq!(code, 503, "PUT /v4/report while Kafka is paused");
    let change_written = body["written"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["no", "maybe"].contains(&change_written.as_str()),
        "a refused change says whether it may land: {body}"
    );
    eprintln!("kafka paused: PUT /v4/report answered {code} in {took:?}: {body}");
    eventually("/readyz to name Kafka while it is paused", || async {
        let (code, body) = readyz(server).await;
        code == 503 && body.contains("kafka")
    })
    .await;
    let posted = server
        .post(&format!("/v2/message?username={user}"), "v2 flows")
        .await;
    assert_eq!(posted.status(), 202, "/v2 does not depend on Kafka");
    assert_eq!(v2.next().await.data, "v2 flows");
    // The pause lasts longer than the producer's own timeouts, whatever the
    // requests above took.
    tokio::time::sleep(PAUSE.saturating_sub(paused_at.elapsed())).await;
    services("resume", "kafka");
    let resumed_at = Instant::now();

    let took = recovered("POST /v3/message", || async {
        matches!(
            http.post(server.url(&format!("/v3/message?username={user}")))
                .body("after the pause")
                .timeout(REFUSED_WITHIN)
                .send()
                .await,
            Ok(r) if r.status() == 202
        )
    })
    .await;
    eprintln!("kafka resumed: POST /v3/message accepted after {took:?}");
    // The stream that stayed open receives it. A 503 means "not acknowledged in
    // time", not "not written": the broker may still append the record it had
    // received when it stopped, so "while paused" may come first (at most once).
    let mut got = v3.next_within(STREAM_AFTER_RESUME).await;
    eprintln!(
        "kafka resumed: the open /v3 stream got its first event {:?} after the resume",
        resumed_at.elapsed()
    );
    if got.data == "while paused" {
        assert_eq!(
            message_written, "maybe",
            "a message answered `written: no` must never be delivered"
        );
        eprintln!(
            "kafka resumed: the POST refused with 503 (maybe written) was delivered after all"
        );
        got = v3.next_within(STREAM_AFTER_RESUME).await;
    }
    assert_eq!(got.data, "after the pause");
    let line = format!("{user}:from a producer");
    produce_with_python(brokers, v3_topic, &user, &[line.as_bytes()]);
    assert_eq!(
        v3.next_within(STREAM_AFTER_RESUME).await.data,
        "from a producer"
    );
    // The same holds for the refused change: it may still be applied. A report
    // made after the resume shows the route and the open stream working.
    let took = recovered("POST /v4/new/report", || async {
        matches!(create().timeout(REFUSED_WITHIN).send().await, Ok(r) if r.status() == 201)
    })
    .await;
    eprintln!("kafka resumed: POST /v4/new/report created after {took:?}");
    let fresh = loop {
        let event = v4.next_within(STREAM_AFTER_RESUME).await;
        let data: Value = serde_json::from_str(&event.data).expect("JSON event");
        match event.event.as_str() {
            "new_report" => break data["reportId"].as_str().expect("id").to_owned(),
            "report_status_update" if data["id"] == report_id.as_str() => {
                assert_eq!(
                    change_written, "maybe",
                    "a change answered `written: no` must never be applied"
                );
                eprintln!(
                    "kafka resumed: the change refused with 503 (maybe written) was applied after all"
                );
            }
            other => panic!("unexpected {other} event: {data}"),
        }
    };
    let took = recovered("PUT /v4/report", || async {
        matches!(change(&fresh, "queued").timeout(REFUSED_WITHIN).send().await, Ok(r) if r.status() == 202)
    })
    .await;
    eprintln!("kafka resumed: PUT /v4/report accepted after {took:?}");
    loop {
        let update = v4.next_within(STREAM_AFTER_RESUME).await;
        assert_eq!(update.event, "report_status_update", "{update:?}");
        let data: Value = serde_json::from_str(&update.data).expect("JSON event");
        if data["id"] == fresh.as_str() {
            assert_eq!(data["status"], "queued");
            break;
        }
        assert_eq!(data["id"], report_id.as_str(), "{data}");
    }
    let took = recovered("/readyz", || async { readyz(server).await.0 == 200 }).await;
    eprintln!("kafka resumed: /readyz 200 after {took:?}");
}

/// DynamoDB hangs (SIGSTOP) for longer than the client's timeouts, then resumes.
async fn dynamodb_paused(server: &TestServer) {
    let http = reqwest::Client::new();
    let user_id = uuid::Uuid::new_v4();
    let create = || http.post(server.url(&format!("/v4/new/report?user_id={user_id}")));

    services("pause", "dynamodb");
    let paused_at = Instant::now();
    let (code, took, _) = answered(create()).await;
    assert_eq!(code, 503, "POST /v4/new/report while DynamoDB is paused");
    eprintln!("dynamodb paused: POST /v4/new/report answered {code} in {took:?}");
    let (code, took, _) = answered(http.get(server.url("/readyz"))).await;
    assert_eq!(code, 503, "/readyz while DynamoDB is paused");
    eprintln!("dynamodb paused: /readyz answered {code} in {took:?}");
    tokio::time::sleep(PAUSE.saturating_sub(paused_at.elapsed())).await;
    services("resume", "dynamodb");

    let created = std::sync::Mutex::new(None);
    let took = recovered("POST /v4/new/report", || async {
        match create().timeout(REFUSED_WITHIN).send().await {
            Ok(r) if r.status() == 201 => {
                let report: Value = r.json().await.expect("JSON");
                *created.lock().expect("lock") = Some(report["reportId"].clone());
                true
            }
            _ => false,
        }
    })
    .await;
    eprintln!("dynamodb resumed: POST /v4/new/report created after {took:?}");
    let created = created
        .into_inner()
        .expect("lock")
        .expect("a created report");
    let listed: Vec<Value> = tokio::time::timeout(
        PATIENCE,
        http.get(server.url(&format!("/v4/reports?user_id={user_id}")))
            .send(),
    )
    .await
    .expect("list in time")
    .expect("list")
    .json()
    .await
    .expect("JSON");
    // A 503 means "not acknowledged in time": the paused server may still carry out
    // the write it had received (seen with dynalite), so that report may exist too.
    assert!(
        listed.iter().any(|r| r["reportId"] == created),
        "the report created after the resume is listed: {listed:?}"
    );
    assert!(listed.len() <= 2, "{listed:?}");
}
