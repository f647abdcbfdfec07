//! The loopback floor of a fan-out: the least a server can do to deliver one
//! broadcast to N open streams on this machine. It speaks just enough of the /v2
//! API for `sse-bench fanout --protocol nchan-all` (`GET /v2/sse/all`, `POST
//! /v2/broadcast`), and delivers each broadcast by one blocking `write` per socket,
//! the sockets split between two threads: no hub, no queue, no task wake-up, no
//! timer. The bytes per socket are sse-server's (one chunk per event). What this
//! measures is the kernel's loopback path and the load tool reading on the same
//! cores; sse-server cannot do better than this on the same box.
//!
//! Usage: `loopback_floor [ADDR]` (default 127.0.0.1:3993).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Writer threads, one per core of the 2-core box the benchmarks run on.
const WRITERS: usize = 2;

enum Work {
    /// A new stream's socket, head already written.
    Stream(std::net::TcpStream),
    /// One event, framed as a chunk, for every stream.
    Event(Arc<Vec<u8>>),
}

fn writer(work: mpsc::Receiver<Work>) {
    let mut streams: Vec<std::net::TcpStream> = Vec::new();
    while let Ok(item) = work.recv() {
        match item {
            Work::Stream(s) => streams.push(s),
            Work::Event(chunk) => streams.retain_mut(|s| s.write_all(&chunk).is_ok()),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3993".into());
    let writers: Vec<mpsc::Sender<Work>> = (0..WRITERS)
        .map(|_| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || writer(rx));
            tx
        })
        .collect();
    let writers = Arc::new(writers);
    let next = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("loopback floor on http://{addr}");
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let (writers, next) = (writers.clone(), next.clone());
        tokio::spawn(async move {
            let _ = serve(socket, &writers, &next).await;
        });
    }
}

/// Reads requests on one connection: a stream request hands the socket to a
/// writer; a broadcast is answered, then sent to every writer.
async fn serve(
    mut socket: TcpStream,
    writers: &[mpsc::Sender<Work>],
    next: &AtomicU64,
) -> Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + length {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[end..end + length].to_vec();
        buf.drain(..end + length);
        if head.starts_with("get /v2/sse") {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\ne\r\nretry: 2000\n\n\r\n")
                .await?;
            let socket = socket.into_std()?;
            socket.set_nonblocking(false)?;
            let n = next.fetch_add(1, Ordering::Relaxed) as usize;
            let _ = writers[n % writers.len()].send(Work::Stream(socket));
            return Ok(());
        }
        if head.starts_with("post ") {
            let id = next.fetch_add(1, Ordering::Relaxed);
            let answer = format!("{{\"id\":\"{id}\",\"delivered\":0}}");
            let reply = format!(
                "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            socket.write_all(reply.as_bytes()).await?;
            let event = format!("id: {id}\ndata: {}\n\n", String::from_utf8_lossy(&body));
            let mut chunk = format!("{:x}\r\n", event.len()).into_bytes();
            chunk.extend_from_slice(event.as_bytes());
            chunk.extend_from_slice(b"\r\n");
            let chunk = Arc::new(chunk);
            for w in writers {
                let _ = w.send(Work::Event(chunk.clone()));
            }
            continue;
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await?;
    }
}
