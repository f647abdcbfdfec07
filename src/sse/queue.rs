//! A connection's bounded queue of framed events, between the hub (which pushes,
//! never waits) and the connection's response body (which drains it).
//!
//! Written for this one job instead of using `tokio::sync::mpsc`: an idle queue
//! allocates nothing (an mpsc channel allocates a 32-slot block up front, ~1.5 KiB
//! per connection), and a reader that fell a little behind takes everything queued
//! as one chunk, so a burst costs one socket write instead of one per event.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use crate::lock::Locked;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::task::AtomicWaker;

/// Largest chunk a reader assembles from queued events.
const MAX_CHUNK: usize = 64 * 1024;

struct Shared {
    state: Mutex<State>,
    reader: AtomicWaker,
    capacity: usize,
    byte_capacity: usize,
}

#[derive(Default)]
struct State {
    events: VecDeque<Bytes>,
    /// Bytes in `events`.
    bytes: usize,
    /// Set when either side is dropped.
    closed: bool,
}

/// The hub's end. Dropping it ends the reader's stream after what is queued.
pub struct QueueSender(Arc<Shared>);

/// The connection's end: a stream of chunks, each one or more whole events.
pub struct QueueReceiver(Arc<Shared>);

#[derive(Debug, PartialEq)]
pub enum PushError {
    /// The reader has `capacity` events, or `byte_capacity` bytes, waiting: it is
    /// too slow.
    Full,
    /// The reader is gone.
    Closed,
}

/// A queue holding at most `capacity` events and `byte_capacity` bytes (one event
/// larger than that is still taken when the queue is empty).
pub fn queue(capacity: usize, byte_capacity: usize) -> (QueueSender, QueueReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        reader: AtomicWaker::new(),
        capacity,
        byte_capacity,
    });
    (QueueSender(shared.clone()), QueueReceiver(shared))
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    fn close(&self) {
        self.lock().closed = true;
        self.reader.wake();
    }
}

impl QueueSender {
    pub fn try_push(&self, event: Bytes) -> Result<(), PushError> {
        let mut state = self.0.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        let too_many_bytes =
            !state.events.is_empty() && state.bytes + event.len() > self.0.byte_capacity;
        if state.events.len() >= self.0.capacity || too_many_bytes {
            return Err(PushError::Full);
        }
        state.bytes += event.len();
        state.events.push_back(event);
        drop(state);
        self.0.reader.wake();
        Ok(())
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Stream for QueueReceiver {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        // Register first, then look: a push in between wakes us again.
        self.0.reader.register(cx.waker());
        let mut state = self.0.lock();
        let Some(first) = state.events.pop_front() else {
            return if state.closed {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        };
        state.bytes -= first.len();
        if state.events.is_empty() {
            return Poll::Ready(Some(first));
        }
        let mut chunk = BytesMut::with_capacity(
            MAX_CHUNK.min(first.len() + state.events.iter().map(Bytes::len).sum::<usize>()),
        );
        chunk.extend_from_slice(&first);
        while let Some(next) = state.events.front() {
            if chunk.len() + next.len() > MAX_CHUNK {
                break;
            }
            chunk.extend_from_slice(next);
            state.bytes -= next.len();
            state.events.pop_front();
        }
        Poll::Ready(Some(chunk.freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn queued_events_come_out_in_order_as_one_chunk() {
        let (tx, mut rx) = queue(10, 1024);
        tx.try_push(Bytes::from_static(b"a")).unwrap();
        tx.try_push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(rx.next().await.unwrap(), Bytes::from_static(b"ab"));
        tx.try_push(Bytes::from_static(b"c")).unwrap();
        assert_eq!(rx.next().await.unwrap(), Bytes::from_static(b"c"));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_gone_reader_is_reported() {
        let (tx, rx) = queue(1, 1024);
        tx.try_push(Bytes::from_static(b"a")).unwrap();
        assert_eq!(tx.try_push(Bytes::from_static(b"b")), Err(PushError::Full));
        drop(rx);
        assert_eq!(
            tx.try_push(Bytes::from_static(b"c")),
            Err(PushError::Closed)
        );
    }

    #[tokio::test]
    async fn the_byte_bound_refuses_past_it_but_takes_one_large_event() {
        let (tx, mut rx) = queue(100, 4);
        tx.try_push(Bytes::from_static(b"12345678")).unwrap();
        assert_eq!(tx.try_push(Bytes::from_static(b"a")), Err(PushError::Full));
        assert_eq!(rx.next().await.unwrap(), Bytes::from_static(b"12345678"));
        tx.try_push(Bytes::from_static(b"abc")).unwrap();
        tx.try_push(Bytes::from_static(b"d")).unwrap();
        assert_eq!(tx.try_push(Bytes::from_static(b"e")), Err(PushError::Full));
    }

    #[tokio::test]
    async fn the_stream_ends_after_the_sender_is_dropped() {
        let (tx, mut rx) = queue(4, 1024);
        tx.try_push(Bytes::from_static(b"last")).unwrap();
        drop(tx);
        assert_eq!(rx.next().await.unwrap(), Bytes::from_static(b"last"));
        assert!(rx.next().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_push() {
        let (tx, mut rx) = queue(4, 1024);
        let reader = tokio::spawn(async move { rx.next().await });
        tokio::task::yield_now().await;
        tx.try_push(Bytes::from_static(b"x")).unwrap();
        assert_eq!(reader.await.unwrap().unwrap(), Bytes::from_static(b"x"));
    }
}
