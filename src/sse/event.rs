//! One event, framed once in the `text/event-stream` wire format.
//!
//! Framing is done by hand rather than with `axum::response::sse::Event` because an
//! event here is delivered to many connections: it is encoded a single time into
//! [`Bytes`] and every receiver shares the same buffer.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};

/// Event ids increase over the life of the process *and* across restarts: the
/// counter starts at the boot time in microseconds, so a client holding an id from
/// before a restart is older than every id the new process hands out.
pub type EventId = u64;

/// A framed event: its id plus the exact bytes written to every connection.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub bytes: Bytes,
}

impl Event {
    /// Frames `data` as `id`/`event`/`data:` lines. `name` is `None` for the
    /// default `message` event. Newline variants in `data` are normalised first.
    pub fn new(id: EventId, name: Option<&str>, data: &str) -> Event {
        let data = normalize_newlines(data);
        let mut buf = BytesMut::with_capacity(data.len() + 32);
        buf.put_slice(b"id: ");
        buf.put_slice(id.to_string().as_bytes());
        buf.put_u8(b'\n');
        if let Some(name) = name {
            buf.put_slice(b"event: ");
            buf.put_slice(name.as_bytes());
            buf.put_u8(b'\n');
        }
        for line in data.split('\n') {
            buf.put_slice(b"data: ");
            buf.put_slice(line.as_bytes());
            buf.put_u8(b'\n');
        }
        buf.put_u8(b'\n');
        Event {
            id,
            bytes: buf.freeze(),
        }
    }

    /// The same event under a new id: only the `id:` line is framed again.
    pub fn with_id(&self, id: EventId) -> Event {
        let body_start = self
            .bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let mut buf = BytesMut::with_capacity(self.bytes.len() + 8);
        buf.put_slice(b"id: ");
        buf.put_slice(id.to_string().as_bytes());
        buf.put_u8(b'\n');
        buf.put_slice(&self.bytes[body_start..]);
        Event {
            id,
            bytes: buf.freeze(),
        }
    }
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

/// Hands out increasing event ids, starting from the boot time in microseconds.
#[derive(Debug)]
pub struct IdGenerator(AtomicU64);

impl Default for IdGenerator {
    fn default() -> IdGenerator {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        IdGenerator(AtomicU64::new(micros))
    }
}

impl IdGenerator {
    pub fn next(&self) -> EventId {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_multi_line_data_and_name() {
        let e = Event::new(7, Some("snapshot"), "a\r\nb\rc\nd");
        assert_eq!(
            &e.bytes[..],
            b"id: 7\nevent: snapshot\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn frames_default_event_without_name() {
        let e = Event::new(1, None, "hi!");
        assert_eq!(&e.bytes[..], b"id: 1\ndata: hi!\n\n");
    }

    #[test]
    fn with_id_replaces_only_the_id_line() {
        let e = Event::new(7, Some("x"), "a").with_id(12345);
        assert_eq!(&e.bytes[..], b"id: 12345\nevent: x\ndata: a\n\n");
        assert_eq!(e.id, 12345);
    }

    #[test]
    fn ids_increase() {
        let ids = IdGenerator::default();
        let a = ids.next();
        assert!(ids.next() > a);
    }
}
