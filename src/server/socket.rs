//! The socket every connection is served over: [`ClosableStream`] fails its
//! reads and writes once its [`ConnectionHandle`] is closed, and enforces the
//! connection's [`Deadlines`] (see [`super::connection`] for which applies when).
//! The check on every write is one atomic load: it sits on the delivery path of
//! every event. Generic over the inner I/O so that the tests can serve a
//! connection from memory.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::connection::{ConnectionHandle, Deadlines};

/// An accepted socket (`S` is a [`TcpStream`] but for the unit tests) that
/// fails every read and write once its handle is closed, and enforces the
/// connection's deadlines.
pub struct ClosableStream<S = TcpStream> {
    inner: S,
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

impl<S> Drop for ClosableStream<S> {
    fn drop(&mut self) {
        self.handle.leave_waiting();
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl<S> ClosableStream<S> {
    pub fn new(inner: S, handle: ConnectionHandle, deadlines: Arc<Deadlines>) -> ClosableStream<S> {
        ClosableStream {
            inner,
            handle,
            read_ahead: Bytes::new(),
            deadlines,
            read_timer: None,
            write_timer: None,
        }
    }

    /// The socket itself (to refuse a connection without waiting on it).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// What a handler uses to close this connection.
    pub fn handle(&self) -> &ConnectionHandle {
        &self.handle
    }

    /// The connection's deadlines (for a layer over this socket, TLS).
    pub fn deadlines(&self) -> &Arc<Deadlines> {
        &self.deadlines
    }

    /// Puts `bytes`, read from this socket earlier, back in front of what comes next.
    pub fn unread(&mut self, bytes: Bytes) {
        debug_assert!(self.read_ahead.is_empty(), "unread twice");
        self.read_ahead = bytes;
    }

    fn check(&self) -> io::Result<()> {
        if self.handle.is_closed() {
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
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        self.check()?;
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Pending => {
                self.handle.wake_on_close(cx.waker());
                self.check()?;
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClosableStream<S> {
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
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClosableStream<S> {
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClosableStream<S> {
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
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::server::connection::Waiting;

    const DEADLINES: Deadlines = Deadlines {
        header: Duration::from_secs(2),
        body: Duration::from_secs(3),
        idle: Duration::from_secs(5),
        write: Duration::from_secs(7),
    };

    fn over_memory(
        buffer: usize,
    ) -> (
        ClosableStream<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
    ) {
        let (server, client) = tokio::io::duplex(buffer);
        let handle = ConnectionHandle::accepted(Waiting::new(4));
        (
            ClosableStream::new(server, handle, Arc::new(DEADLINES)),
            client,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_closed_at_the_write_deadline() {
        let (mut socket, mut client) = over_memory(64);
        socket.handle().request_started();
        // The client reads a little, then nothing: the clock starts at the first
        // write the socket cannot take.
        socket.write_all(&[b'x'; 64]).await.expect("fits");
        let mut some = [0u8; 16];
        client.read_exact(&mut some).await.expect("read");
        let blocked = Instant::now();
        let error = socket
            .write_all(&[b'y'; 1024])
            .await
            .expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let took = blocked.elapsed();
        assert!(
            took >= DEADLINES.write && took <= DEADLINES.write.mul_f64(1.1),
            "closed after {took:?}, not at the write deadline {:?}",
            DEADLINES.write
        );
        assert!(socket.handle().is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_bytes_is_not_closed() {
        let (mut socket, mut client) = over_memory(64);
        socket.handle().request_started();
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0u8; 32];
            while total < 4096 {
                // Slower than the write deadline in all, faster than it each time.
                tokio::time::sleep(Duration::from_secs(1)).await;
                total += client.read(&mut buf).await.expect("read");
            }
        });
        socket
            .write_all(&[b'z'; 4096])
            .await
            .expect("taken in time, bit by bit");
        reader.await.expect("reader");
        assert!(!socket.handle().is_closed());
    }

    #[tokio::test]
    async fn a_closed_handle_fails_the_next_read_and_write() {
        let (mut socket, _client) = over_memory(64);
        socket.handle().close();
        let mut buf = [0u8; 8];
        let read = AsyncReadExt::read(&mut socket, &mut buf)
            .await
            .expect_err("closed");
        assert_eq!(read.kind(), io::ErrorKind::ConnectionAborted);
        let write = socket.write_all(b"late").await.expect_err("closed");
        assert_eq!(write.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn unread_bytes_come_before_the_socket() {
        let (mut socket, mut client) = over_memory(64);
        socket.unread(Bytes::from_static(b"head "));
        client.write_all(b"rest").await.expect("write");
        let mut got = vec![0u8; 9];
        socket.read_exact(&mut got).await.expect("read");
        assert_eq!(got, b"head rest");
    }
}
