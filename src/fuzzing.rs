//! Property checks over the server's parsers, for fuzzing (not an API).
//!
//! Each `pub fn` takes arbitrary bytes, runs the real code on them and asserts what
//! must hold for every input; a failed assertion or any panic is a bug. The
//! cargo-fuzz targets in `fuzz/` call these (with the `fuzzing` feature), and the
//! unit tests below drive the same checks with generated near-valid inputs and
//! replay the committed seeds in `fuzz/seeds/`: that is the short run `cargo test`
//! does.
//!
//! * [`head`]: the first request head of a connection and the stream-path dispatch
//!   (`server::parse_head`) agree with httparse's own verdict.
//! * [`event_id`]: `IdScheme::parse` only accepts what it can stand for, and
//!   `format` → `parse` round trips.
//! * [`frame`]: `sse::frame` always makes one valid SSE event whose data, read
//!   back by a reference parser, is the input with its line ends normalised.
//! * [`record`]: the Kafka record parsers (/v3 `username:message`, /v4 commands
//!   and facts) never panic, and what they accept round trips.

use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Uri, Version};
use bytes::Bytes;

use crate::server::ConnectionHandle;
use crate::server::{self, Head};
use crate::sse::{EventName, IdScheme};
use crate::v4::facts::Fact;
use crate::v4::store::StatusChange;

/// A fixed epoch for in-process ids (a real one is random base36).
pub const EPOCH: &str = "k3x9z";

// ---------------------------------------------------------------------------
// Request heads

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
    let verdict = server::parse_head(data, &handle, &crate::STREAM_PATHS);
    let mut headers = [httparse::EMPTY_HEADER; server::MAX_HEADERS];
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
                    server::parse_head(&data[..cut], &handle, &crate::STREAM_PATHS).is_none(),
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

// ---------------------------------------------------------------------------
// Event ids

/// Event ids. The first byte picks the scheme (bit 4: in-process, else Kafka), the
/// partition count (low 4 bits, plus one) and the mode (bit 5): the rest is a
/// cursor (8 bytes a partition) formatted and parsed back, or a raw
/// `Last-Event-ID` to parse.
pub fn event_id(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let partitions = usize::from(mode & 0x0f) + 1;
    let scheme = if mode & 0x10 != 0 {
        IdScheme::Local {
            epoch: EPOCH.to_owned(),
        }
    } else {
        IdScheme::Kafka
    };
    if mode & 0x20 != 0 {
        let cursor: Vec<i64> = rest
            .chunks(8)
            .take(partitions)
            .map(|chunk| {
                let mut bytes = [0; 8];
                bytes[..chunk.len()].copy_from_slice(chunk);
                i64::from_le_bytes(bytes) & i64::MAX
            })
            .collect();
        id_round_trip(&scheme, &cursor);
    } else {
        id_parse(&scheme, &String::from_utf8_lossy(rest), partitions);
    }
}

/// `parse` accepts exactly the ids that stand for a cursor of `partitions`
/// non-negative offsets, and `format` of what it returns reads back the same.
pub fn id_parse(scheme: &IdScheme, raw: &str, partitions: usize) {
    let parsed = scheme.parse(raw, partitions);
    let trimmed = raw.trim();
    let fits = !trimmed.is_empty() && trimmed.len() <= 256;
    // What the id stands for, read independently (in i128, so out-of-range offsets
    // are seen as such rather than failing to parse).
    let expected: Option<Vec<i64>> = match scheme {
        IdScheme::Kafka => trimmed
            .split('.')
            .map(|part| {
                part.parse::<i128>()
                    .ok()
                    .filter(|o| (0..=i128::from(i64::MAX)).contains(o))
                    .map(|o| o as i64)
            })
            .collect::<Option<Vec<i64>>>()
            .filter(|c| c.len() == partitions),
        IdScheme::Local { epoch } => trimmed
            .split_once('-')
            .filter(|(theirs, _)| theirs == epoch)
            .and_then(|(_, seq)| seq.parse::<i128>().ok())
            // The cursor is the next sequence number: it must fit too.
            .filter(|seq| (0..i128::from(i64::MAX)).contains(seq))
            .map(|seq| vec![seq as i64 + 1]),
    }
    .filter(|_| fits);
    assert_eq!(parsed, expected, "{raw:?} ({partitions} partitions)");
    if let Some(cursor) = parsed {
        assert!(cursor.iter().all(|o| *o >= 0));
        let id = scheme.format(&cursor);
        assert_eq!(scheme.parse(&id, partitions), Some(cursor), "{id:?}");
    }
}

