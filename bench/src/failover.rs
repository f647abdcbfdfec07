//! The failover scenario: N `/v3` streams through a proxy (`--url`, nginx) in front of
//! several sse-server instances on one Kafka cluster, while one instance fails.
//!
//! The tool starts the instances itself (`--server-cmd` plus `--bind` of each
//! `--instance`), so it holds their pids. Then:
//! 1. every stream connects (user `i % users`), behaving like an EventSource: when the
//!    stream ends it waits for the last `retry:` it was given (2000 ms before any) and
//!    reconnects with `Last-Event-ID`, again and again until it is back;
//! 2. a publisher POSTs unique messages to `/v3/message?username=` at `--rate`, round
//!    robin over the users, each with its own `Idempotency-Key`, retried with the same
//!    key (up to `--publish-attempts`) until one answer is 2xx;
//! 3. after `--fault-at` seconds the fault: `kill` sends SIGKILL to instance 0 and
//!    starts it again `--restart-after` seconds later; `rolling` sends SIGTERM to each
//!    instance in turn, waits for its exit, starts it again on the same address and
//!    waits for its `/readyz` 200 before the next;
//! 4. `--duration` seconds more of publishing, then up to `--grace` seconds for the
//!    streams to get everything acknowledged.
//!
//! Per stream cut by the fault: the time from the cut until it is back and exact, i.e.
//! reconnected and holding every message of its user acknowledged before that
//! reconnection. Per stream: acknowledged messages of its user never received (lost)
//! and extra copies (duplicated). Per instance process: its peak RSS (`VmHWM`) and the
//! CPU it used (`utime + stime` in `/proc/PID/stat`) over the run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::time::Instant;

use crate::protocol::ResumePoint;
use crate::publish::HttpConn;
use crate::sse::{self, SseParser};
use crate::stats::{self, COUNTERS};
use crate::{Args, Setup, round3};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL instance 0, start it again after `--restart-after` seconds.
    Kill,
    /// SIGTERM each instance in turn (it drains), start it again, wait for /readyz 200.
    Rolling,
}

/// An EventSource's reconnection time before the server sent any `retry:`.
const DEFAULT_RETRY_MS: u64 = 2000;
/// Pause between two attempts of one publish.
const PUBLISH_RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// One sse-server process started here.
struct Instance {
    index: usize,
    addr: String,
    child: Child,
    pid: u32,
}

impl Instance {
    fn spawn(index: usize, addr: &str, cmd: &[String], log_dir: &Option<PathBuf>) -> Result<Self> {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..])
            .args(["--bind", addr])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match log_dir {
            Some(dir) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("instance-{index}.log")))?;
                c.stdout(log.try_clone()?).stderr(log);
            }
            None => {
                c.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        let child = c.spawn().with_context(|| format!("starting {}", cmd[0]))?;
        let pid = child.id().context("no pid")?;
        Ok(Instance {
            index,
            addr: addr.to_string(),
            child,
            pid,
        })
    }

    /// Polls `/readyz` every 50 ms until it answers 200.
    async fn wait_ready(&mut self, bound: Duration) -> Result<Duration> {
        let started = Instant::now();
        let server = self.addr.parse()?;
        while started.elapsed() < bound {
            if let Some(status) = self.child.try_wait()? {
                bail!("instance {} exited at start ({status})", self.index);
            }
            let mut conn = HttpConn::new(server, self.addr.clone());
            let get = conn.request_with("GET", "/readyz", "text/plain", "", b"");
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(1), get).await
                && r.status == 200
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("instance {} not ready within {bound:?}", self.index)
    }

    async fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            bail!("kill -{name} {} failed", self.pid);
        }
        Ok(())
    }
}

/// What `/proc` says about one instance process over its life in the run.
#[derive(Clone, Debug, Serialize)]
struct ProcFigures {
    instance: usize,
    pid: u32,
    /// Whether it lived through the whole run (started before it, never ended).
    survivor: bool,
    /// Peak resident set (`VmHWM`), KiB.
    peak_rss_kib: u64,
    /// CPU seconds (user + system) from its first to its last sample.
    cpu_s: f64,
    /// That CPU over the same wall time, percent of one core.
    cpu_percent: f64,
    #[serde(skip)]
    first: Option<(Instant, u64)>,
    #[serde(skip)]
    last: Option<(Instant, u64)>,
}

