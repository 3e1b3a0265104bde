//! The archive catalog's format: which objects exist, what each holds, and which keys are in which
//! object, in a few segment objects per partition instead of one listing entry per object.
//!
//! Paths: `.bss-catalog/<folder>/<topic>/<partition>/L<level>_<first offset>_<last offset>_<min ts>_<max ts>.cat`
//! (offsets zero-padded to 20 digits so a listing sorts them; timestamps epoch ms or `none`). A name
//! tells a reader which offsets and times a segment covers without reading it. `_complete.json` in a
//! folder's catalog says the catalog lists every object of that folder.
//!
//! Segment layout (little-endian), specified in `docs/file-format.md` §4:
//! - header, [`SEGMENT_HEADER_BYTES`] bytes: magic `BSSC`, version `1`, bucket bits `d`, 2 zero bytes,
//!   entries block length (u64), entries (u64), key pairs (u64), first offset (i64), last offset (i64),
//!   min timestamp (i64, `i64::MIN` = none), max timestamp (i64);
//! - entries block: one JSON object per line per archived object ([`CatalogEntry`]), in offset order;
//! - key directory: `2^d + 1` u64, the index of the first pair of each bucket (the last = pairs);
//! - key pairs: (u32 fingerprint, u32 entry ordinal), sorted; the fingerprint is the top 32 bits of
//!   [`crate::index::key_hash`] and the bucket its top `d` bits, so a lookup reads one directory slot
//!   and one bucket. A pair says "that object holds a record with a key of this fingerprint".

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Root prefix of the catalog.
pub const CATALOG_ROOT: &str = ".bss-catalog";
/// Name of the marker saying a folder's catalog is complete.
pub const COMPLETE_MARKER: &str = "_complete.json";
/// Name of the marker saying where each partition's archive starts after `bss prune`.
pub const RETENTION_MARKER: &str = "_retention.json";
/// Header size.
pub const SEGMENT_HEADER_BYTES: usize = 64;
const MAGIC: &[u8; 4] = b"BSSC";
const VERSION: u8 = 1;
/// Buckets are sized for about this many pairs, so one bucket is a ~2 KiB read.
const PAIRS_PER_BUCKET: u64 = 256;
/// At most 2^24 buckets (a 128 MiB directory would be absurd; segments stay far smaller).
const MAX_BUCKET_BITS: u8 = 24;

/// One archived object, as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// Full object path in the bucket.
    pub path: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset of its first record.
    pub first_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// Records in it.
    pub records: u64,
    /// Smallest record timestamp, epoch ms (absent when no record has one).
    pub min_timestamp: Option<i64>,
    /// Largest record timestamp, epoch ms.
    pub max_timestamp: Option<i64>,
    /// Stored size in bytes.
    pub bytes: u64,
    /// `crc32c:<8 hex digits>` of the stored bytes.
    pub checksum: String,
    /// Path of its key-index sidecar, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_path: Option<String>,
}

impl CatalogEntry {
    /// Whether records with timestamps in `[from, to]` (inclusive, either open) may be in the object.
    /// Without a window every object may; with one, an object without timestamps may not.
    pub fn may_overlap(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> bool {
        overlaps(self.min_timestamp, self.max_timestamp, from_ms, to_ms)
    }
}

fn overlaps(min: Option<i64>, max: Option<i64>, from: Option<i64>, to: Option<i64>) -> bool {
    if from.is_none() && to.is_none() {
        return true;
    }
    match (min, max) {
        (Some(min), Some(max)) => from.is_none_or(|f| max >= f) && to.is_none_or(|t| min <= t),
        _ => false,
    }
}

/// The catalog prefix of a folder.
pub fn folder_prefix(folder: &str) -> String {
    format!("{CATALOG_ROOT}/{folder}")
}

/// The catalog prefix of one source partition in a folder.
pub fn partition_prefix(folder: &str, topic: &str, partition: i32) -> String {
    format!("{CATALOG_ROOT}/{folder}/{topic}/{partition}")
}

/// The path of a folder's completeness marker.
pub fn complete_marker(folder: &str) -> String {
    format!("{CATALOG_ROOT}/{folder}/{COMPLETE_MARKER}")
}

/// The path of a folder's retention marker.
pub fn retention_marker(folder: &str) -> String {
    format!("{CATALOG_ROOT}/{folder}/{RETENTION_MARKER}")
}

/// Where a folder's archive starts after `bss prune` removed the oldest objects of its partitions:
/// readers ignore what lies before, so an entry whose object is being deleted is never followed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Per source partition, its first offset still archived.
    pub partitions: Vec<PartitionStart>,
}