/// A cursor the server can hold formats to an id that parses back to it: for
/// Kafka every partition's next offset (at least one partition), in process the
/// next sequence number (at least 1: the hub's first position).
pub fn id_round_trip(scheme: &IdScheme, cursor: &[i64]) {
    if cursor.is_empty() || cursor.iter().any(|o| *o < 0) {
        return;
    }
    let cursor = match scheme {
        IdScheme::Kafka => cursor.to_vec(),
        IdScheme::Local { .. } => vec![cursor[0].max(1)],
    };
    let id = scheme.format(&cursor);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
        "{id:?}"
    );
    // An id over 256 bytes (more than 13 partitions of 19-digit offsets) is not
    // read back: no topic here comes near.
    if id.len() <= 256 {
        assert_eq!(scheme.parse(&id, cursor.len()), Some(cursor), "{id:?}");
    }
}

// ---------------------------------------------------------------------------
// Framing

/// Framing. The first byte picks the event name and the id's scheme, the next 8
/// the id's cursor; the rest (as text, invalid UTF-8 replaced) is the data.
pub fn frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let name = EventName::ALL[usize::from(mode) % EventName::ALL.len()];
    let (cursor, text) = rest.split_at(rest.len().min(8));
    let mut bytes = [0; 8];
    bytes[..cursor.len()].copy_from_slice(cursor);
    let offset = i64::from_le_bytes(bytes) & i64::MAX;
    let id = if mode & 0x80 != 0 {
        IdScheme::Local {
            epoch: EPOCH.to_owned(),
        }
        .format(&[offset.max(1)])
    } else {
        let partitions = usize::from(mode >> 4 & 0x7) + 1;
        IdScheme::Kafka.format(&vec![offset; partitions])
    };
    framed(&id, name, &String::from_utf8_lossy(text));
}

/// `sse::frame(id, name, data)` is one valid event, read back as `(id, name, data)`
/// with `data`'s line ends made `\n`. `id` and `name` are the server's own (an id
/// from `IdScheme::format`, a fixed name): neither has a line end.
pub fn framed(id: &str, name: EventName, data: &str) {
    let bytes = crate::sse::frame(id, name, data);
    let text = std::str::from_utf8(&bytes).expect("a frame is UTF-8");
    assert!(!text.contains('\r'), "a bare CR in {text:?}");
    let body = text
        .strip_suffix("\n\n")
        .unwrap_or_else(|| panic!("no blank line at the end of {text:?}"));
    assert!(!body.contains("\n\n"), "a blank line inside {text:?}");
    let mut lines = body.split('\n');
    assert_eq!(lines.next(), Some(format!("id: {id}").as_str()));
    let mut lines = lines.peekable();
    if name != EventName::Message {
        assert_eq!(
            lines.next(),
            Some(format!("event: {}", name.as_str()).as_str())
        );
    }
    assert!(lines.peek().is_some(), "no data line in {text:?}");
    for line in lines {
        assert!(line.starts_with("data: "), "{line:?} in {text:?}");
    }
    let events = read_events(text);
    assert_eq!(
        events,
        vec![ReadEvent {
            id: id.to_owned(),
            name: name.as_str().to_owned(),
            data: newlines_to_lf(data),
        }],
        "{text:?}"
    );
}

