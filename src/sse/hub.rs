//! Per-user fan-out: any number of open connections per user, each with its own
//! bounded queue, plus the user's recent history for resume.
//!
//! Users live in a sharded map (`DashMap`), so delivering to one user never waits
//! for another; there is no actor task and no global lock. A connection whose queue
//! is full is cut off at once: the publisher and the user's other tabs never wait
//! for a slow reader.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::Stream;
use prometheus_client::metrics::counter::Counter;

use super::event::IdGenerator;
use super::queue::{PushError, QueueReceiver, QueueSender, queue};
use super::{Event, EventId, History};
use crate::metrics::{Metrics, OpenStreamGuard, VersionLabel};
use crate::net::ConnectionHandle;

/// How long a user's history outlives their last connection, so that a client that
/// is reconnecting (after a restart, a network change, or an overflow) can resume.
const IDLE_RETENTION: Duration = Duration::from_secs(300);

pub struct UserHub {
    version: &'static str,
    users: DashMap<String, UserState>,
    ids: Arc<IdGenerator>,
    next_connection: AtomicU64,
    history: usize,
    queue: usize,
    metrics: Arc<Metrics>,
    /// Resolved once: a label lookup per delivery would cost more than the delivery.
    delivered: Counter,
    overflowed: Counter,
}

struct UserState {
    history: History,
    connections: Vec<Connection>,
    /// Newest id delivered to this user: ids must increase per user for resume.
    last_id: EventId,
    idle_since: Option<Instant>,
}

struct Connection {
    id: u64,
    queue: QueueSender,
    handle: Option<ConnectionHandle>,
}

/// What a new connection receives: the missed events, then the live queue.
/// Dropping it unregisters the connection.
pub struct Subscription {
    pub replay: Vec<Event>,
    live: QueueReceiver,
    _registration: Registration,
}

struct Registration {
    hub: Arc<UserHub>,
    user: String,
    connection: u64,
    _open: OpenStreamGuard,
}

impl UserHub {
    pub fn new(
        version: &'static str,
        ids: Arc<IdGenerator>,
        history: usize,
        queue: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<UserHub> {
        let label = VersionLabel { version };
        let delivered = metrics.events_delivered.get_or_create(&label).clone();
        let overflowed = metrics.overflow_closed.get_or_create(&label).clone();
        Arc::new(UserHub {
            version,
            users: DashMap::new(),
            ids,
            next_connection: AtomicU64::new(0),
            history,
            queue,
            delivered,
            overflowed,
            metrics,
        })
    }

    /// Registers a connection of `user`. `last_seen` is the client's
    /// `Last-Event-ID`; events after it that are still in the history are replayed.
    /// `handle` lets the hub close the socket when the client falls behind.
    pub fn subscribe(
        self: &Arc<Self>,
        user: &str,
        last_seen: Option<EventId>,
        handle: Option<ConnectionHandle>,
    ) -> Subscription {
        let (tx, rx) = queue(self.queue);
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let mut state = self
            .users
            .entry(user.to_owned())
            .or_insert_with(|| UserState {
                history: History::new(self.history),
                connections: Vec::new(),
                last_id: 0,
                idle_since: None,
            });
        // Under the user's lock: nothing can be published between the replay and
        // the registration, so nothing is missed and nothing is sent twice.
        let replay = last_seen.map_or_else(Vec::new, |id| state.history.after(id));
        state.connections.push(Connection {
            id: connection,
            queue: tx,
            handle,
        });
        state.idle_since = None;
        drop(state);
        Subscription {
            replay,
            live: rx,
            _registration: Registration {
                hub: self.clone(),
                user: user.to_owned(),
                connection,
                _open: self.metrics.stream_opened(self.version),
            },
        }
    }

    /// Frames one event for `user` and queues it on each of their connections.
    /// Users with no connection and no recent history are not stored: nobody could
    /// ever read it. Returns the event id and how many connections it reached.
    pub fn send(&self, user: &str, name: Option<&str>, data: &str) -> (EventId, usize) {
        match self.users.get_mut(user) {
            Some(mut state) => {
                let event = Event::new(self.ids.next(), name, data);
                let id = event.id;
                (id, self.deliver(&mut state, event))
            }
            None => (self.ids.next(), 0),
        }
    }

    /// One event, framed once, to every user the hub holds.
    pub fn broadcast(&self, name: Option<&str>, data: &str) -> (EventId, usize) {
        let event = Event::new(self.ids.next(), name, data);
        let mut delivered = 0;
        // Users between two connections (a reconnecting tab) get it into their
        // history too, so that resume does not miss it.
        for mut state in self.users.iter_mut() {
            delivered += self.deliver(&mut state, event.clone());
        }
        (event.id, delivered)
    }

    fn deliver(&self, state: &mut UserState, mut event: Event) -> usize {
        if event.id <= state.last_id {
            // A broadcast overtaken by a newer event for this user: give it a fresh
            // id so the user's ids keep increasing (resume depends on it).
            event = event.with_id(self.ids.next());
        }
        state.last_id = event.id;
        let mut delivered = 0;
        let mut overflowed = 0;
        state
            .connections
            .retain(|c| match c.queue.try_push(event.bytes.clone()) {
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
            });
        if overflowed > 0 {
            self.overflowed.inc_by(overflowed as u64);
            tracing::info!(
                version = self.version,
                overflowed,
                "closed connections whose queue was full"
            );
        }
        self.delivered.inc_by(delivered as u64);
        state.history.push(event);
        delivered
    }

    /// Forgets users that have had no connection for a while. Run periodically.
    pub fn evict_idle(&self) {
        self.users.retain(|_, state| match state.idle_since {
            Some(since) => since.elapsed() < IDLE_RETENTION,
            None => true,
        });
    }

    /// Ends every connection (after what is already queued): for shutdown.
    pub fn close_all(&self) {
        self.users.clear();
    }

    /// Open connections of `user`, or of every user when `None`.
    pub fn connection_count(&self, user: Option<&str>) -> usize {
        match user {
            Some(user) => self.users.get(user).map_or(0, |s| s.connections.len()),
            None => self.users.iter().map(|s| s.connections.len()).sum(),
        }
    }

    /// Number of users the hub holds (connected, or idle with history).
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn unregister(&self, user: &str, connection: u64) {
        if let Some(mut state) = self.users.get_mut(user) {
            state.connections.retain(|c| c.id != connection);
            if state.connections.is_empty() {
                state.idle_since = Some(Instant::now());
            }
        }
        self.users.remove_if(user, |_, state| {
            state.connections.is_empty() && state.history.is_empty()
        });
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(&self.user, self.connection);
    }
}

impl Subscription {
    /// The missed events' wire bytes, to send before the live ones (once).
    pub fn take_replay(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.replay)
            .into_iter()
            .map(|e| e.bytes)
            .collect()
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

