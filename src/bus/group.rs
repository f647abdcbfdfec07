//! Who reads a topic: every instance (fan-out, for the history each instance keeps
//! for resume) or the instances sharing the records (a work queue).

use std::sync::Arc;
use std::time::Duration;

/// Who reads a topic.
#[derive(Debug, Clone)]
pub enum Group {
    /// Every instance reads every record (fan-out).
    EachInstance(FanOut),
    /// The instances share the records between them, each read once (work queue).
    Shared(String),
}

/// How a fan-out reader starts: it re-reads the records of the last `since`, and
/// tells `reading_from` the first offset of each partition it reads (everything
/// before is unknown to this instance). It is not ready until it has caught up
/// with the end the topic had when it started.
#[derive(Clone)]
pub struct FanOut {
    pub since: Duration,
    pub reading_from: Arc<ReadingFrom>,
}

/// Told, per partition, the first offset a fan-out reader reads.
pub type ReadingFrom = dyn Fn(&[i64]) + Send + Sync;

impl FanOut {
    /// The fan-out group reading the last `since`.
    pub fn group(since: Duration, reading_from: impl Fn(&[i64]) + Send + Sync + 'static) -> Group {
        Group::EachInstance(FanOut {
            since,
            reading_from: Arc::new(reading_from),
        })
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("since", &self.since)
            .finish()
    }
}
