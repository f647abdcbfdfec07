//! The front door, attacked on raw sockets: no client can hold a connection open
//! by doing nothing, every socket counts against a cap, a resume that is never
//! read stays within the byte budgets, an id this process never issued gets a
//! `reset`, and over HTTP/2 one slow stream ends only itself. Deadlines are given
//! small values here (1 s) so each test takes seconds.

mod common;

use std::time::{Duration, Instant};

use common::{PATIENCE, SseClient, TestServer, embedded, eventually, stalled_reader};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_secs(1);

/// The embedded server with 1 s deadlines (the write deadline left long, so
/// that it is not what closes the connections of the other tests).
fn with_short_deadlines() -> sse_server::config::Config {
    let mut config = embedded();
    config.header_timeout = SHORT;
    config.body_timeout = SHORT;
    config.idle_timeout = SHORT;
    config
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection; fails the test if it does not
/// within [`PATIENCE`]. Returns what was read and how long the server took.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_a_request_are_closed() {
    let server = TestServer::start(with_short_deadlines()).await;
    let opened = Instant::now();
    // A stream that is busy is not idle: it outlives every deadline below.
    let mut live = SseClient::connect(&server.url("/v2/sse?username=busy")).await;

    let mut silent = connect(&server).await;
    let mut half_head = connect(&server).await;
    half_head
        .write_all(b"GET /v2/sse?username=a HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut long_head = connect(&server).await;
    let padding = "a".repeat(9 * 1024);
    long_head
        .write_all(format!("GET /v2/sse?username=a HTTP/1.1\r\nX-Pad: {padding}\r\n").as_bytes())
        .await
        .expect("write");
    let mut no_body = connect(&server).await;
    no_body
        .write_all(b"POST /v2/message?username=a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        .await
        .expect("write");
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // One header line every 300 ms: each read brings bytes, none completes the head.
    let dripping = connect(&server).await;
    let (mut drip_read, mut drip_write) = dripping.into_split();
    let drip = tokio::spawn(async move {
        let _ = drip_write
            .write_all(b"GET /v2/sse?username=a HTTP/1.1\r\n")
            .await;
        let mut lines = 0u32;
        while drip_write.write_all(b"X-Drip: 1\r\n").await.is_ok() {
            lines += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        lines
    });

    // Each is closed about 1 s after it was opened (they all were at once).
    read_until_closed(&mut silent).await;
    println!(
        "sends nothing: closed {:.1?} after it opened",
        opened.elapsed()
    );
    read_until_closed(&mut half_head).await;
    println!(
        "half a stream head: closed {:.1?} after it opened",
        opened.elapsed()
    );
    read_until_closed(&mut long_head).await;
    println!(
        "a head over 8 KiB, never finished: closed {:.1?} after it opened",
        opened.elapsed()
    );
    let (answer, _) = read_until_closed(&mut no_body).await;
    println!(
        "a POST whose body never comes: answered and closed {:.1?} after it opened",
        opened.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer.contains("{\"error\""), "a JSON error: {answer}");
    let (answer, _) = read_until_closed(&mut idle).await;
    println!(
        "idle after a request: closed {:.1?} after it opened",
        opened.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 256];
        loop {
            match drip_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the dripping head was kept open");
    let lines = drip.await.expect("drip task");
    println!(
        "a header line every 300 ms: closed {:.1?} after it opened, after {lines} lines",
        opened.elapsed()
    );

    // The busy stream saw all of that go by and still works.
    let posted = server.post("/v2/message?username=busy", "still here").await;
    assert_eq!(posted.status(), 202);
    assert_eq!(live.next().await.data, "still here");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_socket_takes_nothing_is_closed_after_the_write_timeout() {
    let mut config = embedded();
    config.write_timeout = SHORT;
    // Queues that never overflow: the write deadline alone must close it.
    config.queue = 100_000;
    config.history = 200_000;
    config.queue_bytes = bytesize::ByteSize::mib(64);
    let server = TestServer::start(config).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = stalled_reader(&addr, "/v2/sse?username=w").await;
    eventually("the stream to be registered", || async {
        server
            .metrics()
            .await
            .contains(r#"sse_open_streams{version="v2"} 1"#)
    })
    .await;
    let client = reqwest::Client::new();
    let body = "x".repeat(4096);
    let started = Instant::now();
    // Enough to fill the socket buffers on both sides many times over.
    for _ in 0..2_000 {
        let reply = client
            .post(server.url("/v2/message?username=w"))
            .body(body.clone())
            .send()
            .await
            .expect("POST");
        assert_eq!(reply.status(), 202);
    }
    eventually("the stalled stream to be closed", || async {
        server
            .metrics()
            .await
            .contains(r#"sse_open_streams{version="v2"} 0"#)
    })
    .await;
    println!(
        "a reader that never reads: its stream closed {:.1?} after the publishing began",
        started.elapsed()
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"sse_connections_closed_overflow_total{version="v2"} 0"#),
        "closed by the write deadline, not by an overflow: {metrics}"
    );
    let (_, _) = read_until_closed(&mut stalled).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_new_connection_gets_a_fast_503() {
    let mut config = embedded();
    config.max_connections = Some(4);
    config.max_waiting_connections = Some(100);
    let server = TestServer::start(config).await;
    // Four keep-alive connections, each answered once: all four are counted.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut fifth = connect(&server).await;
    let (answer, took) = read_until_closed(&mut fifth).await;
    println!("the fifth connection: {took:.1?} to a 503 and a close");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body: Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).expect("body")).expect("JSON body");
    assert!(body["error"].is_string(), "{body}");

    drop(held.pop());
    eventually("a new connection to be served once one closed", || async {
        matches!(reqwest::get(server.url("/healthz")).await, Ok(r) if r.status() == 200)
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_never_crowd_out_a_request() {
    let mut config = embedded();
    config.max_waiting_connections = Some(4);
    let server = TestServer::start(config).await;
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(connect(&server).await);
    }
    let answer = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(answer.status(), 200);
    // The oldest were closed to make room.
    let (_, took) = read_until_closed(&mut silent[0]).await;
    println!("the oldest silent connection was closed {took:.1?} into the wait");
    server.stop().await;
}

/// The binary under `ulimit -n FILES`, with caps too high to protect it: only the
/// reserve descriptor does.
async fn start_with_open_files(files: u32, args: &[&str]) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::from(common::isolated("bash"));
    command
        .args([
            "-c",
            &format!("ulimit -n {files} && exec \"$0\" \"$@\""),
            common::SERVER,
        ])
        .args(args);
    let (child, addr) = common::spawn_listening(command).await;
    let base = format!("http://{addr}");
    let ready = format!("{base}/readyz");
    eventually("the binary to be ready", || async {
        matches!(reqwest::get(&ready).await, Ok(r) if r.status() == 200)
    })
    .await;
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_a_new_connection_is_refused_at_once() {
    let (_child, base) = start_with_open_files(
        64,
        &[
            "--max-connections",
            "10000",
            "--max-waiting-connections",
            "10000",
            "--header-timeout",
            "10m",
        ],
    )
    .await;
    let addr = base.trim_start_matches("http://").to_owned();
    // More silent connections than the process has descriptors.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let mut late = TcpStream::connect(&addr).await.expect("connect");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, late.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    println!(
        "out of descriptors: a new connection answered in {:.1?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    drop(silent);
    eventually("/healthz once the silent connections are gone", || async {
        matches!(reqwest::get(format!("{base}/healthz")).await, Ok(r) if r.status() == 200)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_small_caps_silent_connections_cannot_take_the_server_down() {
    // The defaults under a low open-files limit: the caps are derived from it.
    let (_child, base) = start_with_open_files(256, &[]).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let answer = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(answer.status(), 200);
    let stream = SseClient::connect(&format!("{base}/v2/sse?username=z")).await;
    assert_eq!(stream.status, 200);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumers_that_never_read_stay_within_the_budgets() {
    const RESUMERS: usize = 8;
    let binary = common::Binary::start(&[
        "--history",
        "10000",
        "--history-bytes",
        "16MiB",
        "--queue-bytes",
        "256KiB",
        "--write-timeout",
        "10m",
    ])
    .await;
    let client = reqwest::Client::new();
    let body = "r".repeat(4000);
    let publish = |n: usize| {
        let (client, body, url) = (
            client.clone(),
            body.clone(),
            binary.url("/v2/message?username=r"),
        );
        async move {
            let mut first = None;
            for _ in 0..n {
                let reply: Value = client
                    .post(&url)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("POST")
                    .json()
                    .await
                    .expect("JSON");
                first.get_or_insert(reply["id"].as_str().expect("id").to_owned());
            }
            first.expect("an id")
        }
    };
    // 16 MB of history: the budget is full.
    let first = publish(4_000).await;
    let before = binary.rss_bytes();
    let mut resumers = Vec::new();
    for _ in 0..RESUMERS {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut stream = socket.connect(binary.addr).await.expect("connect");
        stream
            .write_all(
                format!(
                    "GET /v2/sse?username=r HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {first}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .expect("request");
        resumers.push(stream);
    }
    // Another 16 MB: the history drops everything the resumers asked for.
    publish(4_000).await;
    let after = binary.rss_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "{RESUMERS} resumers that never read, history 16 MiB, queue 256 KiB: RSS {} -> {} MiB (+{} MiB)",
        before >> 20,
        after >> 20,
        grown >> 20
    );
    // Each may hold its replay's cut (256 KiB), its queue (256 KiB) and its socket
    // buffers; before replays were cut, 8 resumers held about 100 MB.
    assert!(grown < 40 << 20, "RSS grew by {} MiB", grown >> 20);
    drop(resumers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_longer_than_the_budget_comes_in_parts_without_a_gap() {
    let mut config = embedded();
    config.queue_bytes = bytesize::ByteSize::kib(16);
    let server = TestServer::start(config).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let reply: Value = server
            .post(
                "/v2/message?username=p",
                format!("{i:02}:{}", "p".repeat(1000)),
            )
            .await
            .json()
            .await
            .expect("JSON");
        ids.push(reply["id"].as_str().expect("id").to_owned());
    }
    // Resume from the first: 39 events of 1 KB, in parts of at most 16 KiB.
    let mut last = ids[0].clone();
    let mut got = Vec::new();
    let mut parts = 0;
    while got.len() < 39 {
        parts += 1;
        assert!(parts < 20, "no progress: {got:?}");
        let url = server.url("/v2/sse?username=p");
        let mut stream = SseClient::connect_with(&url, Some(&last)).await;
        loop {
            let Some(event) = stream.try_next().await else {
                break;
            };
            got.push(event.data[..2].to_owned());
            last = event.id;
            if got.len() == 39 {
                break;
            }
        }
    }
    let expected: Vec<String> = (1..40).map(|i| format!("{i:02}")).collect();
    assert_eq!(got, expected, "every event once, in order");
    println!("a 39 KB replay with a 16 KiB budget came in {parts} parts");
    assert!(parts > 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_ahead_of_this_process_gets_a_reset() {
    let server = TestServer::start(embedded()).await;
    let reply: Value = server
        .post("/v2/message?username=i", "first")
        .await
        .json()
        .await
        .expect("JSON");
    let id = reply["id"].as_str().expect("id").to_owned();
    let (epoch, seq) = id.split_once('-').expect("epoch-seq");
    let seq: i64 = seq.parse().expect("seq");
    for ahead in [
        format!("{epoch}-{}", seq + 1000),
        format!("{epoch}-{}", i64::MAX),
    ] {
        let mut stream =
            SseClient::connect_with(&server.url("/v2/sse?username=i"), Some(&ahead)).await;
        let reset = stream.next().await;
        assert_eq!(reset.event, "reset", "{ahead}");
        let data: Value = serde_json::from_str(&reset.data).expect("JSON");
        assert_eq!(data["reason"], "unknown_id");
        assert_eq!(data["lastEventId"], ahead.as_str());
        let posted = server.post("/v2/message?username=i", "live").await;
        assert_eq!(posted.status(), 202);
        assert_eq!(
            stream.next().await.data,
            "live",
            "live events flow after the reset"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_slow_stream_ends_only_itself() {
    let mut config = embedded();
    config.queue = 64;
    let server = TestServer::start(config).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    // Two streams on one HTTP/2 connection; the slow one is never read.
    let slow = h2
        .get(server.url("/v2/sse?username=slow"))
        .send()
        .await
        .expect("slow stream");
    assert_eq!(slow.version(), reqwest::Version::HTTP_2);
    let fast = h2
        .get(server.url("/v2/sse?username=fast"))
        .send()
        .await
        .expect("fast stream");
    assert_eq!(fast.version(), reqwest::Version::HTTP_2);
    let mut fast = SseClient::from_response(fast);
    let client = reqwest::Client::new();
    let body = "s".repeat(4096);
    let mut sent = 0;
    while !server
        .metrics()
        .await
        .contains(r#"sse_connections_closed_overflow_total{version="v2"} 1"#)
    {
        sent += 1;
        assert!(sent < 20_000, "the slow stream never overflowed");
        let reply = client
            .post(server.url("/v2/message?username=slow"))
            .body(body.clone())
            .send()
            .await
            .expect("POST");
        assert_eq!(reply.status(), 202);
    }
    println!("the slow HTTP/2 stream overflowed after {sent} messages of 4 KB");
    for i in 0..20 {
        let posted = server
            .post("/v2/message?username=fast", format!("fast {i}"))
            .await;
        assert_eq!(posted.status(), 202);
        assert_eq!(fast.next().await.data, format!("fast {i}"));
    }
    drop(slow);
    server.stop().await;
}
