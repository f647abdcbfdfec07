//! The retention ledger: which events are kept, in arrival order across every
//! channel, and the byte total `--history-bytes` bounds (invariant 2).
//!
//! Each channel (a user's history, or the broadcasts) keeps its own events and
//! applies its own count cap, but age and the byte budget are global: the oldest
//! event goes first whoever it belongs to. So every kept event also gets an entry
//! here saying when it came and whose channel holds it. The ledger decides *what*
//! to drop and hands the entry back; the hub drops the event from its channel and
//! reports what that freed ([`Retention::release`]). Also here: how long a user's
//! count cap is lifted after an overflow ([`OVERFLOW_HOLD`], invariant 4).
//!
//! Takes no lock: the hub keeps its `Retention` behind one mutex and calls these
//! with it held; the one callback it is handed (`sweep_stale`'s) is the hub's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::HubLimits;
use crate::sse::Event;

/// How long a user's history is not cut by count after one of their connections
/// was closed for overflow: far longer than a browser takes to reconnect.
pub const OVERFLOW_HOLD: Duration = Duration::from_secs(60);

/// Entries of events a count cap already dropped are swept out of the ledger only
/// past this many (and once they are half of it): a sweep visits every entry.
const STALE_SWEEP_MIN: usize = 1024;

pub struct Retention {
    window: Duration,
    byte_budget: usize,
    /// Every kept event in arrival order, for dropping by age and budget.
    entries: VecDeque<Kept>,
    /// Entries of `entries` whose event a per-user cap already dropped.
    stale: usize,
    /// What the kept events cost together. Signed: an event a channel dropped
    /// early (see [`Retention::keep`]) may be released before its own `keep` adds
    /// it, so the total can dip below zero for a moment, and a dip must not read
    /// as a huge total (that would evict everything).
    kept_bytes: i64,
}

/// A kept event's ledger entry.
pub struct Kept {
    pub seq: u64,
    at: Instant,
    pub owner: Owner,
}

/// Whose channel holds a kept event.
#[derive(Clone)]
pub enum Owner {
    User(Arc<str>),
    Everyone,
}

/// Until when a user's count cap is lifted after one of their connections
/// overflowed at `now`: its client reconnects and resumes without a gap.
pub fn hold_after_overflow(now: Instant) -> Instant {
    now + OVERFLOW_HOLD
}

/// How many events a user's channel may keep: `history` (`--history`), or no
/// count at all while a hold after an overflow lasts (`hold_until`).
pub fn count_cap(history: usize, hold_until: Option<Instant>) -> usize {
    match hold_until {
        Some(until) if Instant::now() < until => usize::MAX,
        _ => history,
    }
}

impl Retention {
    pub fn new(limits: &HubLimits) -> Retention {
        Retention {
            window: limits.window,
            byte_budget: limits.history_bytes,
            entries: VecDeque::new(),
            stale: 0,
            kept_bytes: 0,
        }
    }

    /// Records a newly kept event of `owner` costing `cost`, and the `freed` events
    /// (count, cost) its channel's count cap dropped to make room. Returns whether
    /// the hub should [`evict`](super::UserHub::evict) now: over the byte budget,
    /// or too many entries left behind by count caps.
    pub fn keep(
        &mut self,
        seq: u64,
        cost: usize,
        (freed, freed_cost): (usize, usize),
        owner: Owner,
        now: Instant,
    ) -> bool {
        self.kept_bytes += as_i64(cost);
        if freed > 0 {
            self.kept_bytes -= as_i64(freed_cost);
            self.stale += freed;
        }
        self.entries.push_back(Kept {
            seq,
            at: now,
            owner,
        });
        self.over_budget() || self.too_stale()
    }

    /// The oldest entry, taken out of the ledger, while it is older than the window
    /// or the kept events are over the byte budget; `None` once neither holds. The
    /// hub drops its event and calls [`Retention::release`] before asking again,
    /// so the budget is checked against what was really freed.
    pub fn next_to_evict(&mut self, now: Instant) -> Option<Kept> {
        let front = self.entries.front()?;
        let old = now.duration_since(front.at) >= self.window;
        if !old && !self.over_budget() {
            return None;
        }
        self.entries.pop_front()
    }

    /// Accounts for the events dropping an entry freed. None freed: the entry's
    /// event had already gone to a per-user cap, so one stale entry fewer.
    pub fn release(&mut self, dropped: &[Event]) {
        if dropped.is_empty() {
            self.stale = self.stale.saturating_sub(1);
        }
        let freed: usize = dropped.iter().map(Event::cost).sum();
        self.kept_bytes -= as_i64(freed);
    }

    /// Entries whose event a per-user cap dropped cost memory too: once they are
    /// as many as the rest, keeps only the entries `still_kept` says are.
    pub fn sweep_stale(&mut self, still_kept: impl FnMut(&Kept) -> bool) {
        if !self.too_stale() {
            return;
        }
        let before = self.entries.len();
        self.entries.retain(still_kept);
        self.stale = self.stale.saturating_sub(before - self.entries.len());
    }

