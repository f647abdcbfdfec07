//! The `text/event-stream` wire format: every byte a stream sends is made here
//! (events, including `reset` and `snapshot`, the `retry:` hint and the keep-alive
//! comment). One event is framed once.
//!
//! Framing is done by hand rather than with `axum::response::sse::Event` because an
//! event here is delivered to many connections: it is encoded a single time into
//! [`Bytes`] and every receiver shares the same buffer.

use bytes::{BufMut, Bytes, BytesMut};

/// Where an event sits in its hub's order. With Kafka, `partition` and `offset` are
/// the record's; otherwise `partition` is 0 and `offset` is the hub's sequence
/// number. Resume compares these, never the id text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: usize,
    pub offset: i64,
}

/// A framed event: its place in the hub's order plus the exact bytes written to
/// every connection.
#[derive(Debug, Clone)]
pub struct Event {
    /// The hub's arrival order, used to merge a user's own events with broadcasts.
    pub seq: u64,
    pub position: Position,
    pub bytes: Bytes,
}

impl Event {
    /// The wire size plus bookkeeping, as counted against `--history-bytes`.
    pub fn cost(&self) -> usize {
        self.bytes.len() + std::mem::size_of::<Event>() + 32
    }
}

/// The comment sent on an idle stream, so proxies and clients see it alive.
pub const KEEP_ALIVE: Bytes = Bytes::from_static(b": keep-alive-text\n\n");

/// The `retry:` hint: how long the client waits before reconnecting.
pub fn retry(after: std::time::Duration) -> Bytes {
    Bytes::from(format!("retry: {}\n\n", after.as_millis()))
}

/// Every event name a stream carries: the wire vocabulary, defined here only
/// (`docs/openapi.json` documents each; the dashboard's `wire.ts` reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    /// /v1–/v3's events: the default name, so no `event:` line is sent.
    Message,
    /// The client's `Last-Event-ID` cannot be resumed exactly: `{"reason", "lastEventId"}`.
    Reset,
    /// /v4: the user's reports when the stream opens, a JSON array.
    Snapshot,
    /// /v4: the snapshot left out the oldest reports: `{"total", "sent"}`.
    SnapshotTruncated,
    /// /v4: a report was created.
    NewReport,
    /// /v4: a report's status changed.
    ReportStatusUpdate,
    /// /v4: a requested change was refused.
    ReportStatusRejected,
    /// /v2–/v4: how many streams the user has open, on how many instances:
    /// `{"connections", "instances"}`. Sent without an id (see [`unnumbered`]).
    Presence,
}

impl EventName {
    pub const ALL: [EventName; 8] = [
        EventName::Message,
        EventName::Reset,
        EventName::Snapshot,
        EventName::SnapshotTruncated,
        EventName::NewReport,
        EventName::ReportStatusUpdate,
        EventName::ReportStatusRejected,
        EventName::Presence,
    ];

    /// The `event:` field's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventName::Message => "message",
            EventName::Reset => "reset",
            EventName::Snapshot => "snapshot",
            EventName::SnapshotTruncated => "snapshot_truncated",
            EventName::NewReport => "new_report",
            EventName::ReportStatusUpdate => "report_status_update",
            EventName::ReportStatusRejected => "report_status_rejected",
            EventName::Presence => "presence",
        }
    }
}

/// Frames `data` as `id`/`event`/`data:` lines (no `event:` line for
/// [`EventName::Message`], the default). Newline variants in `data` are
/// normalised first.
pub fn frame(id: &str, name: EventName, data: &str) -> Bytes {
    write(Some(id), name, data)
}

/// Frames an event that is a state, not history: no `id:` line, so the client's
/// last event id stays that of the last numbered event (WHATWG HTML: only an `id`
/// field sets the last event ID buffer) and a reconnect resumes as before.
pub fn unnumbered(name: EventName, data: &str) -> Bytes {
    write(None, name, data)
}

fn write(id: Option<&str>, name: EventName, data: &str) -> Bytes {
    let data = normalize_newlines(data);
    let mut buf = BytesMut::with_capacity(data.len() + id.map_or(0, str::len) + 32);
    if let Some(id) = id {
        buf.put_slice(b"id: ");
        buf.put_slice(id.as_bytes());
        buf.put_u8(b'\n');
    }
    if name != EventName::Message {
        buf.put_slice(b"event: ");
        buf.put_slice(name.as_str().as_bytes());
        buf.put_u8(b'\n');
    }
    for line in data.split('\n') {
        buf.put_slice(b"data: ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A block with only an id: it sets the client's last event id and, having no
/// data, fires no event (WHATWG HTML, "dispatch the event", steps 1 and 2).
pub fn id_only(id: &str) -> Bytes {
    Bytes::from(format!("id: {id}\n\n"))
}

/// SSE treats `\r\n`, `\r` and `\n` all as line ends; a stray `\r` inside a `data:`
/// line would split it on the client. Normalising to `\n` keeps the message intact.
pub fn normalize_newlines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_multi_line_data_and_name() {
        let bytes = frame("7", EventName::Snapshot, "a\r\nb\rc\nd");
        assert_eq!(
            &bytes[..],
            b"id: 7\nevent: snapshot\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn frames_an_unnumbered_event_without_id() {
        assert_eq!(
            &unnumbered(EventName::Presence, r#"{"connections":2}"#)[..],
            b"event: presence\ndata: {\"connections\":2}\n\n"
        );
    }

    #[test]
    fn frames_default_event_without_name() {
        assert_eq!(
            &frame("1", EventName::Message, "hi!")[..],
            b"id: 1\ndata: hi!\n\n"
        );
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod properties;
