//! /v4 through the HTTP API, the same suite over the embedded default and over
//! DynamoDB (dynalite) + the Kafka broker (`--include-ignored`, run by scripts/test.sh).

mod common;

use common::reports::Reports;
use common::{PATIENCE, SseClient, TestServer, embedded, with_services};
use futures_util::future::join_all;
use serde_json::{Value, json};
use sse_server::config::Config;
use uuid::Uuid;

const STATUSES: [&str; 6] = [
    "pending",
    "queued",
    "processing",
    "canceled",
    "failed",
    "completed",
];

const VALID: [(&str, &str); 8] = [
    ("pending", "queued"),
    ("pending", "canceled"),
    ("queued", "processing"),
    ("queued", "canceled"),
    ("processing", "completed"),
    ("processing", "failed"),
    ("failed", "pending"),
    ("canceled", "pending"),
];

/// Valid moves from `pending` to each status.
fn path_to(status: &str) -> &'static [&'static str] {
    match status {
        "pending" => &[],
        "queued" => &["queued"],
        "processing" => &["queued", "processing"],
        "canceled" => &["canceled"],
        "failed" => &["queued", "processing", "failed"],
        "completed" => &["queued", "processing", "completed"],
        other => panic!("no path to {other}"),
    }
}

/// Every (from, to) pair: 8 accepted and stored, 28 refused with 409 and not stored.
async fn all_36_transitions(server: &TestServer) {
    let api = Reports::on(&server.base);
    let user = Uuid::new_v4();
    let pairs = STATUSES
        .iter()
        .flat_map(|from| STATUSES.iter().map(move |to| (*from, *to)));
    let checks = pairs.map(|(from, to)| {
        let api = &api;
        async move {
            let report = api.create(user).await;
            let id = report["reportId"].as_str().expect("id").to_owned();
            for step in path_to(from) {
                api.move_to(user, &id, step).await;
            }
            let (code, body) = api.put(user, &id, to).await;
            if VALID.contains(&(from, to)) {
                assert_eq!(code, 202, "{from} -> {to}: {body}");
                common::eventually(&format!("{from} -> {to} stored"), || async {
                    api.status_of(user, &id).await == to
                })
                .await;
                1
            } else {
                assert_eq!(code, 409, "{from} -> {to}: {body}");
                assert_eq!(body["current"], from, "{body}");
                let error = body["error"].as_str().expect("error sentence");
                assert!(error.contains(from), "{error}");
                assert_eq!(
                    api.status_of(user, &id).await,
                    from,
                    "{from} -> {to} not stored"
                );
                0
            }
        }
    });
    let accepted: i32 = join_all(checks).await.into_iter().sum();
    assert_eq!(accepted, 8);
    assert_eq!(api.list(user).await.len(), 36);
}

