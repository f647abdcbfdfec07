//! Writes an HTTP/1.1 response straight to a socket: the stream path's half of
//! [`crate::server`].
//!
//! Written here rather than left to hyper because of memory: an open stream keeps no
//! buffer between events. The events that are ready are framed (each as one chunk)
//! in a buffer that lives only until the socket has taken it; while the stream is
//! idle, its task holds the socket, the response body and a few words. The socket
//! is watched for the client closing it at the same time, as hyper does.

use std::io;
use std::io::Write as _;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::ClosableStream;

/// A write gathers ready events up to about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// Bytes a client may send while its stream is open (the next pipelined request);
/// more closes the connection.
const READ_AHEAD_LIMIT: usize = 8 * 1024;

/// How a response ended.
pub enum Ending {
    /// Complete, and the connection can serve another request, starting with these
    /// bytes the client already sent.
    KeepAlive(Bytes),
    /// The connection must be closed: the client closed it or asked to, or it failed.
    Close,
}

impl Ending {
    /// After a complete response: kept alive unless the client asked to close.
    fn after(close: bool, read_ahead: Bytes) -> Ending {
        if close {
            Ending::Close
        } else {
            Ending::KeepAlive(read_ahead)
        }
    }
}

/// Writes `response` to `io`: a body of known length in one write, any other body
/// (an event stream) chunk by chunk as it is produced. `close` says the client sent
/// `Connection: close`.
pub async fn write_response(
    io: &mut ClosableStream,
    response: Response,
    close: bool,
) -> io::Result<Ending> {
    // Only the head is kept of the response's parts: a stream's task holds what is
    // alive across its awaits for as long as the stream lasts.
    let (out, body, length) = {
        let (parts, body) = response.into_parts();
        let length = body.size_hint().exact();
        (
            head(parts.status, &parts.headers, length, close),
            body,
            length,
        )
    };
    if length.is_some() {
        // Boxed for the same reason: collecting is not part of a stream's life.
        return Box::pin(write_whole(io, out, body, close)).await;
    }
    write_chunked(io, out, body, close).await
}

/// Writes the head in `out` and a body of known length in one write.
async fn write_whole(
    io: &mut ClosableStream,
    mut out: Vec<u8>,
    body: Body,
    close: bool,
) -> io::Result<Ending> {
    let bytes = body.collect().await.map_err(io::Error::other)?.to_bytes();
    out.extend_from_slice(&bytes);
    io.write_all(&out).await?;
    Ok(Ending::after(close, Bytes::new()))
}

/// The status line and headers. `length` is the body's length when known, else the
/// body is sent chunked.
fn head(status: StatusCode, headers: &HeaderMap, length: Option<u64>, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in headers {
        // Framing is decided here, not by the handler.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        let _ = write!(
            out,
            "date: {}\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        );
    }
    let _ = match length {
        Some(length) => write!(out, "content-length: {length}\r\n"),
        None => write!(out, "transfer-encoding: chunked\r\n"),
    };
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Streams `body` as chunks after `out` (the head), until the body ends, the client
/// closes, or a write fails (which includes the connection's handle being closed).
async fn write_chunked(
    io: &mut ClosableStream,
    mut out: Vec<u8>,
    mut body: Body,
    close: bool,
) -> io::Result<Ending> {
    let mut read_ahead = BytesMut::new();
    let mut probe = [0u8; 32];
    loop {
        // The head goes out with the first events (the retry hint and the prelude).
        if out.is_empty() {
            tokio::select! {
                frame = body.frame() => {
                    match frame {
                        Some(frame) => push(&mut out, frame)?,
                        None => break,
                    }
                }
                read = io.read(&mut probe) => match read? {
                    0 => return Ok(Ending::Close),
                    n if read_ahead.len() + n > READ_AHEAD_LIMIT => return Ok(Ending::Close),
                    n => {
                        read_ahead.extend_from_slice(&probe[..n]);
                        continue;
                    }
                },
            }
        }
        // Then everything else that is ready, in the same write.
        let mut ended = false;
        while out.len() < BATCH_BYTES {
            match body.frame().now_or_never() {
                Some(Some(frame)) => push(&mut out, frame)?,
                Some(None) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        io.write_all(&out).await?;
        out = Vec::new();
        if ended {
            break;
        }
    }
    io.write_all(b"0\r\n\r\n").await?;
    Ok(Ending::after(close, read_ahead.freeze()))
}

/// Appends one body frame as a chunk.
fn push(out: &mut Vec<u8>, frame: Result<http_body::Frame<Bytes>, axum::Error>) -> io::Result<()> {
    let frame = frame.map_err(io::Error::other)?;
    if let Ok(data) = frame.into_data()
        && !data.is_empty()
    {
        out.reserve(data.len() + 12);
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}
