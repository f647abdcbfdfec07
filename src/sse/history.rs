//! What is kept for resume: one channel's recent events (a user's own, or the
//! broadcasts), and the record of what has been dropped from it.
//!
//! A channel holds at most `--history` events; the hub also drops the oldest events
//! of every channel when they leave `--history-window` or when all channels
//! together pass `--history-bytes`. Whatever is dropped raises the channel's
//! *floor*: a client whose cursor is below the floor may have missed something
//! that is gone, and gets a `reset` instead of a silent gap.

use std::collections::VecDeque;

use super::Event;
use super::ids::Cursor;

#[derive(Debug, Default)]
pub struct History {
    events: VecDeque<Event>,
    /// Per partition, the first offset of which every later event is still here.
    floor: Cursor,
}

impl History {
    /// Appends `event`; while more than `capacity` are kept, the oldest go. Returns
    /// how many went and their cost (so the hub's byte total stays exact).
    pub fn push(&mut self, event: Event, capacity: usize) -> (usize, usize) {
        self.events.push_back(event);
        let (mut count, mut cost) = (0, 0);
        while self.events.len() > capacity {
            match self.events.pop_front() {
                Some(old) => {
                    count += 1;
                    cost += old.cost();
                    raise(&mut self.floor, &old);
                }
                None => break,
            }
        }
        (count, cost)
    }

    /// Drops every event up to and including `seq`; returns them (oldest first).
    pub fn drop_through(&mut self, seq: u64) -> Vec<Event> {
        let mut dropped = Vec::new();
        while self.events.front().is_some_and(|e| e.seq <= seq) {
            if let Some(old) = self.events.pop_front() {
                raise(&mut self.floor, &old);
                dropped.push(old);
            }
        }
        dropped
    }

    /// Whether an event with this `seq` is still here.
    pub fn holds(&self, seq: u64) -> bool {
        self.events.front().is_some_and(|e| e.seq <= seq)
            && self.events.back().is_some_and(|e| e.seq >= seq)
    }

    /// Whether every event after `cursor` is still here.
    pub fn covers(&self, cursor: &[i64]) -> bool {
        covers(&self.floor, cursor)
    }

    /// Every kept event the client at `cursor` has not seen, oldest first.
    pub fn after<'a>(&'a self, cursor: &'a [i64]) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| is_after(e, cursor))
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Per partition, the first offset of which every later event is still here.
    pub fn floor(&self) -> &[i64] {
        &self.floor
    }
}

/// Whether a client at `cursor` has not seen `event` yet.
pub fn is_after(event: &Event, cursor: &[i64]) -> bool {
    cursor
        .get(event.position.partition)
        .is_none_or(|next| event.position.offset >= *next)
}

/// Whether nothing after `cursor` was dropped below `floor`.
pub fn covers(floor: &[i64], cursor: &[i64]) -> bool {
    floor
        .iter()
        .enumerate()
        .all(|(partition, first_kept)| cursor.get(partition).is_some_and(|c| c >= first_kept))
}

/// Raises `floor` past a dropped event.
pub fn raise(floor: &mut Cursor, dropped: &Event) {
    let p = dropped.position.partition;
    if floor.len() <= p {
        floor.resize(p + 1, 0);
    }
    floor[p] = floor[p].max(dropped.position.offset + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Position;
    use bytes::Bytes;

    fn event(seq: u64, partition: usize, offset: i64) -> Event {
        Event {
            seq,
            position: Position { partition, offset },
            bytes: Bytes::from_static(b"x"),
        }
    }

    fn seqs<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<u64> {
        events.map(|e| e.seq).collect()
    }

    #[test]
    fn keeps_the_newest_events_up_to_capacity_and_raises_the_floor() {
        let mut h = History::default();
        for seq in 1..=5 {
            h.push(event(seq, 0, seq as i64), 3);
        }
        assert_eq!(seqs(h.after(&[0])), vec![3, 4, 5]);
        assert!(!h.covers(&[2]), "event 2 was dropped");
        assert!(h.covers(&[3]));
    }

    #[test]
    fn after_compares_each_partition_with_its_own_cursor() {
        let mut h = History::default();
        h.push(event(1, 0, 10), 10);
        h.push(event(2, 1, 4), 10);
        h.push(event(3, 0, 11), 10);
        h.push(event(4, 1, 5), 10);
        assert_eq!(seqs(h.after(&[11, 5])), vec![3, 4]);
        assert_eq!(seqs(h.after(&[12, 4])), vec![2, 4]);
        assert!(h.after(&[12, 6]).next().is_none());
    }

    #[test]
    fn drop_through_removes_the_oldest_and_reports_them() {
        let mut h = History::default();
        for seq in 1..=4 {
            h.push(event(seq, 0, seq as i64), 10);
        }
        assert_eq!(h.drop_through(2).len(), 2);
        assert!(h.holds(3) && !h.holds(2));
        assert!(!h.covers(&[1]) && h.covers(&[3]));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::default();
        h.push(event(1, 0, 1), 0);
        assert!(h.is_empty());
    }
}