/// Samples `/proc/PID/status` and `/proc/PID/stat` of the running instances.
#[derive(Default)]
struct ProcWatch {
    procs: std::sync::Mutex<Vec<ProcFigures>>,
}

impl ProcWatch {
    fn track(&self, instance: usize, pid: u32, survivor: bool) {
        self.procs.lock().unwrap().push(ProcFigures {
            instance,
            pid,
            survivor,
            peak_rss_kib: 0,
            cpu_s: 0.0,
            cpu_percent: 0.0,
            first: None,
            last: None,
        });
    }

    fn sample(&self, pid: u32) {
        let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            });
        // utime and stime are fields 14 and 15; the command name (field 2) may hold
        // spaces, so count from the closing parenthesis.
        let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split(' ').collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            });
        let mut procs = self.procs.lock().unwrap();
        let Some(p) = procs.iter_mut().find(|p| p.pid == pid) else {
            return;
        };
        if let Some(h) = hwm {
            p.peak_rss_kib = p.peak_rss_kib.max(h);
        }
        if let Some(t) = ticks {
            let now = (Instant::now(), t);
            p.first.get_or_insert(now);
            p.last = Some(now);
        }
    }

    fn ended(&self, pid: u32) {
        if let Some(p) = self.procs.lock().unwrap().iter_mut().find(|p| p.pid == pid) {
            p.survivor = false;
        }
    }

    fn figures(&self) -> Vec<ProcFigures> {
        let mut procs = self.procs.lock().unwrap().clone();
        for p in procs.iter_mut() {
            if let (Some((t0, c0)), Some((t1, c1))) = (p.first, p.last) {
                p.cpu_s = (c1 - c0) as f64 / CLOCK_TICKS;
                let wall = (t1 - t0).as_secs_f64();
                if wall > 0.0 {
                    p.cpu_percent = (p.cpu_s / wall * 1000.0).round() / 10.0;
                }
            }
        }
        procs
    }
}

/// The instances and their samples.
struct Cluster {
    instances: Mutex<Vec<Instance>>,
    watch: ProcWatch,
    cmd: Vec<String>,
    log_dir: Option<PathBuf>,
    ready_bound: Duration,
}

impl Cluster {
    async fn sample(&self) {
        for i in self.instances.lock().await.iter() {
            self.watch.sample(i.pid);
        }
    }

    /// Ends instance `k` (SIGKILL, or SIGTERM and its drain), starts it again after
    /// `pause`, waits for /readyz 200: the step's figures.
    async fn cycle(&self, k: usize, fault: Fault, pause: Duration, t0: Instant) -> Result<Value> {
        let mut instances = self.instances.lock().await;
        let inst = &mut instances[k];
        self.watch.sample(inst.pid);
        let at = Instant::now();
        match fault {
            Fault::Kill => inst.child.start_kill()?,
            Fault::Rolling => inst.signal("TERM").await?,
        }
        // Samples while it drains; the last one holds its peak.
        let status = loop {
            tokio::select! {
                s = inst.child.wait() => break s?,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    self.watch.sample(inst.pid);
                }
            }
        };
        let exited = at.elapsed();
        self.watch.ended(inst.pid);
        tokio::time::sleep(pause).await;
        let addr = inst.addr.clone();
        *inst = Instance::spawn(k, &addr, &self.cmd, &self.log_dir)?;
        self.watch.track(k, inst.pid, false);
        let ready = inst.wait_ready(self.ready_bound).await?;
        eprintln!(
            "failover: instance {k} {} at {:.1}s, exited after {:.2}s ({status}), ready {:.2}s after its restart",
            if fault == Fault::Kill {
                "killed"
            } else {
                "sent SIGTERM"
            },
            (at - t0).as_secs_f64(),
            exited.as_secs_f64(),
            ready.as_secs_f64()
        );
        Ok(json!({
            "instance": k,
            "at_s": round3((at - t0).as_secs_f64()),
            "exit_after_s": round3(exited.as_secs_f64()),
            "exit_status": status.to_string(),
            "ready_after_restart_s": round3(ready.as_secs_f64()),
            "back_in_service_after_s": round3(at.elapsed().as_secs_f64()),
        }))
    }

    async fn stop_all(&self) {
        for inst in self.instances.lock().await.iter_mut() {
            let _ = inst.signal("TERM").await;
            let _ = tokio::time::timeout(Duration::from_secs(30), inst.child.wait()).await;
        }
    }
}

