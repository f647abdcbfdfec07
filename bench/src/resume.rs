//! The resume scenario: does a subscriber that was away get exactly what it missed?
//!
//! 1. `before`: N subscribers connect (user `i % users`); `--live-messages` messages
//!    per user (and one broadcast, unless `--away-broadcasts 0`) are published and
//!    received.
//! 2. `away`: every subscriber disconnects, keeping where it was: the `id:` of the
//!    last event (sse-server, Nchan, Mercure), or each channel's epoch and last
//!    offset (Centrifugo). `--away-messages` per user and `--away-broadcasts` are
//!    published.
//! 3. `resume`: every subscriber reconnects from there (`Last-Event-ID`, or
//!    `cf_connect` with `{"recover":true,"offset":..,"epoch":..}` per channel).
//! 4. `live`: `--live-messages` per user (and one broadcast) more.
//!
//! Per subscriber, among the away and live messages meant for it: how many never
//! came (`missing`) and how many came more than once (`repeated`), and how many
//! messages it had before leaving came again (`replayed_before`). Latency is
//! recorded for the before and live messages only (the away ones wait for the
//! reconnection by design), from their scheduled send time as elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::protocol::{Dest, ResumePoint, header_lines};
use crate::publish::{self, PublishPlan, PublishResult, Target};
use crate::sse::{self, SseParser, SubConfig};
use crate::stats::{self, COUNTERS};
use crate::{Aggregate, Args, Setup, Timeline};

/// What `main` puts in the summary.
pub struct Outcome {
    pub connected: u64,
    pub failed: u64,
    pub setup_secs: f64,
    pub rss_connected: Option<u64>,
    pub rss_full: Option<u64>,
    pub publish: PublishResult,
    pub publish_start: Instant,
    pub agg: Aggregate,
    pub summary: Value,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Before,
    Away,
    Back,
    /// Read until everything expected is there, or until this deadline.
    Finish(Instant),
}

/// Every message of the run, numbered 0..total: `before` first, then `away`, then
/// `live`.
struct Messages {
    dests: Vec<Dest>,
    /// Index of message `seq` among its user's unicast messages (or among the
    /// broadcasts): where a subscriber counts it.
    slot: Vec<u32>,
    /// Unicast messages per user, and broadcasts, in all.
    per_user: u64,
    broadcasts: u64,
    away_start: u64,
    live_start: u64,
}

impl Messages {
    fn new(users: u64, live: u64, away: u64, away_broadcasts: u64) -> Self {
        let edge_broadcasts = u64::from(away_broadcasts > 0);
        let phase = |per_user: u64, broadcasts: u64| {
            let n = per_user * users;
            let mut v: Vec<Dest> = (0..n).map(|k| Dest::User(k % users)).collect();
            // Broadcasts spread evenly among the unicast messages.
            for j in (0..broadcasts).rev() {
                let at = ((j + 1) * n / (broadcasts + 1)) as usize;
                v.insert(at, Dest::Broadcast);
            }
            v
        };
        let mut dests = phase(live, edge_broadcasts);
        let away_start = dests.len() as u64;
        dests.extend(phase(away, away_broadcasts));
        let live_start = dests.len() as u64;
        dests.extend(phase(live, edge_broadcasts));
        let mut next_user = vec![0u32; users as usize];
        let mut next_broadcast = 0u32;
        let slot = dests
            .iter()
            .map(|d| match *d {
                Dest::User(u) => {
                    let s = next_user[u as usize];
                    next_user[u as usize] += 1;
                    s
                }
                Dest::Broadcast => {
                    next_broadcast += 1;
                    next_broadcast - 1
                }
            })
            .collect();
        Messages {
            dests,
            slot,
            per_user: 2 * live + away,
            broadcasts: 2 * edge_broadcasts + away_broadcasts,
            away_start,
            live_start,
        }
    }
    fn total(&self) -> u64 {
        self.dests.len() as u64
    }
    fn batch(&self, from: u64, to: u64) -> (u64, Arc<Vec<Dest>>) {
        (
            from,
            Arc::new(self.dests[from as usize..to as usize].to_vec()),
        )
    }
    fn is_away(&self, seq: u64) -> bool {
        (self.away_start..self.live_start).contains(&seq)
    }
    /// Messages of `[from, to)` meant for `user`.
    fn count_for(&self, user: u64, from: u64, to: u64) -> u64 {
        self.dests[from as usize..to as usize]
            .iter()
            .filter(|d| matches!(d, Dest::Broadcast) || **d == Dest::User(user))
            .count() as u64
    }
}

