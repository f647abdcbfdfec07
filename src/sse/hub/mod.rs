//! Per-user fan-out and the history behind exact resume. This file is where the
//! stream promises are kept; their invariants, in one place:
//!
//! 1. **Every event has a position** ([`Position`]): with Kafka the record's
//!    partition and offset, otherwise the hub's sequence number. An event's id is
//!    the hub's *cursor* just after it (see `ids`), so a client's `Last-Event-ID`
//!    says exactly which events it has, on every instance and after restarts.
//! 2. **Every user's recent events are kept**, connected here or not: at most
//!    `--history` per user (broadcasts in one shared channel with the same cap),
//!    nothing older than `--history-window`, and `--history-bytes` in all, the
//!    oldest dropped first whoever it belongs to. Dropping raises a *floor*.
//! 3. **Resume is exact or says so.** A client whose cursor is at or above every
//!    floor gets every kept event after it, in order, then live ones; nothing
//!    missed, nothing twice. Otherwise (a foreign id, or history gone) it gets a
//!    `reset` and live events. Replay and registration happen under the user's
//!    lock, and broadcasts hold the hub's `gate` exclusively, so no event can slip
//!    between them; a client ahead of this instance (it came from a faster one)
//!    skips live events it already has.
//! 4. **A slow client never slows others**: each connection has a queue bounded in
//!    events and bytes; a full one is closed at once. The queue holds at most half
//!    a user's history, so the kept history reaches back past anything that was
//!    queued. What sat in socket buffers beyond that depends on the kernel (measured:
//!    2.7 MB of 4 KB events), so for [`OVERFLOW_HOLD`] after such a close the user's
//!    count cap is lifted (the byte budget and the window still hold): the client
//!    reconnects within its `retry:` delay and resumes without a gap.
//!
//! 5. **A replay fits the connection's byte budget** (`--queue-bytes`): a longer
//!    one is cut after the last event that fits and the stream then ends, so the
//!    client reconnects from that event's id and gets the next part. A client that
//!    never reads can pin no more than that, however far back it resumes. An id
//!    this process could not have issued (ahead of its sequence) is `unknown_id`.
//!
//! Users live in a sharded map (`DashMap`), so delivering to one user never waits
//! for another; there is no actor task and no global lock on the unicast path.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::Stream;
use prometheus_client::metrics::counter::Counter;
use serde_json::json;

use super::event::frame;
use super::history::{self, History};
use super::ids::{Cursor, IdScheme};
use super::queue::{PushError, QueueReceiver, QueueSender, queue};
use super::{Event, Position};
use crate::config::Config;
use crate::lock::{Locked, ReadWriteLocked};
use crate::metrics::{Metrics, OpenStreamGuard, VersionLabel};
use crate::net::ConnectionHandle;

/// How long a user's history is not cut by count after one of their connections
/// was closed for overflow: far longer than a browser takes to reconnect.
pub const OVERFLOW_HOLD: Duration = Duration::from_secs(60);

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

pub struct UserHub {
    version: &'static str,
    ids: IdScheme,
    limits: HubLimits,
    users: DashMap<Arc<str>, UserState>,
    /// Broadcasts, kept once for everybody.
    everyone: Mutex<History>,
    /// Held for reading by sends and subscriptions, for writing by a broadcast: a
    /// broadcast is then ordered against every user's events and registrations.
    gate: RwLock<()>,
    /// Kafka: the next offset of every partition this hub has read (its cursor).
    positions: Mutex<Cursor>,
    /// Raised past everything dropped by age or budget, and by where reading began.
    floor: Mutex<Cursor>,
    /// Every kept event in arrival order, for dropping by age and budget.
    kept: Mutex<VecDeque<Kept>>,
    /// Entries of `kept` whose event a per-user cap already dropped.
    stale: AtomicUsize,
    kept_bytes: AtomicUsize,
    seq: AtomicU64,
    next_connection: AtomicU64,
    metrics: Arc<Metrics>,
    /// Resolved once: a label lookup per delivery would cost more than the delivery.
    delivered: Counter,
    overflowed: Counter,
}

#[derive(Default)]
struct UserState {
    history: History,
    connections: Vec<Connection>,
    /// Set when a connection overflowed: the count cap waits until then.
    hold_until: Option<Instant>,
}

struct Connection {
    id: u64,
    queue: QueueSender,
    handle: Option<ConnectionHandle>,
    /// A client resumed from a cursor this instance has not reached yet: events
    /// before it are ones the client already has.
    skip_before: Option<Cursor>,
}

