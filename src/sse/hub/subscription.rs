//! One connection's stream from a hub: how it starts (a `reset`, or the events
//! the client missed since its `Last-Event-ID`), then its live queue.
//!
//! What a resuming client gets is decided here from what the hub hands over: the
//! client's cursor, the hub's floor and the kept histories (invariant 3), and a
//! replay is cut to the connection's byte budget (invariant 5). The hub gathers
//! those under the locks that make the replay exact and registers the connection;
//! dropping the [`Subscription`] unregisters it. Takes no lock itself.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;

use super::UserHub;
use crate::metrics::OpenStreamGuard;
use crate::sse::Event;
use crate::sse::event::{EventName, frame, id_only};
use crate::sse::history::{self, History};
use crate::sse::ids::{Cursor, IdScheme};
use crate::sse::queue::QueueReceiver;

/// Why a stream starts with `reset` instead of replaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// Events after the client's id were dropped (age, count or byte budget).
    HistoryExpired,
    /// The id is not one this hub issued (malformed, or another process's).
    UnknownId,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::HistoryExpired => "history_expired",
            ResetReason::UnknownId => "unknown_id",
        }
    }
}

/// What a new connection receives: a `reset` or the missed events, then the live
/// queue. Dropping it unregisters the connection.
pub struct Subscription {
    /// Set when the client sent an id that cannot be resumed exactly.
    pub reset: Option<ResetReason>,
    /// The id of the hub's position when the connection was registered: a client
    /// holding it has everything before, and gets everything after, live.
    pub position: String,
    replay: Vec<Bytes>,
    /// The client sent no id (see `take_prelude`).
    from_now: bool,
    live: QueueReceiver,
    _registration: Registration,
}

/// A connection's place in its hub, given back when the stream is dropped.
pub struct Registration {
    hub: Arc<UserHub>,
    user: Arc<str>,
    connection: u64,
    _open: OpenStreamGuard,
}

impl Registration {
    /// `connection` of `user` in `hub`; `open` counts it in the open-streams gauge.
    pub fn new(
        hub: Arc<UserHub>,
        user: Arc<str>,
        connection: u64,
        open: OpenStreamGuard,
    ) -> Registration {
        Registration {
            hub,
            user,
            connection,
            _open: open,
        }
    }
}

/// How a new connection starts.
#[derive(Debug, Default)]
pub struct Start {
    pub reset: Option<ResetReason>,
    /// The missed events, oldest first.
    pub replay: Vec<Bytes>,
    /// Set when the client is ahead of this instance (it came from a faster one):
    /// live events before this cursor are ones it already has.
    pub skip_before: Option<Cursor>,
    /// The client sent no id: it starts from now.
    pub from_now: bool,
}

impl Start {
    /// No replay: the client sent no id.
    pub fn from_now() -> Start {
        Start {
            from_now: true,
            ..Start::default()
        }
    }

    /// No replay: the client sent an id that cannot be resumed (`reset`).
    pub fn live(reset: Option<ResetReason>) -> Start {
        Start {
            reset,
            ..Start::default()
        }
    }

    /// Cuts the replay after the last event that fits in `budget` bytes (invariant
    /// 5). Returns whether all of it fitted; if not, the stream must end once the
    /// replay is written, so the client comes back for the rest.
    pub fn fit_to_budget(&mut self, budget: usize) -> bool {
        let cut = fits_in_budget(&self.replay, budget);
        let fitted = cut == self.replay.len();
        self.replay.truncate(cut);
        fitted
    }
}

/// The cursor a client's `Last-Event-ID` stands for, as read by a hub at `now`;
/// `UnknownId` when it is none of this hub's.
pub fn resume_cursor(ids: &IdScheme, raw: &str, now: &Cursor) -> Result<Cursor, ResetReason> {
    match ids.parse(raw, now.len()) {
        None => Err(ResetReason::UnknownId),
        // A process-local id ahead of what this process issued: not ours.
        Some(cursor) if !matches!(ids, IdScheme::Kafka) && cursor > *now => {
            Err(ResetReason::UnknownId)
        }
        Some(cursor) => Ok(cursor),
    }
}

/// How a client at `cursor` resumes from a hub at `now`: every event after it,
/// from the user's own history and the broadcasts, if none was dropped (`floor`
/// and both histories cover it); otherwise a `HistoryExpired` reset.
pub fn resume(
    cursor: Cursor,
    now: &Cursor,
    floor: &[i64],
    own: &History,
    everyone: &History,
) -> Start {
    if !(history::covers(floor, &cursor) && own.covers(&cursor) && everyone.covers(&cursor)) {
        return Start::live(Some(ResetReason::HistoryExpired));
    }
    let replay = merge(own.after(&cursor), everyone.after(&cursor));
    let ahead = cursor.iter().zip(now).any(|(theirs, ours)| theirs > ours);
    Start {
        reset: None,
        replay,
        skip_before: ahead.then_some(cursor),
        from_now: false,
    }
}

/// A user's own events and broadcasts, each in order, merged into one order.
fn merge<'a>(
    own: impl Iterator<Item = &'a Event>,
    everyone: impl Iterator<Item = &'a Event>,
) -> Vec<Bytes> {
    let mut all: Vec<&Event> = own.chain(everyone).collect();
    all.sort_by_key(|e| e.seq);
    all.into_iter().map(|e| e.bytes.clone()).collect()
}