/// Shared by the subscriber tasks and the conductor.
struct Ctx {
    sub: Arc<SubConfig>,
    msgs: Messages,
    connect_timeout: Duration,
    permits: Semaphore,
    /// Subscribers whose first (then second) connection attempt is over.
    ready: AtomicU64,
    back: AtomicU64,
    /// Subscribers that closed their first connection.
    gone: AtomicU64,
    /// Per subscriber: before-messages not received yet (0 once failed).
    before_left: Vec<AtomicU64>,
}

/// What one subscriber saw.
#[derive(Default, Debug)]
struct SubRecord {
    /// Times each of its user's unicast messages, and each broadcast, arrived.
    unicast: Vec<u8>,
    broadcast: Vec<u8>,
    /// Events that were not meant for this subscriber (or unknown numbers).
    unexpected: u64,
    failed: bool,
    reconnect_failed: bool,
    closed_early: bool,
    /// The resume point it left with was `None` (no event id / position).
    no_resume_point: bool,
    resets: u64,
    events: u64,
}

struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    parser: SseParser,
}

async fn connect(
    i: usize,
    ctx: &Ctx,
    resume: Option<&ResumePoint>,
) -> Result<(Conn, usize, usize)> {
    let _permit = ctx.permits.acquire().await?;
    let started = stats::now_nanos();
    match tokio::time::timeout(
        ctx.connect_timeout,
        sse::open_stream(i, &ctx.sub, false, resume),
    )
    .await
    {
        Ok(Ok(o)) => Ok((
            Conn {
                stream: o.stream,
                buf: o.buf,
                parser: SseParser::for_protocol(o.chunked, ctx.sub.protocol, true),
            },
            o.body_start,
            o.filled,
        )),
        Ok(Err(e)) => {
            stats::note_error(&format!("connect: {e:#}"));
            Err(e)
        }
        Err(_) => {
            stats::note_error(&format!(
                "connect: no response headers within {:.1} s",
                ctx.connect_timeout.as_secs_f64()
            ));
            stats::note_frozen(started);
            anyhow::bail!("timeout")
        }
    }
}

