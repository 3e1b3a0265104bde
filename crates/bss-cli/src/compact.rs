//! The latest record of every key as of a time, in bounded memory, for `dump` and `organize`.
//!
//! Pass 1 streams the archive once and appends each record (as an archive line) to one of N spill
//! files chosen by the key's hash, so each key lives in exactly one file. Pass 2 takes the files one
//! at a time and keeps the newest record per key in a hash map; a file larger than the memory budget
//! is first split again by other bits of the hash. Memory is thus bounded by the budget, not by the
//! archive, and disk use by the archive's uncompressed size.
//!
//! "Newest" for records of one partition is the higher offset (the order the storer archived); for
//! one key seen on several partitions (the topic was repartitioned) it is the later timestamp.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bss_archive::{Archive, ArchivedObject, Selection};
use bss_format::{decode_line, encode_line, Compression, Record};
use bss_layout::index::key_hash;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc;

use crate::progress::Progress;

/// At most this many spill files are written at once (each has a write buffer).
const MAX_SPILL_FILES: u64 = 256;
/// A spill file too large for the budget is split into this many.
const SPLIT_FANOUT: u64 = 16;
/// Splitting stops after this many rounds (then only a few keys with huge histories remain, and the
/// map holds one record per key whatever the file size).
const MAX_SPLIT_DEPTH: u32 = 3;
/// Objects downloaded ahead of the one being spilled.
const READ_AHEAD: usize = 4;

/// Where the latest-per-key computation reads from.
pub struct Inputs {
    /// Objects to read.
    pub objects: Vec<ArchivedObject>,
    /// The organized generation used as a base, if any (its as-of time).
    pub base: Option<i64>,
}

/// Picks the inputs for "latest per key as of `as_of`" on `folder`: the newest complete organized
/// generation not after `as_of` (unless `full`) plus the archive objects that may hold records newer
/// than it; or the whole archive up to `as_of`.
pub async fn select_inputs(
    archive: &Archive,
    store: &dyn ObjectStore,
    folder: &str,
    organized_prefix: &str,
    as_of: i64,
    full: bool,
) -> anyhow::Result<Inputs> {
    let base = if full {
        None
    } else {
        latest_generation(store, organized_prefix, folder, as_of).await?
    };
    // Objects are chosen by their real smallest and largest record times (catalog, or sidecars).
    let Some(base) = base else {
        let objects = archive
            .select(folder, &Selection::window(None, Some(as_of)))
            .await?;
        return Ok(Inputs {
            objects: objects.into_values().flatten().collect(),
            base: None,
        });
    };
    // Records at or before the base's time are in the base already: only objects that hold a newer
    // record are read.
    let mut objects: Vec<ArchivedObject> = archive
        .select(folder, &Selection::window(Some(base + 1), Some(as_of)))
        .await?
        .into_values()
        .flatten()
        .collect();
    let generation = generation_folder(organized_prefix, folder, base);
    objects.extend(archive.list(&generation).await?);
    Ok(Inputs {
        objects,
        base: Some(base),
    })
}

/// The folder of an organized generation.
pub fn generation_folder(prefix: &str, folder: &str, as_of: i64) -> String {
    format!("{prefix}/{folder}/{as_of}")
}

/// The object marking a generation complete (written last).
pub fn manifest_path(generation: &str) -> ObjectPath {
    ObjectPath::from(format!("{generation}/manifest.json"))
}

/// The newest complete generation of `folder` whose as-of time is not after `as_of`.
async fn latest_generation(
    store: &dyn ObjectStore,
    prefix: &str,
    folder: &str,
    as_of: i64,
) -> anyhow::Result<Option<i64>> {
    let listing = store
        .list_with_delimiter(Some(&ObjectPath::from(format!("{prefix}/{folder}"))))
        .await
        .context("listing the organized generations")?;
    let mut generations: Vec<i64> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename()?.parse().ok())
        .filter(|&g| g <= as_of)
        .collect();
    generations.sort_unstable();
    while let Some(generation) = generations.pop() {
        let manifest = manifest_path(&generation_folder(prefix, folder, generation));
        match store.head(&manifest).await {
            Ok(_) => return Ok(Some(generation)),
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e).context("reading an organized generation's manifest"),
        }
    }
    Ok(None)
}

/// Counts of a run.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Objects read.
    pub objects: u64,
    /// Records read.
    pub records: u64,
    /// Records newer than the as-of time, left out.
    pub after_as_of: u64,
    /// Records without a key, left out (they cannot be "the latest of a key").
    pub without_key: u64,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
}

