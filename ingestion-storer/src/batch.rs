//! Per-partition batching: a pure, I/O-free accumulator with named seal triggers.
//!
//! A batch holds its file's plain content: each record is encoded into its JSON line once, straight
//! from the consumed message, so nothing is copied or allocated per record on the way to the file.

use std::time::Instant;

use bss_format::{decode_line, FileSummary, Record};
use bss_layout::index::IndexBuilder;
use bytes::Bytes;

use crate::config::BatchLimits;

/// Why a batch was sealed; a metric label and a log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealReason {
    /// Reached the byte limit.
    Size,
    /// Reached the record limit.
    Count,
    /// Its first record waited for the flush interval.
    Age,
    /// Its partition went quiet and the batch is already a worthwhile file (a quarter of the byte
    /// limit) or the tail of a bulk read: the end of a backlog, or a burst that is over. Waiting for
    /// the flush interval would only delay it.
    Quiet,
    /// Sealed early to relieve the memory budget.
    Memory,
    /// The service is stopping.
    Shutdown,
}

impl SealReason {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Count => "count",
            Self::Age => "age",
            Self::Quiet => "quiet",
            Self::Memory => "memory",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Records of one partition waiting to become a file.
#[derive(Debug)]
pub struct Batch {
    /// The file's plain content: one JSON line per record, in offset order.
    lines: Vec<u8>,
    /// The same content once shared with an upload ([`Batch::shared_lines`]); `lines` is then empty.
    shared: Option<Bytes>,
    /// Per record: its offset and where its line ends in `lines` (for splitting off a prefix).
    marks: Vec<(i64, usize)>,
    /// Offsets, counts and timestamps for the object's name, its event and the catalog.
    summary: FileSummary,
    /// The object's key-index sidecar, built as records arrive.
    index: IndexBuilder,
    /// What the batch weighs against the memory budget and the size limit.
    pub bytes: u64,
    /// When the first record arrived; drives the age trigger.
    pub opened_at: Instant,
    /// When the last record arrived; drives the quiet trigger.
    pub last_push_at: Instant,
    /// Opened right after a full batch of the same partition: records are flowing in bulk (a backlog),
    /// so this batch is sealed once its partition goes quiet, whatever its size.
    pub follows_full_batch: bool,
}

/// Bookkeeping per record beside its line: its mark and its share of the key index.
const RECORD_OVERHEAD_BYTES: u64 = 32;

/// What a record whose line is `line_bytes` long weighs against the memory budget and the size limit.
pub fn record_weight(line_bytes: usize) -> u64 {
    line_bytes as u64 + RECORD_OVERHEAD_BYTES
}

impl Batch {
    /// An empty batch, opened now.
    pub fn new(now: Instant) -> Self {
        Self {
            lines: Vec::new(),
            shared: None,
            marks: Vec::new(),
            summary: FileSummary::default(),
            index: IndexBuilder::default(),
            bytes: 0,
            opened_at: now,
            last_push_at: now,
            follows_full_batch: false,
        }
    }

    /// Whether a record of `line_bytes` can join without pushing the batch past the byte limit. A
    /// record is always accepted by an empty batch, so a record larger than the limit becomes a file
    /// of its own.
    pub fn fits(&self, line_bytes: usize, limits: &BatchLimits) -> bool {
        self.is_empty()
            || (self.bytes + record_weight(line_bytes) <= limits.max_bytes
                && (self.len() as u64) < limits.max_records)
    }

