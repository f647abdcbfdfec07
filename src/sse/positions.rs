//! Where a hub stands, and how far back it can still resume exactly: its cursor
//! and its floor, as plain data.
//!
//! With Kafka ids the cursor is the next offset of every partition the hub has
//! read, moved on by every record, event or not; with process-local ids it is
//! just past the hub's sequence number (see `ids` for what a cursor means). The
//! *floor* is the lowest cursor from which resume is still exact: it starts where
//! reading began (nothing before that was seen here) and is raised past every
//! event dropped by age or byte budget. A client at or above it loses nothing
//! (invariant 3 in `hub`).
//!
//! Takes no lock: the hub keeps one `Positions` behind a mutex and calls these
//! with it held, so the cursor and the floor move together.

use super::Event;
use super::event::Position;
use super::history;
use super::ids::Cursor;

#[derive(Debug, Default)]
pub struct Positions {
    /// Kafka: the next offset of every partition this hub has read (its cursor).
    read: Cursor,
    /// Raised past everything dropped by age or budget, and by where reading began.
    floor: Cursor,
}

/// The cursor of a hub with process-local ids once it has made `seq` events: the
/// id of event `seq` stands for everything up to and including it.
pub fn local_cursor(seq: u64) -> Cursor {
    vec![seq as i64 + 1]
}

/// Where event `seq` of a hub with process-local ids sits in its order.
pub fn local_position(seq: u64) -> Position {
    Position {
        partition: 0,
        offset: seq as i64,
    }
}

impl Positions {
    /// Kafka: the topic's partitions are read from `starts` (next offset of each).
    /// Nothing before them is known here, so they are the first floor. Called again
    /// when a reader restarts: positions never move back.
    pub fn reading_from(&mut self, starts: &[i64]) {
        let (positions, floor) = (&mut self.read, &mut self.floor);
        for (partition, &start) in starts.iter().enumerate() {
            if positions.len() <= partition {
                positions.resize(partition + 1, start);
            }
            if floor.len() <= partition {
                floor.resize(partition + 1, 0);
            }
            if start > positions[partition] {
                // A gap: records between were never read here.
                positions[partition] = start;
                floor[partition] = floor[partition].max(start);
            } else if floor[partition] == 0 {
                floor[partition] = start;
            }
        }
    }

    /// Kafka: the next offset of every partition read, i.e. what a client holding
    /// everything so far would send.
    pub fn kafka_cursor(&self) -> Cursor {
        self.read.clone()
    }

    /// Kafka: moves the cursor past `record` and returns it; `None` when the record
    /// was read before (a reader that restarted behind), so it is no event again.
    pub fn advance(&mut self, record: Position) -> Option<Cursor> {
        let positions = &mut self.read;
        if positions.len() <= record.partition {
            positions.resize(record.partition + 1, 0);
        }
        if record.offset < positions[record.partition] {
            return None;
        }
        positions[record.partition] = record.offset + 1;
        Some(positions.clone())
    }

    /// Per partition, the lowest cursor from which every event after it is kept.
    pub fn floor(&self) -> &[i64] {
        &self.floor
    }

    /// Raises the floor past `dropped`, and to `own_floor`: the floor of a user's
    /// history that is being forgotten, which would otherwise go with it.
    pub fn raise_floor(&mut self, dropped: &[Event], own_floor: &[i64]) {
        let floor = &mut self.floor;
        for event in dropped {
            history::raise(floor, event);
        }
        if floor.len() < own_floor.len() {
            floor.resize(own_floor.len(), 0);
        }
        for (mine, theirs) in floor.iter_mut().zip(own_floor) {
            *mine = (*mine).max(*theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn at(partition: usize, offset: i64) -> Position {
        Position { partition, offset }
    }

    fn event(partition: usize, offset: i64) -> Event {
        Event {
            seq: 1,
            position: at(partition, offset),
            bytes: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn where_reading_begins_is_the_first_floor_and_a_gap_raises_it() {
        let mut p = Positions::default();
        p.reading_from(&[5, 0]);
        assert_eq!(p.kafka_cursor(), vec![5, 0]);
        assert_eq!(p.floor(), &[5, 0]);
        // A restart behind moves nothing back; one ahead leaves a gap.
        p.reading_from(&[3, 7]);
        assert_eq!(p.kafka_cursor(), vec![5, 7]);
        assert_eq!(p.floor(), &[5, 7]);
    }

    #[test]
    fn a_record_read_before_does_not_advance_the_cursor() {
        let mut p = Positions::default();
        assert_eq!(p.advance(at(1, 4)), Some(vec![0, 5]));
        assert_eq!(p.advance(at(1, 3)), None);
        assert_eq!(p.advance(at(1, 5)), Some(vec![0, 6]));
    }

    #[test]
    fn the_floor_rises_past_dropped_events_and_to_a_forgotten_users_floor() {
        let mut p = Positions::default();
        p.raise_floor(&[event(0, 4)], &[]);
        assert_eq!(p.floor(), &[5]);
        p.raise_floor(&[], &[3, 9]);
        assert_eq!(
            p.floor(),
            &[5, 9],
            "never lowered, widened to their partitions"
        );
    }

    #[test]
    fn a_local_cursor_is_just_past_the_last_event() {
        assert_eq!(local_cursor(0), vec![1]);
        assert_eq!(local_position(42), at(0, 42));
        // A client holding event 41's id has not seen event 42, and has seen 41.
        assert!(history::is_after(&event(0, 42), &local_cursor(41)));
        assert!(!history::is_after(&event(0, 41), &local_cursor(41)));
    }
}
