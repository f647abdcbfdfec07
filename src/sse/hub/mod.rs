//! Per-user fan-out and the history behind exact resume: the registry of users
//! and their connections, which delivers each event and keeps it for resume. This
//! module is where the stream promises are kept; their invariants, in one place:
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
//!    2.7 MB of 4 KB events), so for [`OVERFLOW_HOLD`](retention::OVERFLOW_HOLD) after such a close the user's
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
//!
//! This module is the registry: users, their connections and channels, and the
//! only code in the hub that takes a lock. What it locks is plain data whose
//! logic lives beside it: [`Positions`] (`sse::positions`: the cursor and the
//! floor), [`Retention`] (`retention`: what age and the byte budget drop), and
//! `subscription` (what a new connection is replayed, and its stream).
//!
//! # Lock order
//!
//! Each path holds an earlier lock while taking a later one, never the reverse,
//! so no two paths can wait on each other:
//!
//! 1. `gate` (`RwLock`): read for a whole `send` or `subscribe`, written for a
//!    whole `broadcast`, so a broadcast is ordered against every user's events
//!    and registrations.
//! 2. `retention` (`Mutex`): held through an eviction, which drops each event
//!    from its channel before choosing the next, so before the channels. A `send`
//!    lets its user go before recording the event here.
//! 3. a `users` shard (`DashMap`): one user's entry, or one shard at a time while
//!    iterating; never two at once.
//! 4. `everyone` (`Mutex`): the broadcasts' channel.
//! 5. `positions` (`Mutex`): under a channel's lock, since a floor is raised
//!    before the channel its events left is let go (a subscriber never sees events
//!    gone and the floor not yet raised).
//!
//! `tell` (presence) takes a user's shard alone, and the hub calls its connection
//! watcher (`watch_connections`) with no lock held.
//!
//! Leaves, under which nothing is taken: a connection's queue (`try_push`, and
//! closing it when its sender is dropped, under a user's shard) and the metrics
//! family (`stream_opened`). `subscribe` copies the floor out of
//! `positions` rather than building a replay under it: every send takes
//! `positions` to advance the cursor.

mod limits;
mod retention;
mod subscription;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use prometheus_client::metrics::counter::Counter;

use super::event::{EventName, frame};
use super::history::{self, History};
use super::ids::{Cursor, IdScheme};
use super::positions::{Positions, local_cursor, local_position};
use super::queue::{PushError, QueueSender, queue};
use super::{Event, Position};
use crate::lock::{Locked, ReadWriteLocked};
use crate::metrics::Metrics;
use crate::server::ConnectionHandle;
use retention::{Kept, Owner, Retention, hold_after_overflow};
use subscription::{Registration, Start};

pub use limits::HubLimits;
pub use subscription::{ResetReason, Subscription};

/// Who an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Every connection of one user.
    User(&'a str),
    /// Every open connection.
    Everyone,
}

/// What a posted event became: its id and the connections it was queued on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub id: String,
    pub delivered: usize,
}

/// What happened to a user's connections (see [`UserHub::watch_connections`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    Closed,
}

/// What is told of each user whose connections changed.
type Watcher = dyn Fn(&Arc<str>, Change) + Send + Sync;

/// A record this hub's cursor is already past: it makes no event.
struct ReadBefore;

/// The registry of one step's users, their connections and kept events (see the
/// module's doc for its invariants and lock order).
pub struct UserHub {
    version: &'static str,
    ids: IdScheme,
    limits: HubLimits,
    /// Lock 1: read by sends and subscriptions, written by a broadcast.
    gate: RwLock<()>,
    /// Lock 2: every kept event in arrival order, for dropping by age and budget.
    retention: Mutex<Retention>,
    /// Lock 3, per shard.
    users: DashMap<Arc<str>, UserState>,
    /// Lock 4: broadcasts, kept once for everybody.
    everyone: Mutex<History>,
    /// Lock 5: the Kafka cursor and the floor.
    positions: Mutex<Positions>,
    seq: AtomicU64,
    next_connection: AtomicU64,
    metrics: Arc<Metrics>,
    /// Resolved once: a label lookup per delivery would cost more than the delivery.
    delivered: Counter,
    overflowed: Counter,
    /// Whether the reader that feeds this hub has caught up with its topic; none
    /// set: the hub is fed in process and always is.
    fed: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
    /// Told of each user whose number of connections changed (presence).
    watcher: OnceLock<Box<Watcher>>,
}

