//! The reader of the event topic: each instance pushes every fact to its owner's
//! open /v4 streams, once.
//!
//! A fact carries the id of the command (or report) it comes from. A command's
//! fact may be published more than once (a writer re-publishes after a crash
//! between the write and the commit, a sweeper settles a command whose fact it had
//! not seen yet), always with the same fact id, so each instance drops fact ids it
//! has already pushed. Every instance reads the same records in the same order
//! from `now − --history-window`, so they all keep the first and drop the others,
//! and give the same events at the same positions; only a repeat published more
//! than a window after the original could be shown by an instance that started
//! after the original left its window, and then it repeats the report's current
//! status (`writer::settle` never repeats a superseded one).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::Board;
use super::facts::Fact;
use crate::bus::Record;
use crate::events::{RecordSkipped, Skip};
use crate::feed::Feed;
use crate::lock::Locked;
use crate::sse::Audience;

/// Fact ids remembered per instance to drop duplicates.
const REMEMBERED_FACTS: usize = 100_000;

/// Starts this instance's reader of the event topic; it tells `outcome_seen` the
/// id of every fact it reads (the sweeper's cue that a command was settled).
pub fn start_consumer(board: &Arc<Board>, outcome_seen: impl Fn(Uuid) + Send + Sync + 'static) {
    let seen = Arc::new(Mutex::new(RecentIds::new(REMEMBERED_FACTS)));
    let reader = board.clone();
    let feed = Feed {
        bus: &board.bus,
        topic: &board.event_topic,
        history_window: board.history_window,
        metrics: &board.metrics,
        shutdown: &board.shutdown,
    };
    feed.into_hub(&board.hub, move |record| {
        push(&reader, &seen, &outcome_seen, &record);
    });
}

fn push(board: &Board, seen: &Mutex<RecentIds>, outcome_seen: &impl Fn(Uuid), record: &Record) {
    let fact: Fact = match serde_json::from_slice(&record.payload) {
        Ok(fact) => fact,
        Err(e) => {
            RecordSkipped {
                topic: &board.event_topic,
                partition: record.partition,
                offset: record.offset,
                why: Skip::Malformed(&format_args!("not a fact: {e}")),
            }
            .emit(&board.metrics);
            board.hub.skip(record.position());
            return;
        }
    };
    outcome_seen(fact.fact_id);
    let first_time = seen.locked().insert(fact.fact_id);
    if first_time {
        board.hub.apply(
            record.position(),
            Audience::User(&fact.user_id.to_string()),
            fact.event.name(),
            &fact.event.data(),
        );
    } else {
        board.hub.skip(record.position());
    }
}

/// A bounded set of recently seen ids: the oldest is forgotten first.
#[derive(Default)]
pub struct RecentIds {
    ids: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            capacity,
            ..RecentIds::default()
        }
    }

    /// `false` when `id` was already there.
    pub fn insert(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.ids.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_drops_duplicates_and_forgets_the_oldest() {
        let mut seen = RecentIds::new(REMEMBERED_FACTS);
        let first = Uuid::new_v4();
        assert!(seen.insert(first));
        assert!(!seen.insert(first));
        for _ in 0..REMEMBERED_FACTS {
            seen.insert(Uuid::new_v4());
        }
        assert!(
            seen.insert(first),
            "forgotten after {REMEMBERED_FACTS} newer ids"
        );
    }
}
