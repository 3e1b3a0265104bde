//! The archive catalog in the bucket (format: [`bss_layout::catalog`], `docs/file-format.md` §4).
//!
//! - The storer [records](Catalog::record) each object in a one-object segment (level 0) after the
//!   object and before its offsets are committed.
//! - Readers [select](Catalog::select) a folder's objects for a time window and a key by listing the
//!   folder's *segments* (a few per partition and day, never the data objects) and reading only the
//!   segments whose names overlap the window, and in them only the key's bucket.
//! - [Compaction](Catalog::compact_partition) merges segments into higher levels (level 0 → 1 about
//!   hourly, 1 → 2 about daily). It never rewrites a segment: it writes the merged one, and deletes
//!   the inputs only once the merged one has been visible for a grace period, so a reader that listed
//!   the inputs can still read them; a reader that finds one gone starts over and sees the merge.
#![warn(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bss_layout::catalog::{
    complete_marker, folder_prefix, ordinals_with_key, parse_entries, parse_entry,
    partition_prefix, retention_marker, CatalogEntry, Retention, Segment, SegmentError,
    SegmentHeader, SegmentName, SEGMENT_HEADER_BYTES,
};
use bss_layout::index::key_hash;
use bss_layout::Selection;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// For a window, segments this small are fetched whole in one GET; larger ones by ranges.
const WHOLE_READ_BYTES: u64 = 64 * 1024;
/// For a key, which needs a few KiB of a segment: segments this small are fetched whole.
const WHOLE_READ_BYTES_FOR_A_KEY: u64 = 8 * 1024;
/// Segments read at once: each read is a few small GETs, latency-bound.
const READ_CONCURRENCY: usize = 16;
/// A selection that finds a listed segment gone (compacted away meanwhile) lists again, this often.
const SELECT_ATTEMPTS: usize = 3;

/// Why the catalog could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The bucket failed.
    #[error("bucket error: {0}")]
    Bucket(#[from] object_store::Error),
    /// A segment does not decode.
    #[error("{path}: {source}")]
    Corrupt {
        /// Segment path.
        path: String,
        /// What is wrong.
        source: SegmentError,
    },
}

/// What a selection cost, for metrics and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadCost {
    /// LIST requests (pages of up to 1,000 names).
    pub lists: u64,
    /// GET requests.
    pub gets: u64,
    /// Bytes received by those GETs.
    pub bytes: u64,
    /// Segments read.
    pub segments: u64,
}

#[derive(Default)]
struct Counters {
    gets: AtomicU64,
    bytes: AtomicU64,
    segments: AtomicU64,
}

/// A segment as listed.
#[derive(Debug, Clone)]
pub struct ListedSegment {
    /// What its name says.
    pub name: SegmentName,
    /// Its path.
    pub path: Path,
    /// Stored size.
    pub size: u64,
    /// When it was written.
    pub last_modified: DateTime<Utc>,
}

/// An object's catalog entry, and what replaces it: the rewritten object's entry and key hashes, or
/// nothing.
pub type Replacement = (CatalogEntry, Option<(CatalogEntry, Vec<u64>)>);

/// When compaction merges, and how long merged inputs stay readable.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// Level-`k` segments are merged into one of level `k + 1` when there are this many…
    pub fanout: [usize; 2],
    /// …or when the oldest of them is this old (and there are at least two).
    pub max_age: [Duration; 2],
    /// Inputs are deleted once their merge has existed this long (longer than any selection takes).
    pub grace: Duration,
    /// A merge stops taking inputs past this many key pairs (8 bytes each in memory).
    pub max_pairs: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            fanout: [64, 24],
            max_age: [Duration::from_secs(3600), Duration::from_secs(24 * 3600)],
            grace: Duration::from_secs(600),
            max_pairs: 8_000_000,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Segments merged into new ones.
    pub merged: usize,
    /// New segments written.
    pub written: usize,
    /// Superseded segments deleted.
    pub deleted: usize,
}

/// The catalog of a bucket.
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
}

impl Catalog {
    /// The catalog kept in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Records one object (a level-0 segment) and returns the segment's path. The content is a pure
    /// function of the object, so writing it again after a crash rewrites the same bytes.
    pub async fn record(
        &self,
        folder: &str,
        entry: &CatalogEntry,
        key_hashes: Vec<u64>,
    ) -> Result<String, object_store::Error> {
        self.write_segment(folder, 0, std::slice::from_ref(entry), vec![key_hashes])
            .await
    }

