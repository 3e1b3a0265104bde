use std::sync::Arc;

/// One Kafka record as archived: everything needed to re-produce it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Source topic, shared by all records of a partition (no allocation per record).
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Kafka timestamp in milliseconds since the Unix epoch, `None` when the broker gave none.
    pub timestamp_ms: Option<i64>,
    /// Whether the timestamp was set by the producer or by the broker.
    pub timestamp_type: TimestampType,
    /// Key bytes; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` for a null value (a tombstone).
    pub payload: Option<Vec<u8>>,
    /// Headers in their original order (duplicates allowed, as in Kafka).
    pub headers: Vec<Header>,
}

impl Record {
    /// What the record weighs: its key, value and header bytes (what a rate or a memory budget
    /// counts).
    pub fn byte_size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
            .sum();
        self.key.as_ref().map_or(0, Vec::len) + self.payload.as_ref().map_or(0, Vec::len) + headers
    }
}

/// One Kafka record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name: bytes, as on the wire (usually UTF-8 text, but Kafka does not require it).
    pub key: Vec<u8>,
    /// Header value; `None` for a null value.
    pub value: Option<Vec<u8>>,
}

/// Kafka's timestamp types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Set by the producer (Kafka's default).
    #[default]
    CreateTime,
    /// Set by the broker when the record was appended.
    LogAppendTime,
}
