//! Which records a reader wants from a folder: a time window, a key, a partition and an offset range.
//! One type for the catalog (which segments and objects to read), the archive (which objects, by
//! their sidecars) and every reader of records (the reloader's jobs and reads, `bss`).

use bss_format::Record;

/// A selection of records; every part is optional, and an empty selection takes every record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Records with a timestamp at or after this (epoch ms).
    pub from_ms: Option<i64>,
    /// Records with a timestamp at or before this.
    pub to_ms: Option<i64>,
    /// Records with exactly this key.
    pub key: Option<Vec<u8>>,
    /// Records of this source partition.
    pub partition: Option<i32>,
    /// Records at or after this offset (in each selected partition).
    pub from_offset: Option<i64>,
    /// Records at or before this offset.
    pub to_offset: Option<i64>,
}

impl Selection {
    /// Every record.
    pub fn all() -> Self {
        Self::default()
    }

    /// The records in the time window `[from_ms, to_ms]` (either bound open).
    pub fn window(from_ms: Option<i64>, to_ms: Option<i64>) -> Self {
        Self {
            from_ms,
            to_ms,
            ..Self::default()
        }
    }

    /// The same selection, only for records with `key`.
    pub fn with_key(mut self, key: Option<Vec<u8>>) -> Self {
        self.key = key;
        self
    }

    /// Whether a time window is set.
    pub fn has_window(&self) -> bool {
        self.from_ms.is_some() || self.to_ms.is_some()
    }

    /// Whether `record` is selected.
    pub fn selects(&self, record: &Record) -> bool {
        self.in_window(record.timestamp_ms)
            && self
                .key
                .as_ref()
                .is_none_or(|k| record.key.as_ref() == Some(k))
            && self.may_hold(record.partition, record.offset, Some(record.offset))
    }

    /// Whether a record with this timestamp is in the window (bounds inclusive). Without a window
    /// every record is; with one, a record without a timestamp is not.
    pub fn in_window(&self, timestamp_ms: Option<i64>) -> bool {
        if !self.has_window() {
            return true;
        }
        timestamp_ms.is_some_and(|ts| {
            self.from_ms.is_none_or(|f| ts >= f) && self.to_ms.is_none_or(|t| ts <= t)
        })
    }

    /// Whether offsets `first..=last` of `partition` (`last` unknown: `None`) may hold selected
    /// records, by partition and offsets alone.
    pub fn may_hold(&self, partition: i32, first: i64, last: Option<i64>) -> bool {
        self.partition.is_none_or(|p| p == partition)
            && self.to_offset.is_none_or(|to| first <= to)
            && self
                .from_offset
                .is_none_or(|from| last.is_none_or(|last| last >= from))
    }

    /// Refuses bounds that select nothing by construction, naming them.
    pub fn check(&self) -> Result<(), SelectionError> {
        if let (Some(from), Some(to)) = (self.from_ms, self.to_ms) {
            if from > to {
                return Err(SelectionError::Window);
            }
        }
        if let (Some(from), Some(to)) = (self.from_offset, self.to_offset) {
            if from > to {
                return Err(SelectionError::Offsets);
            }
        }
        if self.from_offset.is_some_and(|o| o < 0) || self.to_offset.is_some_and(|o| o < 0) {
            return Err(SelectionError::NegativeOffset);
        }
        if self.partition.is_some_and(|p| p < 0) {
            return Err(SelectionError::NegativePartition);
        }
        Ok(())
    }
}

/// A selection that can select nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// The window starts after it ends.
    #[error("the start of the time window is after its end")]
    Window,
    /// The offset range starts after it ends.
    #[error("fromOffset is after toOffset")]
    Offsets,
    /// An offset bound is negative.
    #[error("offsets are 0 or more")]
    NegativeOffset,
    /// The partition is negative.
    #[error("partition: partitions are numbered from 0")]
    NegativePartition,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, timestamp_ms: Option<i64>, key: &[u8]) -> Record {
        Record {
            topic: "t".into(),
            partition,
            offset,
            timestamp_ms,
            timestamp_type: Default::default(),
            key: Some(key.to_vec()),
            payload: None,
            headers: vec![],
        }
    }

    #[test]
    fn bounds_are_inclusive_and_every_part_narrows() {
        let all = Selection::all();
        assert!(all.selects(&record(0, 1, None, b"a")));
        let window = Selection::window(Some(100), Some(200));
        assert!(window.selects(&record(0, 1, Some(100), b"a")));
        assert!(window.selects(&record(0, 1, Some(200), b"a")));
        assert!(!window.selects(&record(0, 1, Some(201), b"a")));
        assert!(!window.selects(&record(0, 1, None, b"a")));
        let keyed = Selection::all().with_key(Some(b"a".to_vec()));
        assert!(keyed.selects(&record(0, 1, None, b"a")));
        assert!(!keyed.selects(&record(0, 1, None, b"b")));
        let offsets = Selection {
            partition: Some(2),
            from_offset: Some(10),
            to_offset: Some(20),
            ..Selection::default()
        };
        assert!(offsets.selects(&record(2, 10, None, b"a")));
        assert!(offsets.selects(&record(2, 20, None, b"a")));
        assert!(!offsets.selects(&record(2, 21, None, b"a")));
        assert!(!offsets.selects(&record(2, 9, None, b"a")));
        assert!(!offsets.selects(&record(1, 15, None, b"a")));
        // Objects: by their first and (when known) last offsets.
        assert!(offsets.may_hold(2, 0, Some(10)));
        assert!(!offsets.may_hold(2, 0, Some(9)));
        assert!(offsets.may_hold(2, 0, None));
        assert!(!offsets.may_hold(2, 21, None));
        assert!(!offsets.may_hold(3, 10, Some(20)));
    }

    #[test]
    fn selections_that_select_nothing_by_construction_are_refused() {
        assert_eq!(
            Selection::window(Some(2), Some(1)).check(),
            Err(SelectionError::Window)
        );
        let offsets = |from, to| Selection {
            from_offset: from,
            to_offset: to,
            ..Selection::default()
        };
        assert_eq!(
            offsets(Some(5), Some(4)).check(),
            Err(SelectionError::Offsets)
        );
        assert_eq!(
            offsets(Some(-1), None).check(),
            Err(SelectionError::NegativeOffset)
        );
        assert_eq!(offsets(Some(4), Some(4)).check(), Ok(()));
    }
}
