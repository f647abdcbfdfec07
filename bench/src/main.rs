//! sse-bench: load tool for sse-server (and any server with the same /v2, /v3 API).
//!
//! `sse-bench <idle|fanout|unicast|stalled|kafka|resume> --url http://127.0.0.1:3000 [options]`
//! prints progress on stderr every second and one JSON summary on stdout at the end.
//! `sse-bench --smoke` is a short unicast run that exits 1 on any lost or duplicated event.
//! `--protocol centrifugo|mercure|nchan` measures a peer through its own protocol.

mod failover;
mod floor;
mod plot;
mod protocol;
mod publish;
mod resume;
mod sse;
mod stats;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use publish::{PublishPlan, PublishResult, Target};
use sse::{ConnOutcome, Mode, StopInfo, SubConfig};
use stats::{COUNTERS, Tick, load_relaxed};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scenario {
    /// N connections held open: set-up rate and server RSS per stream.
    Idle,
    /// N subscribers, POST /v2/broadcast at --rate.
    Fanout,
    /// N subscribers over --users users, POST /v2/message round robin at --rate.
    Unicast,
    /// unicast with --stalled-percent of the connections never reading.
    Stalled,
    /// records `user:payload` to Kafka at --rate, subscribers on /v3/sse (with
    /// --kafka-floor, a plain consumer of the topic beside them).
    Kafka,
    /// Subscribers receive --live-messages each, disconnect, miss --away-messages
    /// each, reconnect through their protocol's recovery (Last-Event-ID, or
    /// Centrifugo's offset and epoch), then get --live-messages more: what went
    /// missing or came twice (`resume` in the summary).
    Resume,
    /// /v3 streams through a proxy in front of several instances on Kafka while one
    /// instance is killed (`--fault kill`) or each is restarted in turn (`--fault
    /// rolling`): how long until every cut stream is back and exact, what was lost or
    /// came twice, publishes refused, the instances' peak RSS and CPU (`failover` in
    /// the summary).
    Failover,
}