async fn errors(server: &TestServer) {
    let api = Reports::on(&server.base);
    let user = Uuid::new_v4();
    let report = api.create(user).await;
    let id = report["reportId"].as_str().expect("id");
    let http = reqwest::Client::new();
    let put = |query: String, body: String| {
        http.put(server.url(&format!("/v4/report{query}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let ok_query = format!("?user_id={user}");
    let cases = [
        (put(ok_query.clone(), "not json".into()).await, 400),
        (
            put(
                ok_query.clone(),
                r#"{"id": "x", "status": "queued"}"#.into(),
            )
            .await,
            400,
        ),
        (
            put(
                ok_query.clone(),
                format!(r#"{{"id": "{id}", "status": "done"}}"#),
            )
            .await,
            400,
        ),
        (
            put(ok_query.clone(), format!(r#"{{"id": "{id}"}}"#)).await,
            400,
        ),
        (
            put(
                "?user_id=nope".into(),
                format!(r#"{{"id": "{id}", "status": "queued"}}"#),
            )
            .await,
            400,
        ),
        (
            put(
                String::new(),
                format!(r#"{{"id": "{id}", "status": "queued"}}"#),
            )
            .await,
            400,
        ),
        (
            put(
                ok_query.clone(),
                format!(r#"{{"id": "{}", "status": "queued"}}"#, Uuid::new_v4()),
            )
            .await,
            404,
        ),
        (
            put(
                format!("?user_id={}", Uuid::new_v4()),
                format!(r#"{{"id": "{id}", "status": "queued"}}"#),
            )
            .await,
            403,
        ),
        (
            put(
                ok_query.clone(),
                format!(r#"{{"id": "{id}", "status": "completed"}}"#),
            )
            .await,
            409,
        ),
        (
            http.post(server.url("/v4/new/report?user_id=bad"))
                .send()
                .await,
            400,
        ),
        (http.post(server.url("/v4/new/report")).send().await, 400),
        (
            http.get(server.url("/v4/reports?user_id=bad")).send().await,
            400,
        ),
        (
            http.get(server.url("/v4/sse?user_id=bad")).send().await,
            400,
        ),
        (http.get(server.url("/v4/report")).send().await, 405),
    ];
    for (response, expected) in cases {
        let response = response.expect("response");
        assert_eq!(response.status().as_u16(), expected, "{}", response.url());
        let body: Value = response.json().await.expect("JSON error");
        assert!(
            body["error"].as_str().is_some_and(|e| e.len() > 10),
            "{body}"
        );
    }
    let (code, body) = api.put(user, id, "completed").await;
    assert_eq!(code, 409);
    assert_eq!(body["allowed"], json!(["queued", "canceled"]));
    assert_eq!(api.status_of(user, id).await, "pending", "nothing written");
}

/// The stream: `snapshot` first, then live events of every kind.
async fn live_events(server: &TestServer) {
    let api = Reports::on(&server.base);
    let user = Uuid::new_v4();
    let url = server.url(&format!("/v4/sse?user_id={user}"));
    // Wait until the announcement of the first report has gone by, so that the
    // tabs below see it in their snapshot only.
    let mut watcher = SseClient::connect(&url).await;
    assert_eq!(watcher.next().await.data, "[]", "an empty snapshot");
    let existing = api.create(user).await;
    assert_eq!(watcher.next().await.event, "new_report");
    let mut tab1 = SseClient::connect(&url).await;
    let mut tab2 = SseClient::connect(&url).await;
    for tab in [&mut tab1, &mut tab2] {
        let snapshot = tab.next().await;
        assert_eq!(snapshot.event, "snapshot");
        let reports: Vec<Value> = serde_json::from_str(&snapshot.data).expect("JSON");
        assert_eq!(reports, vec![existing.clone()]);
    }
    let created = api.create(user).await;
    let id = created["reportId"].as_str().expect("id");
    for tab in [&mut tab1, &mut tab2] {
        let event = tab.next().await;
        assert_eq!(event.event, "new_report");
        assert_eq!(
            serde_json::from_str::<Value>(&event.data).expect("JSON"),
            created
        );
    }
    let (code, _) = api.put(user, id, "queued").await;
    assert_eq!(code, 202);
    let mut last_id = String::new();
    for tab in [&mut tab1, &mut tab2] {
        let event = tab.next().await;
        assert_eq!(event.event, "report_status_update");
        assert_eq!(
            serde_json::from_str::<Value>(&event.data).expect("JSON"),
            json!({ "id": id, "status": "queued" })
        );
        assert!(!event.id.is_empty());
        last_id = event.id;
    }
    // Exact resume: only what it missed, no snapshot.
    drop(tab1);
    api.move_to(user, id, "processing").await;
    let mut back = SseClient::connect_with(&url, Some(&last_id)).await;
    let missed = back.next().await;
    assert_eq!(missed.event, "report_status_update");
    assert!(missed.data.contains("processing"));
    // An id that is not one of ours: `reset`, then the snapshot to re-sync from.
    let mut lost = SseClient::connect_with(&url, Some("not-an-id")).await;
    let reset = lost.next().await;
    assert_eq!(reset.event, "reset");
    assert_eq!(
        serde_json::from_str::<Value>(&reset.data).expect("JSON"),
        json!({ "reason": "unknown_id", "lastEventId": "not-an-id" })
    );
    let snapshot = lost.next().await;
    assert_eq!(snapshot.event, "snapshot");
    assert!(snapshot.data.contains("processing"));
    // A client that has only the snapshot resumes from its id exactly.
    drop(lost);
    api.move_to(user, id, "completed").await;
    let mut again = SseClient::connect_with(&url, Some(&snapshot.id)).await;
    let missed = again.next().await;
    assert_eq!(missed.event, "report_status_update");
    assert!(missed.data.contains("completed"));
}

/// Two conflicting changes sent at once: exactly one is stored, the other is
/// refused (409 up front, or `report_status_rejected` from the writer).
async fn concurrent_conflict(server: &TestServer) {
    let api = Reports::on(&server.base);
    let user = Uuid::new_v4();
    let report = api.create(user).await;
    let id = report["reportId"].as_str().expect("id");
    api.move_to(user, id, "queued").await;
    let mut stream = SseClient::connect(&server.url(&format!("/v4/sse?user_id={user}"))).await;
    assert_eq!(stream.next().await.event, "snapshot");

    let (a, b) = tokio::join!(
        api.put(user, id, "processing"),
        api.put(user, id, "canceled")
    );
    let accepted = [a.0, b.0].iter().filter(|c| **c == 202).count();
    assert!(accepted >= 1, "{a:?} {b:?}");
    assert!(
        [a.0, b.0].iter().all(|c| *c == 202 || *c == 409),
        "{a:?} {b:?}"
    );
    let mut updates = Vec::new();
    let mut rejections = 0;
    while updates.len() + rejections < accepted {
        let event = stream.next().await;
        match event.event.as_str() {
            // The move to `queued` above may be announced after we connected.
            "report_status_update" if event.data.contains("queued") => {}
            "report_status_update" => updates.push(event.data),
            "report_status_rejected" => {
                assert!(event.data.contains("reason"), "{}", event.data);
                rejections += 1
            }
            // The report's own announcement may still be on its way.
            "new_report" => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(updates.len(), 1, "exactly one change applied");
    let stored = api.status_of(user, id).await;
    assert!(updates[0].contains(&stored), "{stored} vs {updates:?}");
    assert!(stored == "processing" || stored == "canceled");
}

/// `--max-reports-per-user` of [`small_limits`].
const MAX_REPORTS: usize = 3;
/// `--queue-bytes` of [`small_limits`]: a snapshot of one report fits (about 260
/// bytes, with the ~80-byte notice), not of two or three.
const QUEUE_BYTES: usize = 450;

fn small_limits(config: Config) -> Config {
    Config {
        max_reports_per_user: MAX_REPORTS as u64,
        queue_bytes: bytesize::ByteSize::b(QUEUE_BYTES as u64),
        ..config
    }
}

/// The size of an event on the wire (one `data:` line, as a snapshot has).
fn wire_size(event: &eventsource_stream::Event) -> usize {
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.id, event.event, event.data
    )
    .len()
}

/// Past `--max-reports-per-user` a create is refused with 409, the limit and a
/// sentence, also when the creates come all at once; the snapshot holds the newest
/// reports that fit the byte budget and a `snapshot_truncated` event says how many
/// are left out, which `GET /v4/reports` has.
async fn limits(server: &TestServer) {
    let api = Reports::on(&server.base);
    let http = reqwest::Client::new();
    let user = Uuid::new_v4();
    let create_url = server.url(&format!("/v4/new/report?user_id={user}"));
    let replies = join_all((0..MAX_REPORTS * 2).map(|_| http.post(&create_url).send())).await;
    let mut created = 0;
    for reply in replies {
        let reply = reply.expect("create");
        match reply.status().as_u16() {
            201 => created += 1,
            409 => {
                let body: Value = reply.json().await.expect("a JSON error");
                assert_eq!(body["limit"], MAX_REPORTS, "{body}");
                let error = body["error"].as_str().expect("error");
                assert!(
                    error.contains(&format!("at most {MAX_REPORTS} per user"))
                        && error.contains("--max-reports-per-user"),
                    "{error}"
                );
            }
            other => panic!("create answered {other}"),
        }
    }
    // One instance: a user's creates take turns, so the limit is exact.
    assert_eq!(created, MAX_REPORTS);
    let listed = api.list(user).await;
    assert_eq!(listed.len(), MAX_REPORTS);
    let refused = http.post(&create_url).send().await.expect("create");
    assert_eq!(refused.status(), 409);
    assert_eq!(api.list(user).await.len(), MAX_REPORTS, "nothing stored");

    let url = server.url(&format!("/v4/sse?user_id={user}"));
    let mut stream = SseClient::connect(&url).await;
    let snapshot = stream.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let sent: Vec<Value> = serde_json::from_str(&snapshot.data).expect("JSON array");
    assert!(
        !sent.is_empty() && sent.len() < MAX_REPORTS,
        "{} of {MAX_REPORTS} sent",
        sent.len()
    );
    assert_eq!(
        sent,
        listed[MAX_REPORTS - sent.len()..],
        "the newest by createdAt, in list order"
    );
    let notice = stream.next().await;
    assert_eq!(notice.event, "snapshot_truncated");
    assert_eq!(
        serde_json::from_str::<Value>(&notice.data).expect("JSON"),
        json!({ "total": MAX_REPORTS, "sent": sent.len() })
    );
    assert_eq!(notice.id, snapshot.id);
    let size = wire_size(&snapshot) + wire_size(&notice);
    assert!(size <= QUEUE_BYTES, "{size} bytes");
    // Live events follow as usual.
    let id = listed[0]["reportId"].as_str().expect("id");
    let (code, _) = api.put(user, id, "queued").await;
    assert_eq!(code, 202);
    loop {
        let event = stream.next().await;
        match event.event.as_str() {
            // The announcements of the creates may still be on their way.
            "new_report" => {}
            "report_status_update" => {
                assert!(event.data.contains("queued"), "{}", event.data);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }

    // A snapshot that fits is sent whole, with no notice.
    let small = Uuid::new_v4();
    let only = api.create(small).await;
    let mut stream = SseClient::connect(&server.url(&format!("/v4/sse?user_id={small}"))).await;
    let snapshot = stream.next().await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(
        serde_json::from_str::<Value>(&snapshot.data).expect("JSON"),
        json!([only])
    );
    let next = api.create(small).await;
    loop {
        let event = stream.next().await;
        assert_eq!(event.event, "new_report", "no snapshot_truncated");
        if serde_json::from_str::<Value>(&event.data).expect("JSON") == next {
            break;
        }
    }
}

async fn suite(config: Config) {
    let server = TestServer::start(config).await;
    tokio::time::timeout(PATIENCE * 6, async {
        errors(&server).await;
        live_events(&server).await;
        concurrent_conflict(&server).await;
        all_36_transitions(&server).await;
    })
    .await
    .expect("the v4 suite finished in time");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_over_the_embedded_default() {
    suite(embedded()).await;
}

async fn limits_suite(config: Config) {
    let server = TestServer::start(small_limits(config)).await;
    tokio::time::timeout(PATIENCE * 3, limits(&server))
        .await
        .expect("the limits finished in time");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_limits_over_the_embedded_default() {
    limits_suite(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn v4_limits_over_dynamodb_and_kafka() {
    limits_suite(with_services()).await;
}

/// Reports past a lowered limit (or past the limit by concurrent creates on several
/// instances) stay stored but are never listed: `GET /v4/reports` and the snapshot
/// hold the newest `--max-reports-per-user`. DynamoDB only: the memory store does
/// not outlive its server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn v4_a_lowered_limit_bounds_the_list_over_dynamodb() {
    let config = with_services();
    let user = Uuid::new_v4();
    let first = TestServer::start(config.clone()).await;
    let api = Reports::on(&first.base);
    let mut created = Vec::new();
    for _ in 0..4 {
        created.push(api.create(user).await);
    }
    first.stop().await;
    let lowered = TestServer::start(Config {
        max_reports_per_user: 2,
        ..config
    })
    .await;
    let api = Reports::on(&lowered.base);
    assert_eq!(api.list(user).await, created[2..], "the newest two");
    let mut stream = SseClient::connect(&lowered.url(&format!("/v4/sse?user_id={user}"))).await;
    let snapshot = stream.next().await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&snapshot.data).expect("JSON"),
        created[2..]
    );
    let refused = reqwest::Client::new()
        .post(lowered.url(&format!("/v4/new/report?user_id={user}")))
        .send()
        .await
        .expect("create");
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(
        (body["limit"].clone(), body["count"].clone()),
        (json!(2), json!(4))
    );
    lowered.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn v4_over_dynamodb_and_kafka() {
    suite(with_services()).await;
}