    /// Bytes all kept events use (the figure `--history-bytes` bounds).
    pub fn kept_bytes(&self) -> usize {
        usize::try_from(self.kept_bytes).unwrap_or(0)
    }

    #[cfg(test)]
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    fn over_budget(&self) -> bool {
        self.kept_bytes > as_i64(self.byte_budget)
    }

    fn too_stale(&self) -> bool {
        self.stale > STALE_SWEEP_MIN && self.stale > self.entries.len() / 2
    }
}

/// A byte count as the ledger counts it (no count in memory comes near `i64::MAX`).
fn as_i64(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Position;
    use bytes::Bytes;

    fn retention(window: Duration, byte_budget: usize) -> Retention {
        Retention::new(&HubLimits {
            history: 10,
            window,
            history_bytes: byte_budget,
            queue: 10,
            queue_bytes: usize::MAX,
        })
    }

    fn event(seq: u64, len: usize) -> Event {
        Event {
            seq,
            position: Position {
                partition: 0,
                offset: seq as i64,
            },
            bytes: Bytes::from(vec![b'x'; len]),
        }
    }

    fn user(name: &str) -> Owner {
        Owner::User(Arc::from(name))
    }

    #[test]
    fn over_the_byte_budget_the_oldest_entries_are_handed_back_whoever_owns_them() {
        let now = Instant::now();
        let (a, b, c) = (event(1, 100), event(2, 100), event(3, 100));
        let mut r = retention(Duration::from_secs(600), a.cost() + b.cost());
        assert!(!r.keep(1, a.cost(), (0, 0), user("a"), now));
        assert!(!r.keep(2, b.cost(), (0, 0), Owner::Everyone, now));
        assert!(r.keep(3, c.cost(), (0, 0), user("c"), now), "over budget");
        let first = r.next_to_evict(now).expect("the oldest");
        assert!(first.seq == 1 && matches!(first.owner, Owner::User(ref u) if &**u == "a"));
        // Until what dropping it freed is released, the ledger still counts it.
        assert_eq!(r.next_to_evict(now).map(|k| k.seq), Some(2));
        r.release(&[a]);
        r.release(&[b]);
        assert!(r.next_to_evict(now).is_none(), "within budget again");
        assert_eq!(r.kept_bytes(), c.cost());
    }

    #[test]
    fn an_event_released_before_its_own_keep_does_not_read_as_over_budget() {
        let now = Instant::now();
        let (early, late) = (event(1, 100), event(2, 10));
        let mut r = retention(Duration::from_secs(600), 10 * early.cost());
        // The later event is recorded first, and its channel's drop releases the
        // earlier one before that one's own `keep`: the total dips below zero.
        assert!(!r.keep(2, late.cost(), (0, 0), user("a"), now));
        r.release(std::slice::from_ref(&early));
        assert_eq!(r.kept_bytes(), 0);
        assert!(r.next_to_evict(now).is_none(), "a dip is not over budget");
        r.keep(1, early.cost(), (0, 0), user("a"), now);
        assert_eq!(r.kept_bytes(), late.cost(), "exact again");
    }

    #[test]
    fn entries_older_than_the_window_are_handed_back() {
        let then = Instant::now();
        let mut r = retention(Duration::from_secs(60), usize::MAX);
        r.keep(1, 10, (0, 0), user("a"), then);
        r.keep(2, 10, (0, 0), user("a"), then + Duration::from_secs(30));
        let later = then + Duration::from_secs(60);
        assert_eq!(r.next_to_evict(later).map(|k| k.seq), Some(1));
        assert!(r.next_to_evict(later).is_none(), "the second is younger");
    }

    #[test]
    fn entries_a_count_cap_emptied_are_stale_until_swept() {
        let now = Instant::now();
        let mut r = retention(Duration::from_secs(600), usize::MAX);
        let mut due = false;
        for seq in 1..=2 * STALE_SWEEP_MIN as u64 {
            // Each event pushes its predecessor out of a one-event channel.
            due = r.keep(seq, 10, (usize::from(seq > 1), 10), user("a"), now);
        }
        assert!(due, "sweep asked for");
        assert_eq!(r.kept_bytes(), 10, "only the last one is kept");
        let last = 2 * STALE_SWEEP_MIN as u64;
        r.sweep_stale(|entry| entry.seq == last);
        assert_eq!(r.entry_count(), 1);
        assert!(!r.too_stale());
        // An entry whose event was already gone frees nothing and is one stale fewer.
        r.stale = 3;
        r.release(&[]);
        assert_eq!((r.stale, r.kept_bytes()), (2, 10));
    }

    #[test]
    fn the_count_cap_is_lifted_while_an_overflow_hold_lasts() {
        assert_eq!(count_cap(10, None), 10);
        let now = Instant::now();
        assert_eq!(count_cap(10, Some(hold_after_overflow(now))), usize::MAX);
        assert_eq!(count_cap(10, Some(now)), 10, "the hold is over");
    }
}