/// The first offset still archived of one source partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStart {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Objects that start before this offset are gone (or going).
    pub start_offset: i64,
    /// The `--before` time of the prune that set it (RFC 3339).
    pub pruned_before: String,
}

impl Retention {
    /// The first offset still archived of a partition (0 when never pruned).
    pub fn start(&self, topic: &str, partition: i32) -> i64 {
        self.partitions
            .iter()
            .find(|p| p.topic == topic && p.partition == partition)
            .map_or(0, |p| p.start_offset)
    }

    /// Whether an object that starts at `first_offset` is still part of the archive.
    pub fn keeps(&self, topic: &str, partition: i32, first_offset: i64) -> bool {
        first_offset >= self.start(topic, partition)
    }

    /// Moves a partition's start forward (never back).
    pub fn advance(&mut self, start: PartitionStart) {
        match self
            .partitions
            .iter_mut()
            .find(|p| p.topic == start.topic && p.partition == start.partition)
        {
            Some(known) if known.start_offset >= start.start_offset => {}
            Some(known) => *known = start,
            None => self.partitions.push(start),
        }
    }
}

/// What a segment's path says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    /// Archive folder.
    pub folder: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// 0 for one object's segment; higher levels are compactions of lower ones.
    pub level: u8,
    /// First offset of its first object.
    pub first_offset: i64,
    /// Last offset of its last object.
    pub last_offset: i64,
    /// Smallest record timestamp of its objects.
    pub min_timestamp: Option<i64>,
    /// Largest record timestamp.
    pub max_timestamp: Option<i64>,
}

impl SegmentName {
    /// The segment's full path.
    pub fn path(&self) -> String {
        let ts = |t: Option<i64>| t.map_or_else(|| "none".to_owned(), |t| t.to_string());
        format!(
            "{}/L{}_{:020}_{:020}_{}_{}.cat",
            partition_prefix(&self.folder, &self.topic, self.partition),
            self.level,
            self.first_offset,
            self.last_offset,
            ts(self.min_timestamp),
            ts(self.max_timestamp)
        )
    }

    /// Parses a segment path; `None` for anything else (the marker, foreign files).
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix(CATALOG_ROOT)?.strip_prefix('/')?;
        let mut parts = rest.rsplitn(4, '/');
        let file = parts.next()?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next()?.to_owned();
        let folder = parts.next()?.to_owned();
        let stem = file.strip_suffix(".cat")?.strip_prefix('L')?;
        let fields: Vec<&str> = stem.split('_').collect();
        let [level, first, last, min, max] = fields[..] else {
            return None;
        };
        let ts = |t: &str| match t {
            "none" => Some(None),
            t => t.parse().ok().map(Some),
        };
        Some(Self {
            folder,
            topic,
            partition,
            level: level.parse().ok()?,
            first_offset: first.parse().ok()?,
            last_offset: last.parse().ok()?,
            min_timestamp: ts(min)?,
            max_timestamp: ts(max)?,
        })
    }

    /// The name of a segment holding `entries` (non-empty, of one partition) at `level`.
    pub fn for_entries(folder: &str, level: u8, entries: &[CatalogEntry]) -> Option<Self> {
        let first = entries.first()?;
        Some(Self {
            folder: folder.to_owned(),
            topic: first.topic.clone(),
            partition: first.partition,
            level,
            first_offset: entries.iter().map(|e| e.first_offset).min()?,
            last_offset: entries.iter().map(|e| e.last_offset).max()?,
            min_timestamp: entries.iter().filter_map(|e| e.min_timestamp).min(),
            max_timestamp: entries.iter().filter_map(|e| e.max_timestamp).max(),
        })
    }

    /// Whether this segment's objects may hold records in the window (see [`CatalogEntry::may_overlap`]).
    pub fn may_overlap(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> bool {
        overlaps(self.min_timestamp, self.max_timestamp, from_ms, to_ms)
    }

    /// Whether `other` is a compaction that holds everything this segment holds (same partition, a
    /// higher level, an offset range that contains this one).
    pub fn is_covered_by(&self, other: &Self) -> bool {
        other.level > self.level
            && other.folder == self.folder
            && other.topic == self.topic
            && other.partition == self.partition
            && other.first_offset <= self.first_offset
            && self.last_offset <= other.last_offset
    }
}