#[derive(Parser, Clone, Debug)]
#[command(
    version,
    about = "Load tool for sse-server: idle, fanout, unicast, stalled, kafka, resume, failover"
)]
struct Args {
    /// What to run (not needed with --smoke).
    #[arg(value_enum, required_unless_present = "smoke")]
    scenario: Option<Scenario>,
    /// Base URL of the server (http only).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The server's protocol: how subscribers connect and read, how messages are
    /// published (kafka: sse-server only).
    #[arg(long, value_enum, default_value_t = protocol::Protocol::SseServer)]
    protocol: protocol::Protocol,
    /// A header sent with every publish, "Name: value" (repeatable), e.g.
    /// `X-API-Key: KEY` (Centrifugo) or `Authorization: Bearer JWT` (Mercure).
    #[arg(long = "publish-header", value_name = "HEADER")]
    publish_header: Vec<String>,
    /// resume: messages per user published while the subscribers are away.
    #[arg(long, default_value_t = 20)]
    away_messages: u64,
    /// resume: messages per user published before the subscribers leave, and again
    /// after they are back.
    #[arg(long, default_value_t = 3)]
    live_messages: u64,
    /// resume: broadcasts published while the subscribers are away (0: none at all;
    /// otherwise one more before they leave and one after they are back).
    #[arg(long, default_value_t = 2)]
    away_broadcasts: u64,
    /// failover: what happens to the instances.
    #[arg(long, value_enum, default_value_t = failover::Fault::Kill)]
    fault: failover::Fault,
    /// failover: the instances' addresses (comma-separated), each started here as
    /// `--server-cmd ... --bind ADDR` (the proxy at --url sends to them).
    #[arg(long, value_delimiter = ',')]
    instance: Vec<String>,
    /// failover: the sse-server command line, without --bind (split on whitespace).
    #[arg(long)]
    server_cmd: Option<String>,
    /// failover: directory for the instances' logs (instance-K.log).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// failover: seconds of publishing before the fault.
    #[arg(long, default_value_t = 5.0)]
    fault_at: f64,
    /// failover (kill): seconds between the kill and the restart.
    #[arg(long, default_value_t = 2.0)]
    restart_after: f64,
    /// failover: attempts of one publish (the same Idempotency-Key each time).
    #[arg(long, default_value_t = 5)]
    publish_attempts: u32,
    /// SSE connections to open.
    #[arg(long, short = 'n', default_value_t = 1000)]
    connections: usize,
    /// Distinct users (connection i is user i % users). Default: one per connection.
    #[arg(long)]
    users: Option<u64>,
    /// Messages per second (0 = as fast as the publishers go). At a fixed rate latency
    /// counts from each message's scheduled time (start + N/rate); flat out, from when
    /// it was sent (the summary's `latency_from`).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of publishing (failover: after the fault).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds to wait after publishing for events still on their way.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// Seconds the idle scenario holds its connections.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Seconds after closing everything before the last RSS reading.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Server pid(s), to read its RSS (VmRSS in /proc/PID/status); several pids,
    /// comma-separated, are summed (nginx's worker processes for Nchan).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Seconds one publish (POST, or a write to the Kafka producer) or GET may take.
    /// A request without an answer by then makes the server "frozen": publishing stops
    /// and the summary reports `frozen_after_s` instead of the tool hanging.
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// Seconds a stream may take to connect and get its response headers (past it,
    /// the server counts as frozen as above, and streams not yet set up fail at once).
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Spread connections over source addresses 127.0.0.2 .. 127.0.0.(1+K).
    #[arg(long, default_value_t = 16)]
    source_ips: u32,
    /// Processes holding the connections (each N/W); chosen automatically above 19,000.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Internal: this process is worker I of --workers.
    #[arg(long, hide = true)]
    worker_index: Option<usize>,
    /// Keep-alive HTTP connections publishing in parallel.
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Share of connections (percent) that never read (stalled scenario; default 1).
    #[arg(long)]
    stalled_percent: Option<f64>,
    /// SO_RCVBUF of a stalled connection, bytes.
    #[arg(long, default_value_t = 1024)]
    stalled_rcvbuf: u32,
    /// Bytes of padding added to each HTTP-published message (after `seq=N t=T`), e.g.
    /// to push more data at stalled readers than the kernel's socket buffers hold.
    #[arg(long, default_value_t = 0)]
    pad: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Write a PNG: latency and deliveries over time, and the latency distribution.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Short unicast run (300 connections, 100 users, 500 msg/s for 3 s); exit 1 on
    /// any lost or duplicated event, failed connection or failed publish.
    #[arg(long)]
    smoke: bool,
    /// Exit 1 on lost/duplicated events, failed connections or failed publishes.
    #[arg(long)]
    strict: bool,
    /// Prefix of the usernames (default: a per-run prefix).
    #[arg(long)]
    user_prefix: Option<String>,
    /// Producer command for the kafka scenario; gets `USER:payload` lines on stdin.
    #[arg(
        long,
        default_value = "python3 tests/kafka_tool.py produce 127.0.0.1:9092 v3_messages --key sse-bench"
    )]
    kafka_produce: String,
    /// Broker floor for the kafka scenario: a plain Kafka consumer command on the same
    /// topic (e.g. `python bench/kafka_floor.py 127.0.0.1:9092 v3_messages`) that prints
    /// a JSON ready line, then `RECV_UNIX_NANOS VALUE` per record; its latency from the
    /// same scheduled times goes to the summary's `broker_floor`.
    #[arg(long)]
    kafka_floor: Option<String>,
    /// Free text copied into the summary.
    #[arg(long)]
    label: Option<String>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
struct Aggregate {
    connections: u64,
    connected: u64,
    failed: u64,
    stalled: u64,
    /// Reading connections the server closed before the end.
    closed_early: u64,
    expected: u64,
    received: u64,
    lost: u64,
    duplicated: u64,
    /// Arrived after the tracking window had moved on (duplicate or reordered).
    late: u64,
    /// Unix nanos when the server stopped answering (0: it never did); see
    /// `stats::note_frozen`.
    #[serde(default)]
    frozen_since: u64,
}

