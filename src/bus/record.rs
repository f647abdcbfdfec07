//! What a reader is handed: one record of a topic, and where it sits there.

/// One record read from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub payload: Vec<u8>,
    pub partition: i32,
    pub offset: i64,
    /// When the record was written (ms since the epoch), when the bus knows.
    pub timestamp_ms: Option<i64>,
    /// The [`ID_HEADER`] the publisher gave it, if any.
    pub id: Option<String>,
}

/// The Kafka header naming a record uniquely. This server gives every record it
/// publishes one, so that a reader can tell a record appended twice (a producer
/// retry the broker did not recognise, see `bus::repeats`) from two records that
/// say the same thing.
pub const ID_HEADER: &str = "message-id";

impl Record {
    /// How long ago the record was written, by this machine's clock; `None` when
    /// the bus gave it no time.
    pub fn age(&self) -> Option<std::time::Duration> {
        self.timestamp_ms.map(age_of)
    }

    /// Where the record sits, as the SSE layer orders events.
    pub fn position(&self) -> crate::sse::Position {
        crate::sse::Position {
            partition: usize::try_from(self.partition).unwrap_or(0),
            offset: self.offset,
        }
    }
}

/// Now, in ms since the epoch: the unit of record timestamps.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long ago `timestamp_ms` was; zero for a time ahead of this clock.
pub fn age_of(timestamp_ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(now_ms() - timestamp_ms).unwrap_or(0))
}
