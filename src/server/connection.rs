//! A connection's state as the server and its handlers see it: the
//! [`ConnectionHandle`] that closes it and knows whether a request is in
//! progress, the [`Deadlines`] each phase lives by, and the registry of
//! connections [`Waiting`] for a request.
//!
//! A client that stops reading leaves its connection blocked in a write, where
//! nothing polls the event stream any more, so ending the stream cannot close it.
//! Every accepted socket therefore carries a [`ConnectionHandle`]: closing it
//! makes the next (or the pending) read or write fail (see [`super::socket`]), and
//! whoever serves the connection (the stream path or hyper) drops it. The server
//! calls [`ConnectionHandle::request_started`] and
//! [`ConnectionHandle::request_finished`] around every request, on the stream path
//! and in hyper alike, so the socket knows which deadline applies:
//!
//! * waiting for a request head: the whole head within `header` of the first byte
//!   (of the accept, for a connection's first request), however slowly it drips;
//! * idle between requests: closed after `idle` with no byte;
//! * writing: a socket that accepts no byte for `write` while data waits is closed
//!   (a stream then resumes by id, as after an overflow).
//!
//! Deadlines are enforced under hyper rather than with hyper's own header timer,
//! because that timer starts when hyper begins waiting for the next request and
//! so cannot tell an idle keep-alive connection from a slow head. A request body's
//! deadline belongs to the body ([`super::hyper_service`]). Connections waiting
//! for a request are also counted ([`Waiting`]): past its cap the oldest is closed,
//! so silent connections never crowd out real requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

use crate::lock::Locked;

/// How long a client may take at each step (the `--*-timeout` flags).
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// A whole request head, from its first byte (from the accept for the first).
    pub header: Duration,
    /// A whole request body, from the end of its head.
    pub body: Duration,
    /// No request in progress and no byte received.
    pub idle: Duration,
    /// Data waiting and the socket accepting none of it.
    pub write: Duration,
}

/// Closes the connection a request arrived on, and tells it when requests start
/// and finish. Reached through `ConnectInfo`.
#[derive(Clone, Debug)]
pub struct ConnectionHandle(Arc<CloseSignal>);

#[derive(Debug)]
struct CloseSignal {
    closed: AtomicBool,
    /// The connection's task, when it waits on the socket.
    task: AtomicWaker,
    /// Requests in progress (HTTP/2 runs several at once).
    in_flight: AtomicU32,
    /// [`WAITING_FOR_HEAD`], [`IDLE`] or [`BUSY`].
    phase: AtomicU8,
    /// When the handle was made: phase times count from it.
    born: Instant,
    /// When the phase began, in ms since `born` (an atomic, not a lock: every
    /// read of the socket looks at it).
    since_ms: AtomicU64,
    /// The registry of connections waiting for a request, and this one's key in it
    /// (0: not in it). `None` for a handle not tied to a socket.
    waiting: Option<Arc<Waiting>>,
    waiting_key: AtomicU64,
}

const WAITING_FOR_HEAD: u8 = 0;
const IDLE: u8 = 1;
const BUSY: u8 = 2;

impl CloseSignal {
    fn new(waiting: Option<Arc<Waiting>>) -> CloseSignal {
        CloseSignal {
            closed: AtomicBool::new(false),
            task: AtomicWaker::new(),
            in_flight: AtomicU32::new(0),
            phase: AtomicU8::new(WAITING_FOR_HEAD),
            born: Instant::now(),
            since_ms: AtomicU64::new(0),
            waiting,
            waiting_key: AtomicU64::new(0),
        }
    }
}

impl ConnectionHandle {
    /// The handle of a socket just accepted: waiting for its first head, counted
    /// in `waiting`.
    pub(super) fn accepted(waiting: Arc<Waiting>) -> ConnectionHandle {
        let handle = ConnectionHandle(Arc::new(CloseSignal::new(Some(waiting))));
        handle.enter(WAITING_FOR_HEAD);
        handle
    }

