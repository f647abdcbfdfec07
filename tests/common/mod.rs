//! Helpers shared by the integration tests: start the real application on an
//! ephemeral port, read its streams with a real SSE client, wait for things with
//! generous timeouts (never sleep-and-hope).

#![allow(dead_code)] // each test binary uses a different subset

pub mod reports;

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use sse_server::config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen "at once".
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The embedded default (no Kafka, no DynamoDB), whatever the environment says.
pub fn embedded() -> Config {
    Config {
        kafka_brokers: None,
        dynamodb_endpoint: None,
        ..open_defaults()
    }
}

/// The server binary under test.
pub const SERVER: &str = env!("CARGO_BIN_EXE_sse-server");

/// A command that runs `program` (the server, or a shell that execs it) without the
/// developer's `SSE_*` settings: an exported `SSE_AUTH_SECRET` or `SSE_KAFKA_BROKERS`
/// must not change what a test runs against. A test sets what it needs with `.env`;
/// the tests' own `SSE_TEST_*` knobs stay.
pub fn isolated(program: &str) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("SSE_") && !n.starts_with("SSE_TEST_"))
        {
            command.env_remove(name);
        }
    }
    command
}

/// The defaults with authorization off, whatever the environment says: a shell that
/// exported `SSE_AUTH_SECRET` to try the server must not turn it on in the tests.
fn open_defaults() -> Config {
    Config {
        auth_secret: None,
        auth_public_key: None,
        ..Config::default()
    }
}

/// Kafka brokers and DynamoDB endpoint of the local services, for the tests that
/// need them (run by `scripts/test.sh` after `scripts/services.sh up`).
pub fn with_services() -> Config {
    let kafka = std::env::var("SSE_TEST_KAFKA").expect(
        "SSE_TEST_KAFKA is not set: run scripts/test.sh, or scripts/services.sh up and set SSE_TEST_KAFKA=127.0.0.1:9092",
    );
    let dynamodb = std::env::var("SSE_TEST_DYNAMODB").expect(
        "SSE_TEST_DYNAMODB is not set: run scripts/test.sh, or scripts/services.sh up and set SSE_TEST_DYNAMODB=http://127.0.0.1:8111",
    );
    let config = Config {
        kafka_brokers: Some(kafka),
        dynamodb_endpoint: Some(dynamodb),
        // Each test has its own topics and writers group (the instances of one test,
        // made from clones of this config, share them; the server creates missing
        // topics). A group left behind by an earlier test (or by the local broker's
        // restart) cannot hold up the next one, and a new writers group, which starts
        // at the beginning of its command topic, reads only this test's commands:
        // with the shared `v4_messages` it re-read every command ever sent, so on a
        // long-lived broker the suite got slower with every run.
        v3_topic: unique("test-v3-messages"),
        v4_command_topic: unique("test-v4-messages"),
        v4_event_topic: unique("test-v4-events"),
        v4_writers_group: unique("sse-server-v4-writers-test"),
        ..open_defaults()
    };
    // SSE_TEST_SHARED_TOPICS=1: the server's standard topics, shared by every test and
    // every run, as the suite used them before; only to measure what that costs.
    if std::env::var("SSE_TEST_SHARED_TOPICS").is_ok_and(|v| v == "1") {
        let standard = Config::default();
        return Config {
            v3_topic: standard.v3_topic,
            v4_command_topic: standard.v4_command_topic,
            v4_event_topic: standard.v4_event_topic,
            ..config
        };
    }
    config
}

/// A unique name, so tests sharing services never see each other's data.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub struct TestServer {
    pub base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let stop = sse_server::Stop {
            now: shutdown.clone(),
            ..Default::default()
        };
        let task = tokio::spawn(sse_server::serve(listener, config, stop));
        let server = TestServer {
            base,
            shutdown,
            task,
        };
        server.wait_ready().await;
        server
    }

    /// Waits until `/readyz` answers 200 (consumers assigned, services reachable).
    pub async fn wait_ready(&self) {
        let url = self.url("/readyz");
        eventually("the server to be ready", || async {
            matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200)
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(PATIENCE, self.task).await;
    }
}

/// Polls `check` until it is true, failing the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(what, PATIENCE, check).await;
}

