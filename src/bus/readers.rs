//! How every reader of a bus is doing, for readiness and the lag gauge: while a
//! reader is down, catching up, or handling a record more than [`LAG_LIMIT`] old,
//! [`Bus::ready`](super::Bus::ready) names it (so `/readyz` answers 503). The
//! `kafka_consumer_lag` gauge shows how far behind each reader is, in seconds.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;

use super::record::{age_of, now_ms};
use crate::lock::Locked;
use crate::metrics::Metrics;

/// A reader is "behind" when the record it is handling is older than this.
/// Longer than a Kafka failover: while a silent broker is fenced and its
/// partitions move, every record published waits until then (up to 7 s
/// measured, `chaos/scenarios.py`), so records that old reach every instance at
/// once, and a shorter limit took every instance out of the load balancer (5 s:
/// /readyz 503 on both instances in 2 of 3 pauses with /v4 changes under way). A
/// reader of this instance that is too slow falls further behind than that.
pub const LAG_LIMIT: Duration = Duration::from_secs(10);

/// How one reader is doing, for `/readyz` and the lag gauge.
pub struct ReaderHealth {
    /// "topic" for a fan-out reader, "topic (group)" for a shared one.
    pub(super) name: String,
    pub(super) running: AtomicBool,
    /// A fan-out reader is not ready until it has read what its topic held when
    /// it (re)started; a shared reader is always "caught up".
    pub(super) caught_up: AtomicBool,
    /// Kafka timestamp (ms) of the record being handled; 0 when idle.
    handling: AtomicI64,
    pub(super) last_failure: Mutex<Option<String>>,
    lag: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ReaderHealth {
    fn new(name: String, fan_out: bool, metrics: &Metrics) -> ReaderHealth {
        let lag = metrics.lag_gauge(&name);
        ReaderHealth {
            name,
            running: AtomicBool::new(true),
            caught_up: AtomicBool::new(!fan_out),
            handling: AtomicI64::new(0),
            last_failure: Mutex::new(None),
            lag,
        }
    }

    /// Notes the record now being handled (its timestamp, ms since the epoch).
    pub(super) fn handling(&self, timestamp_ms: Option<i64>) {
        let stamp = timestamp_ms.filter(|&t| t > 0).unwrap_or_else(now_ms);
        self.handling.store(stamp, Ordering::Relaxed);
    }

    pub(super) fn idle(&self) {
        self.handling.store(0, Ordering::Relaxed);
    }

    /// How far behind the reader is: the age of the record it is handling.
    fn behind(&self) -> Duration {
        match self.handling.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => age_of(since),
        }
    }

    /// What keeps this reader from being ready, if anything.
    fn problem(&self) -> Option<String> {
        let behind = self.behind();
        self.lag.set(behind.as_secs_f64());
        if !self.running.load(Ordering::Relaxed) {
            let why = self.last_failure.locked().clone().unwrap_or_default();
            return Some(format!(
                "the reader of {} is down ({why}) and being restarted",
                self.name
            ));
        }
        if !self.caught_up.load(Ordering::Relaxed) {
            return Some(format!(
                "the reader of {} has not caught up with the topic yet",
                self.name
            ));
        }
        if behind > LAG_LIMIT {
            return Some(format!(
                "the reader of {} is {:.0?} behind",
                self.name, behind
            ));
        }
        None
    }
}

/// Every reader of one bus, by name.
#[derive(Clone, Default)]
pub struct Readers(Arc<DashMap<String, Arc<ReaderHealth>>>);

impl Readers {
    pub(super) fn register(
        &self,
        name: String,
        fan_out: bool,
        metrics: &Metrics,
    ) -> Arc<ReaderHealth> {
        let health = Arc::new(ReaderHealth::new(name.clone(), fan_out, metrics));
        self.0.insert(name, health.clone());
        health
    }

    /// The first reader that is down, catching up or behind, by name.
    pub(super) fn problem(&self) -> Option<String> {
        self.0.iter().find_map(|reader| reader.problem())
    }

    pub(super) fn caught_up(&self, name: &str) -> bool {
        self.0.get(name).is_none_or(|reader| {
            reader.running.load(Ordering::Relaxed) && reader.caught_up.load(Ordering::Relaxed)
        })
    }

    /// Keeps the lag gauges current even while nobody asks `/readyz`.
    pub(super) fn update_gauges(&self) {
        for reader in self.0.iter() {
            reader.lag.set(reader.behind().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(by: Duration) -> Option<i64> {
        Some(now_ms() - i64::try_from(by.as_millis()).unwrap())
    }

    #[test]
    fn a_record_as_old_as_a_failover_leaves_the_reader_ready_and_an_older_one_does_not() {
        let metrics = Metrics::new();
        let readers = Readers::default();
        let reader = readers.register("t".into(), false, &metrics);
        reader.handling(aged(Duration::from_secs(7)));
        assert_eq!(readers.problem(), None);
        reader.handling(aged(LAG_LIMIT + Duration::from_secs(1)));
        let problem = readers.problem().expect("behind");
        assert!(problem.contains("the reader of t is"), "{problem}");
        reader.idle();
        assert_eq!(readers.problem(), None);
    }
}