/// One message: its user, and what the publisher got.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    user: u64,
    first_ok: bool,
    /// When the 2xx came (none: refused to the last attempt).
    acked: Option<Instant>,
}

struct Publisher {
    server: std::net::SocketAddr,
    host: String,
    prefix: String,
    users: u64,
    rate: f64,
    attempts: u32,
    request_timeout: Duration,
    next: AtomicU64,
    stop: AtomicBool,
    sent: std::sync::Mutex<HashMap<u64, Sent>>,
}

impl Publisher {
    /// One of the parallel publishers: takes the next number, waits for its turn,
    /// publishes it with its key until a 2xx or the attempts run out.
    async fn run(self: Arc<Self>, start: Instant) {
        let mut conn = HttpConn::new(self.server, self.host.clone());
        loop {
            let seq = self.next.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / self.rate)).await;
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let user = seq % self.users;
            let path = format!("/v3/message?username={}{user}", self.prefix);
            let headers = format!("Idempotency-Key: {}{seq}\r\n", self.prefix);
            let body = format!("seq={seq} t={}", stats::now_nanos());
            let mut sent = Sent {
                user,
                ..Default::default()
            };
            for attempt in 0..self.attempts {
                if attempt > 0 {
                    tokio::time::sleep(PUBLISH_RETRY_PAUSE).await;
                }
                let post = conn.request_with(
                    "POST",
                    &path,
                    "text/plain; charset=utf-8",
                    &headers,
                    body.as_bytes(),
                );
                let ok = match tokio::time::timeout(self.request_timeout, post).await {
                    Ok(Ok(r)) if (200..300).contains(&r.status) => true,
                    Ok(Ok(r)) => {
                        stats::note_error(&format!("publish: status {}", r.status));
                        false
                    }
                    Ok(Err(e)) => {
                        stats::note_error(&format!("publish: {e:#}"));
                        false
                    }
                    Err(_) => {
                        stats::note_error("publish: no answer in time");
                        conn.reset();
                        false
                    }
                };
                if ok {
                    sent.first_ok = attempt == 0;
                    sent.acked = Some(Instant::now());
                    break;
                }
            }
            COUNTERS.published.fetch_add(1, Ordering::Relaxed);
            self.sent.lock().unwrap().insert(seq, sent);
        }
    }
}

/// What one stream saw.
#[derive(Default)]
struct StreamRecord {
    user: u64,
    failed: bool,
    /// First arrival and number of copies of each message number.
    arrivals: HashMap<u64, (Instant, u32)>,
    /// Each time the stream ended: when, and when it was back (response headers of a
    /// new connection), if it was.
    cuts: Vec<(Instant, Option<Instant>)>,
    /// Reconnection attempts that failed (refused, an error status, no headers).
    failed_attempts: u64,
    /// `event: reset`: the server could not resume from the id.
    resets: u64,
}

/// Shared by the streams and the conductor.
struct Ctx {
    sub: Arc<sse::SubConfig>,
    permits: Semaphore,
    ready: AtomicU64,
    /// Per stream: unique messages received (to know when all are in).
    unique: Vec<AtomicU64>,
    cut_now: AtomicU64,
}

