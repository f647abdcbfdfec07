//! The in-process bus: one instance, so every topic has exactly one reader per
//! registered handler, and publishing means handing the record to those readers.
//!
//! Readers are supervised like Kafka's: the record being handled is kept aside, so
//! a reader that panics and is restarted handles it again instead of losing it.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::handler::handle_until_done;
use super::supervisor::supervise;
use super::{BusError, Failure, Readers, Record};
use crate::lock::Locked;
use crate::metrics::Metrics;

/// Records waiting for a slow handler before publishers are made to wait.
const TOPIC_QUEUE: usize = 10_000;

#[derive(Clone, Default)]
pub struct MemoryBus {
    readers: Arc<DashMap<String, Vec<mpsc::Sender<Record>>>>,
    offsets: Arc<AtomicI64>,
    health: Readers,
}

impl MemoryBus {
    pub async fn publish(
        &self,
        topic: &str,
        // One partition, so the key (which orders a report's records on Kafka)
        // changes nothing here.
        _key: Option<&str>,
        id: &str,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        let offset = self.offsets.fetch_add(1, Ordering::Relaxed);
        let record = Record {
            payload: payload.to_vec(),
            partition: 0,
            offset,
            timestamp_ms: None,
            id: Some(id.to_owned()),
        };
        let readers = self
            .readers
            .get(topic)
            .map(|r| r.value().clone())
            .unwrap_or_default();
        for reader in readers {
            reader
                .send(record.clone())
                .await
                .map_err(|_| BusError::NotWritten("the server is shutting down".into()))?;
        }
        Ok((0, offset))
    }

    pub fn readers(&self) -> &Readers {
        &self.health
    }

    pub fn consume<H, F, E>(
        &self,
        topic: &str,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        handler: H,
    ) where
        H: Fn(Record) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), E>> + Send,
        E: Into<Failure> + Send,
    {
        let (tx, rx) = mpsc::channel(TOPIC_QUEUE);
        let mut readers = self.readers.entry(topic.to_owned()).or_default();
        let name = format!("{topic} (in-process reader {})", readers.len() + 1);
        readers.push(tx);
        drop(readers);
        let health = self.health.register(name, false, &metrics);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        // The record being handled: taken again first by a restarted reader.
        let in_flight: Arc<Mutex<Option<Record>>> = Arc::new(Mutex::new(None));
        let handler = Arc::new(handler);
        let topic = topic.to_owned();
        let reader_health = health.clone();
        supervise(health, shutdown.clone(), move || {
            let (rx, in_flight, handler) = (rx.clone(), in_flight.clone(), handler.clone());
            let (topic, metrics, shutdown) = (topic.clone(), metrics.clone(), shutdown.clone());
            let health = reader_health.clone();
            async move {
                let mut rx = rx.lock().await;
                loop {
                    let retry = in_flight.locked().take();
                    let record = match retry {
                        Some(record) => record,
                        None => {
                            let record = tokio::select! {
                                r = rx.recv() => r,
                                _ = shutdown.cancelled() => None,
                            };
                            let Some(record) = record else { return };
                            record
                        }
                    };
                    *in_flight.locked() = Some(record.clone());
                    health.handling(record.timestamp_ms);
                    if !handle_until_done(&*handler, record, &topic, &metrics, &shutdown).await {
                        return;
                    }
                    health.idle();
                    *in_flight.locked() = None;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::bus::Failure;

    #[tokio::test]
    async fn a_reader_that_panics_is_restarted_on_the_same_record_and_not_ready_meanwhile() {
        let bus = MemoryBus::default();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let counter = calls.clone();
        bus.consume("t", metrics, shutdown.clone(), move |record: Record| {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            let done = done_tx.clone();
            async move {
                assert!(!first, "the first call dies");
                let _ = done.send(record.payload);
                Ok::<(), Failure>(())
            }
        });
        bus.publish("t", None, "id-1", b"one")
            .await
            .expect("publish");
        let problem = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(problem) = bus.readers().problem() {
                    return problem;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the reader is reported down");
        assert!(problem.contains("down"), "{problem}");
        let handled = tokio::time::timeout(Duration::from_secs(10), done_rx.recv())
            .await
            .expect("handled after the restart");
        assert_eq!(handled.as_deref(), Some(&b"one"[..]));
        assert_eq!(bus.readers().problem(), None);
        shutdown.cancel();
    }
}
