//! `bss organize`: a compacted copy of a topic's archive (the newest record of every key as of a
//! time) under a separate prefix, leaving the original objects untouched. Each run writes a new
//! generation, `<prefix>/<folder>/<as-of-ms>/`, in the archive's own format (objects named by
//! partition and first offset, with key-index sidecars), then a `manifest.json` that marks it complete.
//! `bss dump` (and the next `organize`) start from the newest complete generation and read only the
//! archive objects newer than it, and key lookups on a generation touch one small object.
//!
//! With `--format parquet` it writes the query-ready Parquet copy instead ([`crate::columnar`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bss_format::time::format_iso_ms;
use bss_format::{encode_line, Record};
use bss_layout::index::{index_path, IndexBuilder};
use bss_layout::ObjectName;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::columnar::ParquetRun;
use crate::compact::{self, generation_folder, manifest_path, Merged, Stats};
use crate::dump::{now_ms, parse_size};
use crate::time::parse_time;
use crate::{Context, Outcome};

/// Arguments of `bss organize`.
#[derive(clap::Args)]
pub struct OrganizeArgs {
    /// Ingestion topic (its configured folder is read) or folder; repeat for several [default: every
    /// ingestion topic of the configuration].
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Newest records as of this time (inclusive) [default: now].
    #[arg(long, value_parser = parse_time)]
    as_of: Option<i64>,
    /// What to write: `compacted`, the newest record of every key in the archive's format, or
    /// `parquet`, every record in Parquet files partitioned by topic, date and hour, for analytics.
    #[arg(long, value_enum, default_value_t = Format::Compacted)]
    format: Format,
    /// Prefix of the copies [default: .bss-organized, or .bss-parquet with `--format parquet`];
    /// the archive's readers skip both.
    #[arg(long)]
    prefix: Option<String>,
    /// Files of the copy are sealed at this many uncompressed bytes [default: 8MiB, or 64MiB with
    /// `--format parquet`].
    #[arg(long, value_parser = parse_size)]
    max_object_bytes: Option<u64>,
    /// Memory for the merge (the archive beyond it is spilled to disk), or with `--format parquet`
    /// for the records of the hours not yet written.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    memory: u64,
    /// Directory for spill files [default: the system temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Read the whole archive instead of starting from the newest generation.
    #[arg(long)]
    full: bool,
    /// Show what would be read and written, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The shapes `bss organize` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The newest record of every key as of a time, in the archive's own format.
    Compacted,
    /// Every record, in Parquet, for SQL engines.
    Parquet,
}

/// The manifest of a generation.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    folder: &'a str,
    as_of: String,
    as_of_ms: i64,
    base_generation: Option<i64>,
    objects: u64,
    keys: u64,
    deleted_keys: u64,
    read: Stats,
}

/// Runs `bss organize`.
pub async fn run(context: &Context, args: OrganizeArgs) -> anyhow::Result<Outcome> {
    // One as-of time for every topic of the run.
    let as_of = args.as_of.unwrap_or_else(now_ms);
    let topics = if args.topics.is_empty() {
        context.ingestion_topics()
    } else {
        args.topics.clone()
    };
    if args.format == Format::Parquet && (args.full || args.as_of.is_some()) {
        anyhow::bail!(
            "--full and --as-of are for compacted copies; to rebuild a topic's Parquet copy, delete its \
             topic=<topic>/ directory and _bss/<folder>.manifest.json, then run again (docs/analytics.md)"
        );
    }
    for topic in &topics {
        let folder = context.folder(topic);
        match args.format {
            Format::Compacted => organize(context, &args, &folder, as_of).await?,
            Format::Parquet => {
                let run = ParquetRun {
                    prefix: args.prefix.as_deref().unwrap_or(".bss-parquet"),
                    max_file_bytes: args.max_object_bytes.unwrap_or(64 << 20),
                    memory: args.memory,
                    dry_run: args.dry_run,
                };
                crate::columnar::organize(context, &run, &folder).await?;
            }
        }
    }
    Ok(Outcome::Done)
}

