//! The "file written" event, produced on the events topic once an object is durable.
//!
//! Key and the first six value fields are Mia-Platform's; the rest are additions that let consumers
//! (the reloader, audits, data organizers) verify and prune objects without reading them.

use serde::{Deserialize, Serialize};

/// Event key: the source topic-partition, so events of one partition stay ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWrittenKey {
    /// Source ingestion topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
}

/// Event value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileWrittenEvent {
    /// Full object path in the bucket (folder + file name).
    pub file_path: String,
    /// ISO-8601 timestamp of the first record.
    pub batch_time_start: Option<String>,
    /// ISO-8601 timestamp of the last record.
    pub batch_time_end: Option<String>,
    /// Offset of the first record.
    pub batch_offset_start: i64,
    /// Offset of the last record.
    pub batch_offset_end: i64,
    /// Number of records in the object.
    pub batch_size: u64,
    /// Bucket name.
    pub bucket: String,
    /// Source topic (also in the key; repeated so the value stands alone).
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Stored object size in bytes.
    pub byte_size: u64,
    /// Uncompressed JSON Lines size in bytes.
    pub uncompressed_byte_size: u64,
    /// `crc32c:<8 hex digits>` of the stored bytes.
    pub checksum: String,
    /// `none`, `gzip` or `zstd`.
    pub compression: String,
    /// Line format version (`bss_format::FORMAT_VERSION`).
    pub format_version: u32,
    /// Smallest record timestamp in the object (ISO-8601); may differ from `batchTimeStart`.
    pub min_timestamp: Option<String>,
    /// Largest record timestamp in the object (ISO-8601).
    pub max_timestamp: Option<String>,
    /// Path of the object's key-index sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_path: Option<String>,
    /// Path of the catalog segment that records the object (written before this event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_segment: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_mia_field_names() {
        let key = FileWrittenKey {
            topic: "t".into(),
            partition: 1,
        };
        assert_eq!(
            serde_json::to_string(&key).expect("json"),
            r#"{"topic":"t","partition":1}"#
        );
        let event = FileWrittenEvent {
            file_path: "t/x.txt".into(),
            batch_time_start: Some("2023-06-23T09:10:00.702Z".into()),
            batch_time_end: Some("2023-06-23T09:13:00.000Z".into()),
            batch_offset_start: 5,
            batch_offset_end: 7,
            batch_size: 3,
            bucket: "b".into(),
            topic: "t".into(),
            partition: 1,
            byte_size: 10,
            uncompressed_byte_size: 20,
            checksum: "crc32c:00000000".into(),
            compression: "none".into(),
            format_version: 1,
            min_timestamp: None,
            max_timestamp: None,
            index_path: None,
            catalog_segment: None,
        };
        let json: serde_json::Value = serde_json::to_value(&event).expect("json");
        for field in [
            "filePath",
            "batchTimeStart",
            "batchTimeEnd",
            "batchOffsetStart",
            "batchOffsetEnd",
            "batchSize",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        let back: FileWrittenEvent = serde_json::from_value(json).expect("parses");
        assert_eq!(back, event);
    }
}