/// Polls `check` until it is true, failing the test after `bound`; returns how
/// long it took.
pub async fn eventually_within<F, Fut>(what: &str, bound: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < bound,
            "timed out waiting for {what} (after {bound:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// A real SSE client on one stream. `presence` events (a state the server tells,
/// not a message: see src/presence) are set aside for [`SseClient::next_presence`],
/// so the other tests read only what they sent.
pub struct SseClient {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    events: EventStream,
    presence: std::collections::VecDeque<Event>,
}

impl SseClient {
    pub async fn connect(url: &str) -> SseClient {
        SseClient::connect_with(url, None).await
    }

    pub async fn connect_with(url: &str, last_event_id: Option<&str>) -> SseClient {
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        SseClient::from_response(request.send().await.expect("connect"))
    }

    /// A client on a response already received (an HTTP/2 one, say).
    pub fn from_response(response: reqwest::Response) -> SseClient {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|e| e.map_err(|e| e.to_string()))
            .boxed();
        SseClient {
            status,
            headers,
            events,
            presence: Default::default(),
        }
    }

    /// The next event that carries data (comments and `retry:` are skipped).
    pub async fn next(&mut self) -> Event {
        self.next_within(PATIENCE).await
    }

    /// The next event that carries data, waiting at most `wait` for it.
    pub async fn next_within(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let event = self.raw_before(deadline, "an event").await;
            if let Some(event) = self.set_aside(event) {
                return event;
            }
        }
    }

    /// The next event that carries data, or `None` when the server ends the stream.
    pub async fn try_next(&mut self) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.next())
                .await
                .expect("timed out waiting for an event or the end")?
                .ok()?;
            if let Some(event) = self.set_aside(event) {
                return Some(event);
            }
        }
    }

    /// The next `presence` event, waiting at most `wait`; the other events that
    /// come first are dropped.
    pub async fn next_presence(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        while self.presence.is_empty() {
            let event = self.raw_before(deadline, "a presence event").await;
            let _ = self.set_aside(event);
        }
        self.presence.pop_front().expect("a presence event")
    }

    /// The next thing the stream sends (comments and `retry:` included), failing
    /// the test if none comes before `deadline` or the stream ends.
    async fn raw_before(&mut self, deadline: tokio::time::Instant, what: &str) -> Event {
        tokio::time::timeout_at(deadline, self.events.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("the stream ended")
            .expect("a well-formed event")
    }

    /// `event` if a test reads it: not a comment, `retry:` or `presence` (kept).
    fn set_aside(&mut self, event: Event) -> Option<Event> {
        if event.event == "presence" {
            self.presence.push_back(event);
            return None;
        }
        (!event.data.is_empty() || !event.event.is_empty()).then_some(event)
    }

    /// Asserts that the next event carrying data is `marker`, which the test sent
    /// after what must not arrive: an unwanted event, however late, comes before
    /// the marker (same partition, same queue) and fails here, where a timed wait
    /// for silence would pass if it came just after the wait.
    pub async fn expect_marker(&mut self, marker: &str) {
        let event = self.next().await;
        assert_eq!(
            event.data, marker,
            "an event came before the marker: {event:?}"
        );
    }

    /// Waits until the server ends the stream.
    pub async fn expect_end(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Err(_) => panic!("the stream did not end"),
                Ok(None) | Ok(Some(Err(_))) => return,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// The Python interpreter for `tests/kafka_tool.py` (it needs confluent-kafka):
/// `$SSE_TEST_PYTHON` (scripts/test.sh sets it), else the virtual environment
/// `.local/venv` that scripts/prereqs.sh creates, else `python3`. Never the system's
/// Python by default: Debian's refuses `pip install` (PEP 668).
pub fn test_python() -> String {
    if let Ok(python) = std::env::var("SSE_TEST_PYTHON")
        && !python.is_empty()
    {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.local/venv/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_owned();
    }
    "python3".to_owned()
}

/// Sends each line as one record to `topic` through the outside Python client.
pub fn produce_with_python(brokers: &str, topic: &str, key: &str, lines: &[&[u8]]) {
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_tool.py");
    let python = test_python();
    let mut child = Command::new(&python)
        .args([tool, "produce", brokers, topic, "--key", key])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{python} tests/kafka_tool.py: {e} (run scripts/test.sh, or set SSE_TEST_PYTHON)"
            )
        });
    let mut stdin = child.stdin.take().expect("stdin");
    for line in lines {
        stdin.write_all(line).expect("write");
        stdin.write_all(b"\n").expect("write");
    }
    drop(stdin);
    assert!(
        child.wait().expect("wait").success(),
        "python produce failed"
    );
}

/// Where a server started with `--bind 127.0.0.1:0` listens, from its
/// `listening on` log line (it logs to standard output at `SSE_LOG=info`): the
/// kernel's choice, so no test picks a port another process may take first.
pub fn listening_on(log_line: &str) -> Option<std::net::SocketAddr> {
    let (_, url) = log_line.split_once("listening on ")?;
    let (_, addr) = url.trim().split_once("://")?;
    addr.parse().ok()
}

/// Starts `command` (a server: `--bind 127.0.0.1:0` is added, its output piped)
/// and returns it with where it listens, once it says so. The rest of its
/// output is read and dropped, so a full pipe never blocks it.
pub async fn spawn_listening(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, std::net::SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .args(["--bind", "127.0.0.1:0"])
        .env("SSE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start sse-server");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = listening_on(&line) {
                return addr;
            }
        }
        panic!("sse-server exited before it listened")
    })
    .await
    .expect("sse-server did not say where it listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The real binary on a port of its own (embedded unless `args` say otherwise),
/// for what an in-process server cannot show: a signal, `kill -9`, its memory.
pub struct Binary {
    child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
    pub base: String,
}

impl Binary {
    pub async fn start(args: &[&str]) -> Binary {
        Binary::start_with_env(args, &[]).await
    }

    /// Like `start`, with extra environment variables (e.g. a test hook).
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Binary {
        let mut command = tokio::process::Command::from(isolated(SERVER));
        command.args(args).envs(env.iter().copied());
        let (child, addr) = spawn_listening(command).await;
        let binary = Binary {
            child,
            addr,
            base: format!("http://{addr}"),
        };
        let ready = binary.url("/readyz");
        eventually("the binary to be ready", || async {
            matches!(reqwest::get(&ready).await, Ok(r) if r.status() == 200)
        })
        .await;
        binary
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("pid")
    }

    pub async fn kill_9(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let _ = self.child.wait().await;
    }

    /// Waits for the process to exit.
    pub async fn wait(mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Resident memory of the process, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }
}

/// A raw HTTP/1.1 client of `path` with a 4 KiB receive buffer that reads nothing:
/// the slowest reader there is.
pub async fn stalled_reader(addr: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("request");
    stream
}
