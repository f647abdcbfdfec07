//! A user's most recent events, kept so a reconnecting client can catch up.
//!
//! Bounded by `--history`: the oldest event falls off when a new one arrives, so a
//! client that was away too long gets what is still here (and, on /v4, a snapshot).

use std::collections::VecDeque;

use super::{Event, EventId};

#[derive(Debug)]
pub struct History {
    events: VecDeque<Event>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            events: VecDeque::new(),
            capacity,
        }
    }

    pub fn push(&mut self, event: Event) {
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Every kept event newer than `last_seen`, oldest first.
    pub fn after(&self, last_seen: EventId) -> Vec<Event> {
        // Ids are pushed in increasing order (they are assigned under the user's
        // lock), so everything after the first newer id is newer too.
        let start = self.events.partition_point(|e| e.id <= last_seen);
        self.events.range(start..).cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(events: &[Event]) -> Vec<EventId> {
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn keeps_the_newest_events_up_to_capacity() {
        let mut h = History::new(3);
        for id in 1..=5 {
            h.push(Event::new(id, None, "x"));
        }
        assert_eq!(ids(&h.after(0)), vec![3, 4, 5]);
    }

    #[test]
    fn after_returns_only_newer_events_in_order() {
        let mut h = History::new(10);
        for id in [10, 20, 30, 40] {
            h.push(Event::new(id, None, "x"));
        }
        assert_eq!(ids(&h.after(20)), vec![30, 40]);
        assert_eq!(ids(&h.after(25)), vec![30, 40]);
        assert!(h.after(40).is_empty());
        assert_eq!(ids(&h.after(5)), vec![10, 20, 30, 40]);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::new(0);
        h.push(Event::new(1, None, "x"));
        assert!(h.is_empty());
    }
}