/// The fingerprint stored for a key hash.
fn fingerprint(hash: u64) -> u32 {
    (hash >> 32) as u32
}

fn bucket_of(fingerprint: u32, bits: u8) -> u64 {
    if bits == 0 {
        0
    } else {
        u64::from(fingerprint >> (32 - u32::from(bits)))
    }
}

/// Encodes a segment. `keys[i]` holds the key hashes of `entries[i]` (any order, duplicates allowed).
/// `entries` must be in offset order.
pub fn encode_segment(entries: &[CatalogEntry], keys: &[Vec<u64>]) -> Vec<u8> {
    let mut pairs: Vec<(u32, u32)> = keys
        .iter()
        .enumerate()
        .flat_map(|(ordinal, hashes)| {
            hashes
                .iter()
                .map(move |h| (fingerprint(*h), ordinal as u32))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    encode_with_pairs(entries, pairs)
}

/// Encodes a segment from fingerprint pairs (sorted, deduplicated).
fn encode_with_pairs(entries: &[CatalogEntry], pairs: Vec<(u32, u32)>) -> Vec<u8> {
    let mut block = Vec::with_capacity(entries.len() * 300);
    // Where each entry line starts in the block, and the block's end: one entry can be read alone.
    let mut starts = Vec::with_capacity(entries.len() + 1);
    for entry in entries {
        starts.push(block.len() as u64);
        // Serializing plain strings and numbers cannot fail.
        if let Ok(line) = serde_json::to_vec(entry) {
            block.extend_from_slice(&line);
            block.push(b'\n');
        }
    }
    starts.push(block.len() as u64);
    let count = pairs.len() as u64;
    let mut bits = 0u8;
    while bits < MAX_BUCKET_BITS && (count >> bits) > PAIRS_PER_BUCKET {
        bits += 1;
    }
    let buckets = 1usize << bits;
    let mut directory = vec![0u64; buckets + 1];
    for (fp, _) in &pairs {
        directory[bucket_of(*fp, bits) as usize + 1] += 1;
    }
    for i in 1..=buckets {
        directory[i] += directory[i - 1];
    }
    let name = SegmentName::for_entries("", 0, entries);
    let mut out = Vec::with_capacity(
        SEGMENT_HEADER_BYTES + block.len() + 8 * starts.len() + 8 * (buckets + 1) + 8 * pairs.len(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, bits, 0, 0]);
    out.extend_from_slice(&(block.len() as u64).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let bound = |f: fn(&SegmentName) -> Option<i64>| name.as_ref().and_then(f).unwrap_or(i64::MIN);
    out.extend_from_slice(&bound(|n| Some(n.first_offset)).to_le_bytes());
    out.extend_from_slice(&bound(|n| Some(n.last_offset)).to_le_bytes());
    out.extend_from_slice(&bound(|n| n.min_timestamp).to_le_bytes());
    out.extend_from_slice(&bound(|n| n.max_timestamp).to_le_bytes());
    out.extend_from_slice(&block);
    for start in starts {
        out.extend_from_slice(&start.to_le_bytes());
    }
    for slot in directory {
        out.extend_from_slice(&slot.to_le_bytes());
    }
    for (fp, ordinal) in pairs {
        out.extend_from_slice(&fp.to_le_bytes());
        out.extend_from_slice(&ordinal.to_le_bytes());
    }
    out
}

/// Why segment bytes cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("catalog segment is corrupt: {0}")]
pub struct SegmentError(String);

impl SegmentError {
    /// An error with this reason.
    pub fn from_reason(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

fn corrupt(reason: impl Into<String>) -> SegmentError {
    SegmentError(reason.into())
}

/// A segment's fixed-size header, and where its parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    bucket_bits: u8,
    entries_bytes: u64,
    /// Objects listed.
    pub entries: u64,
    /// Key pairs.
    pub pairs: u64,
}

impl SegmentHeader {
    /// Parses the first [`SEGMENT_HEADER_BYTES`] of a segment.
    pub fn parse(bytes: &[u8]) -> Result<Self, SegmentError> {
        if bytes.len() < SEGMENT_HEADER_BYTES || &bytes[..4] != MAGIC {
            return Err(corrupt("no BSSC header"));
        }
        if bytes[4] != VERSION {
            return Err(corrupt(format!("unknown version {}", bytes[4])));
        }
        let u64_at = |at: usize| {
            bytes[at..at + 8]
                .try_into()
                .map(u64::from_le_bytes)
                .unwrap_or_default()
        };
        let header = Self {
            bucket_bits: bytes[5],
            entries_bytes: u64_at(8),
            entries: u64_at(16),
            pairs: u64_at(24),
        };
        if header.bucket_bits > MAX_BUCKET_BITS {
            return Err(corrupt(format!("{} bucket bits", header.bucket_bits)));
        }
        Ok(header)
    }

    /// Byte range of the entries block.
    pub fn entries_range(&self) -> Range<u64> {
        let start = SEGMENT_HEADER_BYTES as u64;
        start..start.saturating_add(self.entries_bytes)
    }

    /// Byte range of the two entry-table slots that bound entry `ordinal`'s line.
    pub fn entry_slots_range(&self, ordinal: u32) -> Range<u64> {
        let start = self.entries_range().end + 8 * u64::from(ordinal);
        start..start + 16
    }

    /// Byte range of one entry line, from its two entry-table slots (as read from
    /// [`Self::entry_slots_range`]).
    pub fn entry_range(&self, slots: &[u8]) -> Result<Range<u64>, SegmentError> {
        let (start, end) = (u64_slot(slots, 0)?, u64_slot(slots, 8)?);
        if start > end || end > self.entries_bytes {
            return Err(corrupt("entry table points outside the entries"));
        }
        let base = self.entries_range().start;
        Ok(base + start..base + end)
    }

    fn directory_start(&self) -> u64 {
        self.entries_range()
            .end
            .saturating_add(self.entries.saturating_add(1).saturating_mul(8))
    }

    fn pairs_start(&self) -> u64 {
        self.directory_start() + 8 * ((1u64 << self.bucket_bits) + 1)
    }

    /// Total size the header announces (a reader checks it against the object's size).
    pub fn total_bytes(&self) -> u64 {
        self.pairs_start()
            .saturating_add(self.pairs.saturating_mul(8))
    }

    /// Byte range of the two directory slots that bound the bucket of `hash`.
    pub fn directory_range(&self, hash: u64) -> Range<u64> {
        let start = self.directory_start() + 8 * bucket_of(fingerprint(hash), self.bucket_bits);
        start..start + 16
    }

    /// Byte range of the pairs a directory slot pair (as read from [`Self::directory_range`]) bounds.
    pub fn bucket_range(&self, slots: &[u8]) -> Result<Range<u64>, SegmentError> {
        let (first, end) = (u64_slot(slots, 0)?, u64_slot(slots, 8)?);
        if first > end || end > self.pairs {
            return Err(corrupt("directory points outside the pairs"));
        }
        Ok(self.pairs_start() + 8 * first..self.pairs_start() + 8 * end)
    }

    /// All pairs' byte range (compaction reads them whole).
    pub fn pairs_range(&self) -> Range<u64> {
        self.pairs_start()..self.total_bytes()
    }
}

fn u64_slot(slots: &[u8], at: usize) -> Result<u64, SegmentError> {
    slots
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt("short table slot"))
}

/// Parses one entry line (as located by [`SegmentHeader::entry_range`]).
pub fn parse_entry(line: &[u8]) -> Result<CatalogEntry, SegmentError> {
    serde_json::from_slice(line).map_err(|e| corrupt(format!("entry: {e}")))
}

/// The ordinals of the entries whose keys include one with `hash`'s fingerprint, from a bucket's bytes.
pub fn ordinals_with_key(bucket: &[u8], hash: u64) -> Vec<u32> {
    let wanted = fingerprint(hash);
    let mut ordinals: Vec<u32> = bucket
        .chunks_exact(8)
        .filter_map(|pair| {
            let fp = u32::from_le_bytes(pair[..4].try_into().ok()?);
            (fp == wanted).then(|| u32::from_le_bytes(pair[4..].try_into().unwrap_or_default()))
        })
        .collect();
    ordinals.dedup();
    ordinals
}

/// Parses an entries block.
pub fn parse_entries(block: &[u8]) -> Result<Vec<CatalogEntry>, SegmentError> {
    block
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line).map_err(|e| corrupt(format!("entry {i}: {e}")))
        })
        .collect()
}

