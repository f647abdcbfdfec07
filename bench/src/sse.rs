//! A minimal HTTP/1.1 + SSE client over a raw `TcpStream`: one small buffer per
//! connection, chunked transfer decoding, and `data: seq=N t=NANOS` parsing (the
//! payload as the event's data, or inside Centrifugo's JSON pushes).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::protocol::{CfPub, CfPush, ChannelPos, Protocol, ResumePoint};
use crate::stats::{self, COUNTERS, Tracker};

/// How a connection maps a message's sequence number to its own dense index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No messages (idle).
    None,
    /// Every subscriber gets every sequence number.
    Broadcast,
    /// Sequence `s` goes to user `s % users`; the user's k-th message is `s / users`.
    Unicast { users: u64 },
}

impl Mode {
    /// Messages user `user` should have received when `published` sequence numbers
    /// (0..published) were sent and `skipped` of them were not accepted.
    pub fn expected(&self, user: u64, published: u64, skipped: &[u64]) -> u64 {
        match *self {
            Mode::None => 0,
            Mode::Broadcast => published - skipped.len() as u64,
            Mode::Unicast { users } => {
                let base = published / users + u64::from(user < published % users);
                base - skipped.iter().filter(|s| *s % users == user).count() as u64
            }
        }
    }
    fn index(&self, seq: u64) -> u64 {
        match *self {
            Mode::Unicast { users } => seq / users,
            _ => seq,
        }
    }
}

/// Sent to every connection when publishing is over.
#[derive(Debug)]
pub struct StopInfo {
    pub published: u64,
    pub skipped: Vec<u64>,
    pub deadline: Instant,
}

pub struct SubConfig {
    pub protocol: Protocol,
    pub server: SocketAddr,
    pub host_header: String,
    pub path: String,
    pub prefix: String,
    pub users: u64,
    pub source_ips: u32,
    pub mode: Mode,
    pub stalled_percent: f64,
    pub stalled_rcvbuf: u32,
    pub connect_timeout: Duration,
}

impl SubConfig {
    pub fn is_stalled(&self, i: usize) -> bool {
        if self.stalled_percent <= 0.0 {
            return false;
        }
        let p = self.stalled_percent / 100.0;
        ((i as f64) * p).floor() != (((i + 1) as f64) * p).floor()
    }
    pub fn user_of(&self, i: usize) -> u64 {
        i as u64 % self.users
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ConnOutcome {
    pub failed: bool,
    pub stalled: bool,
    pub closed_early: bool,
    pub expected: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub late: u64,
    pub events: u64,
}

/// Opens a socket bound to 127.0.0.(2 + i % K) so many connections do not exhaust
/// one source address's ephemeral ports.
pub async fn connect_from(
    i: usize,
    server: SocketAddr,
    source_ips: u32,
    rcvbuf: Option<u32>,
) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if server.ip().is_loopback() && source_ips > 0 {
        let last = 2 + (i as u32 % source_ips.min(250));
        let src = Ipv4Addr::new(127, 0, 0, last as u8);
        socket.bind(SocketAddr::new(src.into(), 0))?;
    }
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads the status line and headers; returns (chunked, leftover body bytes).
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(bool, usize, usize)> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= 64 * 1024 {
                bail!("response headers larger than 64 KiB");
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("connection closed before the response headers ended");
        }
        filled += n;
        if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("headers are not UTF-8")?;
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let status: u16 = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("bad status line {status_line:?}"))?;
            if status != 200 {
                bail!("status {status} (expected 200)");
            }
            let chunked = lines.any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("transfer-encoding:") && l.contains("chunked")
            });
            return Ok((chunked, end + 4, filled));
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy)]
enum Chunk {
    Size(usize),
    Ext(usize),
    Data(usize),
    DataEnd,
    Done,
}

/// Incremental chunked-transfer + SSE parser.
pub struct SseParser {
    chunked: bool,
    state: Chunk,
    line: Vec<u8>,
    pending: Option<(u64, u64)>,
    /// Centrifugo: events are JSON pushes, collected in `data` until dispatched.
    json: bool,
    data: Vec<u8>,
    /// Keep what a reconnection resumes from (ids, Centrifugo's positions).
    track: bool,
    pending_id: Option<String>,
    reset_event: bool,
    last_id: Option<String>,
    positions: HashMap<String, ChannelPos>,
    channel_ids: HashMap<i64, String>,
    /// The last `retry:` field (milliseconds), kept with the resume point: how long an
    /// EventSource waits before it reconnects.
    pub retry_ms: Option<u64>,
    /// Events saying the resume point was not honoured: sse-server's `event: reset`,
    /// a Centrifugo subscription with `was_recovering` but not `recovered`.
    pub resets: u64,
}

