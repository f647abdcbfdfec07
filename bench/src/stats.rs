//! Counters, latency histograms (one per runtime thread, merged every second),
//! per-connection loss/duplicate tracking, and server RSS.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub struct Counters {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub open: AtomicU64,
    pub closed_early: AtomicU64,
    pub received: AtomicU64,
    pub published: AtomicU64,
    pub publish_errors: AtomicU64,
}

pub static COUNTERS: Counters = Counters {
    connected: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    open: AtomicU64::new(0),
    closed_early: AtomicU64::new(0),
    received: AtomicU64::new(0),
    published: AtomicU64::new(0),
    publish_errors: AtomicU64::new(0),
};

/// Latency in microseconds, 1 µs .. 10 min, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

type Shared = Arc<Mutex<Histogram<u64>>>;
static HISTS: Mutex<Vec<Shared>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

/// Records a latency given in nanoseconds into `h` (which counts microseconds).
pub fn record_nanos(h: &mut Histogram<u64>, nanos: u64) {
    let _ = h.record((nanos / 1000).clamp(1, 600_000_000));
}

/// Records a latency in this thread's histogram (see `drain_interval`).
pub fn record_latency(nanos: u64) {
    LOCAL.with(|cell| {
        let mut cell = cell.borrow_mut();
        let h = cell.get_or_insert_with(|| {
            let h = Arc::new(Mutex::new(new_hist()));
            HISTS.lock().unwrap().push(h.clone());
            h
        });
        record_nanos(&mut h.lock().unwrap(), nanos);
    });
}

/// Everything recorded since the last call (all threads), and resets.
pub fn drain_interval() -> Histogram<u64> {
    let mut out = new_hist();
    for h in HISTS.lock().unwrap().iter() {
        let mut h = h.lock().unwrap();
        let _ = out.add(&*h);
        h.reset();
    }
    out
}

/// Unix time in nanoseconds at which the earliest request that got no answer within
/// --request-timeout was sent; 0 while every request was answered. Once set, the
/// server counts as frozen: requests not yet sent fail at once instead of each
/// waiting out its own timeout.
static FROZEN_SINCE: AtomicU64 = AtomicU64::new(0);

/// A request sent at `sent_nanos` (unix) got no answer in time.
pub fn note_frozen(sent_nanos: u64) {
    let sent = sent_nanos.max(1);
    let _ = FROZEN_SINCE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
        (cur == 0 || sent < cur).then_some(sent)
    });
}

/// See `note_frozen`: when the server stopped answering, unix nanos.
pub fn frozen_since() -> Option<u64> {
    match FROZEN_SINCE.load(Ordering::Relaxed) {
        0 => None,
        t => Some(t),
    }
}

pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

static ERRORS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// Keeps the first few distinct error messages with a count each.
pub fn note_error(msg: &str) {
    let mut errors = ERRORS.lock().unwrap();
    if let Some(e) = errors.iter_mut().find(|(m, _)| m == msg) {
        e.1 += 1;
    } else if errors.len() < 20 {
        errors.push((msg.to_string(), 1));
    }
}

pub fn errors() -> Vec<(String, u64)> {
    ERRORS.lock().unwrap().clone()
}

const WINDOW_WORDS: usize = 128; // 8192 sequence numbers

/// Which of a connection's dense message indices arrived: a sliding 8192-wide
/// bitmap (1 KiB, allocated on the first event). An index that arrives after the
/// window moved past it is counted as `late` (a duplicate or a reordering by more
/// than 8192); neither happens with an in-order server.
#[derive(Default)]
pub struct Tracker {
    base: u64,
    bits: Option<Box<[u64; WINDOW_WORDS]>>,
    pub unique: u64,
    pub duplicates: u64,
    pub late: u64,
}

impl Tracker {
    pub fn record(&mut self, k: u64) {
        let bits = self.bits.get_or_insert_with(|| Box::new([0; WINDOW_WORDS]));
        let span = (WINDOW_WORDS * 64) as u64;
        if k < self.base {
            self.late += 1;
            return;
        }
        if k >= self.base + span {
            let new_base = (k / 64 + 1) * 64 - span;
            if new_base - self.base >= span {
                bits.fill(0);
            } else {
                let mut b = self.base;
                while b < new_base {
                    bits[((b / 64) as usize) % WINDOW_WORDS] = 0;
                    b += 64;
                }
            }
            self.base = new_base;
        }
        let word = &mut bits[((k / 64) as usize) % WINDOW_WORDS];
        let bit = 1u64 << (k % 64);
        if *word & bit != 0 {
            self.duplicates += 1;
        } else {
            *word |= bit;
            self.unique += 1;
        }
    }
}

/// VmRSS of a process in KiB.
/// Sum of the VmRSS of several processes (a server with worker processes, such as
/// nginx); `None` when none of them could be read.
pub fn rss_kib_sum(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .filter_map(|&p| rss_kib(p))
        .fold(None, |acc, r| Some(acc.unwrap_or(0) + r))
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A histogram as (value, count) pairs, to pass between processes.
pub fn hist_to_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn hist_from_pairs(h: &mut Histogram<u64>, pairs: &[(u64, u64)]) {
    for &(v, n) in pairs {
        let _ = h.record_n(v.clamp(1, 600_000_000), n);
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

pub fn latency_of(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Tick {
    /// Seconds since the run started.
    pub t: f64,
    pub phase: String,
    pub open: u64,
    pub deliveries: u64,
    pub published: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub rss_kib: Option<u64>,
}

pub fn load_relaxed(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts() {
        let mut t = Tracker::default();
        for k in 0..20_000 {
            t.record(k);
        }
        t.record(19_999);
        t.record(5);
        assert_eq!((t.unique, t.duplicates, t.late), (20_000, 1, 1));
        t.record(1_000_000);
        assert_eq!(t.unique, 20_001);
    }
}
