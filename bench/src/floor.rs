//! The broker floor of the kafka scenario: a plain Kafka consumer (`--kafka-floor`,
//! bench/kafka_floor.py) reads the same topic as the server, and its record → consumer
//! latency, measured from the same `t=` (the scheduled time) as record → SSE, is what
//! the broker itself costs.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::sse::parse_payload;
use crate::stats::{self, Tracker};

struct Seen {
    hist: Histogram<u64>,
    tracker: Tracker,
}

/// A running floor consumer.
pub struct Floor {
    child: Child,
    /// Its ready line (client and configuration).
    info: Value,
    seen: Arc<Mutex<Seen>>,
}

impl Floor {
    /// Starts `command` and waits (up to `timeout`) for its ready line; from then on
    /// it reads every record written to the topic. Only records whose value starts
    /// with `prefix` (this run's users) count.
    pub async fn start(command: &str, prefix: &str, timeout: Duration) -> Result<Floor> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let (prog, args) = words.split_first().context("empty --kafka-floor command")?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {command}"))?;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(timeout, lines.next_line())
            .await
            .with_context(|| format!("{command}: not ready within {timeout:?}"))??;
        let Some(info) = ready.and_then(|l| serde_json::from_str::<Value>(&l).ok()) else {
            bail!("{command} ended before it was ready");
        };
        let seen = Arc::new(Mutex::new(Seen {
            hist: stats::new_hist(),
            tracker: Tracker::default(),
        }));
        let prefix = prefix.as_bytes().to_vec();
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((seq, nanos)) = parse_line(line.as_bytes(), &prefix) {
                    let mut s = shared.lock().unwrap();
                    stats::record_nanos(&mut s.hist, nanos);
                    s.tracker.record(seq);
                }
            }
        });
        Ok(Floor { child, info, seen })
    }

    /// Waits until the consumer read `published` records of this run (or `deadline`
    /// passed), stops it and returns its summary.
    pub async fn finish(mut self, published: u64, deadline: Instant) -> Value {
        while self.seen.lock().unwrap().tracker.unique < published && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Closing its stdin asks it to leave; kill it if it does not.
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let s = self.seen.lock().unwrap();
        json!({
            "consumer": self.info,
            "received": s.tracker.unique,
            "lost": published.saturating_sub(s.tracker.unique),
            "duplicated": s.tracker.duplicates + s.tracker.late,
            "latency": stats::latency_of(&s.hist),
        })
    }
}

/// `RECV_NANOS PREFIXuser:seq=N t=T` → (N, RECV_NANOS - T).
fn parse_line(line: &[u8], prefix: &[u8]) -> Option<(u64, u64)> {
    let space = line.iter().position(|&b| b == b' ')?;
    let recv: u64 = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
    let value = line[space + 1..].strip_prefix(prefix)?;
    let colon = value.iter().position(|&b| b == b':')?;
    let (seq, t) = parse_payload(&value[colon + 1..])?;
    Some((seq, recv.saturating_sub(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_floor_lines() {
        assert_eq!(
            parse_line(b"1500 bench7-3:seq=9 t=1000", b"bench7-"),
            Some((9, 500))
        );
        assert_eq!(parse_line(b"1500 other-3:seq=9 t=1000", b"bench7-"), None);
        assert_eq!(parse_line(b"garbage", b"bench7-"), None);
    }
}