/// Feeds bytes to the parser and counts the events.
fn feed(i: usize, user: u64, ctx: &Ctx, parser: &mut SseParser, rec: &mut SubRecord, bytes: &[u8]) {
    let now = stats::now_nanos();
    let mut events = 0u64;
    parser.feed(bytes, &mut |seq, t| {
        events += 1;
        let msgs = &ctx.msgs;
        let Some(dest) = msgs.dests.get(seq as usize) else {
            rec.unexpected += 1;
            return;
        };
        let slot = msgs.slot[seq as usize] as usize;
        let count = match *dest {
            Dest::Broadcast => &mut rec.broadcast[slot],
            Dest::User(u) if u == user => &mut rec.unicast[slot],
            Dest::User(_) => {
                rec.unexpected += 1;
                return;
            }
        };
        *count = count.saturating_add(1);
        if *count == 1 && seq < msgs.away_start {
            let _ = ctx.before_left[i]
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
        if !msgs.is_away(seq) {
            stats::record_latency(now.saturating_sub(t));
        }
    });
    rec.events += events;
    COUNTERS.received.fetch_add(events, Ordering::Relaxed);
}

/// Whether every message meant for this subscriber arrived.
fn complete(rec: &SubRecord) -> bool {
    rec.unicast.iter().all(|&c| c > 0) && rec.broadcast.iter().all(|&c| c > 0)
}

/// Reads until `done(phase, rec)` says so or the phase's deadline passes; true when
/// the server closed the stream.
async fn read_events(
    i: usize,
    user: u64,
    ctx: &Ctx,
    conn: &mut Conn,
    rec: &mut SubRecord,
    phase: &mut watch::Receiver<Phase>,
    done: impl Fn(Phase, &SubRecord) -> bool,
) -> bool {
    loop {
        let p = *phase.borrow_and_update();
        if done(p, rec) {
            return false;
        }
        let deadline = match p {
            Phase::Finish(d) => Some(d),
            _ => None,
        };
        tokio::select! {
            r = conn.stream.read(&mut conn.buf) => match r {
                Ok(0) | Err(_) => return true,
                Ok(n) => {
                    let Conn { buf, parser, .. } = conn;
                    feed(i, user, ctx, parser, rec, &buf[..n]);
                    if parser.ended() {
                        return true;
                    }
                }
            },
            r = phase.changed() => if r.is_err() { return false },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => return false,
        }
    }
}

async fn wait_phase(phase: &mut watch::Receiver<Phase>, ok: impl Fn(Phase) -> bool) {
    loop {
        if ok(*phase.borrow_and_update()) {
            return;
        }
        if phase.changed().await.is_err() {
            return;
        }
    }
}

async fn subscriber(i: usize, ctx: Arc<Ctx>, mut phase: watch::Receiver<Phase>) -> SubRecord {
    let user = ctx.sub.user_of(i);
    let mut rec = SubRecord {
        unicast: vec![0; ctx.msgs.per_user as usize],
        broadcast: vec![0; ctx.msgs.broadcasts as usize],
        ..Default::default()
    };
    // 1. Connected until told to leave.
    let first = connect(i, &ctx, None).await;
    let mut resume = None;
    match first {
        Ok((mut conn, start, filled)) => {
            COUNTERS.connected.fetch_add(1, Ordering::Relaxed);
            COUNTERS.open.fetch_add(1, Ordering::Relaxed);
            ctx.ready.fetch_add(1, Ordering::SeqCst);
            let body = conn.buf[start..filled].to_vec();
            feed(i, user, &ctx, &mut conn.parser, &mut rec, &body);
            let closed = read_events(i, user, &ctx, &mut conn, &mut rec, &mut phase, |p, _| {
                p != Phase::Before
            })
            .await;
            rec.closed_early |= closed;
            resume = conn.parser.resume_point();
            rec.resets += conn.parser.resets;
            rec.no_resume_point = resume.is_none();
            drop(conn);
            COUNTERS.open.fetch_sub(1, Ordering::Relaxed);
        }
        Err(_) => {
            rec.failed = true;
            COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
            ctx.before_left[i].store(0, Ordering::Relaxed);
            ctx.ready.fetch_add(1, Ordering::SeqCst);
        }
    }
    // 2. Away.
    wait_phase(&mut phase, |p| p != Phase::Before).await;
    ctx.gone.fetch_add(1, Ordering::SeqCst);
    wait_phase(&mut phase, |p| matches!(p, Phase::Back | Phase::Finish(_))).await;
    if rec.failed {
        ctx.back.fetch_add(1, Ordering::SeqCst);
        return rec;
    }
    // 3. Back, from where it was.
    match connect(i, &ctx, resume.as_ref()).await {
        Ok((mut conn, start, filled)) => {
            COUNTERS.open.fetch_add(1, Ordering::Relaxed);
            ctx.back.fetch_add(1, Ordering::SeqCst);
            let body = conn.buf[start..filled].to_vec();
            feed(i, user, &ctx, &mut conn.parser, &mut rec, &body);
            let closed = read_events(i, user, &ctx, &mut conn, &mut rec, &mut phase, |p, rec| {
                matches!(p, Phase::Finish(_)) && complete(rec)
            })
            .await;
            rec.closed_early |= closed;
            rec.resets += conn.parser.resets;
            drop(conn);
            COUNTERS.open.fetch_sub(1, Ordering::Relaxed);
        }
        Err(_) => {
            rec.reconnect_failed = true;
            ctx.back.fetch_add(1, Ordering::SeqCst);
        }
    }
    rec
}

async fn wait_count(counter: &AtomicU64, n: u64) {
    while counter.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn run(args: &Args, s: &Setup, timeline: &Timeline) -> Result<Outcome> {
    let n = args.connections;
    let msgs = Messages::new(
        s.users,
        args.live_messages,
        args.away_messages,
        args.away_broadcasts,
    );
    let rss = || stats::rss_kib_sum(&args.server_pid);
    let set_phase = |name: &'static str| *timeline.phase.lock().unwrap() = name;
    let grace = Duration::from_secs_f64(args.grace);
    let ctx = Arc::new(Ctx {
        sub: s.sub.clone(),
        before_left: (0..n)
            .map(|i| AtomicU64::new(msgs.count_for(s.sub.user_of(i), 0, msgs.away_start)))
            .collect(),
        msgs,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        permits: Semaphore::new(args.connect_concurrency.max(1)),
        ready: AtomicU64::new(0),
        back: AtomicU64::new(0),
        gone: AtomicU64::new(0),
    });
    let publish_batch = |from: u64, to: u64| {
        let (first_seq, dests) = ctx.msgs.batch(from, to);
        let plan = PublishPlan {
            protocol: args.protocol,
            headers: header_lines(&args.publish_header)?,
            server: s.server,
            host: s.host.clone(),
            path_prefix: "/v2".into(),
            user_prefix: s.prefix.clone(),
            target: Target::Listed { first_seq, dests },
            rate: args.rate,
            duration: Duration::ZERO,
            publishers: args.publishers,
            padding: " ".to_owned() + &"x".repeat(args.pad),
            request_timeout: Duration::from_secs_f64(args.request_timeout),
        };
        anyhow::Ok(publish::publish(Arc::new(plan)))
    };

    // 1. Connect, then the messages before leaving.
    let connect_start = Instant::now();
    let (phase_tx, phase_rx) = watch::channel(Phase::Before);
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(subscriber(i, ctx.clone(), phase_rx.clone())))
        .collect();
    wait_count(&ctx.ready, n as u64).await;
    let setup_secs = connect_start.elapsed().as_secs_f64();
    let connected = load(&COUNTERS.connected);
    let failed_first = load(&COUNTERS.failed);
    let rss_connected = rss();

    set_phase("before");
    let publish_start = Instant::now();
    let mut published = publish_batch(0, ctx.msgs.away_start)?.await?;
    let before_deadline = Instant::now() + grace;
    while ctx
        .before_left
        .iter()
        .any(|c| c.load(Ordering::Relaxed) > 0)
        && Instant::now() < before_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before_incomplete = ctx
        .before_left
        .iter()
        .filter(|c| c.load(Ordering::Relaxed) > 0)
        .count();

    // 2. Away: everyone leaves, then the messages they miss.
    set_phase("away");
    let _ = phase_tx.send(Phase::Away);
    wait_count(&ctx.gone, n as u64).await;
    published.merge(publish_batch(ctx.msgs.away_start, ctx.msgs.live_start)?.await?);

    // 3. Back.
    set_phase("resume");
    let reconnect_start = Instant::now();
    let _ = phase_tx.send(Phase::Back);
    wait_count(&ctx.back, n as u64).await;
    let reconnect_secs = reconnect_start.elapsed().as_secs_f64();

    // 4. Live again.
    set_phase("live");
    published.merge(publish_batch(ctx.msgs.live_start, ctx.msgs.total())?.await?);
    let rss_full = rss();
    set_phase("drain");
    let _ = phase_tx.send(Phase::Finish(Instant::now() + grace));
    let mut records = Vec::with_capacity(n);
    for t in tasks {
        records.push(t.await?);
    }
    drop(phase_tx);

    // Per subscriber: what was meant for it, among the away and live messages, and
    // what of it is missing or came twice; before-messages that came again.
    let msgs = &ctx.msgs;
    let skipped: std::collections::HashSet<u64> = published.skipped.iter().copied().collect();
    let (mut missing, mut repeated, mut replayed_before, mut before_missing) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut exact, mut resets, mut unexpected, mut reconnect_failed, mut no_point) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut expected_after = 0u64;
    let mut agg = Aggregate::default();
    for (i, rec) in records.iter().enumerate() {
        agg.connections += 1;
        if rec.failed {
            agg.failed += 1;
            continue;
        }
        agg.connected += 1;
        agg.closed_early += u64::from(rec.closed_early);
        reconnect_failed += u64::from(rec.reconnect_failed);
        resets += rec.resets;
        unexpected += rec.unexpected;
        no_point += u64::from(rec.no_resume_point);
        let user = ctx.sub.user_of(i);
        let (mut m, mut r, mut rb) = (0u64, 0u64, 0u64);
        for (seq, dest) in msgs.dests.iter().enumerate() {
            let seq = seq as u64;
            let slot = msgs.slot[seq as usize] as usize;
            let count = match *dest {
                Dest::Broadcast => rec.broadcast[slot],
                Dest::User(u) if u == user => rec.unicast[slot],
                Dest::User(_) => continue,
            } as u64;
            if skipped.contains(&seq) {
                // Not accepted by the server: neither expected nor missing.
                continue;
            }
            agg.expected += 1;
            agg.received += u64::from(count > 0);
            agg.duplicated += count.saturating_sub(1);
            if seq < msgs.away_start {
                before_missing += u64::from(count == 0);
                rb += count.saturating_sub(1);
            } else {
                expected_after += 1;
                m += u64::from(count == 0);
                r += count.saturating_sub(1);
            }
        }
        missing += m;
        repeated += r;
        replayed_before += rb;
        exact += u64::from(m == 0 && r == 0 && rb == 0);
    }
    agg.lost = agg.expected - agg.received;
    let summary = json!({
        "subscribers": n,
        "users": s.users,
        "before_per_user": args.live_messages,
        "away_per_user": args.away_messages,
        "live_per_user": args.live_messages,
        "broadcasts": { "before": msgs.count_for(u64::MAX, 0, msgs.away_start),
                        "away": msgs.count_for(u64::MAX, msgs.away_start, msgs.live_start),
                        "live": msgs.count_for(u64::MAX, msgs.live_start, msgs.total()) },
        "expected": expected_after,
        "missing": missing,
        "repeated": repeated,
        "replayed_before": replayed_before,
        "before_missing": before_missing,
        "before_incomplete_subscribers": before_incomplete,
        "exact_subscribers": exact,
        "resets": resets,
        "reconnect_failed": reconnect_failed,
        "without_resume_point": no_point,
        "unexpected_events": unexpected,
        "reconnect_secs": (reconnect_secs * 1000.0).round() / 1000.0,
    });
    Ok(Outcome {
        connected,
        failed: failed_first,
        setup_secs,
        rss_connected,
        rss_full: rss_full.max(rss_connected),
        publish: published,
        publish_start,
        agg,
        summary,
    })
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_layout() {
        let m = Messages::new(3, 2, 4, 2);
        // before: 6 unicast + 1 broadcast, away: 12 + 2, live: 6 + 1.
        assert_eq!(m.away_start, 7);
        assert_eq!(m.live_start, 21);
        assert_eq!(m.total(), 28);
        assert_eq!(m.per_user, 8);
        assert_eq!(m.broadcasts, 4);
        for u in 0..3 {
            assert_eq!(m.count_for(u, 0, m.total()), 12);
        }
        // Slots are dense per user and for broadcasts.
        let mut seen = vec![vec![false; 8]; 3];
        let mut bc = [false; 4];
        for (k, d) in m.dests.iter().enumerate() {
            match *d {
                Dest::User(u) => seen[u as usize][m.slot[k] as usize] = true,
                Dest::Broadcast => bc[m.slot[k] as usize] = true,
            }
        }
        assert!(seen.iter().flatten().all(|&b| b) && bc.iter().all(|&b| b));
        let none = Messages::new(3, 2, 4, 0);
        assert_eq!(none.broadcasts, 0);
        assert_eq!(none.total(), 24);
    }
}
