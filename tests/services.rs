//! Behaviour that only exists with the real services (dynalite for DynamoDB and the Kafka
//! broker from `scripts/services.sh`): several instances, restarts, re-delivery.
//! Run by scripts/test.sh with `--include-ignored`.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use common::reports::Reports;
use common::{SseClient, TestServer, with_services};
use serde_json::{Value, json};
use sse_server::bus::KafkaBus;
use sse_server::v4::report::Status;
use sse_server::v4::store::StatusChange;
use uuid::Uuid;

/// The next event that is not a (possibly late) `new_report`.
async fn next_change(client: &mut SseClient) -> eventsource_stream::Event {
    loop {
        let event = client.next().await;
        if event.event != "new_report" {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn a_change_made_through_one_instance_reaches_a_stream_on_another() {
    let config = with_services();
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let user = Uuid::new_v4();
    let report = Reports::on(&a.base).create_id(user).await;
    let mut on_b = SseClient::connect(&b.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(on_b.next().await.event, "snapshot");
    assert_eq!(
        Reports::on(&a.base).put(user, &report, "queued").await.0,
        202
    );
    let event = next_change(&mut on_b).await;
    assert_eq!(event.event, "report_status_update");
    assert_eq!(
        serde_json::from_str::<Value>(&event.data).expect("JSON"),
        json!({ "id": report, "status": "queued" })
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn reports_survive_a_server_restart() {
    let server = TestServer::start(with_services()).await;
    let user = Uuid::new_v4();
    let first = Reports::on(&server.base).create_id(user).await;
    let second = Reports::on(&server.base).create_id(user).await;
    server.stop().await;

    let server = TestServer::start(with_services()).await;
    let reports = Reports::on(&server.base).list(user).await;
    let ids: Vec<&str> = reports
        .iter()
        .map(|r| r["reportId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![first.as_str(), second.as_str()], "oldest first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn a_redelivered_command_is_applied_and_announced_once() {
    let config = with_services();
    let server = TestServer::start(config.clone()).await;
    let user = Uuid::new_v4();
    let report = Reports::on(&server.base).create_id(user).await;
    let mut stream = SseClient::connect(&server.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(stream.next().await.event, "snapshot");

    // What a consumer restarted before its commit sees: the same command twice.
    let command = StatusChange {
        command_id: Uuid::new_v4(),
        user_id: user,
        report_id: report.parse().expect("uuid"),
        from: Status::Pending,
        to: Status::Queued,
        expected_version: 1,
        requested_at: Utc::now(),
    };
    let bus = KafkaBus::new(
        config.kafka_brokers.as_deref().expect("brokers"),
        config.topics(),
    )
    .expect("bus");
    let payload = serde_json::to_vec(&command).expect("JSON");
    // The same command as a new record: a writer's re-delivery.
    let deliver = || async {
        let record = uuid::Uuid::new_v4().to_string();
        bus.publish(&config.v4_command_topic, Some(&report), &record, &payload)
            .await
            .expect("publish");
    };
    deliver().await;
    deliver().await;
    let first = next_change(&mut stream).await;
    assert_eq!(first.event, "report_status_update");
    assert!(first.data.contains("queued"));

    // A later change is the next event: the duplicate was not announced again.
    assert_eq!(
        Reports::on(&server.base)
            .put(user, &report, "processing")
            .await
            .0,
        202
    );
    let second = next_change(&mut stream).await;
    assert_eq!(second.event, "report_status_update");
    assert!(second.data.contains("processing"), "{}", second.data);

    // Re-delivered again after a later change was applied: not applied (the
    // report is no longer at the version it was validated against), not announced.
    deliver().await;
    assert_eq!(
        Reports::on(&server.base)
            .put(user, &report, "completed")
            .await
            .0,
        202
    );
    let third = next_change(&mut stream).await;
    assert_eq!(third.event, "report_status_update");
    assert!(third.data.contains("completed"), "{}", third.data);

    // Written once each: created (1) + three changes.
    let client =
        sse_server::v4::dynamodb::client(config.dynamodb_endpoint.as_deref().expect("endpoint"))
            .await;
    let item = client
        .get_item()
        .table_name(&config.table)
        .key("report_id", AttributeValue::S(report.clone()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let version = item
        .item()
        .and_then(|i| i.get("version"))
        .and_then(|v| v.as_n().ok())
        .cloned();
    assert_eq!(version.as_deref(), Some("4"));
    server.stop().await;
}