    fn hub(history: usize, queue: usize) -> Arc<UserHub> {
        UserHub::new(
            "test",
            Arc::new(IdGenerator::default()),
            history,
            queue,
            Arc::new(Metrics::new()),
        )
    }

    fn text(b: &Bytes) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[tokio::test]
    async fn every_connection_of_a_user_gets_the_event_and_others_do_not() {
        let hub = hub(10, 10);
        let mut a1 = hub.subscribe("a", None, None);
        let mut a2 = hub.subscribe("a", None, None);
        let mut b = hub.subscribe("b", None, None);
        let (_, delivered) = hub.send("a", None, "hello");
        assert_eq!(delivered, 2);
        assert!(text(&a1.next().await.unwrap()).contains("data: hello"));
        assert!(text(&a2.next().await.unwrap()).contains("data: hello"));
        assert!(futures_util::poll!(b.next()).is_pending());
    }

    #[tokio::test]
    async fn resume_replays_missed_events_once_in_order() {
        let hub = hub(10, 10);
        let first = hub.subscribe("a", None, None);
        let (id1, _) = hub.send("a", None, "one");
        let (id2, _) = hub.send("a", None, "two");
        let (id3, _) = hub.send("a", None, "three");
        drop(first);
        let again = hub.subscribe("a", Some(id1), None);
        let replayed: Vec<_> = again.replay.iter().map(|e| e.id).collect();
        assert_eq!(replayed, vec![id2, id3]);
    }

    #[tokio::test]
    async fn a_full_queue_drops_that_connection_only() {
        let hub = hub(10, 2);
        let slow = hub.subscribe("a", None, None);
        let mut fast = hub.subscribe("a", None, None);
        for i in 0..2 {
            hub.send("a", None, &i.to_string());
            fast.next().await.unwrap();
        }
        let (_, delivered) = hub.send("a", None, "third");
        assert_eq!(delivered, 1, "the slow connection is cut off");
        assert!(text(&fast.next().await.unwrap()).contains("third"));
        drop(slow);
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
    async fn messages_to_unknown_users_are_not_stored() {
        let hub = hub(10, 10);
        let (_, delivered) = hub.send("nobody", None, "x");
        assert_eq!(delivered, 0);
        assert_eq!(hub.user_count(), 0);
    }

    #[tokio::test]
    async fn a_broadcast_while_a_user_reconnects_is_replayed_on_resume() {
        let hub = hub(10, 10);
        let first = hub.subscribe("a", None, None);
        let (seen, _) = hub.send("a", None, "before");
        drop(first);
        let (missed, delivered) = hub.broadcast(None, "while away");
        assert_eq!(delivered, 0);
        let again = hub.subscribe("a", Some(seen), None);
        let replayed: Vec<_> = again.replay.iter().map(|e| e.id).collect();
        assert_eq!(replayed, vec![missed]);
    }

    #[tokio::test]
    async fn broadcast_reaches_every_connected_user_with_one_id() {
        let hub = hub(10, 10);
        let mut a = hub.subscribe("a", None, None);
        let mut b = hub.subscribe("b", None, None);
        let (id, delivered) = hub.broadcast(None, "all");
        assert_eq!(delivered, 2);
        let expected = format!("id: {id}\ndata: all\n\n");
        assert_eq!(text(&a.next().await.unwrap()), expected);
        assert_eq!(text(&b.next().await.unwrap()), expected);
    }
}