struct Kept {
    seq: u64,
    at: Instant,
    owner: Owner,
}

#[derive(Clone)]
enum Owner {
    User(Arc<str>),
    Everyone,
}

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
    live: QueueReceiver,
    _registration: Registration,
}

struct Registration {
    hub: Arc<UserHub>,
    user: Arc<str>,
    connection: u64,
    _open: OpenStreamGuard,
}

impl UserHub {
    pub fn new(
        version: &'static str,
        ids: IdScheme,
        limits: HubLimits,
        metrics: Arc<Metrics>,
    ) -> Arc<UserHub> {
        let label = VersionLabel { version };
        let delivered = metrics.events_delivered.get_or_create(&label).clone();
        let overflowed = metrics.overflow_closed.get_or_create(&label).clone();
        Arc::new(UserHub {
            version,
            ids,
            limits,
            users: DashMap::new(),
            everyone: Mutex::new(History::default()),
            gate: RwLock::new(()),
            positions: Mutex::new(Vec::new()),
            floor: Mutex::new(Vec::new()),
            kept: Mutex::new(VecDeque::new()),
            stale: AtomicUsize::new(0),
            kept_bytes: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            next_connection: AtomicU64::new(0),
            metrics,
            delivered,
            overflowed,
        })
    }

    fn uses_kafka_positions(&self) -> bool {
        matches!(self.ids, IdScheme::Kafka)
    }

