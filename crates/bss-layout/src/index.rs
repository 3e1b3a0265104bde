//! Per-object key index ("sidecar"): lets a reader decide whether an object can hold a key, and what
//! time range it covers, by reading a few dozen bytes instead of the object.
//!
//! Path: `.bss-index/<object path>.idx`. Written by the storer after its object, before its event;
//! an object without a sidecar must be treated as a candidate for every key and time.
//!
//! Layout (little-endian), specified in `docs/file-format.md` §3:
//! - header, [`HEADER_BYTES`] bytes: magic `BSSI`, version `1`, 3 zero bytes, records (u64),
//!   first offset (i64), last offset (i64), min timestamp (i64, `i64::MIN` = none), max timestamp (i64),
//!   distinct keys (u64), blocks (u32), bits set per key (u32);
//! - a blocked Bloom filter: `blocks` blocks of 64 bytes (512 bits). A key sets `BITS_PER_KEY_SET` bits
//!   of one block, so a lookup reads one header and one 64-byte block.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Root prefix of every sidecar.
pub const INDEX_ROOT: &str = ".bss-index";
/// Header size.
pub const HEADER_BYTES: u64 = 64;
/// Block size.
pub const BLOCK_BYTES: u64 = 64;
const MAGIC: &[u8; 4] = b"BSSI";
const VERSION: u8 = 1;
/// Filter bits per distinct key: about 0.5 % false positives for a blocked filter.
const FILTER_BITS_PER_KEY: u64 = 12;
/// Bits set per key inside its block.
const BITS_PER_KEY_SET: u32 = 8;

/// The sidecar path of an object path.
pub fn index_path(object_path: &str) -> String {
    format!("{INDEX_ROOT}/{object_path}.idx")
}

/// The hash of a key, stable across versions and platforms: FNV-1a 64 then the SplitMix64 finalizer.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn block_of(hash: u64, blocks: u32) -> u64 {
    ((hash >> 32) * u64::from(blocks)) >> 32
}

/// Bit positions (0..512) of a key inside its block: double hashing on a second mix of the hash.
fn bit_positions(hash: u64) -> impl Iterator<Item = u32> {
    let second = mix(hash ^ 0x9e37_79b9_7f4a_7c15);
    let h1 = second as u32;
    let h2 = ((second >> 32) as u32) | 1;
    (0..BITS_PER_KEY_SET).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % 512)
}

/// The fixed-size header of a sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// Records in the object.
    pub records: u64,
    /// First offset.
    pub first_offset: i64,
    /// Last offset.
    pub last_offset: i64,
    /// Smallest record timestamp.
    pub min_timestamp_ms: Option<i64>,
    /// Largest record timestamp.
    pub max_timestamp_ms: Option<i64>,
    /// Distinct non-null keys.
    pub distinct_keys: u64,
    /// Filter blocks.
    pub blocks: u32,
}

impl IndexHeader {
    /// Parses a header; `None` if the bytes are not a version-1 sidecar header.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_BYTES as usize || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return None;
        }
        let u64_at =
            |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let i64_at = |at: usize| u64_at(at) as i64;
        let optional = |v: i64| (v != i64::MIN).then_some(v);
        Some(Self {
            records: u64_at(8),
            first_offset: i64_at(16),
            last_offset: i64_at(24),
            min_timestamp_ms: optional(i64_at(32)),
            max_timestamp_ms: optional(i64_at(40)),
            distinct_keys: u64_at(48),
            blocks: u32::from_le_bytes(bytes[56..60].try_into().unwrap_or_default()),
        })
    }

    /// Byte range of the block a key would be in (for a ranged GET), or `None` if the filter is empty.
    pub fn block_range(&self, key: &[u8]) -> Option<std::ops::Range<u64>> {
        if self.blocks == 0 {
            return None;
        }
        let start = HEADER_BYTES + block_of(key_hash(key), self.blocks) * BLOCK_BYTES;
        Some(start..start + BLOCK_BYTES)
    }

    /// Whether records with timestamps in `[from, to]` (inclusive, either open) may be in the object.
    pub fn may_overlap(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> bool {
        match (self.min_timestamp_ms, self.max_timestamp_ms) {
            (Some(min), Some(max)) => {
                from_ms.is_none_or(|f| max >= f) && to_ms.is_none_or(|t| min <= t)
            }
            // Records without timestamps: only an unbounded window can match them.
            _ => from_ms.is_none() && to_ms.is_none(),
        }
    }
}