    /// Appends a record's encoded `line` (newline included); the caller checked [`Batch::fits`].
    pub fn push(
        &mut self,
        line: &[u8],
        offset: i64,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        now: Instant,
    ) {
        self.lines.extend_from_slice(line);
        self.marks.push((offset, self.lines.len()));
        self.summary.add_offset(offset, timestamp_ms);
        self.index.add(offset, timestamp_ms, key);
        self.bytes += record_weight(line.len());
        self.last_push_at = now;
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The file's plain content.
    pub fn lines(&self) -> &[u8] {
        self.shared.as_deref().unwrap_or(&self.lines)
    }

    /// The file's plain content as shared bytes, without a copy: an uncompressed file is stored as
    /// is, and a copy would double what a sealed batch weighs while it is written. Called on sealed
    /// batches only (nothing is pushed afterwards).
    pub fn shared_lines(&mut self) -> Bytes {
        self.shared
            .get_or_insert_with(|| Bytes::from(std::mem::take(&mut self.lines)))
            .clone()
    }

    /// Offsets, counts, timestamps.
    pub fn summary(&self) -> &FileSummary {
        &self.summary
    }

    /// The key-index sidecar being built.
    pub fn index(&self) -> &IndexBuilder {
        &self.index
    }

    /// Whether the batch must be sealed now, and why.
    pub fn should_seal(&self, limits: &BatchLimits, now: Instant) -> Option<SealReason> {
        if self.bytes >= limits.max_bytes {
            Some(SealReason::Size)
        } else if self.len() as u64 >= limits.max_records {
            Some(SealReason::Count)
        } else if now.duration_since(self.opened_at) >= limits.flush_interval {
            Some(SealReason::Age)
        } else if (self.follows_full_batch || self.bytes >= limits.max_bytes / 4)
            && now.duration_since(self.last_push_at) >= limits.quiet_after()
        {
            Some(SealReason::Quiet)
        } else {
            None
        }
    }

    /// Offset of the first record.
    pub fn first_offset(&self) -> i64 {
        self.marks.first().map_or(-1, |m| m.0)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.marks.last().map_or(-1, |m| m.0)
    }

    /// The records, decoded from their lines (for forwarding them as they were consumed).
    pub fn records(&self) -> Vec<Record> {
        decode_lines(self.lines())
    }

    /// Removes and returns the records with offsets up to `through` (inclusive); they are already
    /// stored in an existing object. Returns `None` when there are none. Rare (after a crash or a
    /// rebalance), so the rest's summary and index are rebuilt by decoding its lines.
    pub fn split_off_through(&mut self, through: i64) -> Option<Vec<Record>> {
        let count = self.marks.partition_point(|m| m.0 <= through);
        if count == 0 {
            return None;
        }
        let end = self.marks[count - 1].1;
        let lines = self.lines();
        let covered = decode_lines(&lines[..end]);
        let mut rest = Batch::new(self.opened_at);
        for line in lines[end..].split_inclusive(|b| *b == b'\n') {
            let record = decode_own_line(line);
            rest.push(
                line,
                record.offset,
                record.timestamp_ms,
                record.key.as_deref(),
                self.last_push_at,
            );
        }
        rest.follows_full_batch = self.follows_full_batch;
        *self = rest;
        Some(covered)
    }
}

fn decode_lines(lines: &[u8]) -> Vec<Record> {
    lines
        .split_inclusive(|b| *b == b'\n')
        .map(decode_own_line)
        .collect()
}

fn decode_own_line(line: &[u8]) -> Record {
    // Lines of a batch were encoded by `encode_line_ref` a moment ago; the round trip of every kind of
    // record (binary keys, null values, odd headers, any timestamp) is tested in bss-format.
    decode_line(line, None).expect("a line this process encoded decodes")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bss_format::{encode_line, TimestampType};

    use super::*;

    fn record(offset: i64, payload_len: usize) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp_ms: Some(offset),
            timestamp_type: TimestampType::CreateTime,
            key: Some(format!("k{offset}").into_bytes()),
            payload: Some(vec![b'x'; payload_len]),
            headers: vec![],
        }
    }

    fn line(record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        encode_line(record, &mut out);
        out
    }

    fn push(batch: &mut Batch, record: Record, now: Instant) {
        let line = line(&record);
        batch.push(
            &line,
            record.offset,
            record.timestamp_ms,
            record.key.as_deref(),
            now,
        );
    }

    fn batch_of(records: impl IntoIterator<Item = Record>, now: Instant) -> Batch {
        let mut batch = Batch::new(now);
        records.into_iter().for_each(|r| push(&mut batch, r, now));
        batch
    }

    fn limits(max_bytes: u64, max_records: u64, flush_ms: u64) -> BatchLimits {
        BatchLimits {
            max_bytes,
            max_records,
            flush_interval: Duration::from_millis(flush_ms),
        }
    }