/// `\r\n` and lone `\r` as `\n`, one character at a time.
fn newlines_to_lf(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            chars.next_if_eq(&'\n');
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// An event as a browser's `EventSource` sees it.
#[derive(Debug, PartialEq)]
struct ReadEvent {
    id: String,
    name: String,
    data: String,
}

/// The WHATWG event-stream interpretation, reduced to what a frame uses: lines end
/// at `\r\n`, `\r` or `\n`; a blank line dispatches; `:` starts a comment; one
/// space after the field's colon is dropped; an event with no data is not
/// dispatched; an unfinished one at the end is dropped.
fn read_events(stream: &str) -> Vec<ReadEvent> {
    let mut events = Vec::new();
    let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
    let mut rest = stream;
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if !data.is_empty() {
                if data.ends_with('\n') {
                    data.pop();
                }
                events.push(ReadEvent {
                    id: id.clone(),
                    name: if name.is_empty() {
                        EventName::Message.as_str().to_owned()
                    } else {
                        name.clone()
                    },
                    data: std::mem::take(&mut data),
                });
            }
            name.clear();
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id = value.to_owned(),
            _ => {}
        }
    }
    events
}

// ---------------------------------------------------------------------------
// Kafka records

/// Kafka records: `data` as the payload of a /v3 record, a /v4 command and a /v4
/// fact; and, split at its first NUL byte, as the username and body of a /v3 POST
/// whose record must read back as what was posted.
pub fn record(data: &[u8]) {
    v3_record(data);
    v4_command(data);
    v4_fact(data);
    if let Some(nul) = data.iter().position(|&b| b == 0)
        && let (Ok(username), Ok(text)) = (
            std::str::from_utf8(&data[..nul]),
            std::str::from_utf8(&data[nul + 1..]),
        )
    {
        v3_post(username, text);
    }
}

/// A /v3 record is read as `username:message` split at the first colon, with the
/// username trimmed and neither part blank; anything else is skipped, and why.
pub fn v3_record(payload: &[u8]) {
    use crate::v3::Malformed;
    let parsed = crate::v3::parse(payload);
    let expected = match std::str::from_utf8(payload) {
        Err(_) => Err(Malformed::NotUtf8),
        Ok(text) => match text.find(':') {
            None => Err(Malformed::NoColon),
            Some(colon) if text[..colon].trim().is_empty() => Err(Malformed::EmptyUsername),
            Some(colon) if text[colon + 1..].trim().is_empty() => Err(Malformed::EmptyMessage),
            Some(colon) => Ok((text[..colon].trim(), &text[colon + 1..])),
        },
    };
    assert_eq!(parsed, expected, "{payload:?}");
    if let Ok((username, message)) = parsed {
        assert!(!username.contains(':'));
        let again = format!("{username}:{message}");
        assert_eq!(crate::v3::parse(again.as_bytes()), Ok((username, message)));
    }
}

/// What a POST to /v3 accepts (a valid username other than `*` and without a
/// colon, a body of non-blank UTF-8) is published as `username:text`, which the
/// consumer reads back as the same username and text.
pub fn v3_post(username: &str, text: &str) {
    let Ok(username) = crate::limits::username(username) else {
        return;
    };
    // `*` addresses everyone: /v3/broadcast publishes it, /v3/message refuses it.
    if username.contains(':')
        || crate::channels::message_text(&Bytes::from(text.to_owned())).is_err()
    {
        return;
    }
    let payload = format!("{username}:{text}");
    assert_eq!(
        crate::v3::parse(payload.as_bytes()),
        Ok((username, text)),
        "{payload:?}"
    );
}

/// A /v4 command the writer accepts is written back to the same command.
pub fn v4_command(payload: &[u8]) {
    if let Ok(change) = crate::v4::writer::parse(payload) {
        let json = serde_json::to_vec(&change).expect("a command serializes");
        let again: Result<StatusChange, String> = crate::v4::writer::parse(&json);
        assert_eq!(again, Ok(change), "{}", String::from_utf8_lossy(&json));
    }
}