/// A whole segment, decoded (for compaction and verification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its objects.
    pub entries: Vec<CatalogEntry>,
    /// (fingerprint, ordinal) pairs.
    pairs: Vec<(u32, u32)>,
}

impl Segment {
    /// Decodes a whole segment.
    pub fn decode(bytes: &[u8]) -> Result<Self, SegmentError> {
        let header = SegmentHeader::parse(bytes)?;
        if header.total_bytes() != bytes.len() as u64 {
            return Err(corrupt(format!(
                "{} bytes where the header announces {}",
                bytes.len(),
                header.total_bytes()
            )));
        }
        let range = |r: Range<u64>| &bytes[r.start as usize..r.end as usize];
        let entries = parse_entries(range(header.entries_range()))?;
        if entries.len() as u64 != header.entries {
            return Err(corrupt("entry count differs from the header"));
        }
        for ordinal in 0..entries.len() as u32 {
            let line = header.entry_range(range(header.entry_slots_range(ordinal)))?;
            if parse_entry(range(line))? != entries[ordinal as usize] {
                return Err(corrupt(format!(
                    "entry table slot {ordinal} points elsewhere"
                )));
            }
        }
        let pairs = range(header.pairs_range())
            .chunks_exact(8)
            .map(|p| {
                (
                    u32::from_le_bytes(p[..4].try_into().unwrap_or_default()),
                    u32::from_le_bytes(p[4..].try_into().unwrap_or_default()),
                )
            })
            .collect::<Vec<_>>();
        if pairs.iter().any(|(_, o)| u64::from(*o) >= header.entries) {
            return Err(corrupt("a key pair names an entry that does not exist"));
        }
        Ok(Self { entries, pairs })
    }