/// The longest a new stream waits for the hub's reader to catch up (10 minutes
/// of 1,000 records/s take about 5 s: docs/BENCHMARKS.md, `kafka-catchup`).
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(15);

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

impl UserHub {
    pub fn new(
        version: &'static str,
        ids: IdScheme,
        limits: HubLimits,
        metrics: Arc<Metrics>,
    ) -> Arc<UserHub> {
        let (delivered, overflowed) = metrics.delivery_counters(version);
        Arc::new(UserHub {
            version,
            ids,
            gate: RwLock::new(()),
            retention: Mutex::new(Retention::new(&limits)),
            users: DashMap::new(),
            everyone: Mutex::new(History::default()),
            positions: Mutex::new(Positions::default()),
            limits,
            seq: AtomicU64::new(0),
            next_connection: AtomicU64::new(0),
            metrics,
            delivered,
            overflowed,
            fed: OnceLock::new(),
            watcher: OnceLock::new(),
        })
    }

    /// Names the check that says whether the reader feeding this hub has caught
    /// up with its topic (set once, by whoever starts the reader).
    pub fn fed_by(&self, caught_up: impl Fn() -> bool + Send + Sync + 'static) {
        let _ = self.fed.set(Box::new(caught_up));
    }

    /// Names what is told of each user whose number of open connections changed
    /// (set once, by presence). It is called with no lock held, after the change.
    pub fn watch_connections(&self, changed: impl Fn(&Arc<str>, Change) + Send + Sync + 'static) {
        let _ = self.watcher.set(Box::new(changed));
    }

    fn connections_changed(&self, user: &Arc<str>, change: Change) {
        if let Some(changed) = self.watcher.get() {
            changed(user, change);
        }
    }