    #[test]
    fn seals_by_size_count_and_age_with_the_reason() {
        let now = Instant::now();
        let weight = record_weight(line(&record(0, 300)).len());
        let by_size = limits(2 * weight, 100, 60_000);
        let mut batch = batch_of([record(0, 300)], now);
        assert!(batch.fits(line(&record(1, 300)).len(), &by_size));
        push(&mut batch, record(1, 300), now);
        assert_eq!(batch.bytes, 2 * weight);
        assert_eq!(batch.should_seal(&by_size, now), Some(SealReason::Size));
        assert!(!batch.fits(line(&record(2, 0)).len(), &by_size));

        let by_count = limits(1 << 20, 2, 60_000);
        let mut batch = batch_of([record(0, 1)], now);
        assert_eq!(batch.should_seal(&by_count, now), None);
        push(&mut batch, record(1, 1), now);
        assert_eq!(batch.should_seal(&by_count, now), Some(SealReason::Count));

        let by_age = limits(1 << 20, 100, 500);
        let batch = batch_of([record(0, 1)], now);
        assert_eq!(
            batch.should_seal(&by_age, now + Duration::from_millis(499)),
            None
        );
        assert_eq!(
            batch.should_seal(&by_age, now + Duration::from_millis(500)),
            Some(SealReason::Age)
        );
    }

    #[test]
    fn a_quarter_full_batch_of_a_quiet_partition_is_sealed_before_its_age() {
        let limits = limits(4000, 1000, 1000);
        let now = Instant::now();
        let quiet = now + limits.quiet_after();
        let small = batch_of([record(0, 10)], now);
        assert_eq!(
            small.should_seal(&limits, quiet),
            None,
            "too small to be worth a file"
        );
        let mut worthwhile = batch_of([record(0, 1000)], now);
        assert_eq!(
            worthwhile.should_seal(&limits, now),
            None,
            "still receiving"
        );
        assert_eq!(
            worthwhile.should_seal(&limits, quiet),
            Some(SealReason::Quiet)
        );
        push(&mut worthwhile, record(1, 10), quiet);
        assert_eq!(
            worthwhile.should_seal(&limits, quiet),
            None,
            "a new record restarts the wait"
        );
        let mut tail_of_backlog = batch_of([record(0, 10)], now);
        tail_of_backlog.follows_full_batch = true;
        assert_eq!(
            tail_of_backlog.should_seal(&limits, quiet),
            Some(SealReason::Quiet)
        );
    }

    #[test]
    fn a_record_larger_than_the_limit_gets_a_batch_of_its_own() {
        let small = limits(1000, 100, 60_000);
        let empty = Batch::new(Instant::now());
        assert!(empty.fits(line(&record(0, 5000)).len(), &small));
        let batch = batch_of([record(0, 5000)], Instant::now());
        assert_eq!(
            batch.should_seal(&small, Instant::now()),
            Some(SealReason::Size)
        );
    }

    #[test]
    fn holds_the_lines_summary_and_index_of_its_records() {
        let records: Vec<Record> = (7..10).map(|o| record(o, 3)).collect();
        let batch = batch_of(records.clone(), Instant::now());
        let expected: Vec<u8> = records.iter().flat_map(line).collect();
        assert_eq!(batch.lines(), &expected[..]);
        assert_eq!(batch.records(), records);
        assert_eq!(
            (batch.summary().first_offset, batch.summary().last_offset),
            (7, 9)
        );
        assert_eq!(batch.index().key_hashes().len(), 3);
    }

    #[test]
    fn splits_off_records_already_stored() {
        let now = Instant::now();
        let mut batch = batch_of((10..15).map(|o| record(o, 1)), now);
        assert!(batch.split_off_through(9).is_none());
        let covered = batch.split_off_through(12).expect("some covered");
        assert_eq!(
            covered.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert_eq!((batch.first_offset(), batch.last_offset()), (13, 14));
        assert_eq!(
            batch.bytes,
            batch_of([record(13, 1), record(14, 1)], now).bytes
        );
        assert_eq!(
            (batch.summary().first_offset, batch.summary().records),
            (13, 2)
        );
        assert_eq!(batch.index().key_hashes().len(), 2);
        assert_eq!(batch.records(), vec![record(13, 1), record(14, 1)]);
        batch.split_off_through(20);
        assert!(batch.is_empty());
    }
}