    /// Key pairs.
    pub fn pair_count(&self) -> usize {
        self.pairs.len()
    }

    /// Merges segments of one partition into one: entries in offset order, each object once (the same
    /// path in two inputs is the same object), key pairs carried over.
    pub fn merge(segments: Vec<Segment>) -> Segment {
        let mut tagged: Vec<(CatalogEntry, Vec<u32>)> = Vec::new();
        for segment in segments {
            let mut fingerprints: Vec<Vec<u32>> = vec![Vec::new(); segment.entries.len()];
            for (fp, ordinal) in segment.pairs {
                fingerprints[ordinal as usize].push(fp);
            }
            tagged.extend(segment.entries.into_iter().zip(fingerprints));
        }
        tagged.sort_by(|a, b| (a.0.first_offset, &a.0.path).cmp(&(b.0.first_offset, &b.0.path)));
        tagged.dedup_by(|a, b| a.0.path == b.0.path);
        let mut pairs = Vec::new();
        let mut entries = Vec::with_capacity(tagged.len());
        for (ordinal, (entry, fps)) in tagged.into_iter().enumerate() {
            pairs.extend(fps.into_iter().map(|fp| (fp, ordinal as u32)));
            entries.push(entry);
        }
        pairs.sort_unstable();
        pairs.dedup();
        Segment { entries, pairs }
    }