/// The spilled records of pass 1, ready to be merged.
pub struct Spilled {
    _work: tempfile::TempDir,
    files: Vec<PathBuf>,
    budget: u64,
    /// Counts of pass 1.
    pub stats: Stats,
}

/// The newest records of a set of keys (sorted by key), and how many keys ended deleted.
pub struct Merged {
    /// Newest live record of each key, by key.
    pub records: Vec<Record>,
    /// Keys whose newest record is a tombstone.
    pub deleted: u64,
}

/// Pass 1: reads `objects` and spills every record at or before `as_of` by key hash.
pub async fn spill(
    archive: &Archive,
    objects: &[ArchivedObject],
    as_of: i64,
    budget: u64,
    work_dir: Option<&Path>,
) -> anyhow::Result<Spilled> {
    let work = match work_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the spill directory")?;
    // Spill files should come out near half the budget; compressed JSON lines expand about 8 times.
    let estimated: u64 = objects
        .iter()
        .map(|o| match o.name.compression {
            Compression::None => o.size,
            _ => o.size.saturating_mul(8),
        })
        .sum();
    let count = estimated
        .div_ceil((budget / 2).max(1))
        .clamp(1, MAX_SPILL_FILES);
    let files: Vec<PathBuf> = (0..count)
        .map(|i| work.path().join(format!("spill-{i:03}")))
        .collect();
    let mut writers = files
        .iter()
        .map(|p| File::create(p).map(|f| BufWriter::with_capacity(64 << 10, f)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("creating the spill files")?;
    let mut stats = Stats::default();
    let mut progress = Progress::new("read archive", "objects", Some(objects.len() as u64));
    let mut reads = futures::stream::iter(objects)
        .map(|o| archive.read(o))
        .buffered(READ_AHEAD);
    let mut line = Vec::new();
    while let Some(chunks) = reads.next().await {
        let mut chunks = chunks?;
        while let Some(chunk) = chunks.recv().await {
            for record in chunk? {
                stats.records += 1;
                if record.timestamp_ms.is_some_and(|ts| ts > as_of) {
                    stats.after_as_of += 1;
                    continue;
                }
                let Some(key) = &record.key else {
                    stats.without_key += 1;
                    continue;
                };
                line.clear();
                encode_line(&record, &mut line);
                stats.spilled_bytes += line.len() as u64;
                let index = (key_hash(key) % count) as usize;
                writers[index]
                    .write_all(&line)
                    .context("writing a spill file (is the work directory full?)")?;
            }
        }
        stats.objects += 1;
        progress.inc(1);
    }
    progress.finish();
    for writer in &mut writers {
        writer.flush().context("writing a spill file")?;
    }
    Ok(Spilled {
        _work: work,
        files,
        budget,
        stats,
    })
}

impl Spilled {
    /// Pass 2, on a blocking thread: the merged spill files, one batch at a time.
    pub fn merge(self) -> mpsc::Receiver<anyhow::Result<Merged>> {
        let (tx, rx) = mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            let mut progress = Progress::new("merge", "spill files", Some(self.files.len() as u64));
            for file in &self.files {
                if let Err(e) = merge_file(file, 0, self.budget, &tx) {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
                progress.inc(1);
            }
            progress.finish();
            // `self` (and with it the spill directory) lives until every batch is sent.
            drop(self);
        });
        rx
    }
}

fn merge_file(
    path: &Path,
    depth: u32,
    budget: u64,
    tx: &mpsc::Sender<anyhow::Result<Merged>>,
) -> anyhow::Result<()> {
    let size = std::fs::metadata(path)
        .context("reading a spill file")?
        .len();
    if size > budget && depth < MAX_SPLIT_DEPTH {
        for part in split(path, depth)? {
            merge_file(&part, depth + 1, budget, tx)?;
        }
        return Ok(());
    }
    let mut newest: HashMap<Vec<u8>, Record> = HashMap::new();
    for record in read_spill(path) {
        let record = record?;
        let Some(key) = record.key.clone() else {
            continue;
        };
        match newest.get_mut(&key) {
            Some(kept) if !is_newer(&record, kept) => {}
            Some(kept) => *kept = record,
            None => {
                newest.insert(key, record);
            }
        }
    }
    std::fs::remove_file(path).context("removing a merged spill file")?;
    let mut records: Vec<Record> = newest.into_values().collect();
    let before = records.len();
    records.retain(|r| r.payload.is_some());
    let deleted = (before - records.len()) as u64;
    records.sort_by(|a, b| a.key.cmp(&b.key));
    if !records.is_empty() || deleted > 0 {
        // The receiver stopping is not an error here; it reports its own.
        let _ = tx.blocking_send(Ok(Merged { records, deleted }));
    }
    Ok(())
}

/// Whether `candidate` supersedes `kept` (records of one key).
pub fn is_newer(candidate: &Record, kept: &Record) -> bool {
    if candidate.partition == kept.partition && candidate.topic == kept.topic {
        return candidate.offset > kept.offset;
    }
    (
        candidate.timestamp_ms,
        candidate.partition,
        candidate.offset,
    ) > (kept.timestamp_ms, kept.partition, kept.offset)
}

fn read_spill(path: &Path) -> impl Iterator<Item = anyhow::Result<Record>> {
    let reader = File::open(path).map(|f| BufReader::with_capacity(1 << 20, f));
    let mut reader = Some(reader);
    let mut line = Vec::new();
    std::iter::from_fn(move || {
        let input = match reader.as_mut()? {
            Ok(input) => input,
            Err(e) => {
                let error = anyhow::anyhow!("opening a spill file: {e}");
                reader = None;
                return Some(Err(error));
            }
        };
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                decode_line(&line, None)
                    .map_err(|e| anyhow::anyhow!("re-reading a spill file: {e}")),
            ),
            Err(e) => Some(Err(anyhow::anyhow!("reading a spill file: {e}"))),
        }
    })
}

