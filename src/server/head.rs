//! The first request head of a connection, read and judged without hyper.
//!
//! A plain `GET` of a stream path (one of [`super::ServerSettings::stream_paths`];
//! no body, no upgrade, nothing pipelined after it) becomes
//! a [`Request`] for the router and is answered on the stream path
//! ([`super::response`]); anything else is left to hyper, which reads it again from
//! the first byte. Generic over [`AsyncRead`], so the tests below feed it heads in
//! pieces from memory.

use std::io;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, Version};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::connection::ConnectionHandle;

/// A head longer than this is left to hyper (which allows far more).
const HEAD_LIMIT: usize = 8 * 1024;
/// Headers parsed on the stream path; a request with more goes to hyper.
const MAX_HEADERS: usize = 48;

/// What the first request of a connection is.
pub(super) enum Head {
    /// A plain `GET` of an event stream, with nothing after its head.
    Stream { request: Box<Request>, close: bool },
    /// Anything else: hyper reads it again from the start.
    Other,
}

/// Reads until a whole request head is in `read` (or it is clearly not a stream
/// request). `None` when the client closed first.
pub(super) async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    handle: &ConnectionHandle,
    stream_paths: &[&str],
    read: &mut BytesMut,
) -> io::Result<Option<Head>> {
    loop {
        read.reserve(1024);
        if io.read_buf(read).await? == 0 {
            return Ok(if read.is_empty() {
                None
            } else {
                Some(Head::Other)
            });
        }
        match parse_head(read, handle, stream_paths) {
            Some(head) => return Ok(Some(head)),
            None if read.len() >= HEAD_LIMIT => return Ok(Some(Head::Other)),
            None => {}
        }
    }
}

/// `None` while the head is incomplete. `handle` is the connection's (a pure
/// function of its arguments: `properties::head` checks it).
fn parse_head(read: &[u8], handle: &ConnectionHandle, stream_paths: &[&str]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let length = match head.parse(read) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Head::Other),
    };
    let path = head.path.unwrap_or_default();
    let is_stream = head.method == Some("GET")
        && head.version == Some(1)
        && stream_paths.contains(&path.split('?').next().unwrap_or_default())
        // Pipelined requests, bodies and upgrades are hyper's business.
        && length == read.len()
        && !head.headers.iter().any(|h| {
            let name = h.name;
            (name.eq_ignore_ascii_case("content-length") && h.value != b"0")
                || name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("upgrade")
                || name.eq_ignore_ascii_case("expect")
        });
    if !is_stream {
        return Some(Head::Other);
    }
    let close = head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && h.value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    let mut request = Request::builder()
        .method(Method::GET)
        .version(Version::HTTP_11)
        .uri(path)
        .extension(ConnectInfo(handle.clone()));
    for header in head.headers.iter() {
        request = request.header(header.name, header.value);
    }
    // A name or value `http` refuses: let hyper answer it as it always did.
    Some(match request.body(Body::empty()) {
        Ok(request) => Head::Stream {
            request: Box::new(request),
            close,
        },
        Err(_) => Head::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::scripted::Scripted;

    /// The head `read_head` makes of `chunks`, each one read, and how many bytes it
    /// read.
    async fn read(chunks: &[&[u8]]) -> (Option<Head>, usize) {
        let (mut io, _client) = Scripted::new(chunks, true);
        let mut read = BytesMut::new();
        let head = read_head(
            &mut io,
            &ConnectionHandle::detached(),
            &["/v2/sse"],
            &mut read,
        )
        .await
        .expect("read");
        (head, read.len())
    }

    #[tokio::test]
    async fn a_stream_head_in_pieces_is_read_whole() {
        let (head, _) = read(&[
            b"GET /v2/s",
            b"se?username=a HTTP/1.1\r\nHost: x\r\nConnection: ",
            b"close\r\n",
            b"\r\n",
        ])
        .await;
        let Some(Head::Stream { request, close }) = head else {
            panic!("not a stream head");
        };
        assert!(close);
        assert_eq!(request.uri(), "/v2/sse?username=a");
        assert_eq!(request.headers()["host"], "x");
        assert!(
            request
                .extensions()
                .get::<ConnectInfo<ConnectionHandle>>()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_post_in_pieces_is_left_to_hyper_with_every_byte_kept() {
        let pieces: [&[u8]; 3] = [
            b"POST /v2/m",
            b"essage?username=a HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            b"hi",
        ];
        let (head, kept) = read(&pieces).await;
        assert!(matches!(head, Some(Head::Other)));
        // Judged as soon as the head was whole: the body is still unread.
        assert_eq!(kept, pieces[0].len() + pieces[1].len());
    }

    #[tokio::test]
    async fn a_client_that_closes_before_a_whole_head_is_not_a_request() {
        assert!(read(&[]).await.0.is_none());
        assert!(matches!(
            read(&[b"GET /v2/sse HT"]).await.0,
            Some(Head::Other)
        ));
    }

    #[tokio::test]
    async fn a_head_past_the_limit_is_left_to_hyper() {
        // Nine headers of 1 KB and no blank line: a head that never ends.
        let mut long = b"GET /v2/sse HTTP/1.1\r\n".to_vec();
        while long.len() < HEAD_LIMIT {
            long.extend_from_slice(b"X-Long: ");
            long.extend_from_slice(&[b'a'; 1000]);
            long.extend_from_slice(b"\r\n");
        }
        let (head, kept) = read(&[&long[..4000], &long[4000..]]).await;
        assert!(matches!(head, Some(Head::Other)));
        // Judged once the limit is read: the rest is hyper's to read.
        assert!((HEAD_LIMIT..=long.len()).contains(&kept), "{kept}");
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod properties;
