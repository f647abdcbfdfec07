//! Sockets that a handler can close, and the deadlines every socket lives by.
//!
//! A client that stops reading leaves its connection blocked in a write, where
//! nothing polls the event stream any more, so ending the stream cannot close it.
//! Every accepted socket therefore carries a [`ConnectionHandle`]: closing it
//! makes the next (or the pending) read or write fail, and whoever serves the
//! connection (the stream path or hyper) drops it. The check on every write is one
//! atomic load: it sits on the delivery path of every event.
//!
//! No client can hold a socket open by doing nothing. The socket itself knows
//! whether a request is in progress ([`ConnectionHandle::request_started`] and
//! [`ConnectionHandle::request_finished`], called by the server around every
//! request, on the stream path and in hyper alike), and enforces [`Deadlines`]:
//!
//! * waiting for a request head: the whole head within `header` of the first byte
//!   (of the accept, for a connection's first request), however slowly it drips;
//! * idle between requests: closed after `idle` with no byte;
//! * writing: a socket that accepts no byte for `write` while data waits is closed
//!   (a stream then resumes by id, as after an overflow).
//!
//! Deadlines are enforced here, under hyper, rather than with hyper's own header
//! timer, because that timer starts when hyper begins waiting for the next request
//! and so cannot tell an idle keep-alive connection from a slow head. A request
//! body's deadline belongs to the body (the server wraps it). Connections waiting
//! for a request are also counted ([`Waiting`]): past its cap the oldest is closed.
//!
//! Accepted sockets also use TCP keep-alive, so a peer that vanished without a
//! FIN (a laptop closed, a NAT entry dropped) is found and its stream freed even
//! when no event is being written to it.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::lock::Locked;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

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
#[derive(Clone, Debug, Default)]
pub struct ConnectionHandle(Arc<CloseSignal>);

#[derive(Debug, Default)]
struct CloseSignal {
    closed: AtomicBool,
    /// The connection's task, when it waits on the socket.
    task: AtomicWaker,
    /// Requests in progress (HTTP/2 runs several at once).
    in_flight: AtomicU32,
    /// [`WAITING_FOR_HEAD`], [`IDLE`] or [`BUSY`].
    phase: AtomicU8,
    /// When the phase began, in ms since [`epoch`].
    since_ms: AtomicU64,
    /// The registry of connections waiting for a request, and this one's key in it
    /// (0: not in it). `None` for a handle not tied to a socket.
    waiting: Option<Arc<Waiting>>,
    waiting_key: AtomicU64,
}

const WAITING_FOR_HEAD: u8 = 0;
const IDLE: u8 = 1;
const BUSY: u8 = 2;

/// The instant phase times count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl ConnectionHandle {
    /// A handle for one HTTP/2 stream: closing it ends that stream's registration
    /// in the hub but not the socket the other streams share.
    pub fn detached() -> ConnectionHandle {
        ConnectionHandle::default()
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

    fn enter(&self, phase: u8) {
        self.0.since_ms.store(now_ms(), Ordering::Release);
        self.0.phase.store(phase, Ordering::Release);
        if let Some(waiting) = &self.0.waiting {
            self.leave_waiting();
            let key = waiting.insert(&self.0);
            self.0.waiting_key.store(key, Ordering::Release);
        }
    }

    fn leave_waiting(&self) {
        let key = self.0.waiting_key.swap(0, Ordering::AcqRel);
        if key != 0
            && let Some(waiting) = &self.0.waiting
        {
            waiting.remove(key);
        }
    }

    /// When the next read must have happened by, if anything is awaited.
    fn read_deadline(&self, deadlines: &Deadlines) -> Option<Instant> {
        let after = match self.0.phase.load(Ordering::Acquire) {
            WAITING_FOR_HEAD => deadlines.header,
            IDLE => deadlines.idle,
            _ => return None,
        };
        let since = Duration::from_millis(self.0.since_ms.load(Ordering::Acquire));
        Some(epoch() + since + after)
    }

    /// Bytes arrived: an idle connection now waits for the rest of a head.
    fn bytes_read(&self) {
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

/// A file descriptor held in reserve: when the process runs out, it is given up
/// for a moment so that a pending connection can be accepted and refused at once,
/// instead of waiting in the backlog until it times out.
pub struct Reserve(Option<File>);

impl Reserve {
    pub fn new() -> Reserve {
        Reserve(File::open("/dev/null").ok())
    }

    /// Takes the descriptor back, once the connection it let in is closed.
    pub fn refill(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }
}

impl Default for Reserve {
    fn default() -> Reserve {
        Reserve::new()
    }
}

/// What [`accept`] got.
pub enum Accepted {
    /// A connection to serve.
    Socket(ClosableStream),
    /// The process is out of file descriptors: a connection was taken with the
    /// reserve descriptor; it should be refused and closed at once, then the
    /// reserve refilled ([`Reserve::refill`]).
    OutOfFiles(TcpStream),
}

/// The next connection, as a socket that can be closed through a [`ConnectionHandle`].
/// Errors that concern only the one connection (it was reset before we took it) are
/// skipped; running out of file descriptors uses `reserve`; other errors are
/// returned.
pub async fn accept(
    listener: &TcpListener,
    settings: &SocketSettings,
    reserve: &mut Reserve,
) -> io::Result<Accepted> {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) if is_out_of_files(&e) && reserve.0.is_some() => {
                reserve.0 = None;
                let accepted = listener.accept().await;
                if accepted.is_err() {
                    reserve.refill();
                }
                return Ok(Accepted::OutOfFiles(accepted?.0));
            }
            Err(e) => return Err(e),
        };
        // Events are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        if let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&keepalive()) {
            tracing::debug!("cannot turn on TCP keep-alive for {addr}: {e}");
        }
        let handle = ConnectionHandle(Arc::new(CloseSignal {
            waiting: Some(settings.waiting.clone()),
            ..CloseSignal::default()
        }));
        handle.enter(WAITING_FOR_HEAD);
        let stream = ClosableStream {
            inner: stream,
            handle,
            read_ahead: Bytes::new(),
            deadlines: settings.deadlines.clone(),
            read_timer: None,
            write_timer: None,
        };
        return Ok(Accepted::Socket(stream));
    }
}

