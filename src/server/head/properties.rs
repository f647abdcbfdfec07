//! What must hold for [`parse_head`] on any bytes, checked against httparse's own
//! reading of them.
//!
//! The stream path answers a request without hyper, so this judgement is the one
//! place a malformed, pipelined or body-carrying request could slip past hyper's
//! checks: it must take exactly the plain stream `GET`s and leave everything else
//! to hyper, whatever the bytes and however TCP splits them. The `head` fuzz target
//! runs [`head`]; the tests below try it on near-valid heads.

use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Uri, Version};

use super::{Head, MAX_HEADERS, parse_head};
use crate::server::ConnectionHandle;

/// Request heads: `data` is what a connection sent first.
///
/// `parse_head` must say "undecided" exactly when httparse says the head is
/// partial, and "stream" exactly when httparse reads a complete `GET` of one of the
/// stream paths, HTTP/1.1, with nothing after the head, no body, upgrade or expect
/// headers, and `http` accepts its target and headers; the request it builds then
/// carries that target, those headers, the connection's handle, and the
/// `Connection: close` verdict. A stream head is undecided on every strict prefix,
/// so however TCP splits it, `read_head` waits for all of it.
pub fn head(data: &[u8]) {
    let handle = ConnectionHandle::detached();
    let verdict = parse_head(data, &handle, &crate::STREAM_PATHS);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let length = match parsed.parse(data) {
        Ok(httparse::Status::Partial) => {
            assert!(verdict.is_none(), "httparse: partial, dispatched anyway");
            return;
        }
        Err(e) => {
            assert!(
                matches!(verdict, Some(Head::Other)),
                "httparse: {e}, not left to hyper"
            );
            return;
        }
        Ok(httparse::Status::Complete(length)) => length,
    };
    let path = parsed.path.unwrap_or_default();
    let (route, query) = match path.split_once('?') {
        Some((route, query)) => (route, Some(query)),
        None => (path, None),
    };
    let no_body = parsed.headers.iter().all(|h| {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => h.value == b"0",
            "transfer-encoding" | "upgrade" | "expect" => false,
            _ => true,
        }
    });
    let for_the_stream_path = parsed.method == Some("GET")
        && parsed.version == Some(1)
        && crate::STREAM_PATHS.contains(&route)
        && length == data.len()
        && no_body;
    let http_accepts = path.parse::<Uri>().is_ok()
        && parsed.headers.iter().all(|h| {
            HeaderName::from_bytes(h.name.as_bytes()).is_ok()
                && HeaderValue::from_bytes(h.value).is_ok()
        });
    let close = parsed.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && String::from_utf8_lossy(h.value)
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
    });
    match verdict {
        None => panic!("httparse: complete, left undecided"),
        Some(Head::Other) => assert!(
            !(for_the_stream_path && http_accepts),
            "a plain GET of {route} left to hyper"
        ),
        Some(Head::Stream {
            request,
            close: closes,
        }) => {
            assert!(for_the_stream_path, "not a stream request: {path:?}");
            assert!(http_accepts);
            assert_eq!(request.method(), Method::GET);
            assert_eq!(request.version(), Version::HTTP_11);
            // The router routes on this: it must be the stream path httparse read.
            assert_eq!(request.uri().path(), route);
            // (`http` drops a fragment, as it does for hyper.)
            let query = query.map(|q| q.split_once('#').map_or(q, |(q, _)| q));
            assert_eq!(request.uri().query(), query);
            assert_eq!(request.headers().len(), parsed.headers.len());
            for h in parsed.headers.iter() {
                assert!(
                    request
                        .headers()
                        .get_all(h.name)
                        .iter()
                        .any(|v| v.as_bytes() == h.value),
                    "header {} lost",
                    h.name
                );
            }
            assert_eq!(closes, close, "Connection: close misread");
            assert!(
                request
                    .extensions()
                    .get::<ConnectInfo<ConnectionHandle>>()
                    .is_some(),
                "the connection's handle is missing"
            );
            for cut in prefixes(data.len()) {
                assert!(
                    parse_head(&data[..cut], &handle, &crate::STREAM_PATHS).is_none(),
                    "decided after {cut} of {} bytes",
                    data.len()
                );
            }
        }
    }
}

/// Strict prefix lengths to try: all of them for a short head, else a spread.
fn prefixes(len: usize) -> impl Iterator<Item = usize> {
    let step = (len / 64).max(1);
    (0..len).step_by(step).chain(len.saturating_sub(8)..len)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::{config, mutated};

    #[test]
    fn a_stream_head_that_asks_to_close_passes() {
        let stream =
            b"GET /v2/sse?username=a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n";
        let handle = ConnectionHandle::detached();
        assert!(matches!(
            parse_head(stream, &handle, &crate::STREAM_PATHS),
            Some(Head::Stream { close: true, .. })
        ));
        head(stream);
    }

    /// A request head built from plausible parts, often a stream request.
    fn heads() -> impl Strategy<Value = Vec<u8>> {
        let method = prop_oneof![
            4 => Just("GET"),
            1 => Just("POST"),
            1 => Just("HEAD"),
            1 => Just("get"),
        ];
        let path = prop_oneof![
            4 => prop::sample::select(crate::STREAM_PATHS.to_vec()).prop_map(str::to_owned),
            2 => (prop::sample::select(crate::STREAM_PATHS.to_vec()), "[a-z=&%?/#]{0,12}")
                .prop_map(|(p, q)| format!("{p}?{q}")),
            1 => "/[a-z0-9/]{0,10}",
            1 => Just("*".to_owned()),
            1 => Just("http://host/v1/sse".to_owned()),
        ];
        let version =
            prop_oneof![4 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0"), 1 => Just("HTTP/2.0")];
        let header = prop_oneof![
            Just("Host: localhost".to_owned()),
            Just("Accept: text/event-stream".to_owned()),
            Just("Last-Event-ID: 12.0.7".to_owned()),
            Just("Connection: close".to_owned()),
            Just("connection: Keep-Alive, CLOSE ".to_owned()),
            Just("Content-Length: 0".to_owned()),
            Just("Content-Length: 5".to_owned()),
            Just("Transfer-Encoding: chunked".to_owned()),
            Just("Upgrade: websocket".to_owned()),
            Just("Expect: 100-continue".to_owned()),
            "[A-Za-z-]{1,12}: [ -~]{0,16}",
            "[ -~]{0,20}",
        ];
        let line_end = prop_oneof![4 => Just("\r\n"), 1 => Just("\n")];
        let after =
            prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..16)];
        (
            method,
            path,
            version,
            prop::collection::vec(header, 0..6),
            line_end,
            after,
        )
            .prop_map(|(method, path, version, headers, end, after)| {
                let mut head = format!("{method} {path} {version}{end}");
                for h in headers {
                    head.push_str(&h);
                    head.push_str(end);
                }
                head.push_str(end);
                let mut bytes = head.into_bytes();
                bytes.extend(after);
                bytes
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn heads_are_dispatched_as_httparse_reads_them(bytes in mutated(heads())) {
            head(&bytes);
        }
    }
}