/// A /v4 fact the reader accepts (it reads them with `serde_json::from_slice`)
/// round trips, and the event it becomes is a valid frame whose data is JSON.
pub fn v4_fact(payload: &[u8]) {
    let Ok(fact) = serde_json::from_slice::<Fact>(payload) else {
        return;
    };
    let json = serde_json::to_vec(&fact).expect("a fact serializes");
    let again: Fact = serde_json::from_slice(&json).expect("a fact reads back");
    assert_eq!(again, fact);
    let data = fact.event.data();
    assert!(
        serde_json::from_str::<serde_json::Value>(&data).is_ok(),
        "{data}"
    );
    framed("12.0.7", fact.event.name(), &data);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    /// Every file in `fuzz/seeds/<target>/` through its check.
    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn the_seed_corpus_passes() {
        replay("head", head);
        replay("event_id", event_id);
        replay("frame", frame);
        replay("record", record);
    }

    #[test]
    fn checks_catch_what_they_are_for() {
        // The reference reader: CRLF, CR and LF all end lines.
        assert_eq!(
            read_events("id: 1\r\ndata: a\rdata: b\n\n:c\n\n"),
            vec![ReadEvent {
                id: "1".into(),
                name: EventName::Message.as_str().into(),
                data: "a\nb".into()
            }]
        );
        assert_eq!(newlines_to_lf("a\r\r\nb\n\rc"), "a\n\nb\n\nc");
        let stream =
            b"GET /v2/sse?username=a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n";
        let handle = ConnectionHandle::detached();
        assert!(matches!(
            server::parse_head(stream, &handle, &crate::STREAM_PATHS),
            Some(Head::Stream { close: true, .. })
        ));
        head(stream);
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
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

    /// `bytes` with up to three bytes replaced, inserted or removed.
    fn mutated(bytes: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        (
            bytes,
            prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..3),
        )
            .prop_map(|(mut bytes, edits)| {
                for (at, kind, byte) in edits {
                    if bytes.is_empty() {
                        bytes.push(byte);
                        continue;
                    }
                    let at = at.index(bytes.len());
                    match kind {
                        0 => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ => {
                            bytes.remove(at);
                        }
                    }
                }
                bytes
            })
    }

    fn schemes() -> impl Strategy<Value = IdScheme> {
        prop_oneof![
            Just(IdScheme::Kafka),
            Just(IdScheme::Local {
                epoch: EPOCH.to_owned()
            }),
        ]
    }

    fn raw_ids() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,20}(\\.[0-9]{1,20}){0,4}",
            "[+-]?[0-9]{0,3}(\\.[+-]?[0-9]{0,3}){0,3}",
            " ?k3x9z-[+-]?[0-9]{1,20} ?",
            "k3x9z-9223372036854775[0-9]{3}",
            "[0-9a-z.+ -]{0,24}",
            "\\PC{0,12}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "(\r\n|\r|\n|[a-z :]|é|\u{2028}|\u{feff}|\0){0,48}",
            "\\PC{0,24}",
            any::<String>(),
        ]
    }

    fn uuids() -> impl Strategy<Value = uuid::Uuid> {
        any::<u128>().prop_map(uuid::Uuid::from_u128)
    }

    fn statuses() -> impl Strategy<Value = crate::v4::report::Status> {
        prop::sample::select(crate::v4::report::Status::ALL.to_vec())
    }

    fn times() -> impl Strategy<Value = chrono::DateTime<chrono::Utc>> {
        (-62_000_000_000i64..250_000_000_000, 0u32..2_000_000_000)
            .prop_map(|(s, n)| chrono::DateTime::from_timestamp(s, n).unwrap_or_default())
    }

    fn commands() -> impl Strategy<Value = StatusChange> {
        (
            uuids(),
            uuids(),
            uuids(),
            statuses(),
            statuses(),
            any::<u64>(),
            times(),
        )
            .prop_map(
                |(command_id, user_id, report_id, from, to, expected_version, requested_at)| {
                    StatusChange {
                        command_id,
                        user_id,
                        report_id,
                        from,
                        to,
                        expected_version,
                        requested_at,
                    }
                },
            )
    }

    fn facts() -> impl Strategy<Value = Fact> {
        use crate::v4::facts::FactEvent;
        use crate::v4::report::Report;
        let event = prop_oneof![
            (uuids(), statuses())
                .prop_map(|(id, status)| FactEvent::ReportStatusUpdate { id, status }),
            (uuids(), statuses(), text()).prop_map(|(id, status, reason)| {
                FactEvent::ReportStatusRejected { id, status, reason }
            }),
            (uuids(), uuids(), statuses(), times(), times()).prop_map(
                |(user_id, report_id, report_status, created_at, updated_at)| {
                    FactEvent::NewReport(Report {
                        user_id,
                        report_id,
                        report_status,
                        created_at,
                        updated_at,
                        version: 0,
                        applied_commands: Vec::new(),
                    })
                }
            ),
        ];
        (uuids(), uuids(), event).prop_map(|(fact_id, user_id, event)| Fact {
            fact_id,
            user_id,
            event,
        })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn heads_are_dispatched_as_httparse_reads_them(bytes in mutated(heads())) {
            head(&bytes);
        }

        #[test]
        fn ids_parse_only_what_they_stand_for(
            scheme in schemes(),
            raw in raw_ids(),
            partitions in 1usize..6,
        ) {
            id_parse(&scheme, &raw, partitions);
        }

        #[test]
        fn ids_round_trip(
            scheme in schemes(),
            cursor in prop::collection::vec(0..=i64::MAX, 1..14),
        ) {
            id_round_trip(&scheme, &cursor);
        }

        #[test]
        fn frames_are_valid_events(
            cursor in prop::collection::vec(0..=i64::MAX, 1..4),
            local in any::<bool>(),
            name in prop::sample::select(EventName::ALL.to_vec()),
            data in text(),
        ) {
            let id = if local {
                IdScheme::Local { epoch: EPOCH.to_owned() }.format(&cursor[..1])
            } else {
                IdScheme::Kafka.format(&cursor)
            };
            framed(&id, name, &data);
        }

        #[test]
        fn v3_records_split_at_the_first_colon(
            payload in mutated("[ *a-z]{0,6}:[ a-z:\r\n]{0,12}".prop_map(String::into_bytes))
        ) {
            v3_record(&payload);
        }

        #[test]
        fn v3_posts_read_back(username in "[ *:a-zé\t]{0,8}", text in text()) {
            v3_post(&username, &text);
        }

        #[test]
        fn v4_commands_round_trip(command in commands(), edit in mutated(Just(Vec::new()))) {
            let json = serde_json::to_vec(&command).unwrap();
            prop_assert_eq!(crate::v4::writer::parse(&json), Ok(command));
            v4_command(&json);
            // The same record slightly broken must still not panic.
            let mut broken = json.clone();
            for (i, b) in edit.into_iter().enumerate() {
                let at = (usize::from(b) * 7 + i) % broken.len();
                broken[at] = b;
            }
            record(&broken);
        }

        #[test]
        fn v4_facts_round_trip(fact in facts(), cut in any::<prop::sample::Index>()) {
            let json = serde_json::to_vec(&fact).unwrap();
            v4_fact(&json);
            record(&json);
            record(&json[..cut.index(json.len())]);
        }

        #[test]
        fn arbitrary_bytes_pass_every_check(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            head(&bytes);
            event_id(&bytes);
            frame(&bytes);
            record(&bytes);
        }
    }
}
