//! `bss organize --format parquet` and `bss verify --parquet`: a query-ready Parquet copy of a
//! folder's archive, beside it and never touching it (see `docs/analytics.md`).
//!
//! Layout under the prefix, Hive-style so that DuckDB, Spark, Athena/Trino and BigQuery read the
//! `topic`, `date` and `hour` keys from the paths:
//!
//! ```text
//! <prefix>/topic=<topic>/date=<yyyy-mm-dd>/hour=<hh>/part-<partition>-<first offset>-<last offset>.parquet
//! <prefix>/_bss/<folder>.manifest.json   per source partition, the last offset converted
//! <prefix>/_bss/<folder>.running.json    present while a run converts (a crash leaves it)
//! ```
//!
//! Each run converts the archive objects past the manifest's offsets, whole objects only, so an
//! offset lands in exactly one file. A partition's files are written before its manifest entry, and
//! a run that finds the `running` marker first deletes the files past the manifest that the
//! interrupted run wrote: readers then never see a row twice once a run has completed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use anyhow::Context as _;
use bss_archive::{Archive, ArchivedObject, Selection};
use bss_columnar::{hour_directory, WriteOptions};
use bss_format::{encode_line, Record};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::progress::Progress;
use crate::{Context, Outcome};

/// Files encoded and uploaded while the next records are read.
const WRITES_IN_FLIGHT: usize = 2;
/// Memory of a file being encoded, per byte of its records: the records, their Arrow columns and
/// the Parquet output (measured peak about 2.5×).
const ENCODE_COST: u64 = 3;

/// Settings of a Parquet run.
pub struct ParquetRun<'a> {
    /// Prefix of the copy.
    pub prefix: &'a str,
    /// A file is sealed at this many bytes of records (keys, values, headers).
    pub max_file_bytes: u64,
    /// Memory for the records of open hours and the files being encoded (each counted
    /// [`ENCODE_COST`] times its records).
    pub memory: u64,
    /// Report only.
    pub dry_run: bool,
}

/// What has been converted: per topic and partition, the last offset.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    format: String,
    folder: String,
    through: BTreeMap<String, BTreeMap<i32, i64>>,
    files: u64,
    rows: u64,
    updated_at: String,
}

impl Manifest {
    fn through(&self, topic: &str, partition: i32) -> Option<i64> {
        self.through.get(topic)?.get(&partition).copied()
    }
}

/// The marker of a run in progress: the topics whose directories it writes to.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunningMarker {
    topics: BTreeSet<String>,
    started_at: String,
}

fn manifest_path(prefix: &str, folder: &str) -> Path {
    Path::from(format!("{prefix}/_bss/{folder}.manifest.json"))
}

fn marker_path(prefix: &str, folder: &str) -> Path {
    Path::from(format!("{prefix}/_bss/{folder}.running.json"))
}

/// A data file's name: `part-<partition>-<first>-<last>.parquet`.
fn file_name(partition: i32, first: i64, last: i64) -> String {
    format!("part-{partition}-{first}-{last}.parquet")
}

