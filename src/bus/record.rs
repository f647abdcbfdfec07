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
    /// Where the record sits, as the SSE layer orders events.
    pub fn position(&self) -> crate::sse::Position {
        crate::sse::Position {
            partition: usize::try_from(self.partition).unwrap_or(0),
            offset: self.offset,
        }
    }
}