impl SseParser {
    pub fn new(chunked: bool) -> Self {
        SseParser {
            chunked,
            state: Chunk::Size(0),
            line: Vec::new(),
            pending: None,
            json: false,
            data: Vec::new(),
            track: false,
            pending_id: None,
            reset_event: false,
            last_id: None,
            positions: HashMap::new(),
            channel_ids: HashMap::new(),
            retry_ms: None,
            resets: 0,
        }
    }

    /// A parser for `protocol`'s events; `track` keeps the resume point.
    pub fn for_protocol(chunked: bool, protocol: Protocol, track: bool) -> Self {
        SseParser {
            json: protocol.json_frames(),
            track,
            ..SseParser::new(chunked)
        }
    }

    /// Where a new connection would resume from: the last event id, or (Centrifugo)
    /// each channel's epoch and last offset.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        if self.json {
            (!self.positions.is_empty()).then(|| ResumePoint::Positions(self.positions.clone()))
        } else {
            self.last_id.clone().map(ResumePoint::LastEventId)
        }
    }

    /// Feeds raw body bytes. `on_event(seq, t_nanos)` is called per complete event.
    pub fn feed(&mut self, mut data: &[u8], on_event: &mut impl FnMut(u64, u64)) {
        if !self.chunked {
            self.feed_sse(data, on_event);
            return;
        }
        while !data.is_empty() {
            match self.state {
                Chunk::Size(v) => {
                    let b = data[0];
                    data = &data[1..];
                    self.state = match b {
                        b'0'..=b'9' => Chunk::Size(v * 16 + (b - b'0') as usize),
                        b'a'..=b'f' => Chunk::Size(v * 16 + (b - b'a' + 10) as usize),
                        b'A'..=b'F' => Chunk::Size(v * 16 + (b - b'A' + 10) as usize),
                        b'\n' if v == 0 => Chunk::Done,
                        b'\n' => Chunk::Data(v),
                        _ => Chunk::Ext(v),
                    };
                }
                Chunk::Ext(v) => {
                    let b = data[0];
                    data = &data[1..];
                    if b == b'\n' {
                        self.state = if v == 0 { Chunk::Done } else { Chunk::Data(v) };
                    }
                }
                Chunk::Data(rem) => {
                    let take = rem.min(data.len());
                    let (now, rest) = data.split_at(take);
                    self.feed_sse(now, on_event);
                    data = rest;
                    self.state = if take == rem {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(rem - take)
                    };
                }
                Chunk::DataEnd => {
                    let b = data[0];
                    data = &data[1..];
                    if b == b'\n' {
                        self.state = Chunk::Size(0);
                    }
                }
                Chunk::Done => return,
            }
        }
    }

    pub fn ended(&self) -> bool {
        matches!(self.state, Chunk::Done)
    }

    fn feed_sse(&mut self, mut data: &[u8], on_event: &mut impl FnMut(u64, u64)) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            if self.line.is_empty() {
                self.line_done(&data[..pos], on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&data[..pos]);
                self.line_done(&line, on_event);
                line.clear();
                self.line = line;
            }
            data = &data[pos + 1..];
        }
        self.line.extend_from_slice(data);
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut impl FnMut(u64, u64)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // Dispatch (the id counts even for an event without data).
            if self.track {
                if let Some(id) = self.pending_id.take() {
                    self.last_id = Some(id);
                }
                if std::mem::take(&mut self.reset_event) {
                    self.resets += 1;
                }
            }
            if self.json {
                if !self.data.is_empty() {
                    let data = std::mem::take(&mut self.data);
                    self.dispatch_json(&data, on_event);
                    self.data = data;
                    self.data.clear();
                }
            } else if let Some((seq, t)) = self.pending.take() {
                on_event(seq, t);
            }
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.json {
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
            } else {
                self.pending = parse_payload(value);
            }
        } else if self.track {
            if let Some(value) = line.strip_prefix(b"id:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                self.pending_id = Some(String::from_utf8_lossy(value).into_owned());
            } else if let Some(value) = line.strip_prefix(b"event:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                self.reset_event = value == b"reset";
            } else if let Some(value) = line.strip_prefix(b"retry:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if let Some(ms) = parse_u64(value) {
                    self.retry_ms = Some(ms);
                }
            }
        }
    }

    /// One Centrifugo push: publications (live, or recovered in the connect reply)
    /// give events; the connect reply and publications move each channel's position.
    fn dispatch_json(&mut self, data: &[u8], on_event: &mut impl FnMut(u64, u64)) {
        if data == b"{}" {
            return; // ping
        }
        let push: CfPush = match serde_json::from_slice(data) {
            Ok(p) => p,
            Err(e) => {
                stats::note_error(&format!("unreadable push ({e})"));
                return;
            }
        };
        fn emit(p: &CfPub, on_event: &mut impl FnMut(u64, u64)) {
            if let Some(m) = p.data.as_ref().and_then(|d| d.m.as_deref())
                && let Some((seq, t)) = parse_payload(m.as_bytes())
            {
                on_event(seq, t);
            }
        }
        if let Some(connect) = push.connect {
            for (channel, sub) in connect.subs {
                for p in &sub.publications {
                    emit(p, on_event);
                }
                if self.track {
                    if sub.was_recovering && !sub.recovered {
                        self.resets += 1;
                    }
                    if let Some(id) = sub.id.filter(|id| *id != 0) {
                        self.channel_ids.insert(id, channel.clone());
                    }
                    let last = sub.publications.iter().map(|p| p.offset).max();
                    self.positions.insert(
                        channel,
                        ChannelPos {
                            epoch: sub.epoch,
                            offset: last.unwrap_or(0).max(sub.offset),
                        },
                    );
                }
            }
        }
        if let Some(p) = &push.publication {
            emit(p, on_event);
            if self.track {
                let channel = push
                    .channel
                    .clone()
                    .filter(|c| !c.is_empty())
                    .or_else(|| p.channel.clone().filter(|c| !c.is_empty()))
                    .or_else(|| push.id.and_then(|id| self.channel_ids.get(&id).cloned()));
                if let Some(channel) = channel {
                    let pos = self.positions.entry(channel).or_default();
                    pos.offset = pos.offset.max(p.offset);
                    if let Some(epoch) = p.epoch.as_ref().filter(|e| !e.is_empty()) {
                        pos.epoch = epoch.clone();
                    }
                }
            }
        }
        if push.disconnect.is_some() {
            stats::note_error(&format!(
                "server sent a disconnect push: {}",
                String::from_utf8_lossy(data)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
    }
}

/// `seq=123 t=1700000000000000000` (other words are ignored).
pub fn parse_payload(value: &[u8]) -> Option<(u64, u64)> {
    let mut seq = None;
    let mut t = None;
    for word in value.split(|&b| b == b' ') {
        if let Some(v) = word.strip_prefix(b"seq=") {
            seq = parse_u64(v);
        } else if let Some(v) = word.strip_prefix(b"t=") {
            t = parse_u64(v);
        }
    }
    Some((seq?, t?))
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(n)
}

/// An open stream once its response headers are read.
pub struct OpenStream {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    pub chunked: bool,
    /// The body bytes read with the headers: `buf[body_start..filled]`.
    pub body_start: usize,
    pub filled: usize,
}

/// Connects subscriber `i` (of user `i % users`), sends its protocol's GET (resuming
/// from `resume`) and reads the response headers.
pub async fn open_stream(
    i: usize,
    cfg: &SubConfig,
    stalled: bool,
    resume: Option<&ResumePoint>,
) -> Result<OpenStream> {
    let rcvbuf = stalled.then_some(cfg.stalled_rcvbuf);
    let mut stream = connect_from(i, cfg.server, cfg.source_ips, rcvbuf).await?;
    let name = format!("{}{}", cfg.prefix, cfg.user_of(i));
    let req = cfg
        .protocol
        .subscribe_request(&cfg.path, &name, &cfg.host_header, resume);
    stream.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; if stalled { 512 } else { 2048 }];
    let (chunked, body_start, filled) = read_head(&mut stream, &mut buf).await?;
    Ok(OpenStream {
        stream,
        buf,
        chunked,
        body_start,
        filled,
    })
}

/// Connections of this process still reading what they expect, and a signal for
/// when none is left.
static READING: AtomicU64 = AtomicU64::new(0);
static NONE_READING: Notify = Notify::const_new();

/// One subscriber: connect, read headers, then count events until told to stop and
/// everything expected arrived (or the grace deadline passed). A connection that got
/// everything stays open until every other one has too (or the deadline): closing
/// thousands of sockets while the last events are still on their way would compete
/// with those deliveries and count in their latency.
pub async fn run_connection(
    i: usize,
    cfg: Arc<SubConfig>,
    permits: Arc<tokio::sync::Semaphore>,
    mut stop: watch::Receiver<Option<Arc<StopInfo>>>,
) -> ConnOutcome {
    let stalled = cfg.is_stalled(i);
    let user = cfg.user_of(i);
    let mut out = ConnOutcome {
        stalled,
        ..Default::default()
    };
    let permit = permits.acquire().await;
    if stats::frozen_since().is_some() {
        // An earlier connection got no answer within the timeout: fail at once rather
        // than have every queued connection wait out its own timeout.
        stats::note_error("connect: not tried, the server is frozen");
        COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
        out.failed = true;
        return out;
    }
    let started_unix = stats::now_nanos();
    let setup = open_stream(i, &cfg, stalled, None);
    let setup = tokio::time::timeout(cfg.connect_timeout, setup).await;
    drop(permit);
    let OpenStream {
        mut stream,
        mut buf,
        chunked,
        body_start,
        filled,
    } = match setup {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            stats::note_error(&format!("connect: {e:#}"));
            COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
            out.failed = true;
            return out;
        }
        Err(_) => {
            stats::note_error(&format!(
                "connect: no response headers within {:.1} s",
                cfg.connect_timeout.as_secs_f64()
            ));
            stats::note_frozen(started_unix);
            COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
            out.failed = true;
            return out;
        }
    };
    COUNTERS.connected.fetch_add(1, Ordering::Relaxed);
    COUNTERS.open.fetch_add(1, Ordering::Relaxed);

    if stalled {
        // Never read again: the kernel's tiny receive buffer fills, then the server's.
        loop {
            if let Some(info) = stop.borrow_and_update().clone() {
                let _ = info;
                break;
            }
            if stop.changed().await.is_err() {
                break;
            }
        }
        COUNTERS.open.fetch_sub(1, Ordering::Relaxed);
        return out;
    }

    let mut parser = SseParser::for_protocol(chunked, cfg.protocol, false);
    let mut tracker = Tracker::default();
    let mode = cfg.mode;
    let mut events = 0u64;
    {
        let now = stats::now_nanos();
        parser.feed(&buf[body_start..filled], &mut |seq, t| {
            events += 1;
            stats::record_latency(now.saturating_sub(t));
            tracker.record(mode.index(seq));
        });
        COUNTERS.received.fetch_add(events, Ordering::Relaxed);
    }
    let mut expected: Option<u64> = None;
    let mut deadline: Option<Instant> = None;
    let mut stop_open = true;
    READING.fetch_add(1, Ordering::SeqCst);
    loop {
        if let Some(exp) = expected
            && tracker.unique >= exp
        {
            break;
        }
        tokio::select! {
            r = stream.read(&mut buf) => {
                match r {
                    Ok(0) | Err(_) => {
                        if expected.is_none() { out.closed_early = true; }
                        break;
                    }
                    Ok(n) => {
                        let now = stats::now_nanos();
                        let before = events;
                        parser.feed(&buf[..n], &mut |seq, t| {
                            events += 1;
                            stats::record_latency(now.saturating_sub(t));
                            tracker.record(mode.index(seq));
                        });
                        COUNTERS.received.fetch_add(events - before, Ordering::Relaxed);
                        if parser.ended() {
                            if expected.is_none() { out.closed_early = true; }
                            break;
                        }
                    }
                }
            }
            r = stop.changed(), if stop_open => {
                if r.is_err() { stop_open = false; continue; }
                if let Some(info) = stop.borrow_and_update().clone() {
                    expected = Some(mode.expected(user, info.published, &info.skipped));
                    deadline = Some(info.deadline);
                }
            }
            _ = sleep_opt(deadline) => break,
        }
    }
    let wait_for_others = NONE_READING.notified();
    if READING.fetch_sub(1, Ordering::SeqCst) == 1 {
        NONE_READING.notify_waiters();
    } else if !out.closed_early && expected.is_some() {
        tokio::select! {
            _ = wait_for_others => {}
            _ = sleep_opt(deadline) => {}
        }
    }
    drop(stream);
    if out.closed_early {
        COUNTERS.closed_early.fetch_add(1, Ordering::Relaxed);
        // Still wait for the stop signal so the expected count is known.
        while expected.is_none() && stop_open {
            if stop.changed().await.is_err() {
                break;
            }
            if let Some(info) = stop.borrow_and_update().clone() {
                expected = Some(mode.expected(user, info.published, &info.skipped));
            }
        }
    }
    COUNTERS.open.fetch_sub(1, Ordering::Relaxed);
    out.expected = expected.unwrap_or(0);
    out.unique = tracker.unique;
    out.duplicates = tracker.duplicates;
    out.late = tracker.late;
    out.events = events;
    out
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_sse_split_anywhere() {
        let body = b"e\r\nretry: 2000\n\n\r\n1f\r\nid: 5\ndata: seq=7 t=100\n\n\r\n10\r\n: keep-alive\n\n\r\n";
        for split in 0..body.len() {
            let mut p = SseParser::new(true);
            let mut got = vec![];
            p.feed(&body[..split], &mut |s, t| got.push((s, t)));
            p.feed(&body[split..], &mut |s, t| got.push((s, t)));
            assert_eq!(got, vec![(7, 100)], "split at {split}");
        }
    }

    #[test]
    fn keeps_last_event_id_and_resets() {
        let body = b"retry: 2000\n\nid: 1.0.5\ndata: seq=1 t=9\n\n: keep-alive\n\nevent: reset\nid: 2.0.0\ndata: {}\n\n";
        let mut p = SseParser::for_protocol(false, Protocol::SseServer, true);
        let mut got = vec![];
        p.feed(&body[..40], &mut |s, t| got.push((s, t)));
        assert_eq!(
            p.resume_point(),
            Some(ResumePoint::LastEventId("1.0.5".into()))
        );
        p.feed(&body[40..], &mut |s, t| got.push((s, t)));
        assert_eq!(got, vec![(1, 9)]);
        assert_eq!(p.resets, 1);
        assert_eq!(p.retry_ms, Some(2000));
        assert_eq!(
            p.resume_point(),
            Some(ResumePoint::LastEventId("2.0.0".into()))
        );
    }

    #[test]
    fn parses_centrifugo_pushes() {
        let body = concat!(
            "\r\n",
            r#"data: {"connect":{"client":"c","version":"6","subs":{"user-a":{"recoverable":true,"epoch":"EA","offset":4,"positioned":true,"recovered":true,"was_recovering":true,"publications":[{"data":{"m":"seq=5 t=50"},"offset":5}]},"all":{"recoverable":true,"epoch":"EB","offset":2,"was_recovering":true}},"ping":25,"session":"s"}}"#,
            "\n\ndata: {}\n\n",
            r#"data: {"channel":"user-a","pub":{"data":{"m":"seq=7 t=70"},"offset":6}}"#,
            "\n\n"
        );
        let mut p = SseParser::for_protocol(false, Protocol::Centrifugo, true);
        let mut got = vec![];
        for chunk in body.as_bytes().chunks(7) {
            p.feed(chunk, &mut |s, t| got.push((s, t)));
        }
        assert_eq!(got, vec![(5, 50), (7, 70)]);
        // `all` was being recovered but not recovered: one reset.
        assert_eq!(p.resets, 1);
        let Some(ResumePoint::Positions(pos)) = p.resume_point() else {
            panic!("no positions")
        };
        assert_eq!(
            pos["user-a"],
            ChannelPos {
                epoch: "EA".into(),
                offset: 6
            }
        );
        assert_eq!(
            pos["all"],
            ChannelPos {
                epoch: "EB".into(),
                offset: 2
            }
        );
    }

    #[test]
    fn expected_unicast() {
        let m = Mode::Unicast { users: 3 };
        // seqs 0..7: user0: 0,3,6 user1: 1,4 user2: 2,5
        assert_eq!(m.expected(0, 7, &[]), 3);
        assert_eq!(m.expected(1, 7, &[4]), 1);
        assert_eq!(m.expected(2, 7, &[]), 2);
        assert_eq!(Mode::Broadcast.expected(0, 7, &[1, 2]), 5);
    }
}
