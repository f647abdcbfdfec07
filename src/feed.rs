//! A hub fed from a bus topic: how /v3's topic reader and /v4's fact reader
//! start. Every instance reads the whole topic from `now − --history-window`
//! (a fan-out group), the hub learns where each partition's reading starts (its
//! first floor for resume) and asks the bus whether the reader has caught up
//! before a stream subscribes, so a resume never misses what is already on the
//! topic.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, FanOut, Record};
use crate::metrics::Metrics;
use crate::sse::UserHub;

/// What a topic's reader needs to feed a hub.
pub struct Feed<'a> {
    pub bus: &'a Bus,
    pub topic: &'a str,
    pub history_window: Duration,
    pub metrics: &'a Arc<Metrics>,
    pub shutdown: &'a CancellationToken,
}

impl Feed<'_> {
    /// Starts this instance's reader of the topic into `hub`: `each` turns every
    /// record into the hub's events (or skips it). It cannot fail: a record it
    /// cannot use is its to skip, logged and counted, so ingest never stops.
    pub fn into_hub(self, hub: &Arc<UserHub>, each: impl Fn(Record) + Send + Sync + 'static) {
        hub.fed_by({
            let (bus, topic) = (self.bus.clone(), self.topic.to_owned());
            move || bus.caught_up(&topic)
        });
        let starts = hub.clone();
        self.bus.consume(
            self.topic,
            FanOut::group(self.history_window, move |from| starts.reading_from(from)),
            self.metrics.clone(),
            self.shutdown.clone(),
            move |record| {
                each(record);
                std::future::ready(Ok::<(), std::convert::Infallible>(()))
            },
        );
    }
}