impl Aggregate {
    fn add_outcome(&mut self, o: &ConnOutcome) {
        self.connections += 1;
        if o.failed {
            self.failed += 1;
            return;
        }
        self.connected += 1;
        if o.stalled {
            self.stalled += 1;
            return;
        }
        self.closed_early += u64::from(o.closed_early);
        self.expected += o.expected;
        self.received += o.unique;
        self.lost += o.expected.saturating_sub(o.unique);
        self.duplicated += o.duplicates;
        self.late += o.late;
    }
    fn merge(&mut self, o: &Aggregate) {
        self.connections += o.connections;
        self.connected += o.connected;
        self.failed += o.failed;
        self.stalled += o.stalled;
        self.closed_early += o.closed_early;
        self.expected += o.expected;
        self.received += o.received;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.late += o.late;
        self.frozen_since = match (self.frozen_since, o.frozen_since) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
    }
}

/// Messages a worker prints on stdout, one JSON object a line.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WorkerMsg {
    Ready {
        connected: u64,
        failed: u64,
    },
    Tick {
        open: u64,
        received: u64,
        hist: Vec<(u64, u64)>,
    },
    Done {
        agg: Aggregate,
        hist: Vec<(u64, u64)>,
        errors: Vec<(String, u64)>,
    },
}

/// Latency recorded in child processes (merged by the ticker).
static REMOTE_HIST: Mutex<Option<Histogram<u64>>> = Mutex::new(None);
static REMOTE_OPEN: Mutex<Option<HashMap<usize, u64>>> = Mutex::new(None);

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.scenario.get_or_insert(Scenario::Unicast);
        args.connections = 300;
        args.users.get_or_insert(100);
        args.rate = 500.0;
        args.duration = 3.0;
        args.strict = true;
    }
    // Fails early on a malformed --publish-header.
    protocol::header_lines(&args.publish_header)?;
    // Each stream is a socket: raise the soft open-files limit to the hard one.
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let threads = if args.worker_index.is_some() { 1 } else { 2 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let code = rt.block_on(async move {
        if args.worker_index.is_some() {
            run_worker(args).await
        } else {
            run_main(args).await
        }
    })?;
    std::process::exit(code);
}

struct Setup {
    scenario: Scenario,
    server: SocketAddr,
    host: String,
    users: u64,
    prefix: String,

    sub: Arc<SubConfig>,
}

fn setup(args: &Args) -> Result<Setup> {
    let scenario = args.scenario.context("no scenario")?;
    let rest = args
        .url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    let host = rest.split('/').next().unwrap_or(rest).to_string();
    let server = host
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .find(|a| a.is_ipv4())
        .context("no IPv4 address for the server")?;
    let users = args.users.unwrap_or(args.connections as u64).max(1);
    let prefix = args
        .user_prefix
        .clone()
        .unwrap_or_else(|| format!("bench{}-", std::process::id()));
    if scenario == Scenario::Kafka && args.protocol != protocol::Protocol::SseServer {
        bail!("the kafka scenario is sse-server's (--protocol sse-server)");
    }
    let mode = match scenario {
        Scenario::Idle => Mode::None,
        Scenario::Fanout => Mode::Broadcast,
        _ => Mode::Unicast { users },
    };
    let stalled_percent = match scenario {
        Scenario::Stalled => args.stalled_percent.unwrap_or(1.0),
        _ => args.stalled_percent.unwrap_or(0.0),
    };
    let path = if matches!(scenario, Scenario::Kafka | Scenario::Failover) {
        "/v3/sse"
    } else {
        "/v2/sse"
    };
    let sub = Arc::new(SubConfig {
        protocol: args.protocol,
        server,
        host_header: host.clone(),
        path: path.to_string(),
        prefix: prefix.clone(),
        users,
        source_ips: args.source_ips,
        mode,
        stalled_percent,
        stalled_rcvbuf: args.stalled_rcvbuf,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
    });
    Ok(Setup {
        scenario,
        server,
        host,
        users,
        prefix,
        sub,
    })
}

/// The connections this process holds.
struct LocalSubs {
    stop_tx: watch::Sender<Option<Arc<StopInfo>>>,
    tasks: Vec<tokio::task::JoinHandle<ConnOutcome>>,
}