async fn organize(
    context: &Context,
    args: &OrganizeArgs,
    folder: &str,
    as_of: i64,
) -> anyhow::Result<()> {
    let folder = folder.to_owned();
    let prefix = args.prefix.as_deref().unwrap_or(".bss-organized");
    let max_object_bytes = args.max_object_bytes.unwrap_or(8 << 20);
    let archive = context.archive()?;
    let store = archive.store().clone();
    let generation = generation_folder(prefix, &folder, as_of);
    match store.head(&manifest_path(&generation)).await {
        Ok(_) => {
            println!("{generation} is already complete; nothing to do.");
            return Ok(());
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e).context("checking for an existing generation"),
    }
    let inputs =
        compact::select_inputs(&archive, store.as_ref(), &folder, prefix, as_of, args.full).await?;
    if inputs.objects.is_empty() {
        println!(
            "{folder}: nothing archived up to {}; skipped.",
            format_iso_ms(as_of)
        );
        return Ok(());
    }
    let bytes: u64 = inputs.objects.iter().map(|o| o.size).sum();
    println!(
        "Organizing {folder} as of {} into {generation}/: {} objects, {bytes} bytes to read{}.",
        format_iso_ms(as_of),
        inputs.objects.len(),
        inputs
            .base
            .map_or_else(String::new, |b| format!(" (base: generation {b})"))
    );
    if args.dry_run {
        println!("Dry run: nothing written.");
        return Ok(());
    }
    // A generation without a manifest is what an interrupted run left: start it over.
    let leftovers: Vec<ObjectPath> = store
        .list(Some(&ObjectPath::from(generation.as_str())))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .context("listing an interrupted generation")?;
    for path in leftovers
        .iter()
        .flat_map(|p| [p.clone(), ObjectPath::from(index_path(p.as_ref()))])
    {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("removing {path}")),
        }
    }

    let spilled = compact::spill(
        &archive,
        &inputs.objects,
        as_of,
        args.memory,
        args.work_dir.as_deref(),
    )
    .await?;
    let read = spilled.stats.clone();
    let mut merged = spilled.merge();
    let compression = context.config.compression;
    let (mut objects, mut keys, mut deleted) = (0u64, 0u64, 0u64);
    while let Some(batch) = merged.recv().await {
        let Merged {
            records,
            deleted: gone,
        } = batch?;
        deleted += gone;
        keys += records.len() as u64;
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for record in records {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(record);
        }
        for (_, mut records) in by_partition {
            records.sort_by_key(|r| r.offset);
            let mut start = 0;
            while start < records.len() {
                let mut plain = Vec::new();
                let mut index = IndexBuilder::default();
                let mut end = start;
                while end < records.len()
                    && (end == start || (plain.len() as u64) < max_object_bytes)
                {
                    let r = &records[end];
                    encode_line(r, &mut plain);
                    index.add(r.offset, r.timestamp_ms, r.key.as_deref());
                    end += 1;
                }
                let first = &records[start];
                let name = ObjectName::for_batch(
                    &generation,
                    &first.topic,
                    first.partition,
                    first.offset,
                    first.timestamp_ms,
                    compression,
                );
                put(&store, &name.path(), compression.compress(&plain)).await?;
                put(&store, &index_path(&name.path()), index.finish()).await?;
                objects += 1;
                start = end;
            }
        }
    }
    let manifest = Manifest {
        folder: &folder,
        as_of: format_iso_ms(as_of),
        as_of_ms: as_of,
        base_generation: inputs.base,
        objects,
        keys,
        deleted_keys: deleted,
        read,
    };
    put(
        &store,
        manifest_path(&generation).as_ref(),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .await?;
    println!(
        "Wrote {objects} objects holding {keys} keys ({deleted} deleted keys left out) to {generation}/, from {} records.",
        manifest.read.records
    );
    Ok(())
}

async fn put(store: &Arc<dyn ObjectStore>, path: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    store
        .put(&ObjectPath::from(path), PutPayload::from(bytes))
        .await
        .with_context(|| format!("writing {path}"))?;
    Ok(())
}
