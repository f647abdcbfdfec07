//! What a hub may keep for resume and let a connection queue, as configured
//! (`--history*`, `--queue*`). The two are tied: a queue never holds more than
//! half a user's history, so a client closed for overflow still finds where it
//! was in what is kept (invariant 4 in `hub`). Plain values: no lock.

use std::time::Duration;

use crate::config::Config;

/// What a hub keeps, and how much a connection may queue.
#[derive(Debug, Clone)]
pub struct HubLimits {
    /// Events kept per user (and for broadcasts).
    pub history: usize,
    /// How long events are kept.
    pub window: Duration,
    /// Bytes all kept events may use together.
    pub history_bytes: usize,
    /// Events a connection may have queued before it is closed as too slow.
    pub queue: usize,
    /// Bytes a connection may have queued before it is closed as too slow.
    pub queue_bytes: usize,
}

impl HubLimits {
    /// What the configuration asks the /v2../v4 hubs to keep and queue.
    pub fn from_config(config: &Config) -> HubLimits {
        HubLimits {
            history: config.history,
            window: config.history_window,
            history_bytes: usize::try_from(config.history_bytes.as_u64()).unwrap_or(usize::MAX),
            queue: config.queue as usize,
            queue_bytes: usize::try_from(config.queue_bytes.as_u64()).unwrap_or(usize::MAX),
        }
    }

    /// The queue bounds actually used: at most half a user's history, so an
    /// overflowing client always finds its position in what is kept (invariant 4).
    pub fn effective_queue(&self) -> usize {
        self.queue.min(self.history / 2).max(1)
    }
}