/// How many of `replay`'s events fit in `budget` bytes (at least one, as a queue
/// takes one event larger than its budget).
fn fits_in_budget(replay: &[Bytes], budget: usize) -> usize {
    let mut used = 0usize;
    replay
        .iter()
        .position(|event| {
            used = used.saturating_add(event.len());
            used > budget
        })
        .map_or(replay.len(), |over| over.max(1))
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(&self.user, self.connection);
    }
}

impl Subscription {
    /// A stream that starts with `start`, then reads `live`; `position` is the id
    /// of where the hub stood when it was registered.
    pub(super) fn new(
        start: Start,
        position: String,
        live: QueueReceiver,
        registration: Registration,
    ) -> Subscription {
        Subscription {
            reset: start.reset,
            position,
            replay: start.replay,
            from_now: start.from_now,
            live,
            _registration: registration,
        }
    }

    /// What the stream starts with (once): the `reset` event, or the missed
    /// events; for a client that sent no id, its first id: where the hub stood,
    /// in a block with no data, which sets EventSource's `lastEventId` and fires
    /// no event. A client cut off before its first event then resumes exactly
    /// instead of starting over from a later "now".
    pub fn take_prelude(&mut self, last_event_id: Option<&str>) -> Vec<Bytes> {
        if std::mem::take(&mut self.from_now) {
            return vec![id_only(&self.position)];
        }
        match self.reset {
            Some(reason) => {
                let data = json!({
                    "reason": reason.as_str(),
                    "lastEventId": last_event_id.unwrap_or_default(),
                })
                .to_string();
                vec![frame(&self.position, EventName::Reset, &data)]
            }
            None => std::mem::take(&mut self.replay),
        }
    }
}

impl Stream for Subscription {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        Pin::new(&mut self.live).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Position;

    fn event(seq: u64, text: &'static str) -> Event {
        Event {
            seq,
            position: Position {
                partition: 0,
                offset: seq as i64,
            },
            bytes: Bytes::from_static(text.as_bytes()),
        }
    }

    fn channel(events: &[(u64, &'static str)], cap: usize) -> History {
        let mut h = History::default();
        for &(seq, text) in events {
            h.push(event(seq, text), cap);
        }
        h
    }

    #[test]
    fn a_replay_merges_own_events_and_broadcasts_by_arrival() {
        let own = channel(&[(1, "a1"), (3, "a3"), (4, "a4")], 10);
        let everyone = channel(&[(2, "all2"), (5, "all5")], 10);
        let start = resume(vec![2], &vec![6], &[], &own, &everyone);
        assert_eq!(start.reset, None);
        let replay: Vec<&[u8]> = start.replay.iter().map(|b| &b[..]).collect();
        assert_eq!(replay, ["all2", "a3", "a4", "all5"].map(str::as_bytes));
        assert_eq!(start.skip_before, None);
    }

    #[test]
    fn a_cursor_below_any_floor_is_expired_and_one_ahead_skips() {
        let own = channel(&[(1, "a1"), (2, "a2"), (3, "a3")], 2);
        let everyone = History::default();
        let expired = resume(vec![1], &vec![4], &[], &own, &everyone);
        assert_eq!(expired.reset, Some(ResetReason::HistoryExpired));
        assert!(expired.replay.is_empty());
        let below_hub_floor = resume(vec![3], &vec![4], &[4], &own, &everyone);
        assert_eq!(below_hub_floor.reset, Some(ResetReason::HistoryExpired));
        let ahead = resume(vec![9], &vec![4], &[], &own, &everyone);
        assert_eq!((ahead.reset, ahead.skip_before), (None, Some(vec![9])));
    }

    #[test]
    fn a_local_id_ahead_of_the_hub_is_unknown_but_a_kafka_one_is_not() {
        let ids = IdScheme::local();
        let id = ids.format(&[10]);
        assert_eq!(resume_cursor(&ids, &id, &vec![10]), Ok(vec![10]));
        assert_eq!(
            resume_cursor(&ids, &id, &vec![9]),
            Err(ResetReason::UnknownId)
        );
        assert_eq!(
            resume_cursor(&ids, "garbage", &vec![9]),
            Err(ResetReason::UnknownId)
        );
        assert_eq!(
            resume_cursor(&IdScheme::Kafka, "12", &vec![9]),
            Ok(vec![12])
        );
    }

    #[test]
    fn a_replay_is_cut_after_the_last_event_that_fits_but_keeps_one() {
        let replay = |lens: &[usize]| -> Vec<Bytes> {
            lens.iter().map(|&n| Bytes::from(vec![b'x'; n])).collect()
        };
        assert_eq!(fits_in_budget(&replay(&[4, 4, 4]), 8), 2);
        assert_eq!(fits_in_budget(&replay(&[4, 4]), 8), 2);
        assert_eq!(
            fits_in_budget(&replay(&[20, 1]), 8),
            1,
            "one too big still goes"
        );
        assert_eq!(fits_in_budget(&[], 8), 0);
        let mut start = Start {
            replay: replay(&[4, 4, 4]),
            ..Start::default()
        };
        assert!(!start.fit_to_budget(8));
        assert_eq!(start.replay.len(), 2);
        assert!(start.fit_to_budget(8), "what is left fits");
    }
}
