//! Sockets that a handler can close.
//!
//! A client that stops reading leaves its connection blocked in a write, where
//! nothing polls the event stream any more, so ending the stream cannot close it.
//! Every accepted socket therefore carries a [`ConnectionHandle`]: closing it
//! makes the next (or the pending) read or write fail, and whoever serves the
//! connection (the stream path or hyper) drops it. The check on every write is one
//! atomic load: it sits on the delivery path of every event.
//!
//! Accepted sockets also use TCP keep-alive, so a peer that vanished without a
//! FIN (a laptop closed, a NAT entry dropped) is found and its stream freed even
//! when no event is being written to it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Closes the connection a request arrived on. Reached through `ConnectInfo`.
#[derive(Clone, Debug, Default)]
pub struct ConnectionHandle(Arc<CloseSignal>);

#[derive(Debug, Default)]
struct CloseSignal {
    closed: AtomicBool,
    /// The connection's task, when it waits on the socket.
    task: AtomicWaker,
}

impl ConnectionHandle {
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.task.wake();
    }
}

/// The next connection, as a socket that can be closed through a [`ConnectionHandle`].
/// Errors that concern only the one connection (it was reset before we took it) are
/// skipped; others (out of file descriptors) are returned.
pub async fn accept(listener: &TcpListener) -> io::Result<(ClosableStream, SocketAddr)> {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => return Err(e),
        };
        // Events are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        if let Err(e) = SockRef::from(&stream).set_tcp_keepalive(&keepalive()) {
            tracing::debug!("cannot turn on TCP keep-alive for {addr}: {e}");
        }
        let stream = ClosableStream {
            inner: stream,
            handle: ConnectionHandle::default(),
            read_ahead: Bytes::new(),
        };
        return Ok((stream, addr));
    }
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
}

impl ClosableStream {
    /// What a handler uses to close this connection.
    pub fn handle(&self) -> &ConnectionHandle {
        &self.handle
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
        this.guard(cx, |s, cx| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ClosableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |s, cx| s.poll_flush(cx))
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
        let (accepted, _) = accept(&listener).await.expect("accept");
        let socket = SockRef::from(&accepted.inner);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            Duration::from_secs(60)
        );
    }
}
