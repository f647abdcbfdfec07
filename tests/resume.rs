//! Resume where it usually breaks: on another instance, after `kill -9`, after an
//! overflow, with an id that is too old or not ours, and the history's memory
//! budget. The Kafka tests need the broker (and DynamoDB, dynalite here, for /v4) of
//! `scripts/services.sh` (run with `--include-ignored` by scripts/test.sh).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::reports::Reports;
use common::{
    Binary, SseClient, TestServer, embedded, eventually, stalled_reader, unique, with_services,
};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use uuid::Uuid;

/// Publishes message `i` of a mixed run: every third one a broadcast.
async fn publish_mixed(server: &TestServer, user: &str, i: usize) -> String {
    let (path, text) = if i.is_multiple_of(3) {
        ("/v3/broadcast".to_owned(), format!("all-{i}"))
    } else {
        (format!("/v3/message?username={user}"), format!("own-{i}"))
    };
    let reply = server.post(&path, text.clone()).await;
    assert_eq!(reply.status(), 202, "{path}");
    text
}

/// Asserts that nothing more comes on a /v3 stream of `user`: a message to the
/// user and a broadcast sent now (they may sit in different partitions, and a
/// repeat comes before the marker of its own partition) are the next two events.
/// Returns the id of the last.
async fn expect_only_markers(server: &TestServer, client: &mut SseClient, user: &str) -> String {
    let own = server
        .post(&format!("/v3/message?username={user}"), "end-own")
        .await;
    assert_eq!(own.status(), 202);
    assert_eq!(server.post("/v3/broadcast", "end-all").await.status(), 202);
    let (first, second) = (client.next().await, client.next().await);
    assert_eq!(
        HashSet::from([first.data, second.data]),
        HashSet::from(["end-own".to_owned(), "end-all".to_owned()]),
        "events came before the markers"
    );
    second.id
}

/// Reads `n` events and returns their data, asserting each kind (own, broadcast)
/// arrives in the order sent (they may sit in different partitions, so only
/// each kind's order is defined) and nothing comes twice.
async fn read_mixed(client: &mut SseClient, expected: &[String]) -> String {
    let mut got = Vec::new();
    let mut last_id = String::new();
    for _ in 0..expected.len() {
        let event = client.next().await;
        assert_eq!(event.event, "message", "{event:?}");
        got.push(event.data);
        last_id = event.id;
    }
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "nothing twice: {got:?}");
    assert_eq!(
        unique,
        expected.iter().collect::<HashSet<_>>(),
        "exactly the missed messages"
    );
    for kind in ["own-", "all-"] {
        let sent: Vec<&String> = expected.iter().filter(|d| d.starts_with(kind)).collect();
        let received: Vec<&String> = got.iter().filter(|d| d.starts_with(kind)).collect();
        assert_eq!(received, sent, "{kind} messages in order");
    }
    last_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn v3_resumes_exactly_on_another_instance() {
    let config = with_services();
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config.clone()).await;
    // A user whose records sit in another partition than the broadcasts, so the
    // stream merges two partitions (the reply's id is `topic/partition/offset`).
    let partition = |reply: Value| {
        let id = reply["id"].as_str().expect("id").to_owned();
        id.rsplit('/').nth(1).expect("partition").to_owned()
    };
    let broadcasts = partition(
        a.post("/v3/broadcast", "probe")
            .await
            .json()
            .await
            .expect("JSON"),
    );
    let mut user = unique("resume");
    while partition(
        a.post(&format!("/v3/message?username={user}"), "probe")
            .await
            .json()
            .await
            .expect("JSON"),
    ) == broadcasts
    {
        user = unique("resume");
    }
    let stream = |s: &TestServer| s.url(&format!("/v3/sse?username={user}"));

    let mut on_a = SseClient::connect(&stream(&a)).await;
    // The probes may still be on their way: read up to a marker sent after them
    // in each partition.
    let own_marker = a
        .post(&format!("/v3/message?username={user}"), "marker-own")
        .await;
    assert_eq!(own_marker.status(), 202);
    assert_eq!(a.post("/v3/broadcast", "marker-all").await.status(), 202);
    let mut markers = HashSet::new();
    while markers.len() < 2 {
        let data = on_a.next().await.data;
        if data.starts_with("marker-") {
            markers.insert(data);
        }
    }
    let mut first = Vec::new();
    for i in 0..20 {
        first.push(publish_mixed(&a, &user, i).await);
    }
    let seen = read_mixed(&mut on_a, &first).await;
    println!("resuming on B from A's id {seen}");
    assert!(seen.contains('.'), "one offset per partition: {seen}");
    drop(on_a);

    let mut missed = Vec::new();
    for i in 20..40 {
        missed.push(publish_mixed(&b, &user, i).await);
    }
    let mut on_b = SseClient::connect_with(&stream(&b), Some(&seen)).await;
    read_mixed(&mut on_b, &missed).await;
    let last = expect_only_markers(&b, &mut on_b, &user).await;

    // The same event has the same id everywhere: B's last id resumes on A with
    // nothing to replay, and the next message arrives once.
    let mut back_on_a = SseClient::connect_with(&stream(&a), Some(&last)).await;
    let next = publish_mixed(&a, &user, 40).await;
    assert_eq!(back_on_a.next().await.data, next);
    expect_only_markers(&a, &mut back_on_a, &user).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn v4_resumes_exactly_on_another_instance() {
    let config = with_services();
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config.clone()).await;
    let user = Uuid::new_v4();
    let stream = |s: &TestServer| s.url(&format!("/v4/sse?user_id={user}"));
    let create = |s: &TestServer| {
        let reports = Reports::on(&s.base);
        async move { reports.create_id(user).await }
    };
    let put = |s: &TestServer, report: &str, status: &str| {
        let (reports, report, status) =
            (Reports::on(&s.base), report.to_owned(), status.to_owned());
        async move { reports.change(user, &report, &status).await }
    };

    let mut on_a = SseClient::connect(&stream(&a)).await;
    assert_eq!(on_a.next().await.event, "snapshot");
    let report = create(&a).await;
    assert_eq!(on_a.next().await.event, "new_report");
    put(&a, &report, "queued").await;
    let seen = on_a.next().await;
    assert!(seen.data.contains("queued"), "{seen:?}");
    drop(on_a);

    put(&b, &report, "processing").await;
    let mut watcher = SseClient::connect(&stream(&b)).await;
    watcher.next().await; // snapshot
    // Wait for each change to be applied before the next, so all are accepted.
    while !watcher.next().await.data.contains("processing") {}
    put(&b, &report, "completed").await;
    while !watcher.next().await.data.contains("completed") {}
    let second = create(&b).await;

    let mut on_b = SseClient::connect_with(&stream(&b), Some(&seen.id)).await;
    let expected = [
        ("report_status_update", "processing"),
        ("report_status_update", "completed"),
        ("new_report", second.as_str()),
    ];
    for (name, content) in expected {
        let event = on_b.next().await;
        assert_eq!(
            event.event, name,
            "no snapshot, exactly the missed: {event:?}"
        );
        assert!(event.data.contains(content), "{event:?}");
    }
    // Nothing more: a report created after is the next event.
    let marker = create(&b).await;
    let event = on_b.next().await;
    assert_eq!(event.event, "new_report", "{event:?}");
    assert!(event.data.contains(&marker), "{event:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/services.sh up (run by scripts/test.sh)"]
