//! The in-process bus: one instance, so every topic has exactly one reader per
//! registered handler, and publishing means handing the record to those readers.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BusError, Record, handle_until_done};

/// Records waiting for a slow handler before publishers are made to wait.
const TOPIC_QUEUE: usize = 10_000;

#[derive(Clone, Default)]
pub struct MemoryBus {
    readers: Arc<DashMap<String, Vec<mpsc::Sender<Record>>>>,
    offsets: Arc<AtomicI64>,
}

impl MemoryBus {
    pub async fn publish(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
    ) -> Result<(i32, i64), BusError> {
        let offset = self.offsets.fetch_add(1, Ordering::Relaxed);
        let record = Record {
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: payload.to_vec(),
            partition: 0,
            offset,
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
                .map_err(|_| BusError::Unavailable("the server is shutting down".into()))?;
        }
        Ok((0, offset))
    }

    pub fn consume<H, F, E>(&self, topic: &str, shutdown: CancellationToken, handler: H)
    where
        H: Fn(Record) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display + Send,
    {
        let (tx, mut rx) = mpsc::channel(TOPIC_QUEUE);
        self.readers.entry(topic.to_owned()).or_default().push(tx);
        tokio::spawn(async move {
            loop {
                let record = tokio::select! {
                    r = rx.recv() => r,
                    _ = shutdown.cancelled() => None,
                };
                let Some(record) = record else { return };
                if !handle_until_done(&handler, record, &shutdown).await {
                    return;
                }
            }
        });
    }
}
