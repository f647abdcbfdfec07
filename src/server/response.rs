//! Writes an HTTP/1.1 response straight to a socket: the stream path's half of
//! the server (hyper serves everything else).
//!
//! Written here rather than left to hyper because of memory: an open stream keeps no
//! buffer between events. The events that are ready are framed (each as one chunk)
//! in a buffer that lives only until the socket has taken it; while the stream is
//! idle, its task holds the socket, the response body and a few words. The socket
//! is watched for the client closing it at the same time, as hyper does. Generic
//! over the socket, so the tests below check the bytes from memory.

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
pub async fn write_response<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
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
async fn write_whole<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
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
async fn write_chunked<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::response::IntoResponse;
    use futures_util::StreamExt;

    use super::*;
    use crate::server::scripted::Scripted;

    #[tokio::test]
    async fn a_stream_is_written_in_chunks_and_keeps_what_the_client_sent_meanwhile() {
        // The client sends its next request before the stream's first event.
        let (mut io, mut client) = Scripted::new(&[b"GET /next"], false);
        let (events, source) = tokio::sync::mpsc::channel(4);
        let body = Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(source).map(Ok::<_, Infallible>),
        );
        let writer =
            tokio::spawn(async move { write_response(&mut io, body.into_response(), false).await });
        let head = client.until("\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\ndate: "), "{head}");
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        for event in ["data: a\n\n", "", "data: bc\n\n"] {
            events
                .send(Bytes::from_static(event.as_bytes()))
                .await
                .expect("send");
        }
        drop(events);
        let out = client.until("0\r\n\r\n").await;
        // An empty frame is no chunk (it would end the body).
        assert_eq!(
            &out[head.len()..],
            "9\r\ndata: a\n\n\r\na\r\ndata: bc\n\n\r\n0\r\n\r\n"
        );
        let ending = writer.await.expect("writer").expect("written");
        let Ending::KeepAlive(read_ahead) = ending else {
            panic!("closed");
        };
        assert_eq!(&read_ahead[..], b"GET /next");
    }

    #[tokio::test]
    async fn a_whole_body_goes_out_with_its_length() {
        let (mut io, mut client) = Scripted::new(&[], false);
        let response = (StatusCode::BAD_REQUEST, "{\"error\": \"no\"}").into_response();
        let ending = write_response(&mut io, response, true)
            .await
            .expect("written");
        assert!(matches!(ending, Ending::Close));
        let out = client.until("}").await;
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("content-length: 15\r\n"), "{out}");
        assert!(out.contains("connection: close\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n{\"error\": \"no\"}"), "{out}");
    }

    /// A stream response whose body never ends: only the client can end it.
    fn endless_stream() -> Response {
        let never_ends = futures_util::stream::pending::<Result<Bytes, Infallible>>();
        Body::from_stream(never_ends).into_response()
    }

    #[tokio::test]
    async fn a_client_that_closes_ends_its_stream() {
        let (mut io, client) = Scripted::new(&[], false);
        drop(client);
        let ending = write_response(&mut io, endless_stream(), false)
            .await
            .expect("ended");
        assert!(matches!(ending, Ending::Close));
    }

    #[tokio::test]
    async fn a_client_that_sends_too_much_while_streaming_is_closed() {
        let flood = vec![b'x'; READ_AHEAD_LIMIT + 1];
        let (mut io, _client) = Scripted::new(&[&flood], false);
        let ending = write_response(&mut io, endless_stream(), false)
            .await
            .expect("ended");
        assert!(matches!(ending, Ending::Close));
    }
}
