//! /v4's delivery promise against Apache Kafka and dynalite (DynamoDB): every
//! accepted change is applied and announced exactly once, through a kill -9 of the
//! instance that accepted it, bad records and unreadable items on the command
//! topic, late re-deliveries, and a reader that dies (`--include-ignored`, run by
//! scripts/test.sh).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::reports::Reports;
use common::{Binary, PATIENCE, SseClient, TestServer, eventually, unique, with_services};
use serde_json::{Value, json};
use sse_server::bus::KafkaBus;
use sse_server::config::Config;
use uuid::Uuid;

/// Longer than the sweeper's deadline (4 s) plus a sweep: time enough for any
/// duplicate or late outcome to show up.
const SETTLE: Duration = Duration::from_secs(7);

/// The flags that make the binary use the same services, topics and writers group
/// as in-process servers started from `config`.
fn flags(config: &Config) -> Vec<String> {
    [
        ("--kafka-brokers", config.kafka_brokers.clone()),
        ("--dynamodb-endpoint", config.dynamodb_endpoint.clone()),
        ("--v3-topic", Some(config.v3_topic.clone())),
        ("--v4-command-topic", Some(config.v4_command_topic.clone())),
        ("--v4-event-topic", Some(config.v4_event_topic.clone())),
        ("--v4-writers-group", Some(config.v4_writers_group.clone())),
    ]
    .into_iter()
    .filter_map(|(flag, value)| Some([flag.to_owned(), value?]))
    .flatten()
    .collect()
}

/// The next status event (update or rejection) on a /v4 stream, as
/// (event name, report id, data); snapshots and new reports are passed over.
async fn next_outcome(client: &mut SseClient) -> (String, String, Value) {
    loop {
        let event = client.next().await;
        if event.event == "report_status_update" || event.event == "report_status_rejected" {
            let data: Value = serde_json::from_str(&event.data).expect("event JSON");
            let id = data["id"].as_str().expect("id").to_owned();
            return (event.event, id, data);
        }
    }
}

/// Asserts that no status event comes, however late: after `wait`, a report
/// created and queued through `base` is the next outcome on `client`, so an
/// outcome announced before it, in or after the wait, fails here. Returns that
/// report's id.
async fn expect_no_outcome(
    base: &str,
    user: Uuid,
    client: &mut SseClient,
    wait: Duration,
) -> String {
    tokio::time::sleep(wait).await;
    let marker = Reports::on(base).create_id(user).await;
    Reports::on(base).change(user, &marker, "queued").await;
    let (name, id, data) = next_outcome(client).await;
    assert_eq!(
        (name.as_str(), id.as_str()),
        ("report_status_update", marker.as_str()),
        "an outcome came before the marker's: {data}"
    );
    marker
}

/// A command as the server puts it on the command topic.
fn command(user: Uuid, report: &str, from: &str, to: &str, version: u64) -> Value {
    json!({
        "commandId": Uuid::new_v4(),
        "userId": user,
        "reportId": report,
        "from": from,
        "to": to,
        "expectedVersion": version,
        "requestedAt": chrono::Utc::now(),
    })
}

