//! Per-partition batching: a pure, I/O-free accumulator with named seal triggers.

use std::time::Instant;

use bss_format::Record;

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
    /// Records in offset order.
    pub records: Vec<Record>,
    /// Approximate encoded size, also what the batch weighs against the memory budget.
    pub bytes: u64,
    /// When the first record arrived; drives the age trigger.
    pub opened_at: Instant,
    /// When the last record arrived; drives the quiet trigger.
    pub last_push_at: Instant,
    /// Opened right after a full batch of the same partition: records are flowing in bulk (a backlog),
    /// so this batch is sealed once its partition goes quiet, whatever its size.
    pub follows_full_batch: bool,
}

/// What one record weighs: its memory footprint, which also approximates its line in a file (the JSON
/// field names and numbers of a line take about the space of the struct and allocator overhead).
pub fn record_weight(record: &Record) -> u64 {
    record.memory_bytes() as u64
}

impl Batch {
    /// A batch holding its first record.
    pub fn open(record: Record, now: Instant) -> Self {
        let bytes = record_weight(&record);
        Self {
            records: vec![record],
            bytes,
            opened_at: now,
            last_push_at: now,
            follows_full_batch: false,
        }
    }

    /// Whether `record` can join without pushing the batch past the byte limit. A record is always
    /// accepted by an empty batch, so a record larger than the limit becomes a file of its own.
    pub fn fits(&self, record: &Record, limits: &BatchLimits) -> bool {
        self.bytes + record_weight(record) <= limits.max_bytes
            && (self.records.len() as u64) < limits.max_records
    }

    /// Appends a record; the caller checked [`Batch::fits`].
    pub fn push(&mut self, record: Record, now: Instant) {
        self.bytes += record_weight(&record);
        self.records.push(record);
        self.last_push_at = now;
    }

    /// Whether the batch must be sealed now, and why.
    pub fn should_seal(&self, limits: &BatchLimits, now: Instant) -> Option<SealReason> {
        if self.bytes >= limits.max_bytes {
            Some(SealReason::Size)
        } else if self.records.len() as u64 >= limits.max_records {
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
        self.records.first().map_or(-1, |r| r.offset)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.records.last().map_or(-1, |r| r.offset)
    }

    /// Removes and returns the records with offsets up to `through` (inclusive); they are already
    /// stored in an existing object. Returns `None` when there are none.
    pub fn split_off_through(&mut self, through: i64) -> Option<Vec<Record>> {
        let count = self.records.partition_point(|r| r.offset <= through);
        if count == 0 {
            return None;
        }
        let rest = self.records.split_off(count);
        let covered = std::mem::replace(&mut self.records, rest);
        self.bytes = self.records.iter().map(record_weight).sum();
        Some(covered)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bss_format::TimestampType;

    use super::*;

    fn record(offset: i64, payload_len: usize) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp_ms: Some(offset),
            timestamp_type: TimestampType::CreateTime,
            key: None,
            payload: Some(vec![b'x'; payload_len]),
            headers: vec![],
        }
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
        let weight = record_weight(&record(0, 300));
        let by_size = limits(2 * weight, 100, 60_000);
        let mut batch = Batch::open(record(0, 300), now);
        assert!(batch.fits(&record(1, 300), &by_size));
        batch.push(record(1, 300), now);
        assert_eq!(batch.bytes, 2 * weight);
        assert_eq!(batch.should_seal(&by_size, now), Some(SealReason::Size));
        assert!(!batch.fits(&record(2, 0), &by_size));

        let by_count = limits(1 << 20, 2, 60_000);
        let mut batch = Batch::open(record(0, 1), now);
        assert_eq!(batch.should_seal(&by_count, now), None);
        batch.push(record(1, 1), now);
        assert_eq!(batch.should_seal(&by_count, now), Some(SealReason::Count));

        let by_age = limits(1 << 20, 100, 500);
        let batch = Batch::open(record(0, 1), now);
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
        let small = Batch::open(record(0, 10), now);
        assert_eq!(
            small.should_seal(&limits, quiet),
            None,
            "too small to be worth a file"
        );
        let mut worthwhile = Batch::open(record(0, 1000), now);
        assert_eq!(
            worthwhile.should_seal(&limits, now),
            None,
            "still receiving"
        );
        assert_eq!(
            worthwhile.should_seal(&limits, quiet),
            Some(SealReason::Quiet)
        );
        worthwhile.push(record(1, 10), quiet);
        assert_eq!(
            worthwhile.should_seal(&limits, quiet),
            None,
            "a new record restarts the wait"
        );
        let mut tail_of_backlog = Batch::open(record(0, 10), now);
        tail_of_backlog.follows_full_batch = true;
        assert_eq!(
            tail_of_backlog.should_seal(&limits, quiet),
            Some(SealReason::Quiet)
        );
    }

    #[test]
    fn a_record_larger_than_the_limit_gets_a_batch_of_its_own() {
        let small = limits(1000, 100, 60_000);
        let batch = Batch::open(record(0, 5000), Instant::now());
        assert_eq!(
            batch.should_seal(&small, Instant::now()),
            Some(SealReason::Size)
        );
    }

    #[test]
    fn splits_off_records_already_stored() {
        let mut batch = Batch::open(record(10, 1), Instant::now());
        (11..15).for_each(|o| batch.push(record(o, 1), Instant::now()));
        assert!(batch.split_off_through(9).is_none());
        let covered = batch.split_off_through(12).expect("some covered");
        assert_eq!(
            covered.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert_eq!((batch.first_offset(), batch.last_offset()), (13, 14));
        assert_eq!(batch.bytes, 2 * record_weight(&record(0, 1)));
        batch.split_off_through(20);
        assert!(batch.records.is_empty());
    }
}