    /// Waits, at most [`CATCH_UP_WAIT`], until the reader feeding this hub has
    /// caught up. A stream opened before would be judged against a history still
    /// being rebuilt (an instance just started): a resume from another instance
    /// would read as an unknown id, and a new stream would get the old records
    /// being re-read as live events.
    pub async fn caught_up(&self) {
        let Some(caught_up) = self.fed.get() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        while !caught_up() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn uses_kafka_positions(&self) -> bool {
        matches!(self.ids, IdScheme::Kafka)
    }

    /// Kafka: the topic's partitions are read from `starts` (next offset of each),
    /// which become the first floor; see [`Positions::reading_from`].
    pub fn reading_from(&self, starts: &[i64]) {
        self.positions.locked().reading_from(starts);
    }

    /// Where the hub stands: what a client holding everything so far would send.
    fn cursor(&self) -> Cursor {
        if self.uses_kafka_positions() {
            self.positions.locked().kafka_cursor()
        } else {
            local_cursor(self.seq.load(Ordering::SeqCst))
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
        let gate = self.gate.reading();
        let mut state = self.users.entry(key.clone()).or_default();
        // Under the user's lock (and the gate): nothing can be published between
        // the replay and the registration, so nothing is missed or sent twice.
        let now = self.cursor();
        let mut start =
            match last_event_id.map(|raw| subscription::resume_cursor(&self.ids, raw, &now)) {
                None => Start::from_now(),
                Some(Err(reason)) => Start::live(Some(reason)),
                Some(Ok(cursor)) => {
                    let everyone = self.everyone.locked();
                    // Copied, not held: every send takes `positions` to advance the
                    // cursor, and must not wait for this replay to be built. Read
                    // with both channels locked, it agrees with both.
                    let floor = self.positions.locked().floor().to_vec();
                    subscription::resume(cursor, &now, &floor, &state.history, &everyone)
                }
            };
        // Invariant 5: a replay past the byte budget ends the stream once written.
        let registered = start.fit_to_budget(self.limits.queue_bytes);
        if registered {
            state.connections.push(Connection {
                id: connection,
                queue: tx,
                handle,
                skip_before: start.skip_before.take(),
            });
        } else {
            drop(tx);
        }
        drop(state);
        drop(gate);
        if registered {
            self.connections_changed(&key, Change::Opened);
        }
        let position = self.ids.format(&now);
        let open = self.metrics.stream_opened(self.version);
        let registration = Registration::new(self.clone(), key, connection, open);
        Subscription::new(start, position, rx, registration)
    }

    /// A process-local event (/v2, and /v3 or /v4 without Kafka) to `to`: queued
    /// on each of the audience's connections and kept for resume.
    pub fn post(&self, to: Audience<'_>, name: EventName, data: &str) -> Posted {
        let local = |hub: &UserHub| Ok::<_, Infallible>(hub.local_event(name, data));
        let posted = match to {
            Audience::User(user) => self.to_user(user, local),
            Audience::Everyone => self.to_everyone(local),
        };
        match posted {
            Ok(posted) => posted,
            Err(never) => match never {},
        }
    }

    /// The event a bus record carries, read from `record`: like [`UserHub::post`],
    /// but on a hub with Kafka positions the record's place decides the event's id,
    /// and a record read before (a reader that restarted behind) makes no event:
    /// `None`.
    pub fn apply(
        &self,
        record: Position,
        to: Audience<'_>,
        name: EventName,
        data: &str,
    ) -> Option<Posted> {
        let read = |hub: &UserHub| hub.record_event(record, name, data).ok_or(ReadBefore);
        let posted = match to {
            Audience::User(user) => self.to_user(user, read),
            Audience::Everyone => self.to_everyone(read),
        };
        posted.ok()
    }

    /// One event for `user`, made by `make` under the user's lock (so ids follow
    /// delivery order), queued on each of their connections and kept for resume.
    fn to_user<E>(
        &self,
        user: &str,
        make: impl FnOnce(&UserHub) -> Result<(String, Event), E>,
    ) -> Result<Posted, E> {
        let _gate = self.gate.reading();
        // The common case, a user already here, allocates no key.
        let mut state = match self.users.get_mut(user) {
            Some(state) => state,
            None => self.users.entry(Arc::from(user)).or_default(),
        };
        let key = state.key().clone();
        let (id, event) = match make(self) {
            Ok(made) => made,
            Err(e) => {
                // No event, and no entry left for a user this hub did not have.
                drop(state);
                self.users.remove_if(user, |_, s| {
                    s.connections.is_empty() && s.history.is_empty()
                });
                return Err(e);
            }
        };
        let delivered = self.deliver(&mut state, &event);
        let cost = event.cost();
        let seq = event.seq;
        let capacity = retention::count_cap(self.limits.history, state.hold_until);
        let freed = state.history.push(event, capacity);
        drop(state);
        self.keep(seq, cost, freed, Owner::User(key));
        Ok(Posted { id, delivered })
    }

    /// One event, framed once, to every open connection, kept once for everybody.
    fn to_everyone<E>(
        &self,
        make: impl FnOnce(&UserHub) -> Result<(String, Event), E>,
    ) -> Result<Posted, E> {
        let gate = self.gate.writing();
        let (id, event) = make(self)?;
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
        Ok(Posted { id, delivered })
    }

    /// A Kafka record that carries no event for anyone (malformed, or a duplicate):
    /// the cursor moves past it all the same.
    pub fn skip(&self, record: Position) {
        if self.uses_kafka_positions() {
            self.positions.locked().advance(record);
        }
    }

    /// The next event in this hub's own sequence.
    fn local_event(&self, name: EventName, data: &str) -> (String, Event) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.event_at(seq, local_position(seq), &local_cursor(seq), name, data)
    }

    /// The event of the record at `record`; `None` if the cursor is past it. A hub
    /// without Kafka positions numbers it in its own sequence.
    fn record_event(
        &self,
        record: Position,
        name: EventName,
        data: &str,
    ) -> Option<(String, Event)> {
        if !self.uses_kafka_positions() {
            return Some(self.local_event(name, data));
        }
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let cursor = self.positions.locked().advance(record)?;
        Some(self.event_at(seq, record, &cursor, name, data))
    }

    fn event_at(
        &self,
        seq: u64,
        position: Position,
        cursor: &Cursor,
        name: EventName,
        data: &str,
    ) -> (String, Event) {
        let id = self.ids.format(cursor);
        let bytes = frame(&id, name, data);
        let event = Event {
            seq,
            position,
            bytes,
        };
        (id, event)
    }

    fn deliver(&self, state: &mut UserState, event: &Event) -> usize {
        // Kept for the connection's life: partitions catch up one by one.
        let before_start = |c: &Connection| {
            c.skip_before
                .as_ref()
                .is_some_and(|cursor| !history::is_after(event, cursor))
        };
        self.push(state, &event.bytes, before_start)
    }

    /// Queues `bytes` on each of `state`'s connections but those `skip` names;
    /// closes a connection whose queue is full.
    fn push(
        &self,
        state: &mut UserState,
        bytes: &Bytes,
        skip: impl Fn(&Connection) -> bool,
    ) -> usize {
        let mut delivered = 0;
        let mut overflowed = 0;
        state.connections.retain(|c| {
            if skip(c) {
                return true;
            }
            match c.queue.try_push(bytes.clone()) {
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
            state.hold_until = Some(hold_after_overflow(Instant::now()));
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

    /// Records a newly kept event in the ledger (with those its channel's count
    /// cap dropped), then evicts if that put the hub over its byte budget.
    fn keep(&self, seq: u64, cost: usize, freed: (usize, usize), owner: Owner) {
        let evict = self
            .retention
            .locked()
            .keep(seq, cost, freed, owner, Instant::now());
        if evict {
            self.evict();
        }
    }

    /// Drops kept events older than the window, and the oldest while over the byte
    /// budget. Run after each event when over budget, and every second.
    pub fn evict(&self) {
        let mut retention = self.retention.locked();
        let now = Instant::now();
        while let Some(entry) = retention.next_to_evict(now) {
            if let Some(dropped) = self.drop_kept(&entry) {
                retention.release(&dropped);
            }
        }
        retention.sweep_stale(|entry| self.still_kept(entry));
    }

    /// Drops `entry`'s event (and any older of its channel) and raises the floor
    /// past them; returns what went, or `None` when its user is already gone.
    fn drop_kept(&self, entry: &Kept) -> Option<Vec<Event>> {
        // The floor is raised while the channel is still locked: a subscriber
        // never sees the events gone and the floor not yet raised.
        match &entry.owner {
            Owner::Everyone => {
                let mut everyone = self.everyone.locked();
                let dropped = everyone.drop_through(entry.seq);
                self.raise_floor(&dropped, &[]);
                Some(dropped)
            }
            Owner::User(user) => {
                let mut state = self.users.get_mut(user)?;
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
                Some(dropped)
            }
        }
    }

    fn raise_floor(&self, dropped: &[Event], own_floor: &[i64]) {
        if dropped.is_empty() && own_floor.is_empty() {
            return;
        }
        self.positions.locked().raise_floor(dropped, own_floor);
    }

    /// Whether the channel of `entry` still holds its event.
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
        self.retention.locked().kept_bytes()
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

    /// Queues `frame` on every connection of `user`, without keeping it: a state
    /// the client is told (presence), not an event to replay. Takes one `users`
    /// shard only (lock 3). Returns the connections it was queued on.
    pub fn tell(&self, user: &str, frame: &Bytes) -> usize {
        match self.users.get_mut(user) {
            Some(mut state) => self.push(&mut state, frame, |_| false),
            None => 0,
        }
    }

    /// Every user with an open connection here, and how many.
    pub fn connected_users(&self) -> Vec<(Arc<str>, usize)> {
        self.users
            .iter()
            .filter(|s| !s.connections.is_empty())
            .map(|s| (s.key().clone(), s.connections.len()))
            .collect()
    }

    /// Number of users the hub holds (connected, or with kept events).
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Called when a [`Subscription`] is dropped.
    fn unregister(&self, user: &Arc<str>, connection: u64) {
        if let Some(mut state) = self.users.get_mut(user) {
            state.connections.retain(|c| c.id != connection);
        }
        self.users.remove_if(user, |_, state| {
            state.connections.is_empty() && state.history.is_empty()
        });
        self.connections_changed(user, Change::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use std::time::Duration;

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

    #[tokio::test(start_paused = true)]
    async fn a_new_stream_waits_for_the_reader_to_catch_up_within_a_bound() {
        use std::sync::atomic::AtomicBool;
        let fed = hub(10, 10);
        let reader_done = Arc::new(AtomicBool::new(false));
        fed.fed_by({
            let done = reader_done.clone();
            move || done.load(Ordering::SeqCst)
        });
        let started = tokio::time::Instant::now();
        let waiting = tokio::spawn({
            let fed = fed.clone();
            async move { fed.caught_up().await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!waiting.is_finished(), "waits while the reader catches up");
        reader_done.store(true, Ordering::SeqCst);
        waiting.await.expect("wait");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
            "{waited:?}"
        );

        // A reader that never catches up holds a stream back no longer than the bound.
        let stuck = hub(10, 10);
        stuck.fed_by(|| false);
        let started = tokio::time::Instant::now();
        stuck.caught_up().await;
        let waited = started.elapsed();
        assert!(
            waited >= CATCH_UP_WAIT && waited < CATCH_UP_WAIT + Duration::from_secs(1),
            "{waited:?}"
        );

        // A hub fed in process never waits.
        let started = tokio::time::Instant::now();
        hub(10, 10).caught_up().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    fn send(hub: &UserHub, user: &str, data: &str) -> String {
        hub.post(Audience::User(user), EventName::Message, data).id
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
        let delivered = hub
            .post(Audience::User("a"), EventName::Message, "hello")
            .delivered;
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
        hub.post(Audience::Everyone, EventName::Message, "all");
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
        let entries = hub.retention.locked().entry_count();
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
        let delivered = hub
            .post(Audience::User("a"), EventName::Message, "third")
            .delivered;
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
        let at = |offset| Position {
            partition: 0,
            offset,
        };
        let record = |offset, user, data| {
            hub.apply(at(offset), Audience::User(user), EventName::Message, data)
        };
        let id = record(5, "a", "five").expect("a new record").id;
        assert_eq!(id, "6");
        // The client already has offsets 5 and 6 from another instance.
        let mut s = hub.subscribe("a", Some("7"), None);
        assert_eq!(s.reset, None);
        assert!(replayed(&mut s).is_empty());
        record(6, "a", "six").expect("a new record");
        record(7, "a", "seven").expect("a new record");
        assert!(text(&s.next().await.unwrap()).contains("data: seven"));
        // Records read again (a reader restarted behind) are not events again.
        assert!(record(5, "a", "five again").is_none());
        // Nor do they leave an entry for a user the hub did not have.
        let users = hub.user_count();
        assert!(record(6, "new", "six again").is_none());
        assert_eq!(hub.user_count(), users);
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
        let Posted { id, delivered } = hub.post(Audience::Everyone, EventName::Message, "all");
        assert_eq!(delivered, 2);
        let expected = format!("id: {id}\ndata: all\n\n");
        assert_eq!(text(&a.next().await.unwrap()), expected);
        assert_eq!(text(&b.next().await.unwrap()), expected);
    }
}