    /// Kafka: the topic's partitions are read from `starts` (next offset of each).
    /// Nothing before them is known here, so they are the first floor. Called again
    /// when a reader restarts: positions never move back.
    pub fn reading_from(&self, starts: &[i64]) {
        let mut positions = self.positions.locked();
        let mut floor = self.floor.locked();
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

    /// Where the hub stands: what a client holding everything so far would send.
    fn cursor(&self) -> Cursor {
        if self.uses_kafka_positions() {
            self.positions.locked().clone()
        } else {
            vec![self.seq.load(Ordering::SeqCst) as i64 + 1]
        }
    }

    /// Registers a connection of `user`. `last_event_id` is what the client sent
    /// (`Last-Event-ID`), if anything. `handle` lets the hub close the socket when
    /// the client falls behind.
    pub fn subscribe(
        self: &Arc<Self>,
        user: &str,
        last_event_id: Option<&str>,
        handle: Option<ConnectionHandle>,
    ) -> Subscription {
        let (tx, rx) = queue(self.limits.effective_queue(), self.limits.queue_bytes);
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let key: Arc<str> = Arc::from(user);
        let _gate = self.gate.reading();
        let mut state = self.users.entry(key.clone()).or_default();
        // Under the user's lock (and the gate): nothing can be published between
        // the replay and the registration, so nothing is missed or sent twice.
        let now = self.cursor();
        let partitions = now.len();
        let mut reset = None;
        let mut replay = Vec::new();
        let mut skip_before = None;
        if let Some(raw) = last_event_id {
            match self.ids.parse(raw, partitions) {
                None => reset = Some(ResetReason::UnknownId),
                // A process-local id ahead of what this process issued: not ours.
                Some(cursor) if !self.uses_kafka_positions() && cursor > now => {
                    reset = Some(ResetReason::UnknownId);
                }
                Some(cursor) => {
                    let everyone = self.everyone.locked();
                    let floor = self.floor.locked();
                    if history::covers(&floor, &cursor)
                        && state.history.covers(&cursor)
                        && everyone.covers(&cursor)
                    {
                        replay = merge(state.history.after(&cursor), everyone.after(&cursor));
                        if cursor.iter().zip(&now).any(|(theirs, ours)| theirs > ours) {
                            skip_before = Some(cursor);
                        }
                    } else {
                        reset = Some(ResetReason::HistoryExpired);
                    }
                }
            }
        }
        // Invariant 5: a replay past the byte budget ends the stream once written.
        let cut = fits_in_budget(&replay, self.limits.queue_bytes);
        let cut_short = cut < replay.len();
        replay.truncate(cut);
        if cut_short {
            drop(tx);
        } else {
            state.connections.push(Connection {
                id: connection,
                queue: tx,
                handle,
                skip_before,
            });
        }
        drop(state);
        let position = self.ids.format(&now);
        Subscription {
            reset,
            position,
            replay,
            live: rx,
            _registration: Registration {
                hub: self.clone(),
                user: key,
                connection,
                _open: self.metrics.stream_opened(self.version),
            },
        }
    }

    /// One event for `user`, queued on each of their connections and kept for
    /// resume. `record` is the Kafka position it was read from (ignored by a hub
    /// with process-local ids). Returns the event id and the connections reached;
    /// `None` for a record read before (a reader that restarted behind).
    pub fn send(
        &self,
        user: &str,
        name: Option<&str>,
        data: &str,
        record: Option<Position>,
    ) -> Option<(String, usize)> {
        let _gate = self.gate.reading();
        let key: Arc<str>;
        let mut state = match self.users.get_mut(user) {
            Some(state) => {
                key = state.key().clone();
                state
            }
            None => {
                key = Arc::from(user);
                self.users.entry(key.clone()).or_default()
            }
        };
        let (id, event) = self.make_event(name, data, record)?;
        let delivered = self.deliver(&mut state, &event);
        let cost = event.cost();
        let seq = event.seq;
        let capacity = match state.hold_until {
            Some(until) if Instant::now() < until => usize::MAX,
            _ => self.limits.history,
        };
        let freed = state.history.push(event, capacity);
        drop(state);
        self.keep(seq, cost, freed, Owner::User(key));
        Some((id, delivered))
    }

    /// One event, framed once, to every open connection, kept once for everybody.
    pub fn broadcast(
        &self,
        name: Option<&str>,
        data: &str,
        record: Option<Position>,
    ) -> Option<(String, usize)> {
        let gate = self.gate.writing();
        let (id, event) = self.make_event(name, data, record)?;
        let mut delivered = 0;
        for mut state in self.users.iter_mut() {
            if !state.connections.is_empty() {
                delivered += self.deliver(&mut state, &event);
            }
        }
        let cost = event.cost();
        let seq = event.seq;
        let freed = self.everyone.locked().push(event, self.limits.history);
        drop(gate);
        self.keep(seq, cost, freed, Owner::Everyone);
        Some((id, delivered))
    }

    /// A Kafka record that carries no event for anyone (malformed, or a duplicate):
    /// the cursor moves past it all the same.
    pub fn skip(&self, record: Position) {
        if self.uses_kafka_positions() {
            self.advance(record);
        }
    }

    /// Moves the Kafka cursor past `record`; `None` when it was read before.
    fn advance(&self, record: Position) -> Option<Cursor> {
        let mut positions = self.positions.locked();
        if positions.len() <= record.partition {
            positions.resize(record.partition + 1, 0);
        }
        if record.offset < positions[record.partition] {
            return None;
        }
        positions[record.partition] = record.offset + 1;
        Some(positions.clone())
    }

    fn make_event(
        &self,
        name: Option<&str>,
        data: &str,
        record: Option<Position>,
    ) -> Option<(String, Event)> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let (position, cursor) = match record {
            Some(record) if self.uses_kafka_positions() => (record, self.advance(record)?),
            _ => (
                Position {
                    partition: 0,
                    offset: seq as i64,
                },
                vec![seq as i64 + 1],
            ),
        };
        let id = self.ids.format(&cursor);
        let bytes = frame(&id, name, data);
        Some((
            id,
            Event {
                seq,
                position,
                bytes,
            },
        ))
    }