async fn stream(i: usize, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) -> StreamRecord {
    let mut rec = StreamRecord {
        user: ctx.sub.user_of(i),
        ..Default::default()
    };
    let mut resume: Option<ResumePoint> = None;
    let mut retry = Duration::from_millis(DEFAULT_RETRY_MS);
    let mut first = true;
    loop {
        let opened = {
            let _permit = ctx.permits.acquire().await;
            tokio::time::timeout(
                ctx.sub.connect_timeout,
                sse::open_stream(i, &ctx.sub, false, resume.as_ref()),
            )
            .await
        };
        let o = match opened {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                stats::note_error(&format!("connect: {e:#}"));
                if first {
                    rec.failed = true;
                    COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
                    ctx.ready.fetch_add(1, Ordering::SeqCst);
                    return rec;
                }
                rec.failed_attempts += 1;
                if wait_or_stop(retry, &mut stop).await {
                    return rec;
                }
                continue;
            }
            Err(_) => {
                stats::note_error("connect: no response headers in time");
                if first {
                    rec.failed = true;
                    COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
                    ctx.ready.fetch_add(1, Ordering::SeqCst);
                    return rec;
                }
                rec.failed_attempts += 1;
                if wait_or_stop(retry, &mut stop).await {
                    return rec;
                }
                continue;
            }
        };
        let back = Instant::now();
        if first {
            first = false;
            COUNTERS.connected.fetch_add(1, Ordering::Relaxed);
            ctx.ready.fetch_add(1, Ordering::SeqCst);
        } else if let Some(cut) = rec.cuts.last_mut() {
            cut.1 = Some(back);
            ctx.cut_now.fetch_sub(1, Ordering::Relaxed);
        }
        COUNTERS.open.fetch_add(1, Ordering::Relaxed);
        let sse::OpenStream {
            mut stream,
            mut buf,
            chunked,
            body_start,
            filled,
        } = o;
        let mut parser = SseParser::for_protocol(chunked, ctx.sub.protocol, true);
        let head = buf[body_start..filled].to_vec();
        feed(i, &ctx, &mut parser, &mut rec, &head);
        let stopped = loop {
            if parser.ended() {
                break false;
            }
            tokio::select! {
                r = stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => {
                        let bytes = buf[..n].to_vec();
                        feed(i, &ctx, &mut parser, &mut rec, &bytes);
                    }
                },
                r = stop.changed() => if r.is_err() || *stop.borrow() { break true },
            }
        };
        COUNTERS.open.fetch_sub(1, Ordering::Relaxed);
        rec.resets += parser.resets;
        if stopped {
            return rec;
        }
        // Cut: reconnect like an EventSource, after the last retry, from the last id.
        rec.cuts.push((Instant::now(), None));
        ctx.cut_now.fetch_add(1, Ordering::Relaxed);
        resume = parser.resume_point().or(resume);
        if let Some(ms) = parser.retry_ms {
            retry = Duration::from_millis(ms);
        }
        if wait_or_stop(retry, &mut stop).await {
            return rec;
        }
    }
}

/// Sleeps `d`; true when told to stop meanwhile.
async fn wait_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

fn feed(i: usize, ctx: &Ctx, parser: &mut SseParser, rec: &mut StreamRecord, bytes: &[u8]) {
    let now = Instant::now();
    let mut events = 0;
    parser.feed(bytes, &mut |seq, _| {
        events += 1;
        let a = rec.arrivals.entry(seq).or_insert((now, 0));
        a.1 += 1;
        if a.1 == 1 {
            ctx.unique[i].fetch_add(1, Ordering::Relaxed);
        }
    });
    COUNTERS.received.fetch_add(events, Ordering::Relaxed);
}

