//! This instance's reader of the /v3 topic: every record `username:message` (or
//! `*:message` for everyone) becomes an event on this instance's streams; copies
//! and malformed records are skipped, logged and counted, and never stop ingest.

use std::sync::Arc;

use super::{Channel, EVERYONE};
use crate::bus::Record;
use crate::events::{RecordSkipped, Skip};
use crate::feed::Feed;
use crate::lock::Locked;
use crate::sse::{Audience, EventName};

/// Starts this instance's reader of the v3 topic.
pub fn start_consumer(channel: &Arc<Channel>) {
    let reader = channel.clone();
    let feed = Feed {
        bus: &channel.bus,
        topic: &channel.topic,
        history_window: channel.history_window,
        metrics: &channel.metrics,
        shutdown: &channel.shutdown,
    };
    feed.into_hub(&channel.hub, move |record| deliver(&reader, record));
}

/// Why a record is skipped.
#[derive(Debug, PartialEq)]
enum Malformed {
    NotUtf8,
    NoColon,
    EmptyUsername,
    EmptyMessage,
}

/// Splits `username:message` at the first colon (the message may contain more).
fn parse(payload: &[u8]) -> Result<(&str, &str), Malformed> {
    let text = std::str::from_utf8(payload).map_err(|_| Malformed::NotUtf8)?;
    let (username, message) = text.split_once(':').ok_or(Malformed::NoColon)?;
    let username = username.trim();
    if username.is_empty() {
        return Err(Malformed::EmptyUsername);
    }
    if message.trim().is_empty() {
        return Err(Malformed::EmptyMessage);
    }
    Ok((username, message))
}

fn deliver(channel: &Channel, record: Record) {
    if !channel.repeats.locked().first_copy(&record) {
        return skip(channel, &record, Skipped::Copy);
    }
    let position = record.position();
    match parse(&record.payload) {
        Ok((username, message)) => {
            let to = if username == EVERYONE {
                Audience::Everyone
            } else {
                Audience::User(username)
            };
            channel.hub.apply(position, to, EventName::Message, message);
        }
        Err(why) => skip(channel, &record, Skipped::Malformed(why)),
    }
}

/// Why a record is not delivered.
enum Skipped {
    /// A copy of a record already delivered (`bus::repeats`).
    Copy,
    Malformed(Malformed),
}

/// Passes over `record`: the hub's position still moves past it, and the skip is
/// logged and counted.
fn skip(channel: &Channel, record: &Record, why: Skipped) {
    channel.hub.skip(record.position());
    let malformed;
    RecordSkipped {
        topic: &channel.topic,
        partition: record.partition,
        offset: record.offset,
        why: match why {
            Skipped::Copy => Skip::Copy,
            Skipped::Malformed(why) => {
                malformed = format!("{why:?}; expected `username:message`");
                Skip::Malformed(&malformed)
            }
        },
    }
    .emit(&channel.metrics);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_colon_only() {
        assert_eq!(parse(b"demo:a:b:c"), Ok(("demo", "a:b:c")));
    }

    #[test]
    fn rejects_malformed_records() {
        assert_eq!(parse(b"no colon"), Err(Malformed::NoColon));
        assert_eq!(parse(b":message"), Err(Malformed::EmptyUsername));
        assert_eq!(parse(b"demo:"), Err(Malformed::EmptyMessage));
        assert_eq!(parse(b"demo:\xff\xfe"), Err(Malformed::NotUtf8));
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod properties;