    fn deliver(&self, state: &mut UserState, event: &Event) -> usize {
        let mut delivered = 0;
        let mut overflowed = 0;
        state.connections.retain(|c| {
            // Kept for the connection's life: partitions catch up one by one.
            if let Some(cursor) = &c.skip_before
                && !history::is_after(event, cursor)
            {
                return true;
            }
            match c.queue.try_push(event.bytes.clone()) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(PushError::Full) => {
                    overflowed += 1;
                    if let Some(handle) = &c.handle {
                        handle.close();
                    }
                    false
                }
                // The connection is going away; its registration removes it.
                Err(PushError::Closed) => false,
            }
        });
        if overflowed > 0 {
            state.hold_until = Some(Instant::now() + OVERFLOW_HOLD);
            self.overflowed.inc_by(overflowed as u64);
            tracing::info!(
                version = self.version,
                overflowed,
                "closed connections whose queue was full"
            );
        }
        self.delivered.inc_by(delivered as u64);
        delivered
    }

    /// Accounts for a newly kept event (and those a per-user cap dropped), then
    /// drops the oldest events while over the byte budget.
    fn keep(&self, seq: u64, cost: usize, (freed, freed_cost): (usize, usize), owner: Owner) {
        self.kept_bytes.fetch_add(cost, Ordering::SeqCst);
        if freed > 0 {
            self.kept_bytes.fetch_sub(freed_cost, Ordering::SeqCst);
            self.stale.fetch_add(freed, Ordering::Relaxed);
        }
        let entries = {
            let mut kept = self.kept.locked();
            kept.push_back(Kept {
                seq,
                at: Instant::now(),
                owner,
            });
            kept.len()
        };
        let over_budget = self.kept_bytes.load(Ordering::Relaxed) > self.limits.history_bytes;
        if over_budget || self.too_stale(entries) {
            self.evict();
        }
    }

    /// Drops kept events older than the window, and the oldest while over the byte
    /// budget. Run after each event when over budget, and every second.
    pub fn evict(&self) {
        let mut kept = self.kept.locked();
        let now = Instant::now();
        while let Some(front) = kept.front() {
            let old = now.duration_since(front.at) >= self.limits.window;
            let over = self.kept_bytes.load(Ordering::SeqCst) > self.limits.history_bytes;
            if !old && !over {
                break;
            }
            let Some(entry) = kept.pop_front() else { break };
            self.drop_kept(&entry);
        }
        // Entries whose event a per-user cap dropped cost memory too: sweep them
        // out once they are as many as the rest.
        let stale = self.stale.load(Ordering::Relaxed);
        if self.too_stale(kept.len()) {
            let before = kept.len();
            kept.retain(|entry| self.still_kept(entry));
            self.stale
                .fetch_sub((before - kept.len()).min(stale), Ordering::Relaxed);
        }
    }

    fn too_stale(&self, entries: usize) -> bool {
        let stale = self.stale.load(Ordering::Relaxed);
        stale > 1024 && stale > entries / 2
    }

    fn drop_kept(&self, entry: &Kept) {
        // The floor is raised while the channel is still locked: a subscriber
        // never sees the events gone and the floor not yet raised.
        let dropped = match &entry.owner {
            Owner::Everyone => {
                let mut everyone = self.everyone.locked();
                let dropped = everyone.drop_through(entry.seq);
                self.raise_floor(&dropped, &[]);
                dropped
            }
            Owner::User(user) => {
                let Some(mut state) = self.users.get_mut(user) else {
                    return;
                };
                let dropped = state.history.drop_through(entry.seq);
                let gone = state.history.is_empty() && state.connections.is_empty();
                // A user forgotten here takes their own floor along: keep it.
                let own_floor = if gone { state.history.floor() } else { &[] };
                self.raise_floor(&dropped, own_floor);
                drop(state);
                if gone {
                    self.users.remove_if(user, |_, s| {
                        s.history.is_empty() && s.connections.is_empty()
                    });
                }
                dropped
            }
        };
        self.release(&dropped);
    }

    fn raise_floor(&self, dropped: &[Event], own_floor: &[i64]) {
        if dropped.is_empty() && own_floor.is_empty() {
            return;
        }
        let mut floor = self.floor.locked();
        for event in dropped {
            history::raise(&mut floor, event);
        }
        if floor.len() < own_floor.len() {
            floor.resize(own_floor.len(), 0);
        }
        for (mine, theirs) in floor.iter_mut().zip(own_floor) {
            *mine = (*mine).max(*theirs);
        }
    }

    fn release(&self, dropped: &[Event]) {
        if dropped.is_empty() {
            // Its event had already gone to a per-user cap.
            let _ = self
                .stale
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
        }
        let freed: usize = dropped.iter().map(Event::cost).sum();
        self.kept_bytes.fetch_sub(freed, Ordering::SeqCst);
    }

    fn still_kept(&self, entry: &Kept) -> bool {
        match &entry.owner {
            Owner::Everyone => self.everyone.locked().holds(entry.seq),
            Owner::User(user) => self
                .users
                .get(user)
                .is_some_and(|s| s.history.holds(entry.seq)),
        }
    }

    /// Bytes all kept events use (the figure `--history-bytes` bounds).
    pub fn kept_bytes(&self) -> usize {
        self.kept_bytes.load(Ordering::SeqCst)
    }

    /// Ends every connection (after what is already queued): for shutdown.
    pub fn close_all(&self) {
        for mut state in self.users.iter_mut() {
            state.connections.clear();
        }
    }

    /// Open connections of `user`, or of every user when `None`.
    pub fn connection_count(&self, user: Option<&str>) -> usize {
        match user {
            Some(user) => self.users.get(user).map_or(0, |s| s.connections.len()),
            None => self.users.iter().map(|s| s.connections.len()).sum(),
        }
    }

    /// Number of users the hub holds (connected, or with kept events).
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn unregister(&self, user: &Arc<str>, connection: u64) {
        if let Some(mut state) = self.users.get_mut(user) {
            state.connections.retain(|c| c.id != connection);
        }
        self.users.remove_if(user, |_, state| {
            state.connections.is_empty() && state.history.is_empty()
        });
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
    /// What the stream starts with (once): the `reset` event, or the missed events.
    pub fn take_prelude(&mut self, last_event_id: Option<&str>) -> Vec<Bytes> {
        match self.reset {
            Some(reason) => {
                let data = json!({
                    "reason": reason.as_str(),
                    "lastEventId": last_event_id.unwrap_or_default(),
                })
                .to_string();
                vec![frame(&self.position, Some("reset"), &data)]
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
    use futures_util::StreamExt;

    fn limits(history: usize, queue: usize) -> HubLimits {
        HubLimits {
            history,
            window: Duration::from_secs(600),
            history_bytes: usize::MAX,
            queue,
            queue_bytes: usize::MAX,
        }
    }

    fn hub(history: usize, queue: usize) -> Arc<UserHub> {
        UserHub::new(
            "test",
            IdScheme::local(),
            limits(history, queue),
            Arc::new(Metrics::new()),
        )
    }

    fn text(b: &Bytes) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn send(hub: &UserHub, user: &str, data: &str) -> String {
        hub.send(user, None, data, None).expect("a local event").0
    }

    fn replayed(s: &mut Subscription) -> Vec<String> {
        s.take_prelude(None).iter().map(text).collect()
    }

    #[tokio::test]
    async fn every_connection_of_a_user_gets_the_event_and_others_do_not() {
        let hub = hub(10, 10);
        let mut a1 = hub.subscribe("a", None, None);
        let mut a2 = hub.subscribe("a", None, None);
        let mut b = hub.subscribe("b", None, None);
        let (_, delivered) = hub.send("a", None, "hello", None).unwrap();
        assert_eq!(delivered, 2);
        assert!(text(&a1.next().await.unwrap()).contains("data: hello"));
        assert!(text(&a2.next().await.unwrap()).contains("data: hello"));
        assert!(futures_util::poll!(b.next()).is_pending());
    }

    #[tokio::test]
    async fn resume_replays_missed_events_once_in_order_with_broadcasts() {
        let hub = hub(10, 10);
        let first = hub.subscribe("a", None, None);
        let seen = send(&hub, "a", "one");
        drop(first);
        send(&hub, "a", "two");
        hub.broadcast(None, "all", None).unwrap();
        send(&hub, "b", "not for a");
        send(&hub, "a", "three");
        let mut again = hub.subscribe("a", Some(&seen), None);
        assert_eq!(again.reset, None);
        let replay = replayed(&mut again);
        assert_eq!(replay.len(), 3, "{replay:?}");
        assert!(replay[0].contains("data: two"));
        assert!(replay[1].contains("data: all"));
        assert!(replay[2].contains("data: three"));
    }

    #[tokio::test]
    async fn a_foreign_or_garbage_id_gets_a_reset() {
        let hub = hub(10, 10);
        let other = self::hub(10, 10);
        let foreign = send(&other, "a", "x");
        for id in [foreign.as_str(), "garbage", "12345"] {
            let mut s = hub.subscribe("a", Some(id), None);
            assert_eq!(s.reset, Some(ResetReason::UnknownId));
            let prelude = replayed(&mut s);
            assert!(prelude[0].contains("event: reset"), "{prelude:?}");
            assert!(prelude[0].contains("unknown_id"));
        }
    }

    #[tokio::test]
    async fn an_id_older_than_what_is_kept_gets_a_reset() {
        let hub = hub(3, 1);
        let old = send(&hub, "a", "0");
        for i in 1..=5 {
            send(&hub, "a", &i.to_string());
        }
        let s = hub.subscribe("a", Some(&old), None);
        assert_eq!(s.reset, Some(ResetReason::HistoryExpired));
    }

    #[tokio::test]
    async fn the_byte_budget_drops_the_oldest_whoever_they_belong_to() {
        let mut limits = limits(1000, 10);
        limits.history_bytes = 20_000;
        let hub = UserHub::new("test", IdScheme::local(), limits, Arc::new(Metrics::new()));
        let first = send(&hub, "early", "x");
        let big = "y".repeat(1000);
        for i in 0..100 {
            send(&hub, &format!("user{i}"), &big);
        }
        assert!(hub.kept_bytes() <= 20_000, "{}", hub.kept_bytes());
        let s = hub.subscribe("early", Some(&first), None);
        assert_eq!(s.reset, Some(ResetReason::HistoryExpired));
        let recent = send(&hub, "other", "z");
        send(&hub, "user99", "latest");
        let mut s = hub.subscribe("user99", Some(&recent), None);
        assert_eq!(s.reset, None);
        let replay = replayed(&mut s);
        assert_eq!(replay.len(), 1);
        assert!(replay[0].contains("data: latest"));
    }

    #[tokio::test]
    async fn entries_of_events_a_count_cap_dropped_do_not_pile_up() {
        let hub = hub(2, 1);
        for i in 0..10_000 {
            send(&hub, "a", &i.to_string());
        }
        let entries = hub.kept.locked().len();
        assert!(
            entries <= 2 * 1024 + 2,
            "{entries} entries for 2 kept events"
        );
        let kept: usize = hub
            .users
            .get("a")
            .map_or(0, |s| s.history.after(&[0]).map(Event::cost).sum());
        assert_eq!(hub.kept_bytes(), kept, "the byte total is exact");
    }

    #[tokio::test]
    async fn the_window_drops_old_events() {
        let mut limits = limits(1000, 10);
        limits.window = Duration::ZERO;
        let hub = UserHub::new("test", IdScheme::local(), limits, Arc::new(Metrics::new()));
        let first = send(&hub, "a", "1");
        send(&hub, "a", "2");
        hub.evict();
        assert_eq!(hub.kept_bytes(), 0);
        assert_eq!(hub.user_count(), 0);
        let s = hub.subscribe("a", Some(&first), None);
        assert_eq!(s.reset, Some(ResetReason::HistoryExpired));
    }

    #[tokio::test]
    async fn a_full_queue_drops_that_connection_only() {
        let hub = hub(10, 2);
        let slow = hub.subscribe("a", None, None);
        let mut fast = hub.subscribe("a", None, None);
        for i in 0..2 {
            send(&hub, "a", &i.to_string());
            fast.next().await.unwrap();
        }
        let (_, delivered) = hub.send("a", None, "third", None).unwrap();
        assert_eq!(delivered, 1, "the slow connection is cut off");
        assert!(text(&fast.next().await.unwrap()).contains("third"));
        drop(slow);
    }

    #[tokio::test]
    async fn kafka_ids_skip_what_a_client_from_a_faster_instance_has() {
        let hub = UserHub::new(
            "test",
            IdScheme::Kafka,
            limits(10, 10),
            Arc::new(Metrics::new()),
        );
        hub.reading_from(&[5]);
        let at = |offset| {
            Some(Position {
                partition: 0,
                offset,
            })
        };
        let (id, _) = hub.send("a", None, "five", at(5)).unwrap();
        assert_eq!(id, "6");
        // The client already has offsets 5 and 6 from another instance.
        let mut s = hub.subscribe("a", Some("7"), None);
        assert_eq!(s.reset, None);
        assert!(replayed(&mut s).is_empty());
        hub.send("a", None, "six", at(6)).unwrap();
        hub.send("a", None, "seven", at(7)).unwrap();
        assert!(text(&s.next().await.unwrap()).contains("data: seven"));
        // Records read again (a reader restarted behind) are not events again.
        assert!(hub.send("a", None, "five again", at(5)).is_none());
        // An id from before where this instance began reading is expired.
        let s = hub.subscribe("a", Some("3"), None);
        assert_eq!(s.reset, Some(ResetReason::HistoryExpired));
    }

    #[tokio::test]
    async fn closed_connections_leave_nothing_behind() {
        let hub = hub(10, 10);
        for _ in 0..10_000 {
            drop(hub.subscribe("a", None, None));
        }
        assert_eq!(hub.user_count(), 0);
    }

    #[tokio::test]
    async fn broadcast_reaches_every_connected_user_with_one_id() {
        let hub = hub(10, 10);
        let mut a = hub.subscribe("a", None, None);
        let mut b = hub.subscribe("b", None, None);
        let (id, delivered) = hub.broadcast(None, "all", None).unwrap();
        assert_eq!(delivered, 2);
        let expected = format!("id: {id}\ndata: all\n\n");
        assert_eq!(text(&a.next().await.unwrap()), expected);
        assert_eq!(text(&b.next().await.unwrap()), expected);
    }
}