impl LocalSubs {
    fn start(
        sub: &Arc<SubConfig>,
        indices: impl Iterator<Item = usize>,
        concurrency: usize,
    ) -> Self {
        let (stop_tx, stop_rx) = watch::channel(None);
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let tasks = indices
            .map(|i| {
                tokio::spawn(sse::run_connection(
                    i,
                    sub.clone(),
                    permits.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        LocalSubs { stop_tx, tasks }
    }

    async fn wait_ready(&self) {
        let n = self.tasks.len() as u64;
        while load_relaxed(&COUNTERS.connected) + load_relaxed(&COUNTERS.failed) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self, info: StopInfo) -> Aggregate {
        let _ = self.stop_tx.send(Some(Arc::new(info)));
        let mut agg = Aggregate::default();
        for t in self.tasks {
            if let Ok(o) = t.await {
                agg.add_outcome(&o);
            }
        }
        agg
    }
}

fn worker_indices(n: usize, workers: usize, index: usize) -> impl Iterator<Item = usize> {
    (0..n).filter(move |i| i % workers == index)
}

/// Child process: hold this worker's share of the connections, report on stdout.
async fn run_worker(args: Args) -> Result<i32> {
    let s = setup(&args)?;
    let workers = args.workers.max(1);
    let index = args.worker_index.unwrap();
    let subs = LocalSubs::start(
        &s.sub,
        worker_indices(args.connections, workers, index),
        args.connect_concurrency / workers,
    );
    let out = Arc::new(tokio::sync::Mutex::new(tokio::io::stdout()));
    async fn say(out: &tokio::sync::Mutex<tokio::io::Stdout>, msg: &WorkerMsg) {
        let mut line = serde_json::to_vec(msg).unwrap();
        line.push(b'\n');
        let mut out = out.lock().await;
        let _ = out.write_all(&line).await;
        let _ = out.flush().await;
    }
    // Ticks every second.
    let ticker = {
        let out = out.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let received = load_relaxed(&COUNTERS.received);
                let hist = stats::hist_to_pairs(&stats::drain_interval());
                let msg = WorkerMsg::Tick {
                    open: load_relaxed(&COUNTERS.open),
                    received: received - last,
                    hist,
                };
                last = received;
                say(&out, &msg).await;
            }
        })
    };
    subs.wait_ready().await;
    say(
        &out,
        &WorkerMsg::Ready {
            connected: load_relaxed(&COUNTERS.connected),
            failed: load_relaxed(&COUNTERS.failed),
        },
    )
    .await;
    // Wait for "stop PUBLISHED GRACE_SECS SKIPPED_CSV".
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let info = loop {
        match lines.next_line().await? {
            Some(line) if line.starts_with("stop ") => {
                let mut parts = line.split(' ').skip(1);
                let published: u64 = parts.next().unwrap_or("0").parse()?;
                let grace: f64 = parts.next().unwrap_or("0").parse()?;
                let skipped = parts
                    .next()
                    .unwrap_or("-")
                    .split(',')
                    .filter_map(|v| v.parse().ok())
                    .collect();
                break StopInfo {
                    published,
                    skipped,
                    deadline: Instant::now() + Duration::from_secs_f64(grace),
                };
            }
            Some(_) => continue,
            None => {
                break StopInfo {
                    published: 0,
                    skipped: vec![],
                    deadline: Instant::now(),
                };
            }
        }
    };
    let mut agg = subs.finish(info).await;
    agg.frozen_since = stats::frozen_since().unwrap_or(0);
    ticker.abort();
    let hist = stats::hist_to_pairs(&stats::drain_interval());
    say(
        &out,
        &WorkerMsg::Done {
            agg,
            hist,
            errors: stats::errors(),
        },
    )
    .await;
    Ok(0)
}

/// Children running `run_worker`.
struct Remote {
    stdins: Vec<tokio::process::ChildStdin>,
    children: Vec<tokio::process::Child>,
    ready: tokio::sync::mpsc::UnboundedReceiver<(u64, u64)>,
    done: tokio::sync::mpsc::UnboundedReceiver<(Aggregate, Vec<(String, u64)>)>,
}

impl Remote {
    fn start(workers: usize, prefix: &str) -> Result<Remote> {
        let exe = std::env::current_exe()?;
        // The parent's arguments, minus the ones set here for every child.
        let mut argv = Vec::new();
        let mut skip_value = false;
        for a in std::env::args().skip(1) {
            if skip_value {
                skip_value = false;
                continue;
            }
            match a.as_str() {
                "--workers" | "--plot" | "--user-prefix" => skip_value = true,
                "--quiet" => {}
                _ if a.starts_with("--workers=")
                    || a.starts_with("--plot=")
                    || a.starts_with("--user-prefix=") => {}
                _ => argv.push(a),
            }
        }
        let (ready_tx, ready) = tokio::sync::mpsc::unbounded_channel();
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        *REMOTE_HIST.lock().unwrap() = Some(stats::new_hist());
        *REMOTE_OPEN.lock().unwrap() = Some(HashMap::new());
        let mut stdins = Vec::new();
        let mut children = Vec::new();
        for i in 0..workers {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.args(&argv)
                .args([
                    "--workers",
                    &workers.to_string(),
                    "--worker-index",
                    &i.to_string(),
                    "--quiet",
                ])
                .args(["--user-prefix", prefix])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd.spawn().context("starting a worker")?;
            stdins.push(child.stdin.take().unwrap());
            let stdout = child.stdout.take().unwrap();
            let (ready_tx, done_tx) = (ready_tx.clone(), done_tx.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<WorkerMsg>(&line) {
                        Ok(WorkerMsg::Ready { connected, failed }) => {
                            let _ = ready_tx.send((connected, failed));
                        }
                        Ok(WorkerMsg::Tick {
                            open,
                            received,
                            hist,
                        }) => {
                            COUNTERS.received.fetch_add(received, Ordering::Relaxed);
                            REMOTE_OPEN
                                .lock()
                                .unwrap()
                                .as_mut()
                                .unwrap()
                                .insert(i, open);
                            stats::hist_from_pairs(
                                REMOTE_HIST.lock().unwrap().as_mut().unwrap(),
                                &hist,
                            );
                        }
                        Ok(WorkerMsg::Done { agg, hist, errors }) => {
                            REMOTE_OPEN.lock().unwrap().as_mut().unwrap().insert(i, 0);
                            stats::hist_from_pairs(
                                REMOTE_HIST.lock().unwrap().as_mut().unwrap(),
                                &hist,
                            );
                            let _ = done_tx.send((agg, errors));
                        }
                        Err(e) => eprintln!("worker {i}: unreadable line ({e}): {line}"),
                    }
                }
            });
            children.push(child);
        }
        Ok(Remote {
            stdins,
            children,
            ready,
            done,
        })
    }
}

