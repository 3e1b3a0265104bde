use crate::record::Record;

/// What a "file written" event and the reloader's pruning need to know about a file, gathered
/// record by record while the file is written (storer) or read (recovery, verification).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileSummary {
    /// Number of records.
    pub records: u64,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Timestamp of the first record (Mia's `batchTimeStart`), if it had one.
    pub first_timestamp_ms: Option<i64>,
    /// Timestamp of the last record (Mia's `batchTimeEnd`), if it had one.
    pub last_timestamp_ms: Option<i64>,
    /// Smallest record timestamp: producer timestamps need not grow with offsets.
    pub min_timestamp_ms: Option<i64>,
    /// Largest record timestamp.
    pub max_timestamp_ms: Option<i64>,
}

impl FileSummary {
    /// Accounts for the next record of the file (records come in offset order).
    pub fn add(&mut self, record: &Record) {
        self.add_offset(record.offset, record.timestamp_ms);
    }

    /// Accounts for the next record of the file by its offset and timestamp.
    pub fn add_offset(&mut self, offset: i64, timestamp_ms: Option<i64>) {
        if self.records == 0 {
            self.first_offset = offset;
            self.first_timestamp_ms = timestamp_ms;
        }
        self.records += 1;
        self.last_offset = offset;
        self.last_timestamp_ms = timestamp_ms;
        if let Some(ts) = timestamp_ms {
            self.min_timestamp_ms = Some(self.min_timestamp_ms.map_or(ts, |m| m.min(ts)));
            self.max_timestamp_ms = Some(self.max_timestamp_ms.map_or(ts, |m| m.max(ts)));
        }
    }
}

/// CRC-32C of stored bytes, as written in events (`crc32c:` + 8 hex digits); GCS uses the same sum.
pub fn checksum(stored: &[u8]) -> String {
    format!("crc32c:{:08x}", crc32c::crc32c(stored))
}