/// The partition and offset range a data file's name gives.
fn parse_file_name(name: &str) -> Option<(i32, i64, i64)> {
    let middle = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut parts = middle.splitn(3, '-');
    let partition = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    Some((partition, first, last))
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> anyhow::Result<Option<T>> {
    match store.get(path).await {
        Ok(found) => {
            let bytes = found
                .bytes()
                .await
                .with_context(|| format!("reading {path}"))?;
            let value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{path} is not a valid organizer file"))?;
            Ok(Some(value))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

async fn put(store: &Arc<dyn ObjectStore>, path: &Path, bytes: Vec<u8>) -> anyhow::Result<()> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .with_context(|| format!("writing {path}"))?;
    Ok(())
}

fn now_iso() -> String {
    bss_format::time::format_iso_ms(crate::dump::now_ms())
}

/// The data files of a topic under the prefix, with their partition and offsets.
async fn list_files(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    topic: &str,
) -> anyhow::Result<Vec<(Path, (i32, i64, i64))>> {
    let listed: Vec<Path> = store
        .list(Some(&Path::from(format!("{prefix}/topic={topic}"))))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .with_context(|| format!("listing {prefix}/topic={topic}/"))?;
    Ok(listed
        .into_iter()
        .filter_map(|path| {
            let parsed = parse_file_name(path.filename()?)?;
            Some((path, parsed))
        })
        .collect())
}

/// Converts the new part of `folder`'s archive.
pub async fn organize(context: &Context, run: &ParquetRun<'_>, folder: &str) -> anyhow::Result<()> {
    let archive = context.archive()?;
    let store = archive.store().clone();
    let mut manifest: Manifest = read_json(&store, &manifest_path(run.prefix, folder))
        .await?
        .unwrap_or_else(|| Manifest {
            format: "parquet".into(),
            folder: folder.into(),
            ..Manifest::default()
        });
    let todo: Vec<Vec<ArchivedObject>> = archive
        .select(folder, &Selection::all())
        .await
        .with_context(|| format!("listing the archive of {folder}"))?
        .into_values()
        .flat_map(by_topic)
        .map(|objects| {
            objects
                .into_iter()
                .filter(|o| {
                    manifest
                        .through(&o.name.topic, o.name.partition)
                        .is_none_or(|through| o.name.first_offset > through)
                })
                .collect::<Vec<_>>()
        })
        .filter(|objects| !objects.is_empty())
        .collect();
    let objects: usize = todo.iter().map(Vec::len).sum();
    let bytes: u64 = todo.iter().flatten().map(|o| o.size).sum();
    println!(
        "Converting {folder} to Parquet under {}/: {objects} new archive objects ({bytes} bytes) in {} partitions.",
        run.prefix,
        todo.len()
    );
    if run.dry_run {
        println!("Dry run: nothing written.");
        return Ok(());
    }
    let marker = marker_path(run.prefix, folder);
    if let Some(interrupted) = read_json::<RunningMarker>(&store, &marker).await? {
        let removed = remove_leftovers(&store, run.prefix, &interrupted.topics, &manifest).await?;
        println!(
            "An interrupted run (started {}) left {removed} files past the manifest: removed.",
            interrupted.started_at
        );
    }
    if todo.is_empty() {
        store.delete(&marker).await.ok();
        println!("{folder}: the Parquet copy is up to date.");
        return Ok(());
    }
    let running = RunningMarker {
        topics: todo
            .iter()
            .flatten()
            .map(|o| o.name.topic.clone())
            .collect(),
        started_at: now_iso(),
    };
    put(&store, &marker, serde_json::to_vec_pretty(&running)?).await?;

    let mut progress = Progress::new("organize-parquet", "objects", Some(objects as u64));
    let (mut files, mut rows) = (0u64, 0u64);
    for objects in todo {
        let topic = objects[0].name.topic.clone();
        let partition = objects[0].name.partition;
        let done = convert_partition(&archive, run, &objects, &mut progress).await?;
        files += done.files;
        rows += done.rows;
        // This partition's files are all written: only now does the manifest cover them.
        let last = done
            .last_offset
            .unwrap_or(objects[objects.len() - 1].name.first_offset);
        manifest
            .through
            .entry(topic)
            .or_default()
            .insert(partition, last);
        manifest.files += done.files;
        manifest.rows += done.rows;
        manifest.updated_at = now_iso();
        put(
            &store,
            &manifest_path(run.prefix, folder),
            serde_json::to_vec_pretty(&manifest)?,
        )
        .await?;
    }
    progress.finish();
    store
        .delete(&marker)
        .await
        .with_context(|| format!("removing {marker}"))?;
    println!("Wrote {files} Parquet files holding {rows} records from {objects} archive objects.");
    Ok(())
}

/// Splits one partition's objects by topic (a folder may hold several topics).
fn by_topic(objects: Vec<ArchivedObject>) -> Vec<Vec<ArchivedObject>> {
    let mut topics: BTreeMap<String, Vec<ArchivedObject>> = BTreeMap::new();
    for object in objects {
        topics
            .entry(object.name.topic.clone())
            .or_default()
            .push(object);
    }
    topics.into_values().collect()
}

async fn remove_leftovers(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    topics: &BTreeSet<String>,
    manifest: &Manifest,
) -> anyhow::Result<u64> {
    let mut removed = 0;
    for topic in topics {
        for (path, (partition, first, _)) in list_files(store, prefix, topic).await? {
            if manifest
                .through(topic, partition)
                .is_none_or(|through| first > through)
            {
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                    Err(e) => return Err(e).with_context(|| format!("removing {path}")),
                }
            }
        }
    }
    Ok(removed)
}

struct Converted {
    files: u64,
    rows: u64,
    last_offset: Option<i64>,
}

/// Records of one hour of one partition, not yet written.
#[derive(Default)]
struct OpenFile {
    records: Vec<Record>,
    bytes: u64,
}

/// What a record holds in memory: its bytes, and about 200 bytes of `Record` and allocations.
fn record_bytes(record: &Record) -> u64 {
    (200 + record.byte_size()) as u64
}

/// Converts one topic-partition's objects, in offset order, into one file per hour (more when an
/// hour holds more than `max_file_bytes`).
async fn convert_partition(
    archive: &Archive,
    run: &ParquetRun<'_>,
    objects: &[ArchivedObject],
    progress: &mut Progress,
) -> anyhow::Result<Converted> {
    let store = archive.store().clone();
    let mut open: HashMap<String, OpenFile> = HashMap::new();
    let mut open_bytes = 0u64;
    let mut writes = Writes {
        tasks: JoinSet::new(),
        cost: 0,
    };
    // A file must fit in the budget while the next hour fills.
    let max_file_bytes = run
        .max_file_bytes
        .min(run.memory / (ENCODE_COST + 1))
        .max(1);
    let mut done = Converted {
        files: 0,
        rows: 0,
        last_offset: None,
    };
    for object in objects {
        let mut chunks = archive
            .read(object)
            .await
            .with_context(|| format!("reading {}", object.path))?;
        while let Some(chunk) = chunks.recv().await {
            for record in chunk.with_context(|| format!("reading {}", object.path))? {
                done.last_offset = done.last_offset.max(Some(record.offset));
                let bytes = record_bytes(&record);
                let file = open
                    .entry(hour_directory(&record.topic, record.timestamp_ms))
                    .or_default();
                file.records.push(record);
                file.bytes += bytes;
                open_bytes += bytes;
            }
            // Seal full hours, then the largest ones while over the memory budget.
            loop {
                let largest = open
                    .iter()
                    .max_by_key(|(_, f)| f.bytes)
                    .map(|(dir, f)| (dir.clone(), f.bytes));
                let Some((dir, bytes)) = largest else { break };
                if bytes < max_file_bytes && open_bytes + writes.cost <= run.memory {
                    break;
                }
                let file = open.remove(&dir).unwrap_or_default();
                open_bytes -= file.bytes;
                seal(&mut writes, &store, run, open_bytes, dir, file, &mut done).await?;
            }
        }
        progress.inc(1);
    }
    let mut open_bytes: u64 = open.values().map(|f| f.bytes).sum();
    for (dir, file) in open {
        open_bytes -= file.bytes;
        seal(&mut writes, &store, run, open_bytes, dir, file, &mut done).await?;
    }
    while writes.wait_one().await? {}
    Ok(done)
}

/// Files being encoded and uploaded, and the memory they hold.
struct Writes {
    tasks: JoinSet<anyhow::Result<u64>>,
    cost: u64,
}

impl Writes {
    /// Waits for one write to finish; false when none was running.
    async fn wait_one(&mut self) -> anyhow::Result<bool> {
        match self.tasks.join_next().await {
            None => Ok(false),
            Some(written) => {
                self.cost -= written.context("a Parquet write task failed")??;
                Ok(true)
            }
        }
    }
}

/// Hands a file to a write task, first waiting for running ones while [`WRITES_IN_FLIGHT`] are
/// running or the budget (with `open_bytes` still held) would be exceeded.
async fn seal(
    writes: &mut Writes,
    store: &Arc<dyn ObjectStore>,
    run: &ParquetRun<'_>,
    open_bytes: u64,
    dir: String,
    file: OpenFile,
    done: &mut Converted,
) -> anyhow::Result<()> {
    let cost = file.bytes * ENCODE_COST;
    while writes.tasks.len() >= WRITES_IN_FLIGHT
        || (!writes.tasks.is_empty() && open_bytes + writes.cost + cost > run.memory)
    {
        writes.wait_one().await?;
    }
    let records = file.records;
    let (Some(first), Some(last)) = (
        records.iter().map(|r| r.offset).min(),
        records.iter().map(|r| r.offset).max(),
    ) else {
        return Ok(());
    };
    let partition = records[0].partition;
    let path = Path::from(format!(
        "{}/{dir}/{}",
        run.prefix,
        file_name(partition, first, last)
    ));
    done.files += 1;
    done.rows += records.len() as u64;
    let store = Arc::clone(store);
    writes.cost += cost;
    writes.tasks.spawn(async move {
        let encoded = tokio::task::spawn_blocking(move || {
            bss_columnar::encode(records, &WriteOptions::default())
        })
        .await
        .context("the Parquet encoder stopped")?
        .with_context(|| format!("encoding {path}"))?;
        put(&store, &path, encoded.bytes).await?;
        bss_failpoint::reached("parquet-file-written");
        Ok(cost)
    });
    Ok(())
}

/// A difference between the archive and its Parquet copy.
#[derive(Debug, Serialize)]
struct ParquetFinding {
    kind: &'static str,
    topic: String,
    partition: i32,
    offset: Option<i64>,
    detail: String,
}

/// Checks that the Parquet copy holds exactly the archive's records up to the manifest: each once,
/// byte for byte, in the file its name and directory promise.
pub async fn verify(
    context: &Context,
    topics: &[String],
    prefix: &str,
    json: bool,
) -> anyhow::Result<Outcome> {
    let archive = context.archive()?;
    let store = archive.store().clone();
    let mut findings = Vec::new();
    let mut checked = 0u64;
    for topic in topics {
        let folder = context.folder(topic);
        let Some(manifest) = read_json::<Manifest>(&store, &manifest_path(prefix, &folder)).await?
        else {
            anyhow::bail!("{folder} has no Parquet copy under {prefix}/ (no manifest)");
        };
        // Per (topic, partition): offset → record hash, from the Parquet files.
        let mut copied: HashMap<(String, i32), HashMap<i64, u64>> = HashMap::new();
        for topic in manifest.through.keys() {
            for (path, (partition, first, last)) in list_files(&store, prefix, topic).await? {
                let bytes = store
                    .get(&path)
                    .await
                    .with_context(|| format!("reading {path}"))?
                    .bytes()
                    .await
                    .with_context(|| format!("reading {path}"))?;
                let records = match bss_columnar::decode(bytes) {
                    Ok(records) => records,
                    Err(e) => {
                        findings.push(finding(
                            "corrupt",
                            topic,
                            partition,
                            None,
                            format!("{path}: {e}"),
                        ));
                        continue;
                    }
                };
                let place = path.to_string();
                for record in records {
                    let dir = hour_directory(&record.topic, record.timestamp_ms);
                    if &*record.topic != topic.as_str()
                        || record.partition != partition
                        || !(first..=last).contains(&record.offset)
                        || !place.contains(&format!("/{dir}/"))
                    {
                        findings.push(finding(
                            "misplaced",
                            &record.topic,
                            record.partition,
                            Some(record.offset),
                            format!(
                                "in {place}, which is for another partition, offset range or hour"
                            ),
                        ));
                    }
                    if manifest
                        .through(topic, partition)
                        .is_none_or(|through| record.offset > through)
                    {
                        findings.push(finding(
                            "leftover",
                            topic,
                            partition,
                            Some(record.offset),
                            format!("{place} is past the manifest (an interrupted run's; the next organize removes it)"),
                        ));
                    }
                    let seen = copied
                        .entry((topic.clone(), partition))
                        .or_default()
                        .insert(record.offset, hash(&record));
                    if seen.is_some() {
                        findings.push(finding(
                            "duplicate",
                            topic,
                            partition,
                            Some(record.offset),
                            format!("in two Parquet files (one is {place})"),
                        ));
                    }
                }
            }
        }
        for group in archive
            .select(&folder, &Selection::all())
            .await?
            .into_values()
        {
            for object in group {
                let Some(through) = manifest.through(&object.name.topic, object.name.partition)
                else {
                    continue;
                };
                if object.name.first_offset > through {
                    continue;
                }
                let mut chunks = archive.read(&object).await?;
                while let Some(chunk) = chunks.recv().await {
                    for record in chunk? {
                        checked += 1;
                        let rows = copied
                            .entry((record.topic.to_string(), record.partition))
                            .or_default();
                        match rows.remove(&record.offset) {
                            None => findings.push(finding(
                                "missing",
                                &record.topic,
                                record.partition,
                                Some(record.offset),
                                format!("archived in {} but in no Parquet file", object.path),
                            )),
                            Some(h) if h != hash(&record) => findings.push(finding(
                                "differs",
                                &record.topic,
                                record.partition,
                                Some(record.offset),
                                format!("the Parquet row is not the record of {}", object.path),
                            )),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        for ((topic, partition), rows) in copied {
            for offset in rows.into_keys() {
                if manifest
                    .through(&topic, partition)
                    .is_some_and(|through| offset <= through)
                {
                    findings.push(finding(
                        "extra",
                        &topic,
                        partition,
                        Some(offset),
                        "in the Parquet copy but in no archive object".into(),
                    ));
                }
            }
        }
    }
    findings
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": findings.is_empty(),
                "recordsChecked": checked,
                "problems": findings,
            }))?
        );
    } else {
        for f in &findings {
            let offset = f
                .offset
                .map_or_else(String::new, |o| format!(" offset {o}"));
            println!(
                "PROBLEM {}: {} partition {}{offset}: {}",
                f.kind, f.topic, f.partition, f.detail
            );
        }
        println!(
            "{}: {checked} archived records checked against the Parquet copy under {prefix}/, {} problems.",
            if findings.is_empty() { "OK" } else { "FAILED" },
            findings.len()
        );
    }
    Ok(if findings.is_empty() {
        Outcome::Done
    } else {
        Outcome::ProblemsFound
    })
}

fn finding(
    kind: &'static str,
    topic: &str,
    partition: i32,
    offset: Option<i64>,
    detail: String,
) -> ParquetFinding {
    ParquetFinding {
        kind,
        topic: topic.to_owned(),
        partition,
        offset,
        detail,
    }
}

/// A record's identity for the comparison: its archive line (every field, byte for byte).
fn hash(record: &Record) -> u64 {
    let mut line = Vec::new();
    encode_line(record, &mut line);
    let mut hasher = DefaultHasher::new();
    line.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_partition_and_offsets() {
        assert_eq!(file_name(3, 10, 99), "part-3-10-99.parquet");
        assert_eq!(parse_file_name("part-3-10-99.parquet"), Some((3, 10, 99)));
        assert_eq!(parse_file_name("part-3-10.parquet"), None);
        assert_eq!(parse_file_name("_SUCCESS"), None);
    }
}
