//! `bss inspect`: what the archive holds, and its records as JSON lines.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context as _;
use bss_archive::{Archive, ArchivedObject, Selection};
use bss_format::encode_line;
use bss_format::time::format_iso_ms;
use bss_layout::index::IndexHeader;
use clap::Subcommand;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::time::parse_time;
use crate::{Context, Outcome};

/// Sidecar headers are fetched this many at a time (small ranged GETs).
const HEADER_CONCURRENCY: usize = 16;

/// What to inspect.
#[derive(Subcommand)]
pub enum InspectCommand {
    /// Archived topics (folders): objects, bytes and time coverage.
    Topics {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The objects of a topic, with offsets, record counts and time range from their sidecars.
    Objects {
        /// Ingestion topic (its configured folder is used) or folder.
        #[arg(long)]
        topic: String,
        /// Only objects that may hold records at or after this time.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// Only objects that may hold records at or before this time.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print archived records as JSON lines (the archive's own line format, which `bss load
    /// --format records` reads back): one object, or a topic's time window and/or key.
    Read {
        /// Full object path, as listed by `inspect objects`.
        #[arg(long, conflicts_with_all = ["topic", "from", "to", "key"], required_unless_present = "topic")]
        object: Option<String>,
        /// Ingestion topic or folder.
        #[arg(long)]
        topic: Option<String>,
        /// Records at or after this time.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// Records at or before this time.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
        /// Only records with this key (its UTF-8 bytes).
        #[arg(long)]
        key: Option<String>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
    },
}

/// Runs an `inspect` command.
pub async fn run(context: &Context, command: InspectCommand) -> anyhow::Result<Outcome> {
    let archive = context.archive()?;
    match command {
        InspectCommand::Topics { json } => topics(&archive, json).await?,
        InspectCommand::Objects {
            topic,
            from,
            to,
            json,
        } => objects(&archive, &context.folder(&topic), from, to, json).await?,
        InspectCommand::Read {
            object,
            topic,
            from,
            to,
            key,
            limit,
        } => {
            let filter = Selection::window(from, to).with_key(key.map(String::into_bytes));
            let selection = match (object, topic) {
                (Some(path), _) => vec![archive.object(&path).await?],
                (None, Some(topic)) => {
                    let folder = context.folder(&topic);
                    let by_partition = archive.select(&folder, &filter).await?;
                    let mut objects: Vec<_> = by_partition.into_values().flatten().collect();
                    objects.sort_by(|a, b| a.path.cmp(&b.path));
                    objects
                }
                (None, None) => anyhow::bail!("give --object or --topic"),
            };
            read(&archive, &selection, &filter, limit).await?;
        }
    }
    Ok(Outcome::Done)
}

async fn read(
    archive: &Archive,
    objects: &[ArchivedObject],
    filter: &Selection,
    limit: Option<u64>,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut line = Vec::new();
    let mut printed = 0u64;
    for object in objects {
        let mut chunks = archive.read(object).await?;
        while let Some(chunk) = chunks.recv().await {
            for record in chunk? {
                if !filter.selects(&record) {
                    continue;
                }
                if limit.is_some_and(|l| printed >= l) {
                    return Ok(());
                }
                line.clear();
                encode_line(&record, &mut line);
                if let Err(e) = stdout.write_all(&line) {
                    // A closed pipe (`| head`) is the reader saying it has enough.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e).context("writing to stdout");
                }
                printed += 1;
            }
        }
    }
    Ok(())
}

/// One object as `inspect objects` reports it.
#[derive(Serialize)]
struct ObjectRow {
    path: String,
    partition: i32,
    first_offset: i64,
    last_offset: Option<i64>,
    records: Option<u64>,
    min_timestamp: Option<String>,
    max_timestamp: Option<String>,
    bytes: u64,
}

/// Sidecar headers of `objects` (None where an object has none, e.g. Mia-Platform's files).
async fn headers(
    archive: &Archive,
    objects: &[ArchivedObject],
) -> anyhow::Result<Vec<Option<IndexHeader>>> {
    Ok(futures::stream::iter(objects)
        .map(|o| archive.index_header(o))
        .buffered(HEADER_CONCURRENCY)
        .try_collect()
        .await?)
}

async fn objects(
    archive: &Archive,
    folder: &str,
    from: Option<i64>,
    to: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let kept: Vec<_> = archive
        .select(folder, &Selection::window(from, to))
        .await?
        .into_values()
        .flatten()
        .collect();
    let headers = headers(archive, &kept).await?;
    let rows: Vec<ObjectRow> = kept
        .iter()
        .zip(&headers)
        .map(|(o, h)| ObjectRow {
            path: o.path.to_string(),
            partition: o.name.partition,
            first_offset: o.name.first_offset,
            last_offset: h.as_ref().map(|h| h.last_offset),
            records: h.as_ref().map(|h| h.records),
            min_timestamp: h
                .as_ref()
                .and_then(|h| h.min_timestamp_ms)
                .map(format_iso_ms),
            max_timestamp: h
                .as_ref()
                .and_then(|h| h.max_timestamp_ms)
                .map(format_iso_ms),
            bytes: o.size,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let dash = || "-".to_owned();
    println!(
        "{:<4} {:>12} {:>12} {:>9} {:<24} {:<24} {:>11}  PATH",
        "PART", "FIRST", "LAST", "RECORDS", "MIN TIME", "MAX TIME", "BYTES"
    );
    for row in &rows {
        println!(
            "{:<4} {:>12} {:>12} {:>9} {:<24} {:<24} {:>11}  {}",
            row.partition,
            row.first_offset,
            row.last_offset.map_or_else(dash, |o| o.to_string()),
            row.records.map_or_else(dash, |r| r.to_string()),
            row.min_timestamp.clone().unwrap_or_else(dash),
            row.max_timestamp.clone().unwrap_or_else(dash),
            row.bytes,
            row.path
        );
    }
    println!(
        "{} objects, {} bytes",
        rows.len(),
        rows.iter().map(|r| r.bytes).sum::<u64>()
    );
    Ok(())
}

/// One folder as `inspect topics` reports it.
#[derive(Serialize)]
struct TopicRow {
    folder: String,
    partitions: usize,
    objects: usize,
    bytes: u64,
    /// Earliest first-record time among the objects.
    from: Option<String>,
    /// Latest record time, from the newest object of each partition (its sidecar, else its name).
    to: Option<String>,
}

async fn topics(archive: &Archive, json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for folder in archive.folders().await? {
        let folder = folder.trim_end_matches('/').to_owned();
        let objects = archive.list(&folder).await?;
        if objects.is_empty() {
            continue;
        }
        let mut newest: BTreeMap<i32, &ArchivedObject> = BTreeMap::new();
        for object in &objects {
            let slot = newest.entry(object.name.partition).or_insert(object);
            if object.name.first_offset > slot.name.first_offset {
                *slot = object;
            }
        }
        let newest: Vec<ArchivedObject> = newest.into_values().cloned().collect();
        let last_headers = headers(archive, &newest).await?;
        let to = newest
            .iter()
            .zip(&last_headers)
            .map(|(o, h)| {
                h.as_ref()
                    .and_then(|h| h.max_timestamp_ms)
                    .unwrap_or(o.name.first_timestamp_ms)
            })
            .max();
        rows.push(TopicRow {
            folder,
            partitions: newest.len(),
            objects: objects.len(),
            bytes: objects.iter().map(|o| o.size).sum(),
            from: objects
                .iter()
                .map(|o| o.name.first_timestamp_ms)
                .min()
                .map(format_iso_ms),
            to: to.map(format_iso_ms),
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<32} {:>5} {:>8} {:>13}  {:<24}  {:<24}",
        "FOLDER", "PARTS", "OBJECTS", "BYTES", "FROM", "TO"
    );
    for row in &rows {
        println!(
            "{:<32} {:>5} {:>8} {:>13}  {:<24}  {:<24}",
            row.folder,
            row.partitions,
            row.objects,
            row.bytes,
            row.from.as_deref().unwrap_or("-"),
            row.to.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
