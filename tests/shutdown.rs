//! SIGTERM with open streams: the real binary ends every stream and exits quickly.

mod common;

use std::time::{Duration, Instant};

use common::{Binary, SseClient, free_port};

#[tokio::test]
async fn sigterm_ends_open_streams_and_exits_within_five_seconds() {
    let server = Binary::start(free_port(), &[]).await;
    let base = &server.base;
    let mut v1 = SseClient::connect(&format!("{base}/v1/sse?username=a")).await;
    let mut v2 = SseClient::connect(&format!("{base}/v2/sse?username=a")).await;
    v1.next().await; // hi!

    let pid = server.pid().to_string();
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -TERM failed");
    v1.expect_end().await;
    v2.expect_end().await;
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the server exits")
        .expect("wait");
    let took = started.elapsed();
    println!("exited {status} {took:?} after SIGTERM");
    assert!(status.success(), "clean exit, got {status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