    /// The segment with the entry of object `path` replaced by `replacement` (the rewritten
    /// object's entry and key hashes) or removed (`None`), encoded: what an erasure writes one level
    /// up to supersede this segment. `false` when no entry has that path.
    pub fn replace_entry(
        &mut self,
        path: &str,
        replacement: Option<(CatalogEntry, Vec<u64>)>,
    ) -> bool {
        let Some(ordinal) = self.entries.iter().position(|e| e.path == path) else {
            return false;
        };
        let ordinal = ordinal as u32;
        self.pairs.retain(|(_, o)| *o != ordinal);
        match replacement {
            Some((entry, hashes)) => {
                self.entries[ordinal as usize] = entry;
                self.pairs
                    .extend(hashes.iter().map(|h| (fingerprint(*h), ordinal)));
            }
            None => {
                self.entries.remove(ordinal as usize);
                for (_, o) in &mut self.pairs {
                    if *o > ordinal {
                        *o -= 1;
                    }
                }
            }
        }
        self.pairs.sort_unstable();
        self.pairs.dedup();
        true
    }

    /// Encodes the segment.
    pub fn encode(&self) -> Vec<u8> {
        encode_with_pairs(&self.entries, self.pairs.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::key_hash;

    fn entry(first: i64, last: i64, min: Option<i64>, max: Option<i64>) -> CatalogEntry {
        CatalogEntry {
            path: format!("f/o{first}.txt"),
            topic: "t_x".into(),
            partition: 3,
            first_offset: first,
            last_offset: last,
            records: (last - first + 1) as u64,
            min_timestamp: min,
            max_timestamp: max,
            bytes: 100,
            checksum: "crc32c:00000000".into(),
            index_path: None,
        }
    }

    fn lookup(bytes: &[u8], key: &[u8]) -> Vec<u32> {
        let header = SegmentHeader::parse(bytes).expect("header");
        let slots = header.directory_range(key_hash(key));
        let bucket = header
            .bucket_range(&bytes[slots.start as usize..slots.end as usize])
            .expect("bucket");
        ordinals_with_key(
            &bytes[bucket.start as usize..bucket.end as usize],
            key_hash(key),
        )
    }

    #[test]
    fn names_round_trip_and_sort_by_offset() {
        let name = SegmentName::for_entries(
            "orders",
            1,
            &[entry(5, 9, Some(-3), Some(20)), entry(10, 12, None, None)],
        )
        .expect("name");
        assert_eq!(
            name.path(),
            ".bss-catalog/orders/t_x/3/L1_00000000000000000005_00000000000000000012_-3_20.cat"
        );
        assert_eq!(SegmentName::parse(&name.path()), Some(name.clone()));
        let none = SegmentName::for_entries("a/b", 0, &[entry(0, 0, None, None)]).expect("name");
        assert_eq!(SegmentName::parse(&none.path()), Some(none.clone()));
        assert!(!none.may_overlap(Some(0), None));
        assert!(none.may_overlap(None, None));
        assert!(SegmentName::parse(".bss-catalog/orders/_complete.json").is_none());
        assert!(none.is_covered_by(&SegmentName {
            level: 1,
            last_offset: 3,
            ..none.clone()
        }));
        assert!(!none.is_covered_by(&SegmentName {
            level: 1,
            first_offset: 1,
            ..none.clone()
        }));
    }

    #[test]
    fn a_key_finds_exactly_the_objects_that_hold_it() {
        let entries: Vec<_> = (0..40)
            .map(|i| entry(i * 100, i * 100 + 99, Some(i), Some(i + 5)))
            .collect();
        let keys: Vec<Vec<u64>> = (0..40u64)
            .map(|i| {
                (0..100u64)
                    .map(|k| key_hash(format!("k{}", i * 50 + k).as_bytes()))
                    .collect()
            })
            .collect();
        let bytes = encode_segment(&entries, &keys);
        let header = SegmentHeader::parse(&bytes).expect("header");
        assert_eq!(
            (header.entries, header.total_bytes()),
            (40, bytes.len() as u64)
        );
        // k{i*50+k} is in object i for k < 100: key 175 is in objects 2 and 3.
        assert_eq!(lookup(&bytes, b"k175"), vec![2, 3]);
        assert_eq!(lookup(&bytes, b"k0"), vec![0]);
        assert!(lookup(&bytes, b"absent").is_empty());
        let decoded = Segment::decode(&bytes).expect("decodes");
        assert_eq!(decoded.entries, entries);
        assert_eq!(decoded.pair_count(), 4000);
    }

    #[test]
    fn merging_keeps_every_key_and_each_object_once() {
        let a = encode_segment(&[entry(0, 9, Some(1), Some(2))], &[vec![key_hash(b"x")]]);
        let b = encode_segment(
            &[entry(10, 19, Some(3), Some(4))],
            &[vec![key_hash(b"y"), key_hash(b"x")]],
        );
        let again_a = a.clone();
        let merged = Segment::merge(
            [b, a, again_a]
                .iter()
                .map(|s| Segment::decode(s).expect("decodes"))
                .collect(),
        )
        .encode();
        let decoded = Segment::decode(&merged).expect("decodes");
        assert_eq!(
            decoded
                .entries
                .iter()
                .map(|e| e.first_offset)
                .collect::<Vec<_>>(),
            [0, 10]
        );
        assert_eq!(lookup(&merged, b"x"), vec![0, 1]);
        assert_eq!(lookup(&merged, b"y"), vec![1]);
    }

    #[test]
    fn an_entry_is_replaced_or_removed_with_its_keys() {
        let bytes = encode_segment(
            &[
                entry(0, 9, Some(1), Some(2)),
                entry(10, 19, Some(3), Some(4)),
                entry(20, 29, Some(5), Some(6)),
            ],
            &[
                vec![key_hash(b"x")],
                vec![key_hash(b"x"), key_hash(b"y")],
                vec![key_hash(b"y")],
            ],
        );
        let mut segment = Segment::decode(&bytes).expect("decodes");
        let mut rewritten = entry(11, 19, Some(3), Some(4));
        rewritten.path = "f/rewritten.txt".into();
        assert!(segment.replace_entry("f/o10.txt", Some((rewritten, vec![key_hash(b"y")]))));
        assert!(segment.replace_entry("f/o0.txt", None));
        assert!(!segment.replace_entry("f/absent.txt", None));
        let replaced = segment.encode();
        let decoded = Segment::decode(&replaced).expect("decodes");
        let paths: Vec<&str> = decoded.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["f/rewritten.txt", "f/o20.txt"]);
        assert_eq!(lookup(&replaced, b"x"), Vec::<u32>::new());
        assert_eq!(lookup(&replaced, b"y"), vec![0, 1]);
    }

    #[test]
    fn corrupt_segments_are_refused_with_a_reason() {
        let good = encode_segment(&[entry(0, 0, None, None)], &[vec![1]]);
        assert!(Segment::decode(&good[..good.len() - 1]).is_err());
        assert!(Segment::decode(b"not a segment").is_err());
        let mut bad_version = good.clone();
        bad_version[4] = 9;
        assert_eq!(
            Segment::decode(&bad_version).err().map(|e| e.to_string()),
            Some("catalog segment is corrupt: unknown version 9".into())
        );
        let mut bad_ordinal = good.clone();
        let at = bad_ordinal.len() - 4;
        bad_ordinal[at] = 7;
        assert!(Segment::decode(&bad_ordinal).is_err());
    }

    #[test]
    fn test_vector() {
        // docs/file-format.md §4 shows these bytes.
        let bytes = encode_segment(
            &[entry(7, 8, Some(1000), Some(2000))],
            &[vec![key_hash(b"key")]],
        );
        let header = SegmentHeader::parse(&bytes).expect("header");
        assert_eq!(header.pairs, 1);
        let tail: Vec<String> = bytes[bytes.len() - 24..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            tail.concat(),
            "00000000000000000100000000000000f7b67e4800000000"
        );
    }
}
