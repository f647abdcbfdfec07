//! In-memory I/O for the server's unit tests, in the mini-redis way: a client
//! whose every write is exactly one read on the server's side (so a request
//! split in pieces really arrives in pieces), and whose reads see everything the
//! server wrote.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

/// The server's end.
pub struct Scripted {
    reads: mpsc::UnboundedReceiver<Vec<u8>>,
    /// What is left of a read the server's buffer could not take at once.
    partial: VecDeque<u8>,
    written: watch::Sender<Vec<u8>>,
}

/// The client's end.
pub struct Client {
    /// `None` once the client closed its half.
    sends: Option<mpsc::UnboundedSender<Vec<u8>>>,
    written: watch::Receiver<Vec<u8>>,
}

impl Scripted {
    /// A connection on which the client sends `chunks` first, then closes its half
    /// if `close` (else it stays open, and [`Client::send`] sends more).
    pub fn new(chunks: &[&[u8]], close: bool) -> (Scripted, Client) {
        let (send, reads) = mpsc::unbounded_channel();
        for chunk in chunks {
            let _ = send.send(chunk.to_vec());
        }
        let (written, seen) = watch::channel(Vec::new());
        let server = Scripted {
            reads,
            partial: VecDeque::new(),
            written,
        };
        let client = Client {
            sends: (!close).then_some(send),
            written: seen,
        };
        (server, client)
    }
}

impl Client {
    /// Sends one piece: one read on the server's side.
    pub fn send(&self, bytes: &[u8]) {
        if let Some(sends) = &self.sends {
            let _ = sends.send(bytes.to_vec());
        }
    }

    /// Another way to send on this connection, for a task that sends while the test
    /// waits on the server; sending fails once the server dropped its end.
    pub fn sender(&self) -> Option<mpsc::UnboundedSender<Vec<u8>>> {
        self.sends.clone()
    }

    /// Everything the server wrote, once it contains `pattern` (or the server
    /// dropped its end). Panics after 10 s without either.
    pub async fn until(&mut self, pattern: &str) -> String {
        let wait = self
            .written
            .wait_for(|out| String::from_utf8_lossy(out).contains(pattern));
        // An error: the server dropped its end, with or without the pattern.
        let waited = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .map(|_| ());
        let out = String::from_utf8_lossy(&self.written.borrow()).into_owned();
        assert!(
            waited.is_ok(),
            "no {pattern:?} in 10 s; the server wrote {out:?}"
        );
        out
    }

    /// Everything the server wrote, once it dropped its end of the connection.
    pub async fn until_closed(&mut self) -> String {
        let closed = async { while self.written.changed().await.is_ok() {} };
        tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("the server did not close the connection in 10 s");
        String::from_utf8_lossy(&self.written.borrow()).into_owned()
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.partial.is_empty() {
            match this.reads.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => this.partial.extend(chunk),
                // The client closed its half: end of file.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = this.partial.len().min(buf.remaining());
        let taken: Vec<u8> = this.partial.drain(..n).collect();
        buf.put_slice(&taken);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.send_modify(|out| out.extend_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