/// EMFILE (this process) or ENFILE (the whole system): no file descriptor left.
fn is_out_of_files(e: &io::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(e.raw_os_error(), Some(ENFILE | EMFILE))
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Probes after a minute of silence, then every 15 s; 4 unanswered probes close
/// the socket (a dead peer is found within two minutes).
fn keepalive() -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(15))
        .with_retries(4)
}

pub struct ClosableStream {
    inner: TcpStream,
    handle: ConnectionHandle,
    /// Bytes already read from the socket that the next reader gets first: a
    /// request head read by the stream path, handed on to hyper.
    read_ahead: Bytes,
    deadlines: Arc<Deadlines>,
    /// Set only while a read or a write waits with a deadline (an idle stream
    /// holds neither).
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl Drop for ClosableStream {
    fn drop(&mut self) {
        self.handle.leave_waiting();
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl ClosableStream {
    /// What a handler uses to close this connection.
    pub fn handle(&self) -> &ConnectionHandle {
        &self.handle
    }

    /// The socket itself, to refuse the connection without waiting on it.
    pub fn socket(&self) -> &TcpStream {
        &self.inner
    }

    /// Puts `bytes`, read from this socket earlier, back in front of what comes next.
    pub fn unread(&mut self, bytes: Bytes) {
        debug_assert!(self.read_ahead.is_empty(), "unread twice");
        self.read_ahead = bytes;
    }

    fn check(&self) -> io::Result<()> {
        if self.handle.0.closed.load(Ordering::Acquire) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            ))
        } else {
            Ok(())
        }
    }

    /// Runs one socket operation unless the handle was closed. When the socket is
    /// not ready, the task also waits for `close`, so a blocked write ends too.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        self.check()?;
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Pending => {
                self.handle.0.task.register(cx.waker());
                self.check()?;
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl ClosableStream {
    /// A read, under the read deadline of the connection's phase.
    fn read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let deadline = self.handle.read_deadline(&self.deadlines);
        // Checked even when bytes are there: a head that drips in slowly must not
        // live longer than one that does not come at all.
        if deadline.is_some_and(|at| Instant::now() >= at) {
            self.handle.close();
            return Poll::Ready(Err(timed_out("waiting for a request")));
        }
        let filled = buf.filled().len();
        match self.guard(cx, |s, cx| s.poll_read(cx, buf)) {
            Poll::Pending => {
                let Some(at) = deadline else {
                    self.read_timer = None;
                    return Poll::Pending;
                };
                let timer = self
                    .read_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    self.handle.close();
                    return Poll::Ready(Err(timed_out("waiting for a request")));
                }
                Poll::Pending
            }
            ready => {
                self.read_timer = None;
                if buf.filled().len() > filled {
                    self.handle.bytes_read();
                }
                ready
            }
        }
    }

    /// A write, under the write deadline: the clock runs from the first write the
    /// socket could not take, and stops at the next one it takes.
    fn write<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.guard(cx, op) {
            Poll::Pending => {
                let after = self.deadlines.write;
                let timer = self
                    .write_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.handle.close();
                    return Poll::Ready(Err(timed_out("writing to the client")));
                }
                Poll::Pending
            }
            ready => {
                self.write_timer = None;
                ready
            }
        }
    }
}

impl AsyncRead for ClosableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read_ahead.is_empty() {
            let n = this.read_ahead.len().min(buf.remaining());
            buf.put_slice(&this.read_ahead.split_to(n));
            return Poll::Ready(Ok(()));
        }
        this.read(cx, buf)
    }
}

impl AsyncWrite for ClosableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().write(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_use_tcp_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let settings = SocketSettings {
            deadlines: Arc::new(Deadlines {
                header: Duration::from_secs(10),
                body: Duration::from_secs(10),
                idle: Duration::from_secs(10),
                write: Duration::from_secs(10),
            }),
            waiting: Waiting::new(10),
        };
        let Ok(Accepted::Socket(accepted)) =
            accept(&listener, &settings, &mut Reserve::new()).await
        else {
            panic!("no socket accepted");
        };
        let socket = SockRef::from(&accepted.inner);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            Duration::from_secs(60)
        );
    }
}