    /// A handle not tied to a socket: one HTTP/2 stream's (closing it ends that
    /// stream's registration in the hub but not the socket the other streams
    /// share), or a test's.
    pub fn detached() -> ConnectionHandle {
        ConnectionHandle(Arc::new(CloseSignal::new(None)))
    }

    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.task.wake();
    }

    /// A whole request head arrived: no read deadline until it is answered.
    pub fn request_started(&self) {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.phase.store(BUSY, Ordering::Release);
        self.leave_waiting();
    }

    /// A response was written in full (or abandoned): with none left in progress,
    /// the connection is idle from now.
    pub fn request_finished(&self) {
        let before = self
            .0
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.enter(IDLE);
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Wakes `waker`'s task when the handle is closed.
    pub(super) fn wake_on_close(&self, waker: &Waker) {
        self.0.task.register(waker);
    }

    fn enter(&self, phase: u8) {
        let since = u64::try_from(self.0.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.since_ms.store(since, Ordering::Release);
        self.0.phase.store(phase, Ordering::Release);
        if let Some(waiting) = &self.0.waiting {
            self.leave_waiting();
            let key = waiting.insert(&self.0);
            self.0.waiting_key.store(key, Ordering::Release);
        }
    }

    pub(super) fn leave_waiting(&self) {
        let key = self.0.waiting_key.swap(0, Ordering::AcqRel);
        if key != 0
            && let Some(waiting) = &self.0.waiting
        {
            waiting.remove(key);
        }
    }

    /// When the next read must have happened by, if anything is awaited.
    pub(super) fn read_deadline(&self, deadlines: &Deadlines) -> Option<Instant> {
        let after = match self.0.phase.load(Ordering::Acquire) {
            WAITING_FOR_HEAD => deadlines.header,
            IDLE => deadlines.idle,
            _ => return None,
        };
        let since = Duration::from_millis(self.0.since_ms.load(Ordering::Acquire));
        Some(self.0.born + since + after)
    }

    /// Bytes arrived: an idle connection now waits for the rest of a head.
    pub(super) fn bytes_read(&self) {
        if self.0.phase.load(Ordering::Acquire) == IDLE {
            self.enter(WAITING_FOR_HEAD);
        }
    }
}

/// The connections waiting for a request (a first one, or the next on a
/// keep-alive connection), oldest first. Past `cap`, the oldest is closed to make
/// room: silent connections can never crowd out real requests.
#[derive(Debug)]
pub struct Waiting {
    cap: usize,
    /// Keys grow with time, so the first entry is the one waiting longest.
    entries: Mutex<BTreeMap<u64, Weak<CloseSignal>>>,
    next_key: AtomicU64,
}

impl Waiting {
    pub fn new(cap: usize) -> Arc<Waiting> {
        Arc::new(Waiting {
            cap: cap.max(1),
            entries: Mutex::new(BTreeMap::new()),
            next_key: AtomicU64::new(1),
        })
    }

    fn insert(&self, signal: &Arc<CloseSignal>) -> u64 {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let evicted = {
            let mut entries = self.entries.locked();
            let evicted = if entries.len() >= self.cap {
                entries.pop_first().map(|(_, oldest)| oldest)
            } else {
                None
            };
            entries.insert(key, Arc::downgrade(signal));
            evicted
        };
        if let Some(oldest) = evicted.and_then(|weak| weak.upgrade()) {
            tracing::debug!("closing the connection that waited longest for a request");
            ConnectionHandle(oldest).close();
        }
        key
    }

    fn remove(&self, key: u64) {
        self.entries.locked().remove(&key);
    }
}

/// What every accepted socket is given: its deadlines and the registry of
/// connections waiting for a request.
#[derive(Clone, Debug)]
pub struct SocketSettings {
    pub deadlines: Arc<Deadlines>,
    pub waiting: Arc<Waiting>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        header: Duration::from_secs(3),
        body: Duration::from_secs(5),
        idle: Duration::from_secs(7),
        write: Duration::from_secs(11),
    };

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_own_read_deadline_counted_from_its_start() {
        let handle = ConnectionHandle::accepted(Waiting::new(4));
        let opened = Instant::now();
        assert_eq!(
            handle.read_deadline(&DEADLINES),
            Some(opened + DEADLINES.header)
        );

        tokio::time::advance(Duration::from_secs(1)).await;
        handle.request_started();
        assert_eq!(
            handle.read_deadline(&DEADLINES),
            None,
            "busy: no read deadline"
        );
        handle.request_started();
        handle.request_finished();
        assert_eq!(
            handle.read_deadline(&DEADLINES),
            None,
            "one request still runs"
        );

        tokio::time::advance(Duration::from_secs(2)).await;
        handle.request_finished();
        let idle_since = Instant::now();
        assert_eq!(
            handle.read_deadline(&DEADLINES),
            Some(idle_since + DEADLINES.idle)
        );

        tokio::time::advance(Duration::from_secs(4)).await;
        handle.bytes_read();
        let head_since = Instant::now();
        assert_eq!(
            handle.read_deadline(&DEADLINES),
            Some(head_since + DEADLINES.header)
        );
        // More bytes of the same head do not move its deadline.
        tokio::time::advance(Duration::from_secs(1)).await;
        handle.bytes_read();
        assert_eq!(
            handle.read_deadline(&DEADLINES),
            Some(head_since + DEADLINES.header)
        );
    }

    #[test]
    fn past_its_cap_the_connection_waiting_longest_is_closed() {
        let waiting = Waiting::new(2);
        let first = ConnectionHandle::accepted(waiting.clone());
        let second = ConnectionHandle::accepted(waiting.clone());
        // A request on the first: it no longer waits, so it is not the one closed.
        first.request_started();
        let third = ConnectionHandle::accepted(waiting.clone());
        assert!(!first.is_closed() && !second.is_closed() && !third.is_closed());
        let fourth = ConnectionHandle::accepted(waiting.clone());
        assert!(second.is_closed(), "the oldest waiting one is closed");
        assert!(!first.is_closed() && !third.is_closed() && !fourth.is_closed());
    }
}