/// Splits a spill file by the next 4 bits of the key hash (the first split used the modulus).
fn split(path: &Path, depth: u32) -> anyhow::Result<Vec<PathBuf>> {
    let parts: Vec<PathBuf> = (0..SPLIT_FANOUT)
        .map(|i| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{i:x}"));
            PathBuf::from(name)
        })
        .collect();
    let mut writers = parts
        .iter()
        .map(|p| File::create(p).map(BufWriter::new))
        .collect::<std::io::Result<Vec<_>>>()
        .context("creating spill files")?;
    let mut line = Vec::new();
    for record in read_spill(path) {
        let record = record?;
        let hash = record.key.as_deref().map_or(0, key_hash);
        let index = ((hash >> (32 + 4 * depth)) % SPLIT_FANOUT) as usize;
        line.clear();
        encode_line(&record, &mut line);
        writers[index]
            .write_all(&line)
            .context("writing a spill file")?;
    }
    for writer in &mut writers {
        writer.flush().context("writing a spill file")?;
    }
    std::fs::remove_file(path).context("removing a split spill file")?;
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bss_format::TimestampType;

    use super::*;

    fn record(partition: i32, offset: i64, ts: i64, key: &str, value: Option<&str>) -> Record {
        Record {
            topic: Arc::from("t"),
            partition,
            offset,
            timestamp_ms: Some(ts),
            timestamp_type: TimestampType::CreateTime,
            key: Some(key.as_bytes().to_vec()),
            payload: value.map(|v| v.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    #[test]
    fn offsets_decide_within_a_partition_and_time_across_partitions() {
        // A producer clock going backwards does not reorder one partition.
        assert!(is_newer(
            &record(0, 5, 100, "k", None),
            &record(0, 4, 900, "k", None)
        ));
        assert!(!is_newer(
            &record(0, 3, 900, "k", None),
            &record(0, 4, 100, "k", None)
        ));
        assert!(is_newer(
            &record(1, 0, 901, "k", None),
            &record(0, 4, 900, "k", None)
        ));
    }

    #[test]
    fn oversized_spill_files_are_split_and_every_key_keeps_its_newest_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spill");
        let mut plain = Vec::new();
        for round in 0..3 {
            for k in 0..500 {
                let value = (k % 10 != 0 || round < 2).then(|| format!("v{round}-{k}"));
                encode_line(
                    &record(0, round * 500 + k, 1, &format!("key-{k}"), value.as_deref()),
                    &mut plain,
                );
            }
        }
        std::fs::write(&path, &plain).expect("spill file");
        let (tx, mut rx) = mpsc::channel(1024);
        // A budget far below the file size forces splits down to the depth limit.
        merge_file(&path, 0, 1024, &tx).expect("merge");
        drop(tx);
        let mut live = HashMap::new();
        let mut deleted = 0;
        let mut batches = 0;
        while let Some(batch) = rx.blocking_recv() {
            let batch = batch.expect("batch");
            batches += 1;
            deleted += batch.deleted;
            for r in batch.records {
                assert!(
                    live.insert(r.key.clone().expect("key"), r.payload.clone())
                        .is_none(),
                    "a key twice"
                );
            }
        }
        assert!(batches > 16, "split into {batches} batches");
        assert_eq!(deleted, 50);
        assert_eq!(live.len(), 450);
        assert_eq!(live.get(b"key-7".as_slice()), Some(&Some(b"v2-7".to_vec())));
        assert!(!live.contains_key(b"key-10".as_slice()));
    }
}
