//! Sockets that a handler can close.
//!
//! A client that stops reading leaves its connection blocked in a write; hyper then
//! never polls the response body again, so ending the event stream cannot close it.
//! Every accepted socket therefore carries a [`ConnectionHandle`]: cancelling it
//! makes the next (or the pending) write fail, and hyper drops the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Closes the connection a request arrived on. Reached through `ConnectInfo`.
#[derive(Clone, Debug)]
pub struct ConnectionHandle(CancellationToken);

impl ConnectionHandle {
    pub fn close(&self) {
        self.0.cancel();
    }
}

/// A TCP listener whose connections can be closed through a [`ConnectionHandle`].
pub struct ClosableListener(pub TcpListener);

impl Listener for ClosableListener {
    type Io = ClosableStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        // Events are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let token = CancellationToken::new();
        let closed = Box::pin(token.clone().cancelled_owned());
        (
            ClosableStream {
                inner: stream,
                handle: ConnectionHandle(token),
                closed,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

pub struct ClosableStream {
    inner: TcpStream,
    handle: ConnectionHandle,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl ClosableStream {
    /// Fails with `ConnectionAborted` once the handle is cancelled; otherwise
    /// registers the task to be woken when it is.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, ClosableListener>>
    for ConnectionHandle
{
    fn connect_info(stream: IncomingStream<'_, ClosableListener>) -> Self {
        stream.io().handle.clone()
    }
}

impl AsyncRead for ClosableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_closed(cx)?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClosableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_closed(cx)?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_closed(cx)?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_closed(cx)?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
