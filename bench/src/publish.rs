//! Publishers: a pool of keep-alive HTTP/1.1 connections POSTing at a target rate,
//! or one Kafka producer process fed lines on stdin. Every message carries
//! `seq=N t=<unix nanos>`: at a fixed rate the time message N was *scheduled* for
//! (start + N/rate), so a publisher that falls behind (a slow answer holds up the
//! next POST) adds its delay to the latency instead of hiding it (no coordinated
//! omission); flat out (rate 0) there is no schedule and `t` is the time of sending.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::Instant;

use crate::protocol::{Dest, Protocol};
use crate::sse::find;
use crate::stats::{self, COUNTERS};

pub struct HttpConn {
    server: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    filled: usize,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpConn {
    pub fn new(server: SocketAddr, host: String) -> Self {
        HttpConn {
            server,
            host,
            stream: None,
            buf: vec![0; 4096],
            filled: 0,
        }
    }

    /// A request with this content type and extra header lines (each ending in CRLF).
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &str,
        body: &[u8],
    ) -> Result<Reply> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.server).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.filled = 0;
        }
        let r = self
            .exchange_with(method, path, content_type, headers, body)
            .await;
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn exchange(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Reply> {
        self.exchange_with(method, path, "text/plain; charset=utf-8", "", body)
            .await
    }

    async fn exchange_with(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &str,
        body: &[u8],
    ) -> Result<Reply> {
        let stream = self.stream.as_mut().unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n{headers}Content-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        stream.write_all(&req).await?;
        // Headers.
        let head_end = loop {
            if let Some(end) = find(&self.buf[..self.filled], b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .context("bad status line")?;
        let mut content_length = None;
        let mut chunked = false;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some(v) = line.strip_prefix("content-length:") {
                content_length = v.trim().parse::<usize>().ok();
            } else if line.starts_with("transfer-encoding:") && line.contains("chunked") {
                chunked = true;
            } else if line.starts_with("connection:") && line.contains("close") {
                close = true;
            }
        }
        let body = if let Some(len) = content_length {
            while self.filled < head_end + len {
                self.fill().await?;
            }
            let body = self.buf[head_end..head_end + len].to_vec();
            self.consume(head_end + len);
            body
        } else if chunked {
            self.consume(head_end);
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(p) = find(&self.buf[..self.filled], b"\r\n") {
                        break p;
                    }
                    self.fill().await?;
                };
                let size_str = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size =
                    usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                        .context("bad chunk size")?;
                self.consume(line_end + 2);
                if size == 0 {
                    // Trailers end with an empty line.
                    loop {
                        if let Some(p) = find(&self.buf[..self.filled], b"\r\n") {
                            self.consume(p + 2);
                            if p == 0 {
                                break;
                            }
                        } else {
                            self.fill().await?;
                        }
                    }
                    break;
                }
                while self.filled < size + 2 {
                    self.fill().await?;
                }
                body.extend_from_slice(&self.buf[..size]);
                self.consume(size + 2);
            }
            body
        } else {
            // Body until close.
            self.consume(head_end);
            while self.fill().await.is_ok() {}
            close = true;
            self.buf[..self.filled].to_vec()
        };
        if close {
            self.stream = None;
            self.filled = 0;
        }
        Ok(Reply { status, body })
    }

    /// Forgets the connection (after a timeout left it mid-exchange).
    pub fn reset(&mut self) {
        self.stream = None;
        self.filled = 0;
    }

    async fn fill(&mut self) -> Result<()> {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let stream = self.stream.as_mut().unwrap();
        let n = stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        self.filled += n;
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }
}