/// p50, p99 and max of `v` (sorted here), in milliseconds.
fn percentiles(v: &mut [u64]) -> Value {
    v.sort_unstable();
    let at = |q: f64| v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1));
    json!({ "count": v.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": v.last() })
}

pub async fn run(args: &Args, s: &Setup) -> Result<i32> {
    if args.instance.is_empty() {
        bail!("failover: no --instance");
    }
    let cmd: Vec<String> = args
        .server_cmd
        .as_deref()
        .context("failover: no --server-cmd")?
        .split_whitespace()
        .map(String::from)
        .collect();
    if cmd.is_empty() {
        bail!("failover: empty --server-cmd");
    }
    if let Some(dir) = &args.log_dir {
        std::fs::create_dir_all(dir)?;
    }
    let n = args.connections;
    let ready_bound = Duration::from_secs_f64(args.connect_timeout.max(120.0));
    let cluster = Arc::new(Cluster {
        instances: Mutex::new(Vec::new()),
        watch: ProcWatch::default(),
        cmd,
        log_dir: args.log_dir.clone(),
        ready_bound,
    });
    {
        let mut instances = cluster.instances.lock().await;
        for (k, addr) in args.instance.iter().enumerate() {
            let inst = Instance::spawn(k, addr, &cluster.cmd, &cluster.log_dir)?;
            cluster.watch.track(k, inst.pid, true);
            instances.push(inst);
        }
        for inst in instances.iter_mut() {
            let t = inst.wait_ready(ready_bound).await?;
            eprintln!(
                "failover: instance {} ({}) ready in {:.1}s",
                inst.index,
                inst.addr,
                t.as_secs_f64()
            );
        }
    }
    let result = measure(args, s, &cluster, n).await;
    cluster.stop_all().await;
    result
}

async fn measure(args: &Args, s: &Setup, cluster: &Arc<Cluster>, n: usize) -> Result<i32> {
    let started = Instant::now();
    let sampler = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            loop {
                cluster.sample().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    // 1. Connect.
    let ctx = Arc::new(Ctx {
        sub: s.sub.clone(),
        permits: Semaphore::new(args.connect_concurrency.max(1)),
        ready: AtomicU64::new(0),
        unique: (0..n).map(|_| AtomicU64::new(0)).collect(),
        cut_now: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(stream(i, ctx.clone(), stop_rx.clone())))
        .collect();
    while ctx.ready.load(Ordering::SeqCst) < n as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let setup_s = started.elapsed().as_secs_f64();
    let connected = COUNTERS.connected.load(Ordering::Relaxed);
    eprintln!("failover: {connected}/{n} streams connected in {setup_s:.1}s");
    // A /v3 stream is live once its instance's reader caught up.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Progress every second.
    let t0 = Instant::now();
    let progress = {
        let ctx = ctx.clone();
        let quiet = args.quiet;
        tokio::spawn(async move {
            let (mut last_recv, mut last_pub) = (0, 0);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let recv = COUNTERS.received.load(Ordering::Relaxed);
                let published = COUNTERS.published.load(Ordering::Relaxed);
                if !quiet {
                    eprintln!(
                        "[{:6.1}s] open={} cut={} published/s={} deliveries/s={}",
                        t0.elapsed().as_secs_f64(),
                        COUNTERS.open.load(Ordering::Relaxed),
                        ctx.cut_now.load(Ordering::Relaxed),
                        published - last_pub,
                        recv - last_recv
                    );
                }
                (last_recv, last_pub) = (recv, published);
            }
        })
    };

    // 2. Publish throughout; 3. the fault; 4. more publishing.
    let publisher = Arc::new(Publisher {
        server: s.server,
        host: s.host.clone(),
        prefix: s.prefix.clone(),
        users: s.users,
        rate: args.rate.max(1.0),
        attempts: args.publish_attempts.max(1),
        request_timeout: Duration::from_secs_f64(args.request_timeout),
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        sent: std::sync::Mutex::new(HashMap::new()),
    });
    let pubs: Vec<_> = (0..args.publishers.max(1))
        .map(|_| tokio::spawn(publisher.clone().run(t0)))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.fault_at)).await;
    let fault = args.fault;
    let mut steps = Vec::new();
    match fault {
        Fault::Kill => {
            let pause = Duration::from_secs_f64(args.restart_after);
            steps.push(cluster.cycle(0, fault, pause, t0).await?);
        }
        Fault::Rolling => {
            for k in 0..args.instance.len() {
                steps.push(cluster.cycle(k, fault, Duration::ZERO, t0).await?);
            }
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    publisher.stop.store(true, Ordering::Relaxed);
    for p in pubs {
        p.await?;
    }
    let publishing_s = t0.elapsed().as_secs_f64();

    // 5. Until every stream holds every acknowledged message of its user (or --grace).
    let sent = publisher.sent.lock().unwrap().clone();
    let mut acked_per_user = vec![0u64; s.users as usize];
    for m in sent.values().filter(|m| m.acked.is_some()) {
        acked_per_user[m.user as usize] += 1;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.grace);
    while Instant::now() < deadline
        && (0..n).any(|i| {
            ctx.unique[i].load(Ordering::Relaxed) < acked_per_user[s.sub.user_of(i) as usize]
        })
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A late second copy still counts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.sample().await;
    sampler.abort();
    let _ = stop_tx.send(true);
    let mut records = Vec::with_capacity(n);
    for t in tasks {
        records.push(t.await?);
    }
    progress.abort();

    // Figures.
    let mut acked_of: Vec<Vec<(u64, Instant)>> = vec![Vec::new(); s.users as usize];
    for (&seq, m) in &sent {
        if let Some(at) = m.acked {
            acked_of[m.user as usize].push((seq, at));
        }
    }
    let (mut lost, mut duplicated, mut resets, mut failed_attempts) = (0u64, 0u64, 0u64, 0u64);
    let (mut cut_streams, mut never_back, mut never_exact) = (0u64, 0u64, 0u64);
    let mut back_ms = Vec::new();
    let mut failed = 0u64;
    for rec in &records {
        if rec.failed {
            failed += 1;
            continue;
        }
        let acked = &acked_of[rec.user as usize];
        lost += acked
            .iter()
            .filter(|(seq, _)| !rec.arrivals.contains_key(seq))
            .count() as u64;
        duplicated += rec
            .arrivals
            .values()
            .map(|&(_, c)| u64::from(c - 1))
            .sum::<u64>();
        resets += rec.resets;
        failed_attempts += rec.failed_attempts;
        cut_streams += u64::from(!rec.cuts.is_empty());
        for &(cut, back) in &rec.cuts {
            let Some(back) = back else {
                never_back += 1;
                continue;
            };
            // Exact once every message acknowledged before the reconnection is in.
            let mut exact = Some(back);
            for &(seq, _) in acked.iter().filter(|(_, at)| *at < back) {
                exact = match (exact, rec.arrivals.get(&seq)) {
                    (Some(e), Some(&(arrived, _))) => Some(e.max(arrived)),
                    _ => None,
                };
            }
            match exact {
                Some(e) => back_ms.push((e - cut).as_millis() as u64),
                None => never_exact += 1,
            }
        }
    }
    let cuts = back_ms.len() as u64 + never_back + never_exact;
    let published = sent.len() as u64;
    let acked_total = sent.values().filter(|m| m.acked.is_some()).count() as u64;
    let refused_first = sent.values().filter(|m| !m.first_ok).count() as u64;
    let procs = cluster.watch.figures();
    let summary = json!({
        "scenario": "failover",
        "fault": fault,
        "label": args.label,
        "url": args.url,
        "instances": args.instance,
        "server_cmd": args.server_cmd,
        "connections": { "requested": n, "connected": connected, "failed": failed,
                         "setup_secs": round3(setup_s) },
        "users": s.users,
        "publish": {
            "target_rate": args.rate,
            "publishing_s": round3(publishing_s),
            "published": published,
            "acknowledged": acked_total,
            "refused_first_try": refused_first,
            "refused_final": published - acked_total,
            "attempts_max": args.publish_attempts,
        },
        "steps": steps,
        "cut_streams": cut_streams,
        "cuts": cuts,
        "back_and_exact": percentiles(&mut back_ms),
        "never_back": never_back,
        "never_exact": never_exact,
        "failed_reconnect_attempts": failed_attempts,
        "resets": resets,
        "lost": lost,
        "duplicated": duplicated,
        "processes": procs,
        "errors": stats::errors().iter().map(|(m, c)| json!({"message": m, "count": c})).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string(&summary)?);
    let bad = failed > 0
        || lost > 0
        || duplicated > 0
        || never_back > 0
        || never_exact > 0
        || published > acked_total;
    if args.strict && bad {
        eprintln!(
            "FAILED: failed={failed} lost={lost} duplicated={duplicated} never_back={never_back} never_exact={never_exact} refused_final={}",
            published - acked_total
        );
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_small_set() {
        let mut v: Vec<u64> = (1..=200).rev().collect();
        let p = percentiles(&mut v);
        assert_eq!(p["count"], 200);
        assert_eq!(p["p50_ms"], 100);
        assert_eq!(p["p99_ms"], 198);
        assert_eq!(p["max_ms"], 200);
        assert_eq!(percentiles(&mut [])["p99_ms"], Value::Null);
    }
}