/// Writes records to the command topic directly, keyed by `key` (so they share
/// its partition).
async fn produce(config: &Config, key: &str, payloads: &[Vec<u8>]) {
    let bus = KafkaBus::new(
        config.kafka_brokers.as_deref().expect("brokers"),
        config.topics(),
    )
    .expect("producer");
    for payload in payloads {
        bus.publish(
            &config.v4_command_topic,
            Some(key),
            &uuid::Uuid::new_v4().to_string(),
            payload,
        )
        .await
        .expect("produce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn kill_9_after_the_last_202_loses_no_change_and_repeats_none() {
    const N: usize = 30;
    let config = with_services();
    let args = flags(&config);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The victim and the survivor share the writers group; the survivor's stream
    // shows what every instance announces.
    let victim = Binary::start(&args).await;
    let survivor = Binary::start(&args).await;
    let user = Uuid::new_v4();
    let mut reports = Vec::new();
    for _ in 0..N {
        reports.push(Reports::on(&survivor.base).create_id(user).await);
    }
    let mut stream = SseClient::connect(&survivor.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(stream.next().await.event, "snapshot");

    for report in &reports {
        Reports::on(&victim.base)
            .change(user, report, "queued")
            .await;
    }
    victim.kill_9().await;
    let killed = Instant::now();

    let mut updates: HashMap<String, usize> = HashMap::new();
    let mut rejections = Vec::new();
    let mut last_outcome = Duration::ZERO;
    let deadline = Instant::now() + PATIENCE * 3;
    while updates.len() < N && Instant::now() < deadline {
        let (name, id, data) = next_outcome(&mut stream).await;
        last_outcome = killed.elapsed();
        if name == "report_status_update" {
            assert_eq!(data["status"], "queued");
            *updates.entry(id).or_default() += 1;
        } else {
            rejections.push(data);
        }
    }
    let marker = expect_no_outcome(&survivor.base, user, &mut stream, SETTLE).await;
    let once = reports
        .iter()
        .filter(|r| updates.get(*r) == Some(&1))
        .count();
    let metrics = reqwest::get(survivor.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let swept = metrics
        .lines()
        .find_map(|l| l.strip_prefix("v4_commands_swept_total "))
        .unwrap_or("0");
    println!(
        "kill -9 after {N} accepted changes: {once} of {N} applied and announced exactly once; \
         last outcome {last_outcome:.1?} after the kill; {swept} settled by the survivor's sweeper"
    );
    assert!(rejections.is_empty(), "rejected: {rejections:?}");
    assert_eq!(once, N, "updates per report: {updates:?}");
    let listed: Vec<Value> = reqwest::get(survivor.url(&format!("/v4/reports?user_id={user}")))
        .await
        .expect("list")
        .json()
        .await
        .expect("list JSON");
    let listed: Vec<Value> = listed
        .into_iter()
        .filter(|r| r["reportId"] != marker.as_str())
        .collect();
    assert_eq!(listed.len(), N);
    assert!(
        listed.iter().all(|r| r["reportStatus"] == "queued"),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn records_that_can_never_apply_are_passed_and_later_changes_apply_at_once() {
    let config = with_services();
    let server = TestServer::start(config.clone()).await;
    let user = Uuid::new_v4();
    let good = Reports::on(&server.base).create_id(user).await;

    // An item this server cannot read, written by another client.
    let unreadable = Uuid::new_v4().to_string();
    let dynamodb =
        sse_server::v4::dynamodb::client(config.dynamodb_endpoint.as_deref().expect("endpoint"))
            .await;
    dynamodb
        .put_item()
        .table_name(&config.table)
        .item("report_id", AttributeValue::S(unreadable.clone()))
        .item("user_id", AttributeValue::S(user.to_string()))
        .item("status", AttributeValue::S("half-done".into()))
        .item("version", AttributeValue::S("one".into()))
        .send()
        .await
        .expect("PutItem of an unreadable item");

    let mut stream = SseClient::connect(&server.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(stream.next().await.event, "snapshot");
    let missing = Uuid::new_v4().to_string();
    let mut unknown_status = command(user, &good, "pending", "queued", 1);
    unknown_status["to"] = json!("done");
    // All on the good report's partition, ahead of its change.
    produce(
        &config,
        &good,
        &[
            b"not json at all".to_vec(),
            br#"{"wrong": "shape"}"#.to_vec(),
            unknown_status.to_string().into_bytes(),
            command(user, &missing, "pending", "queued", 1)
                .to_string()
                .into_bytes(),
            command(user, &unreadable, "pending", "queued", 1)
                .to_string()
                .into_bytes(),
        ],
    )
    .await;
    Reports::on(&server.base)
        .change(user, &good, "queued")
        .await;

    let (name, id, data) = next_outcome(&mut stream).await;
    assert_eq!(
        (name.as_str(), id.as_str()),
        ("report_status_rejected", missing.as_str())
    );
    assert!(
        data["reason"]
            .as_str()
            .expect("reason")
            .contains("does not exist")
    );
    let (name, id, data) = next_outcome(&mut stream).await;
    assert_eq!(
        (name.as_str(), id.as_str()),
        ("report_status_rejected", unreadable.as_str())
    );
    let reason = data["reason"].as_str().expect("reason");
    assert!(reason.contains("unreadable_item"), "{reason}");
    let (name, id, data) = next_outcome(&mut stream).await;
    assert_eq!(
        (name.as_str(), id.as_str()),
        ("report_status_update", good.as_str())
    );
    assert_eq!(data["status"], "queued");
    expect_no_outcome(&server.base, user, &mut stream, SETTLE).await;

    let metrics = server.metrics().await;
    // Records that are not commands are skipped as malformed, not announced, so
    // not counted as rejected: each outcome is counted once.
    let malformed = format!(
        r#"kafka_records_malformed_total{{topic="{}"}} 3"#,
        config.v4_command_topic
    );
    for line in [
        malformed.as_str(),
        r#"v4_commands_rejected_total{reason="missing_report"} 1"#,
        r#"v4_commands_rejected_total{reason="unreadable_item"} 1"#,
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn a_command_delivered_again_much_later_is_neither_rejected_nor_repeated() {
    let config = with_services();
    let first = TestServer::start(config.clone()).await;
    let user = Uuid::new_v4();
    let report = Reports::on(&first.base).create_id(user).await;
    let mut stream = SseClient::connect(&first.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(stream.next().await.event, "snapshot");
    let queued = Reports::on(&first.base)
        .change(user, &report, "queued")
        .await;
    assert_eq!(next_outcome(&mut stream).await.2["status"], "queued");
    Reports::on(&first.base)
        .change(user, &report, "processing")
        .await;
    assert_eq!(next_outcome(&mut stream).await.2["status"], "processing");
    drop(stream);
    first.stop().await;

    // An instance that never saw any of it: it keeps no history at all.
    let later = TestServer::start(Config {
        history_window: Duration::ZERO,
        ..config.clone()
    })
    .await;
    let mut stream = SseClient::connect(&later.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(stream.next().await.event, "snapshot");
    let mut again = command(user, &report, "pending", "queued", 1);
    again["commandId"] = json!(queued);
    produce(&config, &report, &[again.to_string().into_bytes()]).await;
    Reports::on(&later.base)
        .change(user, &report, "completed")
        .await;
    let (name, _, data) = next_outcome(&mut stream).await;
    assert_eq!(name, "report_status_update");
    assert_eq!(
        data["status"], "completed",
        "the re-delivery was announced: {data}"
    );
    // The sweeper has seen the re-delivered command without an outcome too.
    expect_no_outcome(&later.base, user, &mut stream, SETTLE).await;
    later.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn a_reader_that_panics_is_restarted_and_not_ready_meanwhile() {
    let config = with_services();
    let args = flags(&config);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let trigger = unique("panic-here");
    let server = Binary::start_with_env(&args, &[("SSE_TEST_PANIC_ONCE", trigger.as_str())]).await;
    let user = unique("supervised");
    let mut stream = SseClient::connect(&server.url(&format!("/v3/sse?username={user}"))).await;
    let post = |body: String| {
        let url = server.url(&format!("/v3/message?username={user}"));
        async move {
            let reply = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .expect("POST");
            assert_eq!(reply.status(), 202);
        }
    };
    post("before".into()).await;
    assert_eq!(stream.next().await.data, "before");

    post(trigger.clone()).await;
    let ready = server.url("/readyz");
    let deadline = Instant::now() + PATIENCE;
    let why = loop {
        assert!(
            Instant::now() < deadline,
            "/readyz never said the reader is down"
        );
        if let Ok(reply) = reqwest::get(&ready).await
            && reply.status() == 503
        {
            let why = reply.text().await.unwrap_or_default();
            if why.contains("down") {
                break why;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(why.contains(&config.v3_topic), "{why}");

    // Restarted where it stopped: the record it died on, once, then what follows.
    assert_eq!(stream.next().await.data, trigger);
    post("after".into()).await;
    assert_eq!(stream.next().await.data, "after");
    eventually("/readyz to be 200 again", || async {
        matches!(reqwest::get(&ready).await, Ok(r) if r.status() == 200)
    })
    .await;
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(
        metrics.contains(&format!(
            "kafka_consumer_lag{{topic=\"{}\"}}",
            config.v3_topic
        )),
        "{metrics}"
    );
    post("marker".into()).await;
    stream.expect_marker("marker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn commands_a_hung_writer_holds_are_settled_by_the_sweeper() {
    use rdkafka::consumer::{Consumer, StreamConsumer};

    const N: usize = 30;
    let config = with_services();
    let server = TestServer::start(config.clone()).await;
    // A member of the writers group that reads its partitions but never applies
    // anything: a hung writer, which no broker evicts while it heartbeats.
    let hung: StreamConsumer = rdkafka::ClientConfig::new()
        .set(
            "bootstrap.servers",
            config.kafka_brokers.as_deref().expect("brokers"),
        )
        .set("group.id", &config.v4_writers_group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    hung.subscribe(&[&config.v4_command_topic])
        .expect("subscribe");
    let hung = std::sync::Arc::new(hung);
    let reader = hung.clone();
    let hung_task = tokio::spawn(async move {
        loop {
            let _ = reader.recv().await;
        }
    });
    eventually("the hung writer to hold a partition", || async {
        hung.assignment().is_ok_and(|a| a.count() > 0)
    })
    .await;

    let user = Uuid::new_v4();
    let mut reports = Vec::new();
    for _ in 0..N {
        reports.push(Reports::on(&server.base).create_id(user).await);
    }
    let mut stream = SseClient::connect(&server.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(stream.next().await.event, "snapshot");
    let mut accepted = HashMap::new();
    for report in &reports {
        Reports::on(&server.base)
            .change(user, report, "queued")
            .await;
        accepted.insert(report.clone(), Instant::now());
    }
    let mut updates: HashMap<String, usize> = HashMap::new();
    let mut slowest = Duration::ZERO;
    while updates.len() < N {
        let (name, id, data) = next_outcome(&mut stream).await;
        assert_eq!(name, "report_status_update", "{data}");
        slowest = slowest.max(accepted[&id].elapsed());
        *updates.entry(id).or_default() += 1;
    }
    expect_no_outcome(&server.base, user, &mut stream, SETTLE).await;
    assert!(updates.values().all(|&n| n == 1), "{updates:?}");
    let metrics = server.metrics().await;
    let swept: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("v4_commands_swept_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    println!(
        "hung writer holding {} partition(s): {N} of {N} announced once, {swept} settled by the \
         sweeper, slowest {slowest:.1?} after its 202",
        hung.assignment().map_or(0, |a| a.count())
    );
    assert!(
        swept > 0,
        "the hung writer's commands were settled by the sweeper"
    );
    hung_task.abort();
    server.stop().await;
}