/// `"delivered": 123` in a JSON reply.
fn delivered_of(body: &[u8]) -> Option<u64> {
    let at = find(body, b"\"delivered\"")?;
    let rest = &body[at + 11..];
    let rest = &rest[rest.iter().position(|b| b.is_ascii_digit())?..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

#[derive(Clone, Debug)]
pub enum Target {
    Broadcast,
    Unicast {
        users: u64,
    },
    Kafka {
        users: u64,
        command: String,
    },
    /// Message `first_seq + k` goes to `dests[k]`, at the rate from the start of
    /// this batch (resume scenario).
    Listed {
        first_seq: u64,
        dests: Arc<Vec<Dest>>,
    },
}

pub struct PublishPlan {
    pub protocol: Protocol,
    /// Extra header lines of every POST (`--publish-header`), each ending in CRLF.
    pub headers: String,
    pub server: SocketAddr,
    pub host: String,
    pub path_prefix: String,
    pub user_prefix: String,
    pub target: Target,
    /// messages/s; 0 = as fast as the publishers go
    pub rate: f64,
    pub duration: Duration,
    pub publishers: usize,
    /// Appended to each HTTP-published payload (a space and `--pad` bytes, or a space).
    pub padding: String,
    /// How long one POST (or one write to the Kafka producer) may take; past it the
    /// server counts as frozen and publishing stops.
    pub request_timeout: Duration,
}

/// What the `t=` of the messages is, so what latency is measured from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyFrom {
    /// start + N/rate (fixed-rate runs).
    #[default]
    Scheduled,
    /// The moment the message was written (flat-out runs).
    Sent,
}

#[derive(Debug, Default)]
pub struct PublishResult {
    /// Sequence numbers 0..published were taken; `skipped` of them were not accepted.
    pub published: u64,
    pub skipped: Vec<u64>,
    pub ok: u64,
    pub errors: u64,
    pub server_delivered: u64,
    pub elapsed: Duration,
    pub post_rtt: Option<stats::Latency>,
    pub latency_from: LatencyFrom,
    /// How late the messages were sent after their scheduled time (fixed rate only).
    pub send_lag: Option<stats::Latency>,
    /// The histograms behind `post_rtt` and `send_lag` (to merge batches).
    pub rtt_hist: Option<hdrhistogram::Histogram<u64>>,
    pub lag_hist: Option<hdrhistogram::Histogram<u64>>,
}

impl PublishResult {
    /// Adds another batch's results (resume scenario: several batches make a run).
    pub fn merge(&mut self, o: PublishResult) {
        self.published += o.published;
        self.skipped.extend(o.skipped);
        self.ok += o.ok;
        self.errors += o.errors;
        self.server_delivered += o.server_delivered;
        self.elapsed += o.elapsed;
        self.latency_from = o.latency_from;
        for (mine, theirs, out) in [
            (&mut self.rtt_hist, o.rtt_hist, &mut self.post_rtt),
            (&mut self.lag_hist, o.lag_hist, &mut self.send_lag),
        ] {
            if let Some(theirs) = theirs {
                let h = mine.get_or_insert_with(stats::new_hist);
                let _ = h.add(&theirs);
                *out = Some(stats::latency_of(h));
            }
        }
    }
}

/// Unix nanos at which message `seq` is due, for a run that started at `start_unix`.
fn scheduled_nanos(start_unix: u64, seq: u64, rate: f64) -> u64 {
    start_unix + (seq as f64 * 1e9 / rate) as u64
}

pub async fn publish(plan: Arc<PublishPlan>) -> Result<PublishResult> {
    if let Target::Kafka { .. } = plan.target {
        return publish_kafka(plan).await;
    }
    let start = Instant::now();
    let start_unix = stats::now_nanos();
    let end = start + plan.duration;
    // A listed batch: its own messages, numbered first_seq + k, and no time limit.
    let (first_seq, listed) = match &plan.target {
        Target::Listed { first_seq, dests } => (*first_seq, Some(dests.len() as u64)),
        _ => (0, None),
    };
    let total = if let Some(n) = listed {
        n
    } else if plan.rate > 0.0 {
        (plan.rate * plan.duration.as_secs_f64()).ceil() as u64
    } else {
        u64::MAX
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..plan.publishers.max(1) {
        let plan = plan.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = HttpConn::new(plan.server, plan.host.clone());
            let mut skipped = Vec::new();
            let (mut ok, mut errors, mut delivered) = (0u64, 0u64, 0u64);
            let mut rtt = stats::new_hist();
            let mut lag = stats::new_hist();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                let seq = first_seq + k;
                if plan.rate > 0.0 {
                    let due = start + Duration::from_secs_f64(k as f64 / plan.rate);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due).await;
                    }
                } else if listed.is_none() && Instant::now() >= end {
                    skipped.push(seq);
                    break;
                }
                if stats::frozen_since().is_some() {
                    // Another request got no answer: do not queue up behind it.
                    skipped.push(seq);
                    break;
                }
                let dest = match &plan.target {
                    Target::Broadcast => Dest::Broadcast,
                    Target::Unicast { users } => Dest::User(seq % users),
                    Target::Listed { dests, .. } => dests[k as usize],
                    Target::Kafka { .. } => unreachable!(),
                };
                let sent = Instant::now();
                let sent_unix = stats::now_nanos();
                let t = if plan.rate > 0.0 {
                    let due = scheduled_nanos(start_unix, k, plan.rate);
                    stats::record_nanos(&mut lag, sent_unix.saturating_sub(due));
                    due
                } else {
                    sent_unix
                };
                let payload = format!("seq={seq} t={t}{}", plan.padding);
                let (path, content_type, body) = plan.protocol.publish_request(
                    &plan.path_prefix,
                    &plan.user_prefix,
                    dest,
                    &payload,
                );
                let reply = tokio::time::timeout(
                    plan.request_timeout,
                    conn.request_with("POST", &path, content_type, &plan.headers, body.as_bytes()),
                )
                .await;
                let Ok(reply) = reply else {
                    // No answer in time: the connection is in an unknown state, and the
                    // server is frozen (a result, not a reason to hang).
                    conn.reset();
                    errors += 1;
                    skipped.push(seq);
                    COUNTERS.publish_errors.fetch_add(1, Ordering::Relaxed);
                    stats::note_error(&format!(
                        "publish: no answer within {:.1} s",
                        plan.request_timeout.as_secs_f64()
                    ));
                    stats::note_frozen(sent_unix);
                    break;
                };
                match reply {
                    // Any 2xx is accepted: sse-server answers 200 with
                    // `{"id","delivered"}`, Nchan 201/202 with a text summary, Mercure
                    // 200 with the update's id, Centrifugo 200 with `{"result":..}`
                    // (or `{"error":..}`, a failure).
                    Ok(reply)
                        if (200..300).contains(&reply.status)
                            && !plan.protocol.reply_is_error(&reply.body) =>
                    {
                        ok += 1;
                        delivered += delivered_of(&reply.body).unwrap_or(0);
                        let _ = rtt.record((sent.elapsed().as_micros() as u64).max(1));
                        COUNTERS.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => {
                        errors += 1;
                        skipped.push(seq);
                        COUNTERS.publish_errors.fetch_add(1, Ordering::Relaxed);
                        stats::note_error(&format!(
                            "publish: status {} {}",
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                                .chars()
                                .take(200)
                                .collect::<String>()
                        ));
                    }
                    Err(e) => {
                        errors += 1;
                        skipped.push(seq);
                        COUNTERS.publish_errors.fetch_add(1, Ordering::Relaxed);
                        stats::note_error(&format!("publish: {e:#}"));
                    }
                }
            }
            (skipped, ok, errors, delivered, rtt, lag)
        }));
    }
    let mut result = PublishResult::default();
    let mut rtt_all = stats::new_hist();
    let mut lag_all = stats::new_hist();
    for t in tasks {
        let (skipped, ok, errors, delivered, rtt, lag) = t.await?;
        result.skipped.extend(skipped);
        result.ok += ok;
        result.errors += errors;
        result.server_delivered += delivered;
        let _ = rtt_all.add(&rtt);
        let _ = lag_all.add(&lag);
    }
    result.published = next.load(Ordering::Relaxed).min(total);
    // Listed batches report `skipped` in absolute numbers; `published` is a count.
    // Sequence numbers taken after the end (rate 0) are beyond `published`? No: they
    // were taken, so they are in 0..published and listed in `skipped`.
    result.skipped.sort_unstable();
    result.skipped.dedup();
    result.elapsed = start.elapsed();
    result.post_rtt = Some(stats::latency_of(&rtt_all));
    if plan.rate > 0.0 {
        result.send_lag = Some(stats::latency_of(&lag_all));
        result.lag_hist = Some(lag_all);
    } else {
        result.latency_from = LatencyFrom::Sent;
    }
    result.rtt_hist = Some(rtt_all);
    Ok(result)
}

