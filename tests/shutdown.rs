//! SIGTERM with open streams, on the real binary: the drain (src/drain.rs). Readiness
//! answers 503 at once, every request is still served for `--drain-grace` (HTTP/1.1
//! answers say `Connection: close`), then the streams end with a short random
//! `retry:` and the process exits; a second signal cuts the grace short.

mod common;

use std::time::{Duration, Instant};

use common::Binary;
use futures_util::StreamExt;
use serde_json::Value;

/// The grace these tests ask for, far from the 10 s default: a test that passes
/// with the flag ignored is impossible.
const GRACE: Duration = Duration::from_secs(2);

fn signal(server: &Binary, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} failed");
}

/// Waits (at most a second) for `/readyz` to answer 503; returns its body.
async fn draining(server: &Binary) -> Value {
    for _ in 0..50 {
        let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
        if ready.status() == 503 {
            return ready.json().await.expect("JSON");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz did not answer 503 within a second of SIGTERM");
}

/// A stream's raw body, read in the background until the server ends it. Raw,
/// because an event parser drops a block that holds only `retry:`.
fn raw_stream(url: String) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let response = reqwest::get(&url).await.expect("connect");
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        let mut text = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
        text
    })
}

/// Waits until one stream of each of `versions` is open.
async fn streams_open(server: &Binary, versions: &[&str]) {
    common::eventually("the streams to be open", || async {
        let metrics = reqwest::get(server.url("/metrics")).await.expect("metrics");
        let text = metrics.text().await.expect("text");
        versions
            .iter()
            .all(|v| text.contains(&format!("sse_open_streams{{version=\"{v}\"}} 1")))
    })
    .await;
}

/// The stream's last block: a `retry:` of 0.5-3 s.
fn assert_ends_with_a_short_retry(text: &str) {
    let last = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
    let ms: u64 = last
        .strip_prefix("retry: ")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("the stream's last block is a retry, not {last:?} in {text:?}"));
    assert!((500..3_000).contains(&ms), "{ms} ms");
}

#[tokio::test]
async fn sigterm_drains_for_the_grace_then_ends_streams_with_a_short_retry_and_exits() {
    let server = Binary::start(&["--drain-grace", "2s"]).await;
    let v1 = raw_stream(server.url("/v1/sse?username=a"));
    let v2 = raw_stream(server.url("/v2/sse?username=a"));
    streams_open(&server, &["v1", "v2"]).await;

    let started = Instant::now();
    signal(&server, "TERM");
    // Readiness says it as soon as the signal is handled (not from its
    // one-second cache).
    let body = draining(&server).await;
    assert_eq!(body["service"], "server", "{body}");

    // Still serving: a message is taken and delivered, and its answer closes the
    // connection so a proxy stops reusing it.
    let posted = reqwest::Client::new()
        .post(server.url("/v2/message?username=a"))
        .body("during the drain")
        .send()
        .await
        .expect("a POST during the drain is answered");
    let answered_within_grace = started.elapsed() < GRACE;
    assert_eq!(posted.status(), 202);
    assert_eq!(
        posted.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert!(answered_within_grace, "the POST was sent within the grace");

    // Then every stream ends, its last bytes a retry of 0.5-3 s.
    let v2 = v2.await.expect("v2 reader");
    let ended = started.elapsed();
    let v1 = v1.await.expect("v1 reader");
    assert!(v2.contains("data: during the drain\n\n"), "{v2}");
    assert_ends_with_a_short_retry(&v1);
    assert_ends_with_a_short_retry(&v2);
    assert!(ended >= GRACE, "the streams lasted the grace: {ended:?}");
    let status = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("the server exits")
        .expect("wait");
    let exited = started.elapsed();
    println!("streams ended {ended:?}, exited {status} {exited:?} after SIGTERM");
    assert!(status.success(), "clean exit, got {status}");
    // The grace, then at most the exit bound (4 s): with the flag ignored (10 s)
    // this fails.
    assert!(exited < GRACE + Duration::from_secs(5), "took {exited:?}");
}

#[tokio::test]
async fn a_second_signal_stops_at_once() {
    let server = Binary::start(&["--drain-grace", "1h"]).await;
    let v2 = raw_stream(server.url("/v2/sse?username=a"));
    streams_open(&server, &["v2"]).await;
    signal(&server, "TERM");
    draining(&server).await;
    signal(&server, "TERM");
    let v2 = tokio::time::timeout(Duration::from_secs(10), v2)
        .await
        .expect("the stream ends long before the hour of grace")
        .expect("reader");
    assert_ends_with_a_short_retry(&v2);
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success(), "clean exit, got {status}");
}
