//! What must hold for [`frame`](super::frame) on any data: it makes one valid
//! event, and a browser reads back exactly what was framed.
//!
//! A message's text comes from clients and topics, and a stray line end in it
//! would cut the event short or start a forged one on every stream it reaches. So
//! each frame is read back by a reference reader written from the WHATWG
//! event-stream rules, independent of the framing code. The `frame` fuzz target
//! runs [`frame`]; /v4's facts check their events with [`framed`]; the tests below
//! try it on text full of line ends.

use super::EventName;
use crate::sse::IdScheme;
use crate::sse::ids::properties::EPOCH;

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
pub(crate) fn framed(id: &str, name: EventName, data: &str) {
    let bytes = super::frame(id, name, data);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::strategies::{config, text};

    #[test]
    fn the_reference_reader_ends_lines_at_crlf_cr_and_lf() {
        assert_eq!(
            read_events("id: 1\r\ndata: a\rdata: b\n\n:c\n\n"),
            vec![ReadEvent {
                id: "1".into(),
                name: EventName::Message.as_str().into(),
                data: "a\nb".into()
            }]
        );
        assert_eq!(newlines_to_lf("a\r\r\nb\n\rc"), "a\n\nb\n\nc");
    }

    proptest! {
        #![proptest_config(config())]

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
    }
}
