//! Object names: `<folder>/<iso-ts>_<topic>_<partition>_<first-offset>_<first-ts-ms><ext>`.
//!
//! This is Mia-Platform's order (`<iso-ts-first-msg>_<topic>_<partition>_<offset-first-msg>_<epoch-ms>.txt`)
//! so names sort by the first record's time and a time window is found by listing from a start key.
//! One deliberate difference: Mia's last field is the wall clock at consumption; ours is the first
//! record's timestamp in epoch milliseconds. The whole name is thus a pure function of the batch's first
//! record, so a batch re-written after a crash lands on the *same* name, and a write-once put detects it
//! (see `docs/storer-protocol.md`). Readers that split from the right parse both.

use bss_format::time::{format_iso_ms, parse_iso_ms};
use bss_format::Compression;

/// The parts of an archive object's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    /// Folder: the ingestion topic's name or its configured `bucket-folder`.
    pub folder: String,
    /// Timestamp of the batch's first record, epoch milliseconds, clamped to years 1970..=9999 (0 when
    /// it had none).
    pub first_timestamp_ms: i64,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset of the batch's first record.
    pub first_offset: i64,
    /// The last numeric field: ours repeats `first_timestamp_ms`, Mia's holds a consumption time.
    pub tail_ms: i64,
    /// Compression, from the extension.
    pub compression: Compression,
}

/// Why a path is not an archive object name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path:?} is not an archive object name ({reason})")]
pub struct NameError {
    path: String,
    reason: &'static str,
}

impl ObjectName {
    /// The name of the object holding a batch that starts with the given record.
    pub fn for_batch(
        folder: &str,
        topic: &str,
        partition: i32,
        first_offset: i64,
        first_timestamp_ms: Option<i64>,
        compression: Compression,
    ) -> Self {
        let first_timestamp_ms = Self::name_timestamp(first_timestamp_ms);
        Self {
            folder: folder.to_owned(),
            first_timestamp_ms,
            topic: topic.to_owned(),
            partition,
            first_offset,
            tail_ms: first_timestamp_ms,
            compression,
        }
    }

    /// The time a name gives a batch whose first record has `timestamp_ms`. Names sort by time and
    /// must parse back: no timestamp, a negative one or one past year 9999 is clamped to years
    /// 1970..=9999 (the line keeps the exact value).
    pub fn name_timestamp(timestamp_ms: Option<i64>) -> i64 {
        timestamp_ms
            .unwrap_or(0)
            .clamp(0, bss_format::time::MAX_ISO_MS)
    }

    /// The file name without its folder.
    pub fn file_name(&self) -> String {
        format!(
            "{}_{}_{}_{}_{}{}",
            format_iso_ms(self.first_timestamp_ms),
            self.topic,
            self.partition,
            self.first_offset,
            self.tail_ms,
            self.compression.extension()
        )
    }

    /// The full object path, `folder/file-name`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.folder, self.file_name())
    }

    /// The smallest path a listing must start after to see every object of `folder` whose first
    /// record is not older than `timestamp_ms`.
    pub fn list_start_key(folder: &str, timestamp_ms: i64) -> String {
        format!("{folder}/{}", format_iso_ms(timestamp_ms))
    }

    /// Parses a full path (`folder/file`). The topic may itself contain `_`: the timestamp is the first
    /// `_`-separated field and partition, offset and the last number are the last three.
    pub fn parse(path: &str) -> Result<Self, NameError> {
        let fail = |reason| NameError {
            path: path.to_owned(),
            reason,
        };
        let (folder, file) = path.rsplit_once('/').ok_or(fail("no folder"))?;
        let (stem, compression) = Compression::split_file_name(file)
            .ok_or(fail("extension is not .txt, .txt.gz or .txt.zst"))?;
        let (iso, rest) = stem.split_once('_').ok_or(fail("no `_` separators"))?;
        let mut fields = rest.rsplitn(4, '_');
        let tail = fields.next().ok_or(fail("missing fields"))?;
        let offset = fields.next().ok_or(fail("missing offset"))?;
        let partition = fields.next().ok_or(fail("missing partition"))?;
        let topic = fields
            .next()
            .filter(|t| !t.is_empty())
            .ok_or(fail("missing topic"))?;
        Ok(Self {
            folder: folder.to_owned(),
            first_timestamp_ms: parse_iso_ms(iso)
                .ok_or(fail("first field is not an ISO-8601 time"))?,
            topic: topic.to_owned(),
            partition: partition
                .parse()
                .map_err(|_| fail("partition is not a number"))?,
            first_offset: offset.parse().map_err(|_| fail("offset is not a number"))?,
            tail_ms: tail
                .parse()
                .map_err(|_| fail("last field is not a number"))?,
            compression,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_names_are_a_function_of_the_first_record_and_round_trip() {
        let name = ObjectName::for_batch(
            "orders",
            "fd.DEV.orders_v2.ingestion",
            7,
            312,
            Some(1_668_432_397_728),
            Compression::Zstd,
        );
        assert_eq!(
            name.path(),
            "orders/2022-11-14T13:26:37.728Z_fd.DEV.orders_v2.ingestion_7_312_1668432397728.txt.zst"
        );
        assert_eq!(ObjectName::parse(&name.path()), Ok(name));
    }

    #[test]
    fn parses_mia_platform_names() {
        let path = "fd-historical-data.DEV.fast-pizza.orders.ingestion/2022-11-14T13:26:37.728Z_fd-historical-data.DEV.fast-pizza.orders.ingestion_0_312_1668432398047.txt";
        let name = ObjectName::parse(path).expect("parses");
        assert_eq!(
            name.topic,
            "fd-historical-data.DEV.fast-pizza.orders.ingestion"
        );
        assert_eq!((name.partition, name.first_offset), (0, 312));
        assert_eq!(name.tail_ms, 1_668_432_398_047);
        assert_eq!(name.compression, Compression::None);
        assert_eq!(name.path(), path);
    }

    #[test]
    fn names_sort_by_first_record_time_and_start_keys_sort_before_them() {
        let a = ObjectName::for_batch("f", "t", 1, 900, Some(1_000), Compression::None).path();
        let b = ObjectName::for_batch("f", "t", 0, 5, Some(2_000), Compression::None).path();
        assert!(a < b);
        let start = ObjectName::list_start_key("f", 2_000);
        assert!(start.as_str() > a.as_str() && start.as_str() < b.as_str());
    }

    #[test]
    fn rejects_foreign_names_with_a_reason() {
        for bad in [
            "no-folder.txt",
            "f/readme.md",
            "f/2022-11-14T13:26:37.728Z_t_x_1_2.txt",
            "f/yesterday_t_0_1_2.txt",
            "f/2022-11-14T13:26:37.728Z_0_1_2.txt",
        ] {
            assert!(ObjectName::parse(bad).is_err(), "{bad}");
        }
    }
}
