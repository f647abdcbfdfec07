//! Taking connections off the listener without ever stalling: errors that
//! concern one connection are skipped, and a process out of file descriptors
//! still accepts (with a descriptor held in [`Reserve`]) so that the connection
//! can be refused at once rather than left in the backlog. Accepted sockets use
//! TCP keep-alive, so a peer that vanished without a FIN (a laptop closed, a NAT
//! entry dropped) is found and its stream freed even when no event is written.

use std::fs::File;
use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};

use super::connection::{ConnectionHandle, SocketSettings};
use super::socket::ClosableStream;

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
        let handle = ConnectionHandle::accepted(settings.waiting.clone());
        return Ok(Accepted::Socket(ClosableStream::new(
            stream,
            handle,
            settings.deadlines.clone(),
        )));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::server::connection::{Deadlines, Waiting};

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
        let socket = SockRef::from(accepted.inner());
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            Duration::from_secs(60)
        );
    }
}