    /// Writes a segment of one partition's `entries` (in offset order) at `level`; `keys[i]` are the key
    /// hashes of `entries[i]`.
    pub async fn write_segment(
        &self,
        folder: &str,
        level: u8,
        entries: &[CatalogEntry],
        keys: Vec<Vec<u64>>,
    ) -> Result<String, object_store::Error> {
        let Some(name) = SegmentName::for_entries(folder, level, entries) else {
            return Ok(String::new());
        };
        let bytes = bss_layout::catalog::encode_segment(entries, &keys);
        let path = name.path();
        self.store
            .put(&Path::from(path.as_str()), Bytes::from(bytes).into())
            .await?;
        Ok(path)
    }

    /// Whether the folder's catalog lists every object of the folder (else readers list the folder).
    pub async fn is_complete(&self, folder: &str) -> Result<bool, object_store::Error> {
        match self.store.head(&Path::from(complete_marker(folder))).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Where the folder's partitions start after `bss prune` (nothing pruned when there is no marker).
    pub async fn retention(&self, folder: &str) -> Result<Retention, CatalogError> {
        let path = retention_marker(folder);
        match self.store.get(&Path::from(path.as_str())).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                serde_json::from_slice(&bytes).map_err(|e| CatalogError::Corrupt {
                    path,
                    source: SegmentError::from_reason(format!("not a retention marker: {e}")),
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Retention::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the folder's retention marker (written before any object it drops is deleted).
    pub async fn set_retention(
        &self,
        folder: &str,
        retention: &Retention,
    ) -> Result<(), CatalogError> {
        let bytes = serde_json::to_vec_pretty(retention).map_err(|e| CatalogError::Corrupt {
            path: retention_marker(folder),
            source: SegmentError::from_reason(e.to_string()),
        })?;
        self.store
            .put(
                &Path::from(retention_marker(folder)),
                Bytes::from(bytes).into(),
            )
            .await?;
        Ok(())
    }

    /// Declares the folder's catalog complete: from now on readers trust it and never list the folder.
    pub async fn mark_complete(&self, folder: &str, by: &str) -> Result<(), object_store::Error> {
        let marker = serde_json::json!({ "completeSince": Utc::now().to_rfc3339(), "by": by });
        self.store
            .put(
                &Path::from(complete_marker(folder)),
                Bytes::from(marker.to_string()).into(),
            )
            .await
            .map(|_| ())
    }

    /// Every segment under `prefix`, and how many LIST pages that took.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<ListedSegment>, u64), CatalogError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await?;
        let pages = 1 + metas.len() as u64 / 1000;
        let segments = metas
            .into_iter()
            .filter_map(|meta| {
                let name = SegmentName::parse(meta.location.as_ref())?;
                Some(ListedSegment {
                    name,
                    path: meta.location,
                    size: meta.size,
                    last_modified: meta.last_modified,
                })
            })
            .collect();
        Ok((segments, pages))
    }

    /// The objects of `folder` that may hold selected records: in the window (inclusive, either
    /// open; by each object's real min/max timestamps), with the key (by the key index), of the
    /// partition and in the offset range (by the entries' offsets). Each object once, in no
    /// particular order.
    pub async fn select(
        &self,
        folder: &str,
        selection: &Selection,
    ) -> Result<(Vec<CatalogEntry>, ReadCost), CatalogError> {
        let (from_ms, to_ms) = (selection.from_ms, selection.to_ms);
        let hash = selection.key.as_deref().map(key_hash);
        let retention = self.retention(folder).await?;
        let counters = Counters::default();
        counters.gets.fetch_add(1, Ordering::Relaxed);
        let mut lists = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (listed, pages) = self.list(&folder_prefix(folder)).await?;
            lists += pages;
            let wanted: Vec<ListedSegment> = live(listed)
                .into_iter()
                .filter(|s| {
                    s.name.may_overlap(from_ms, to_ms)
                        && selection.may_hold(
                            s.name.partition,
                            s.name.first_offset,
                            Some(s.name.last_offset),
                        )
                })
                .collect();
            let read = futures::stream::iter(wanted)
                .map(|segment| self.read_selected(segment, from_ms, to_ms, hash, &counters))
                .buffer_unordered(READ_CONCURRENCY)
                .try_collect::<Vec<Vec<CatalogEntry>>>()
                .await;
            match read {
                Ok(found) => {
                    let mut seen = HashSet::new();
                    let entries = found
                        .into_iter()
                        .flatten()
                        .filter(|e| retention.keeps(&e.topic, e.partition, e.first_offset))
                        .filter(|e| {
                            selection.may_hold(e.partition, e.first_offset, Some(e.last_offset))
                        })
                        .filter(|e| seen.insert(e.path.clone()))
                        .collect();
                    let cost = ReadCost {
                        lists,
                        gets: counters.gets.load(Ordering::Relaxed),
                        bytes: counters.bytes.load(Ordering::Relaxed),
                        segments: counters.segments.load(Ordering::Relaxed),
                    };
                    return Ok((entries, cost));
                }
                Err(CatalogError::Bucket(object_store::Error::NotFound { path, .. }))
                    if attempt < SELECT_ATTEMPTS =>
                {
                    tracing::debug!(
                        path,
                        "catalog segment compacted away while reading; listing again"
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn read_selected(
        &self,
        segment: ListedSegment,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        hash: Option<u64>,
        counters: &Counters,
    ) -> Result<Vec<CatalogEntry>, CatalogError> {
        counters.segments.fetch_add(1, Ordering::Relaxed);
        let corrupt = |source| CatalogError::Corrupt {
            path: segment.path.to_string(),
            source,
        };
        let mut reader = RangeReader {
            store: self.store.as_ref(),
            path: &segment.path,
            first: Bytes::new(),
            counters,
        };
        // Small segments in one GET. Of a large one, a key lookup needs only the header, a directory
        // slot pair, a bucket and the candidates' entry lines; a window needs all its entries.
        let first_read = match hash {
            Some(_) if segment.size <= WHOLE_READ_BYTES_FOR_A_KEY => segment.size,
            Some(_) => SEGMENT_HEADER_BYTES as u64,
            None => segment.size.min(WHOLE_READ_BYTES),
        };
        reader.first = reader.part(0..first_read).await?;
        let header = SegmentHeader::parse(&reader.first).map_err(corrupt)?;
        if header.total_bytes() != segment.size {
            return Err(corrupt(SegmentError::from_reason(format!(
                "{} bytes where the header announces {}",
                segment.size,
                header.total_bytes()
            ))));
        }
        let ordinals = match hash {
            None => None,
            Some(hash) => {
                let slots = reader.part(header.directory_range(hash)).await?;
                let bucket = reader
                    .part(header.bucket_range(&slots).map_err(corrupt)?)
                    .await?;
                let ordinals = ordinals_with_key(&bucket, hash);
                if ordinals.is_empty() {
                    return Ok(Vec::new());
                }
                Some(ordinals)
            }
        };
        let chosen: Vec<CatalogEntry> = match ordinals {
            None => parse_entries(&reader.part(header.entries_range()).await?).map_err(corrupt)?,
            Some(ordinals) => {
                let mut chosen = Vec::with_capacity(ordinals.len());
                for ordinal in ordinals {
                    if u64::from(ordinal) >= header.entries {
                        return Err(corrupt(SegmentError::from_reason(format!(
                            "a key pair names entry {ordinal} of {}",
                            header.entries
                        ))));
                    }
                    let slots = reader.part(header.entry_slots_range(ordinal)).await?;
                    let line = header.entry_range(&slots).map_err(corrupt)?;
                    chosen.push(parse_entry(&reader.part(line).await?).map_err(corrupt)?);
                }
                chosen
            }
        };
        Ok(chosen
            .into_iter()
            .filter(|e| e.may_overlap(from_ms, to_ms))
            .collect())
    }

    /// Repoints the catalog of one partition: every live segment that lists an object of
    /// `replacements` is superseded by a copy one level up (same offset range, so it covers the
    /// original) where that object's entry is replaced by the given one (entry and key hashes) or
    /// removed. Returns how many segments it wrote: 0 means no live segment lists those objects any
    /// more. Never rewrites a segment; readers see either the old or the new segment.
    pub async fn supersede(
        &self,
        folder: &str,
        topic: &str,
        partition: i32,
        replacements: &[Replacement],
    ) -> Result<usize, CatalogError> {
        let (listed, _) = self
            .list(&partition_prefix(folder, topic, partition))
            .await?;
        let mut written = 0;
        for segment in live(listed) {
            let holds_one = replacements.iter().any(|(old, _)| {
                segment.name.first_offset <= old.first_offset
                    && old.first_offset <= segment.name.last_offset
            });
            if !holds_one {
                continue;
            }
            let bytes = self.store.get(&segment.path).await?.bytes().await?;
            let mut decoded = Segment::decode(&bytes).map_err(|source| CatalogError::Corrupt {
                path: segment.path.to_string(),
                source,
            })?;
            let mut replaced = false;
            for (old, new) in replacements {
                replaced |= decoded.replace_entry(&old.path, new.clone());
            }
            if !replaced {
                continue;
            }
            let entries = &decoded.entries;
            let name = SegmentName {
                level: segment.name.level + 1,
                min_timestamp: entries.iter().filter_map(|e| e.min_timestamp).min(),
                max_timestamp: entries.iter().filter_map(|e| e.max_timestamp).max(),
                ..segment.name.clone()
            };
            self.store
                .put(
                    &Path::from(name.path()),
                    Bytes::from(decoded.encode()).into(),
                )
                .await?;
            tracing::info!(folder, topic, partition, segment = %name.path(), superseded = %segment.path, "catalog segment superseded");
            written += 1;
        }
        Ok(written)
    }

    /// One compaction pass over a partition's segments: deletes segments whose merge has been visible
    /// for the grace period, then merges each level that is due (see [`CompactionPolicy`]).
    pub async fn compact_partition(
        &self,
        folder: &str,
        topic: &str,
        partition: i32,
        policy: &CompactionPolicy,
    ) -> Result<Compaction, CatalogError> {
        let now = Utc::now();
        let age = |s: &ListedSegment| (now - s.last_modified).to_std().unwrap_or_default();
        let (listed, _) = self
            .list(&partition_prefix(folder, topic, partition))
            .await?;
        let mut done = Compaction::default();
        for segment in &listed {
            let superseded = listed
                .iter()
                .any(|other| segment.name.is_covered_by(&other.name) && age(other) >= policy.grace);
            if superseded {
                match self.store.delete(&segment.path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => done.deleted += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let live = live(listed);
        for level in 0..policy.fanout.len() {
            let mut inputs: Vec<&ListedSegment> = live
                .iter()
                .filter(|s| usize::from(s.name.level) == level)
                .collect();
            inputs.sort_by_key(|s| s.name.first_offset);
            let oldest = inputs.iter().map(|s| age(s)).max().unwrap_or_default();
            let due = inputs.len() >= policy.fanout[level]
                || (inputs.len() >= 2 && oldest >= policy.max_age[level]);
            if !due {
                continue;
            }
            let mut segments = Vec::new();
            let mut pairs = 0;
            for input in inputs.iter().take(policy.fanout[level] * 2) {
                let bytes = self.store.get(&input.path).await?.bytes().await?;
                let segment = Segment::decode(&bytes).map_err(|source| CatalogError::Corrupt {
                    path: input.path.to_string(),
                    source,
                })?;
                pairs += segment.pair_count();
                segments.push(segment);
                if pairs >= policy.max_pairs && segments.len() >= 2 {
                    break;
                }
            }
            let inputs_merged = segments.len();
            let merged = Segment::merge(segments);
            let Some(name) = SegmentName::for_entries(folder, level as u8 + 1, &merged.entries)
            else {
                continue;
            };
            self.store
                .put(
                    &Path::from(name.path()),
                    Bytes::from(merged.encode()).into(),
                )
                .await?;
            done.merged += inputs_merged;
            done.written += 1;
            tracing::info!(folder, topic, partition, level = level + 1, objects = merged.entries.len(), segment = %name.path(), "catalog segments merged");
        }
        Ok(done)
    }
}

/// Reads parts of one segment: from its first read when they are inside it, else by a ranged GET.
struct RangeReader<'a> {
    store: &'a dyn ObjectStore,
    path: &'a Path,
    first: Bytes,
    counters: &'a Counters,
}

impl RangeReader<'_> {
    async fn part(&self, range: Range<u64>) -> Result<Bytes, CatalogError> {
        if range.end <= self.first.len() as u64 {
            return Ok(self.first.slice(range.start as usize..range.end as usize));
        }
        let bytes = self.store.get_range(self.path, range).await?;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

/// The segments not covered by another listed one (a merge that holds all they hold).
fn live(listed: Vec<ListedSegment>) -> Vec<ListedSegment> {
    // Only segments of the same partition can cover one another: compare within partitions.
    let mut by_partition: HashMap<(&str, i32), Vec<&SegmentName>> = HashMap::new();
    for segment in &listed {
        by_partition
            .entry((segment.name.topic.as_str(), segment.name.partition))
            .or_default()
            .push(&segment.name);
    }
    let covered: Vec<bool> = listed
        .iter()
        .map(|s| {
            by_partition[&(s.name.topic.as_str(), s.name.partition)]
                .iter()
                .any(|other| s.name.is_covered_by(other))
        })
        .collect();
    listed
        .into_iter()
        .zip(covered)
        .filter_map(|(segment, covered)| (!covered).then_some(segment))
        .collect()
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn entry(partition: i32, first: i64, min: i64, max: i64) -> CatalogEntry {
        CatalogEntry {
            path: format!("f/{partition}-{first}.txt"),
            topic: "t".into(),
            partition,
            first_offset: first,
            last_offset: first + 9,
            records: 10,
            min_timestamp: Some(min),
            max_timestamp: Some(max),
            bytes: 1,
            checksum: "crc32c:00000000".into(),
            index_path: None,
        }
    }

    fn paths(entries: &[CatalogEntry]) -> Vec<String> {
        let mut paths: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
        paths.sort();
        paths
    }

    #[tokio::test]
    async fn windows_select_by_real_min_max_and_keys_by_the_index() {
        let catalog = Catalog::new(Arc::new(InMemory::new()));
        // A backlog object: first record old, last record new.
        catalog
            .record("f", &entry(0, 0, 1_000, 9_000), vec![key_hash(b"a")])
            .await
            .expect("record");
        catalog
            .record("f", &entry(0, 10, 9_001, 9_500), vec![key_hash(b"b")])
            .await
            .expect("record");
        catalog
            .record("f", &entry(1, 0, 5_000, 5_000), vec![key_hash(b"a")])
            .await
            .expect("record");
        let select = |from, to, key: Option<&'static [u8]>| {
            let catalog = catalog.clone();
            async move {
                paths(
                    &catalog
                        .select(
                            "f",
                            &Selection::window(from, to).with_key(key.map(<[u8]>::to_vec)),
                        )
                        .await
                        .expect("select")
                        .0,
                )
            }
        };
        assert_eq!(
            select(Some(8_000), None, None).await,
            ["f/0-0.txt", "f/0-10.txt"]
        );
        assert_eq!(select(Some(9_000), Some(9_000), None).await, ["f/0-0.txt"]);
        assert_eq!(select(None, Some(999), None).await, Vec::<String>::new());
        assert_eq!(
            select(None, None, Some(b"a")).await,
            ["f/0-0.txt", "f/1-0.txt"]
        );
        assert_eq!(select(Some(6_000), None, Some(b"a")).await, ["f/0-0.txt"]);
        assert_eq!(select(None, None, Some(b"zzz")).await, Vec::<String>::new());
        let (_, cost) = catalog
            .select("f", &Selection::all().with_key(Some(b"a".to_vec())))
            .await
            .expect("select");
        // One GET per small segment, plus the retention marker.
        assert_eq!((cost.lists, cost.segments, cost.gets), (1, 3, 4));
    }

    #[tokio::test]
    async fn a_key_in_a_large_segment_costs_a_few_small_ranged_reads() {
        let catalog = Catalog::new(Arc::new(InMemory::new()));
        let entries: Vec<CatalogEntry> = (0..2000)
            .map(|i| entry(0, i * 10, i * 1_000, i * 1_000 + 999))
            .collect();
        let keys: Vec<Vec<u64>> = (0..2000i64)
            .map(|i| {
                let mut keys: Vec<u64> = (0..20)
                    .map(|k| key_hash(format!("k{i}-{k}").as_bytes()))
                    .collect();
                if i % 500 == 7 {
                    keys.push(key_hash(b"needle"));
                }
                keys
            })
            .collect();
        let path = catalog
            .write_segment("f", 1, &entries, keys)
            .await
            .expect("write");
        let size = catalog
            .store
            .head(&Path::from(path))
            .await
            .expect("head")
            .size;
        assert!(size > 4 * WHOLE_READ_BYTES, "a large segment: {size} bytes");
        let (found, cost) = catalog
            .select("f", &Selection::all().with_key(Some(b"needle".to_vec())))
            .await
            .expect("select");
        assert_eq!(
            paths(&found),
            [
                "f/0-10070.txt",
                "f/0-15070.txt",
                "f/0-5070.txt",
                "f/0-70.txt"
            ]
        );
        // Retention marker, header, directory slots, bucket, then two per candidate.
        assert_eq!(cost.gets, 4 + 2 * 4, "{cost:?}");
        assert!(cost.bytes < 8 * 1024, "{cost:?} of a {size}-byte segment");
        let (window, _) = catalog
            .select("f", &Selection::window(Some(5_500), Some(7_200)))
            .await
            .expect("select");
        assert_eq!(paths(&window), ["f/0-50.txt", "f/0-60.txt", "f/0-70.txt"]);
    }

    #[tokio::test]
    async fn compaction_merges_then_deletes_inputs_after_the_grace_period_and_selections_agree() {
        let catalog = Catalog::new(Arc::new(InMemory::new()));
        for i in 0..10 {
            let hashes = vec![key_hash(format!("k{i}").as_bytes())];
            catalog
                .record("f", &entry(2, i * 10, i, i), hashes)
                .await
                .expect("record");
        }
        let before = catalog
            .select("f", &Selection::window(Some(3), Some(6)))
            .await
            .expect("select")
            .0;
        let policy = CompactionPolicy {
            fanout: [4, 2],
            max_age: [Duration::from_secs(3600); 2],
            grace: Duration::from_secs(3600),
            max_pairs: 1_000,
        };
        let pass = catalog
            .compact_partition("f", "t", 2, &policy)
            .await
            .expect("compacts");
        assert_eq!((pass.merged, pass.written, pass.deleted), (8, 1, 0));
        let (listed, _) = catalog.list(".bss-catalog/f").await.expect("list");
        assert_eq!(listed.len(), 11, "inputs stay while a reader may hold them");
        let after = catalog
            .select("f", &Selection::window(Some(3), Some(6)))
            .await
            .expect("select");
        assert_eq!(paths(&after.0), paths(&before));
        assert_eq!(
            after.1.segments, 1,
            "only the merge: the two objects it does not cover are outside the window by name"
        );
        assert_eq!(
            paths(
                &catalog
                    .select("f", &Selection::all().with_key(Some(b"k7".to_vec())))
                    .await
                    .expect("select")
                    .0
            ),
            ["f/2-70.txt"]
        );

        let no_grace = CompactionPolicy {
            grace: Duration::ZERO,
            ..policy
        };
        let pass = catalog
            .compact_partition("f", "t", 2, &no_grace)
            .await
            .expect("compacts");
        assert_eq!(pass.deleted, 8);
        let (listed, _) = catalog.list(".bss-catalog/f").await.expect("list");
        assert_eq!(listed.iter().filter(|s| s.name.level == 0).count(), 2);
        assert_eq!(
            paths(
                &catalog
                    .select("f", &Selection::window(Some(3), Some(6)))
                    .await
                    .expect("select")
                    .0
            ),
            paths(&before)
        );
    }

    #[tokio::test]
    async fn a_corrupt_segment_is_an_error_naming_it() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::new(Arc::clone(&store));
        let path = catalog
            .record("f", &entry(0, 0, 1, 1), vec![])
            .await
            .expect("record");
        store
            .put(
                &Path::from(path.as_str()),
                Bytes::from_static(b"garbage").into(),
            )
            .await
            .expect("put");
        let error = catalog
            .select("f", &Selection::all())
            .await
            .expect_err("corrupt");
        assert!(error.to_string().contains(&path), "{error}");
        assert!(!catalog.is_complete("f").await.expect("head"));
        catalog.mark_complete("f", "test").await.expect("mark");
        assert!(catalog.is_complete("f").await.expect("head"));
    }
}