/// Feeds `USER:seq=N t=T` lines to a producer command (the Kafka tool) at the rate
/// (rate 0: 1,000/s), `T` being each record's scheduled time.
async fn publish_kafka(plan: Arc<PublishPlan>) -> Result<PublishResult> {
    let Target::Kafka { users, command } = &plan.target else {
        unreachable!()
    };
    let words: Vec<&str> = command.split_whitespace().collect();
    let (prog, args) = words
        .split_first()
        .context("empty --kafka-produce command")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {command}"))?;
    let mut stdin = child.stdin.take().unwrap();
    // The schedule starts once the producer says it is connected ("ready"), so its
    // own start-up (an interpreter, a first metadata round trip) is not counted as
    // the latency of the first records.
    let mut ready = String::new();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut ready),
    )
    .await
    .context("the Kafka producer did not say it was ready within 30 s")??;
    anyhow::ensure!(
        ready.trim() == "ready",
        "the Kafka producer said {ready:?} instead of \"ready\""
    );
    let start = Instant::now();
    let start_unix = stats::now_nanos();
    let rate = if plan.rate > 0.0 { plan.rate } else { 1000.0 };
    let total = (rate * plan.duration.as_secs_f64()).ceil() as u64;
    let mut seq = 0u64;
    let mut line = String::new();
    let mut failed = false;
    let mut lag = stats::new_hist();
    while seq < total {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        line.clear();
        let now = stats::now_nanos();
        while seq < due {
            use std::fmt::Write;
            let t = scheduled_nanos(start_unix, seq, rate);
            stats::record_nanos(&mut lag, now.saturating_sub(t));
            let _ = writeln!(line, "{}{}:seq={seq} t={t}", plan.user_prefix, seq % users);
            seq += 1;
        }
        if !line.is_empty() {
            let sent_unix = stats::now_nanos();
            match tokio::time::timeout(plan.request_timeout, stdin.write_all(line.as_bytes())).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    stats::note_error(&format!("kafka producer stdin: {e}"));
                    failed = true;
                    break;
                }
                Err(_) => {
                    stats::note_error(&format!(
                        "kafka producer took no input for {:.1} s",
                        plan.request_timeout.as_secs_f64()
                    ));
                    stats::note_frozen(sent_unix);
                    failed = true;
                    break;
                }
            }
            COUNTERS.published.store(seq, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(stdin);
    let elapsed = start.elapsed();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    let ok = matches!(status, Ok(Ok(s)) if s.success()) && !failed;
    if !ok {
        stats::note_error(&format!("kafka producer exited: {status:?}"));
    }
    Ok(PublishResult {
        published: seq,
        skipped: Vec::new(),
        ok: if ok { seq } else { 0 },
        errors: if ok { 0 } else { 1 },
        server_delivered: 0,
        elapsed,
        post_rtt: None,
        latency_from: LatencyFrom::Scheduled,
        send_lag: Some(stats::latency_of(&lag)),
        rtt_hist: None,
        lag_hist: Some(lag),
    })
}

/// GET a path and return the body (for /metrics), best effort: `None` on any error,
/// a non-200 status (Nchan has no /metrics) or no answer within `timeout`.
pub async fn get_text(
    server: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Option<String> {
    let mut conn = HttpConn::new(server, host.to_string());
    let fut = async {
        let stream = TcpStream::connect(server).await.ok()?;
        conn.stream = Some(stream);
        let reply = conn.exchange("GET", path, b"").await.ok()?;
        (reply.status == 200).then(|| String::from_utf8_lossy(&reply.body).to_string())
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}

/// Sum of the values of the metric lines named `name` (any labels).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
            found = true;
        }
    }
    found.then_some(sum)
}