async fn v3_resumes_exactly_after_kill_9_and_a_restart() {
    let config = with_services();
    let brokers = config.kafka_brokers.clone().expect("brokers");
    let args = ["--kafka-brokers", &brokers, "--v3-topic", &config.v3_topic];
    let user = unique("killed");
    let stream = format!("/v3/sse?username={user}");
    let other = TestServer::start(config.clone()).await;

    let victim = Binary::start(&args).await;
    let mut client = SseClient::connect(&victim.url(&stream)).await;
    let mut first = Vec::new();
    for i in 0..6 {
        first.push(publish_mixed(&other, &user, i).await);
    }
    let seen = read_mixed(&mut client, &first).await;
    victim.kill_9().await;
    client.expect_end().await;

    let mut missed = Vec::new();
    for i in 6..16 {
        missed.push(publish_mixed(&other, &user, i).await);
    }
    let restarted = Binary::start(&args).await;
    let mut client = SseClient::connect_with(&restarted.url(&stream), Some(&seen)).await;
    read_mixed(&mut client, &missed).await;
    expect_only_markers(&other, &mut client, &user).await;
    other.stop().await;
}

/// Reads a raw HTTP/1.1 event stream until the server closes it, returning the
/// ids and data of the complete events in it.
async fn drain_raw(socket: &mut TcpStream) -> Vec<(String, String)> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(common::PATIENCE * 3, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the overflowing connection was not closed");
    // Chunked encoding: the chunk-size lines sit between whole events (each
    // chunk is one or more whole events), so they are dropped line by line.
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let mut events = Vec::new();
    // The last block may be cut short by the close: only whole events count.
    let whole = body.rsplit_once("\n\n").map_or("", |(whole, _)| whole);
    for block in whole.split("\n\n") {
        let mut id = None;
        let mut data = None;
        for line in block.split('\n') {
            let line = line.trim_end_matches('\r');
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(v.to_owned());
            }
        }
        if let (Some(id), Some(data)) = (id, data) {
            events.push((id, data));
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_closed_for_overflow_resumes_without_a_gap_with_default_flags() {
    const MESSAGES: usize = 1_700;
    let server = TestServer::start(embedded()).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = stalled_reader(&addr, "/v2/sse?username=slow").await;
    eventually("the stream to be registered", || async {
        server
            .metrics()
            .await
            .contains(r#"sse_open_streams{version="v2"} 1"#)
    })
    .await;
    // The reader reads nothing until it is closed, then takes what the socket
    // buffers held and resumes from the last whole event in it.
    let http = reqwest::Client::new();
    let url = server.url("/v2/message?username=slow");
    let body = |i: usize| format!("{i:05}:{}", "x".repeat(4090));
    let mut sent = Vec::new();
    for i in 0..MESSAGES {
        let reply = http.post(&url).body(body(i)).send().await.expect("POST");
        assert_eq!(reply.status(), 202);
        sent.push(body(i));
    }
    assert!(
        server
            .metrics()
            .await
            .contains(r#"sse_connections_closed_overflow_total{version="v2"} 1"#),
        "the reader was closed for overflow"
    );
    let received = drain_raw(&mut stalled).await;
    let (last_id, _) = received.last().cloned().expect("some events arrived first");
    println!(
        "{} of {MESSAGES} arrived before the overflow close; resuming from {last_id}",
        received.len()
    );
    // A replay longer than the connection's byte budget comes in parts: the stream
    // ends after each, and the client reconnects from the last id it got, as a
    // browser does.
    let mut all: Vec<String> = received.into_iter().map(|(_, d)| d).collect();
    let mut last_id = last_id;
    let mut parts = 0;
    while all.len() < MESSAGES {
        parts += 1;
        assert!(parts <= MESSAGES, "no progress");
        let mut again =
            SseClient::connect_with(&server.url("/v2/sse?username=slow"), Some(&last_id)).await;
        while all.len() < MESSAGES {
            let Some(event) = again.try_next().await else {
                break;
            };
            assert_ne!(event.event, "reset", "a gap: {}", event.data);
            last_id = event.id;
            all.push(event.data);
        }
    }
    println!("the rest came in {parts} part(s)");
    assert_eq!(all, sent, "every message once, in order");
    server.stop().await;
}

#[tokio::test]
async fn an_expired_or_garbage_id_gets_a_reset_then_live_events() {
    let mut config = embedded();
    config.history_window = Duration::from_millis(300);
    let server = TestServer::start(config).await;
    for version in ["v2", "v3"] {
        let stream = server.url(&format!("/{version}/sse?username=r"));
        let mut client = SseClient::connect(&stream).await;
        let reply = server
            .post(&format!("/{version}/message?username=r"), "old")
            .await;
        assert_eq!(reply.status(), 202);
        let old = client.next().await.id;
        drop(client);
        // Missed while away, and then dropped from the history by age.
        let reply = server
            .post(&format!("/{version}/message?username=r"), "missed")
            .await;
        assert_eq!(reply.status(), 202);

        let mut garbage = SseClient::connect_with(&stream, Some("no such id")).await;
        let reset = garbage.next().await;
        assert_eq!(reset.event, "reset");
        assert_eq!(
            serde_json::from_str::<Value>(&reset.data).expect("JSON"),
            json!({ "reason": "unknown_id", "lastEventId": "no such id" })
        );

        // Once the window has passed, what followed the old id is gone.
        let deadline = tokio::time::Instant::now() + common::PATIENCE;
        let (reset, mut client) = loop {
            let mut client = SseClient::connect_with(&stream, Some(&old)).await;
            // Within the window the replay starts with what was missed; past it, with
            // a reset.
            let first = client.next().await;
            if first.event == "reset" {
                break (first, client);
            }
            assert_eq!(first.data, "missed", "{first:?}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "the old id never expired"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            serde_json::from_str::<Value>(&reset.data).expect("JSON"),
            json!({ "reason": "history_expired", "lastEventId": old })
        );
        // Then live events.
        server
            .post(&format!("/{version}/message?username=r"), "new")
            .await;
        assert_eq!(client.next().await.data, "new");
        assert_eq!(garbage.next().await.data, "new");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_history_stays_within_its_memory_budget() {
    const USERS: usize = 10;
    const PER_USER: usize = 300;
    let server = Binary::start(&["--history-bytes", "16MiB"]).await;
    let start_rss = server.rss_bytes();
    // Streams that never read: their queues are bounded in bytes as well.
    let mut stalled = Vec::new();
    for user in 0..USERS {
        let addr = server.addr.to_string();
        stalled.push(stalled_reader(&addr, &format!("/v2/sse?username=u{user}")).await);
    }
    let http = reqwest::Client::new();
    let big = "m".repeat(64 * 1024 - 64);
    let mut peak = 0;
    for round in 0..PER_USER {
        for user in 0..USERS {
            let url = server.url(&format!("/v2/message?username=u{user}"));
            let reply = http
                .post(&url)
                .body(big.clone())
                .send()
                .await
                .expect("POST");
            assert_eq!(reply.status(), 202);
        }
        if round % 50 == 0 {
            peak = peak.max(server.rss_bytes());
        }
    }
    peak = peak.max(server.rss_bytes());
    let sent = USERS * PER_USER * big.len();
    println!(
        "{} MiB posted to {USERS} users: server RSS {} MiB at start, {} MiB at peak (history budget 16 MiB)",
        sent >> 20,
        start_rss >> 20,
        peak >> 20
    );
    assert!(
        peak < start_rss + 128 * 1024 * 1024,
        "RSS {} MiB grew far past the budgets",
        peak >> 20
    );
    server.kill_9().await;
}