/// Whether `block` (the 64 bytes at [`IndexHeader::block_range`]) may contain `key`. False positives
/// are possible, false negatives are not.
pub fn block_may_contain(block: &[u8], key: &[u8]) -> bool {
    block.len() == BLOCK_BYTES as usize
        && bit_positions(key_hash(key)).all(|bit| block[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
}

/// The set of key hashes needs no second hash: [`key_hash`] values are already well mixed.
#[derive(Default)]
struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (a set of u64); fold anything else in for completeness.
        for byte in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Builds a sidecar while the object's records go by.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    hashes: HashSet<u64, BuildHasherDefault<KeyHashHasher>>,
    records: u64,
    first_offset: i64,
    last_offset: i64,
    min_timestamp_ms: Option<i64>,
    max_timestamp_ms: Option<i64>,
}

impl IndexBuilder {
    /// Accounts for the next record.
    pub fn add(&mut self, offset: i64, timestamp_ms: Option<i64>, key: Option<&[u8]>) {
        if self.records == 0 {
            self.first_offset = offset;
        }
        self.records += 1;
        self.last_offset = offset;
        if let Some(ts) = timestamp_ms {
            self.min_timestamp_ms = Some(self.min_timestamp_ms.map_or(ts, |m| m.min(ts)));
            self.max_timestamp_ms = Some(self.max_timestamp_ms.map_or(ts, |m| m.max(ts)));
        }
        if let Some(key) = key {
            self.hashes.insert(key_hash(key));
        }
    }

    /// The hashes of the distinct keys seen so far (the catalog indexes them).
    pub fn key_hashes(&self) -> Vec<u64> {
        self.hashes.iter().copied().collect()
    }

    /// The sidecar's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let keys = self.hashes.len() as u64;
        let blocks = if keys == 0 {
            0
        } else {
            (keys * FILTER_BITS_PER_KEY).div_ceil(512).max(1) as u32
        };
        let mut out = Vec::with_capacity((HEADER_BYTES + u64::from(blocks) * BLOCK_BYTES) as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&self.first_offset.to_le_bytes());
        out.extend_from_slice(&self.last_offset.to_le_bytes());
        out.extend_from_slice(&self.min_timestamp_ms.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&self.max_timestamp_ms.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&keys.to_le_bytes());
        out.extend_from_slice(&blocks.to_le_bytes());
        out.extend_from_slice(&BITS_PER_KEY_SET.to_le_bytes());
        let filter_start = out.len();
        out.resize(filter_start + (u64::from(blocks) * BLOCK_BYTES) as usize, 0);
        for &hash in &self.hashes {
            let block = filter_start + (block_of(hash, blocks) * BLOCK_BYTES) as usize;
            for bit in bit_positions(hash) {
                out[block + (bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(keys: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
        let mut builder = IndexBuilder::default();
        for (offset, key) in keys.enumerate() {
            builder.add(100 + offset as i64, Some(1_000 + offset as i64), Some(&key));
        }
        builder.add(999, None, None);
        builder.finish()
    }

    fn lookup(index: &[u8], key: &[u8]) -> bool {
        let header = IndexHeader::parse(index).expect("header");
        match header.block_range(key) {
            None => false,
            Some(range) => block_may_contain(&index[range.start as usize..range.end as usize], key),
        }
    }

    #[test]
    fn every_key_is_found_and_few_others_are() {
        let index = build((0..20_000u32).map(|i| format!("{{\"id\":{i}}}").into_bytes()));
        let header = IndexHeader::parse(&index).expect("header");
        assert_eq!(
            (header.records, header.first_offset, header.last_offset),
            (20_001, 100, 999)
        );
        assert_eq!(
            (header.min_timestamp_ms, header.max_timestamp_ms),
            (Some(1_000), Some(20_999))
        );
        assert_eq!(header.distinct_keys, 20_000);
        assert_eq!(
            index.len() as u64,
            HEADER_BYTES + u64::from(header.blocks) * BLOCK_BYTES
        );
        for i in 0..20_000u32 {
            assert!(
                lookup(&index, format!("{{\"id\":{i}}}").as_bytes()),
                "false negative {i}"
            );
        }
        let false_positives = (20_000..120_000u32)
            .filter(|i| lookup(&index, format!("{{\"id\":{i}}}").as_bytes()))
            .count();
        assert!(
            false_positives < 1_500,
            "{false_positives} false positives in 100,000 (want < 1.5 %)"
        );
    }

    #[test]
    fn the_hash_is_stable() {
        // Readers in other languages must compute the same values (docs/file-format.md §3); these
        // vectors were computed independently (a 10-line Python transcription of the spec).
        assert_eq!(key_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(key_hash(b"key"), 0x487e_b6f7_e0ea_7e7c);
    }

    #[test]
    fn time_overlap_is_inclusive() {
        let header = IndexHeader::parse(&build((0..3u8).map(|i| vec![i]))).expect("header");
        assert!(header.may_overlap(Some(1_002), None));
        assert!(header.may_overlap(None, Some(1_000)));
        assert!(!header.may_overlap(Some(1_003), None));
        assert!(!header.may_overlap(None, Some(999)));
        assert!(header.may_overlap(None, None));
        assert_eq!(
            index_path("orders/x.txt.zst"),
            ".bss-index/orders/x.txt.zst.idx"
        );
        assert!(IndexHeader::parse(b"not an index").is_none());
    }
}
