//! SIGTERM with open streams: the real binary ends every stream and exits quickly.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{SseClient, eventually};

#[tokio::test]
async fn sigterm_ends_open_streams_and_exits_within_five_seconds() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sse-server"))
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env_remove("SSE_KAFKA_BROKERS")
        .env_remove("SSE_DYNAMODB_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start sse-server");
    let ready = format!("{base}/readyz");
    eventually("the binary to serve", || async {
        matches!(reqwest::get(&ready).await, Ok(r) if r.status() == 200)
    })
    .await;
    let mut v1 = SseClient::connect(&format!("{base}/v1/sse?username=a")).await;
    let mut v2 = SseClient::connect(&format!("{base}/v2/sse?username=a")).await;
    v1.next().await; // hi!

    let pid = child.id().expect("pid").to_string();
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -TERM failed");
    v1.expect_end().await;
    v2.expect_end().await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the server exits")
        .expect("wait");
    let took = started.elapsed();
    println!("exited {status} {took:?} after SIGTERM");
    assert!(status.success(), "clean exit, got {status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