fn remote_open() -> u64 {
    REMOTE_OPEN
        .lock()
        .unwrap()
        .as_ref()
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

/// Shared by the ticker and the summary.
struct Timeline {
    ticks: Mutex<Vec<Tick>>,
    total: Mutex<Histogram<u64>>,
    phase: Mutex<&'static str>,
    rss_peak: AtomicU64,
}

fn drain_all() -> Histogram<u64> {
    let mut h = stats::drain_interval();
    if let Some(r) = REMOTE_HIST.lock().unwrap().as_mut() {
        let _ = h.add(&*r);
        r.reset();
    }
    h
}

async fn run_main(args: Args) -> Result<i32> {
    let s = setup(&args)?;
    if s.scenario == Scenario::Failover {
        // One process holds every stream (up to the open-files limit).
        return failover::run(&args, &s).await;
    }
    let workers = if args.workers > 0 {
        args.workers
    } else {
        args.connections.div_ceil(19_000).max(1)
    };
    let started = Instant::now();
    let started_unix = stats::now_nanos();
    let request_timeout = Duration::from_secs_f64(args.request_timeout);
    let rss = || stats::rss_kib_sum(&args.server_pid);
    let rss_before = rss();
    // sse-server's metrics (Nchan has none: the GET fails and they stay null; the
    // other peers' /metrics, if any, have other names).
    let has_metrics = args.protocol.is_v2();
    let metrics_before = if has_metrics {
        publish::get_text(s.server, &s.host, "/metrics", request_timeout).await
    } else {
        None
    };

    let timeline = Arc::new(Timeline {
        ticks: Mutex::new(Vec::new()),
        total: Mutex::new(stats::new_hist()),
        phase: Mutex::new("connect"),
        rss_peak: AtomicU64::new(0),
    });
    let ticker = {
        let timeline = timeline.clone();
        let quiet = args.quiet;
        let pids = args.server_pid.clone();
        let n = args.connections;
        tokio::spawn(async move {
            let mut last_recv = 0;
            let mut last_pub = 0;
            let mut next = Instant::now() + Duration::from_secs(1);
            loop {
                tokio::time::sleep_until(next).await;
                next += Duration::from_secs(1);
                let h = drain_all();
                let recv = load_relaxed(&COUNTERS.received);
                let published = load_relaxed(&COUNTERS.published);
                let rss = stats::rss_kib_sum(&pids);
                if let Some(r) = rss {
                    timeline.rss_peak.fetch_max(r, Ordering::Relaxed);
                }
                let lat = stats::latency_of(&h);
                let tick = Tick {
                    t: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                    phase: timeline.phase.lock().unwrap().to_string(),
                    open: load_relaxed(&COUNTERS.open) + remote_open(),
                    deliveries: recv - last_recv,
                    published: published - last_pub,
                    p50_ms: lat.p50_ms,
                    p99_ms: lat.p99_ms,
                    max_ms: lat.max_ms,
                    rss_kib: rss,
                };
                last_recv = recv;
                last_pub = published;
                let _ = timeline.total.lock().unwrap().add(&h);
                if !quiet {
                    eprintln!(
                        "[{:6.1}s] {:<8} open={}/{} failed={} published/s={} deliveries/s={} p50={}ms p99={}ms max={}ms{}",
                        tick.t,
                        tick.phase,
                        tick.open,
                        n,
                        load_relaxed(&COUNTERS.failed),
                        tick.published,
                        tick.deliveries,
                        tick.p50_ms,
                        tick.p99_ms,
                        tick.max_ms,
                        rss.map(|r| format!(" server_rss={}MiB", r / 1024))
                            .unwrap_or_default()
                    );
                }
                timeline.ticks.lock().unwrap().push(tick);
            }
        })
    };

    // 0. The broker floor's consumer reads from the topic's end before anything is written.
    let mut floor = None;
    let mut floor_summary = Value::Null;
    if let (Scenario::Kafka, Some(command)) = (s.scenario, &args.kafka_floor) {
        let timeout = Duration::from_secs_f64(args.connect_timeout);
        match floor::Floor::start(command, &s.prefix, timeout).await {
            Ok(f) => floor = Some(f),
            Err(e) => {
                eprintln!("broker floor: {e:#}");
                floor_summary = json!({ "error": format!("{e:#}") });
            }
        }
    }

    let mut resume_summary = Value::Null;
    let resumed = if s.scenario == Scenario::Resume {
        if workers > 1 {
            bail!(
                "the resume scenario runs in one process (--workers 1, at most 19,000 connections)"
            );
        }
        Some(resume::run(&args, &s, &timeline).await?)
    } else {
        None
    };
    // 1. Connect.
    let connect_start = Instant::now();
    let mut local = None;
    let mut remote = None;
    let (connected, failed) = if let Some(r) = &resumed {
        (r.connected, r.failed)
    } else if workers == 1 {
        let subs = LocalSubs::start(&s.sub, 0..args.connections, args.connect_concurrency);
        subs.wait_ready().await;
        local = Some(subs);
        (
            load_relaxed(&COUNTERS.connected),
            load_relaxed(&COUNTERS.failed),
        )
    } else {
        let mut r = Remote::start(workers, &s.prefix)?;
        let (mut c, mut f) = (0, 0);
        for _ in 0..workers {
            let (cc, ff) = r
                .ready
                .recv()
                .await
                .context("a worker died before it was ready")?;
            c += cc;
            f += ff;
        }
        remote = Some(r);
        (c, f)
    };
    let setup_secs = match &resumed {
        Some(r) => r.setup_secs,
        None => connect_start.elapsed().as_secs_f64(),
    };
    let rss_connected = match &resumed {
        Some(r) => r.rss_connected,
        None => rss(),
    };

    // 2. Hold or publish (the resume scenario did all of it above).
    let mut agg = Aggregate::default();
    let mut rss_full = rss_connected;
    let mut publish_result = PublishResult::default();
    let mut publish_start = Instant::now();
    if let Some(r) = resumed {
        publish_result = r.publish;
        publish_start = r.publish_start;
        resume_summary = r.summary;
        rss_full = r.rss_full.or(rss_connected);
        agg = r.agg;
    } else if s.scenario == Scenario::Idle {
        *timeline.phase.lock().unwrap() = "hold";
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
        rss_full = rss().max(rss_connected);
    } else {
        *timeline.phase.lock().unwrap() = "publish";
        let target = match s.scenario {
            Scenario::Fanout => Target::Broadcast,
            Scenario::Kafka => Target::Kafka {
                users: s.users,
                command: args.kafka_produce.clone(),
            },
            _ => Target::Unicast { users: s.users },
        };
        let plan = Arc::new(PublishPlan {
            protocol: args.protocol,
            headers: protocol::header_lines(&args.publish_header)?,
            server: s.server,
            host: s.host.clone(),
            path_prefix: if s.scenario == Scenario::Kafka {
                "/v3".into()
            } else {
                "/v2".into()
            },
            user_prefix: s.prefix.clone(),
            target,
            rate: args.rate,
            duration: Duration::from_secs_f64(args.duration),
            publishers: args.publishers,
            padding: " ".to_owned() + &"x".repeat(args.pad),
            request_timeout,
        });
        publish_result = publish::publish(plan).await?;
    }
    // 3. Stop: every connection waits for what it should get (up to --grace), then closes.
    *timeline.phase.lock().unwrap() = "drain";
    let grace = if s.scenario == Scenario::Idle {
        0.0
    } else {
        args.grace
    };
    let deadline = Instant::now() + Duration::from_secs_f64(grace);
    let floor_done = floor.map(|f| tokio::spawn(f.finish(publish_result.published, deadline)));
    let mut worker_errors = Vec::new();
    if let Some(subs) = local.take() {
        agg = subs
            .finish(StopInfo {
                published: publish_result.published,
                skipped: publish_result.skipped.clone(),
                deadline,
            })
            .await;
    }
    if let Some(mut r) = remote.take() {
        let skipped = if publish_result.skipped.is_empty() {
            "-".to_string()
        } else {
            publish_result
                .skipped
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let line = format!("stop {} {} {}\n", publish_result.published, grace, skipped);
        for stdin in r.stdins.iter_mut() {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await?;
        }
        for _ in 0..workers {
            let (a, e) = r
                .done
                .recv()
                .await
                .context("a worker died before reporting")?;
            agg.merge(&a);
            worker_errors.extend(e);
        }
        for mut c in r.children {
            let _ = c.wait().await;
        }
    }
    if let Some(done) = floor_done {
        floor_summary = done.await?;
    }
    let window = publish_start.elapsed().as_secs_f64();
    let rss_peak = timeline.rss_peak.load(Ordering::Relaxed);
    // 4. After closing.
    *timeline.phase.lock().unwrap() = "closed";
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss_after = rss();
    ticker.abort();
    let _ = timeline.total.lock().unwrap().add(drain_all());
    let metrics_after = if has_metrics {
        publish::get_text(s.server, &s.host, "/metrics", request_timeout).await
    } else {
        None
    };
    // When the server stopped answering (here or in a worker process), from the start.
    let frozen_since = match (stats::frozen_since().unwrap_or(0), agg.frozen_since) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => a.min(b),
    };
    let frozen_after_s = (frozen_since > 0)
        .then(|| (frozen_since.saturating_sub(started_unix) as f64 / 1e8).round() / 10.0);
    if let Some(t) = frozen_after_s {
        eprintln!("the server froze {t} s into the run (a request got no answer in time)");
    }

    let total = timeline.total.lock().unwrap().clone();
    let latency = stats::latency_of(&total);
    let ticks = timeline.ticks.lock().unwrap().clone();
    let peak_deliveries = ticks.iter().map(|t| t.deliveries).max().unwrap_or(0);
    let metric_delta = |name: &str| -> Option<f64> {
        // A counter that was never incremented may not be listed yet: 0.
        let after = publish::metric_sum(metrics_after.as_deref()?, name).unwrap_or(0.0);
        let before = publish::metric_sum(metrics_before.as_deref()?, name).unwrap_or(0.0);
        Some(after - before)
    };
    let per_stream = |a: Option<u64>, b: Option<u64>| -> Option<u64> {
        let (a, b) = (a?, b?);
        (connected > 0).then(|| (a.saturating_sub(b) * 1024) / connected)
    };
    let mut errors = stats::errors();
    errors.extend(worker_errors);
    let publishes = s.scenario != Scenario::Idle;
    let summary = json!({
        "scenario": s.scenario,
        "protocol": args.protocol,
        "label": args.label,
        "url": args.url,
        "workers": workers,
        "connections": {
            "requested": args.connections,
            "connected": connected,
            "failed": failed,
            "stalled": agg.stalled,
            "closed_early_by_server": agg.closed_early,
            "setup_secs": round3(setup_secs),
            "setup_per_s": if setup_secs > 0.0 { (connected as f64 / setup_secs).round() } else { 0.0 },
        },
        "users": if publishes { Value::from(s.users) } else { Value::Null },
        "publish": if publishes { json!({
            "target_rate": args.rate,
            "duration_s": args.duration,
            "pad_bytes": args.pad,
            "published": publish_result.published,
            "accepted": publish_result.ok,
            "errors": publish_result.errors,
            "achieved_rate": if publish_result.elapsed.as_secs_f64() > 0.0 {
                (publish_result.ok as f64 / publish_result.elapsed.as_secs_f64()).round() } else { 0.0 },
            "server_reported_delivered": publish_result.server_delivered,
            "post_rtt": publish_result.post_rtt,
            "send_lag": publish_result.send_lag,
        }) } else { Value::Null },
        "deliveries": {
            "expected": agg.expected,
            "received": agg.received,
            "per_s": if window > 0.0 && publishes { (agg.received as f64 / window).round() } else { 0.0 },
            "peak_per_s_1s": peak_deliveries,
            "window_s": round3(window),
        },
        "frozen_after_s": frozen_after_s,
        "request_timeout_s": args.request_timeout,
        "lost": agg.lost,
        "duplicated": agg.duplicated,
        "late_or_duplicate": agg.late,
        "latency": latency,
        "latency_from": publishes.then_some(publish_result.latency_from),
        "broker_floor": floor_summary,
        "server_rss_kib": {
            "before": rss_before,
            "connected": rss_connected,
            "full": rss_full,
            "peak": if rss_peak > 0 { Some(rss_peak) } else { None },
            "after_close": rss_after,
            "per_stream_bytes": per_stream(rss_full, rss_before),
        },
        "server_metrics_delta": {
            "sse_events_delivered_total": metric_delta("sse_events_delivered_total"),
            "sse_connections_closed_overflow_total": metric_delta("sse_connections_closed_overflow_total"),
        },
        "errors": errors.iter().map(|(m, n)| json!({"message": m, "count": n})).collect::<Vec<_>>(),
        "timeline": ticks,
    });
    let mut summary = summary;
    if s.scenario == Scenario::Resume {
        summary["resume"] = resume_summary.clone();
    }
    println!("{}", serde_json::to_string(&summary)?);
    if let Some(path) = &args.plot {
        let title = format!(
            "{:?} n={} rate={}/s",
            s.scenario, args.connections, args.rate
        )
        .to_lowercase();
        if let Err(e) = plot::draw(path, &title, &ticks, &total) {
            eprintln!("plot failed: {e:#}");
        }
    }
    let resume_bad = ["missing", "repeated", "replayed_before"]
        .iter()
        .any(|k| resume_summary[k].as_u64().unwrap_or(0) > 0);
    if resume_bad {
        eprintln!(
            "resume: missing={} repeated={} replayed_before={} exact_subscribers={}",
            resume_summary["missing"],
            resume_summary["repeated"],
            resume_summary["replayed_before"],
            resume_summary["exact_subscribers"]
        );
    }
    let bad = resume_bad
        || agg.lost > 0
        || agg.duplicated > 0
        || agg.late > 0
        || failed > 0
        || publish_result.errors > 0
        || agg.closed_early > 0
        || frozen_after_s.is_some();
    if args.strict && bad {
        eprintln!(
            "FAILED: lost={} duplicated={} late={} failed_connections={} publish_errors={} closed_early={} frozen_after_s={:?}",
            agg.lost,
            agg.duplicated,
            agg.late,
            failed,
            publish_result.errors,
            agg.closed_early,
            frozen_after_s
        );
        return Ok(1);
    }
    if connected == 0 {
        bail!("no connection could be opened to {}", args.url);
    }
    Ok(0)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
