//! `bss prune --before TIME`: retention. Deletes, per source partition, the oldest objects whose
//! records are all older than TIME (a prefix of the partition, like Kafka's own time retention, so no
//! offset gap appears), with their sidecars and catalog segments.
//!
//! Catalog first: the folder's retention marker moves each partition's start past the pruned objects
//! before any of them is deleted, so readers stop selecting them first and never follow an entry to
//! a deleted object. A run interrupted while deleting is finished by the next one (it sweeps what
//! lies before every recorded start).

use std::collections::BTreeMap;
use std::sync::Arc;

use bss_archive::Selection;
use bss_catalog::Catalog;
use bss_format::time::format_iso_ms;
use bss_layout::catalog::{partition_prefix, CatalogEntry, PartitionStart, Segment};
use bss_layout::index::index_path;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::progress::Progress;
use crate::time::parse_time;
use crate::{Context, Outcome};

/// Deletions in flight at once.
const DELETE_CONCURRENCY: usize = 16;

/// Arguments of `bss prune`.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// Delete the objects whose records are all older than this time (RFC 3339, a date, or epoch
    /// milliseconds), oldest first per partition; an object holding a newer record, or records
    /// without a timestamp, stops its partition's pruning there.
    #[arg(long, value_parser = parse_time)]
    before: i64,
    /// Topic (or folder) to prune; repeat for several [default: every ingestion topic].
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `bss prune`.
pub async fn run(context: &Context, args: PruneArgs) -> anyhow::Result<Outcome> {
    let archive = context.archive()?;
    let store = Arc::clone(archive.store());
    let catalog = Catalog::new(Arc::clone(&store));
    let topics = if args.topics.is_empty() {
        context.ingestion_topics()
    } else {
        args.topics.clone()
    };
    for topic in topics {
        let folder = context.folder(&topic);
        if !catalog.is_complete(&folder).await? {
            anyhow::bail!(
                "folder {folder:?} has no complete catalog, so its objects' time spans are unknown: run `bss catalog rebuild --topic {topic}` first"
            );
        }
        prune_folder(&store, &catalog, &folder, args.before, args.dry_run).await?;
    }
    Ok(Outcome::Done)
}

async fn prune_folder(
    store: &Arc<dyn ObjectStore>,
    catalog: &Catalog,
    folder: &str,
    before: i64,
    dry_run: bool,
) -> anyhow::Result<()> {
    let mut retention = catalog.retention(folder).await?;
    let (entries, _) = catalog.select(folder, &Selection::all()).await?;
    let mut by_partition: BTreeMap<(String, i32), Vec<CatalogEntry>> = BTreeMap::new();
    for entry in entries {
        by_partition
            .entry((entry.topic.clone(), entry.partition))
            .or_default()
            .push(entry);
    }
    for ((topic, partition), mut entries) in by_partition {
        entries.sort_by_key(|e| e.first_offset);
        let expired: Vec<&CatalogEntry> = entries
            .iter()
            .take_while(|e| e.max_timestamp.is_some_and(|max| max < before))
            .collect();
        let Some(last) = expired.last() else {
            continue;
        };
        let start_offset = last.last_offset + 1;
        println!(
            "{}",
            serde_json::json!({
                "folder": folder,
                "topic": topic,
                "partition": partition,
                "objects": expired.len(),
                "records": expired.iter().map(|e| e.records).sum::<u64>(),
                "bytes": expired.iter().map(|e| e.bytes).sum::<u64>(),
                "newStartOffset": start_offset,
                "dryRun": dry_run,
            })
        );
        retention.advance(PartitionStart {
            topic,
            partition,
            start_offset,
            pruned_before: format_iso_ms(before),
        });
    }
    if dry_run {
        return Ok(());
    }
    // The marker first: from here on no reader selects what is about to be deleted.
    catalog.set_retention(folder, &retention).await?;
    for start in &retention.partitions {
        sweep(store, catalog, folder, start).await?;
    }
    Ok(())
}

/// Deletes the objects, sidecars and catalog segments of a partition that lie before its start.
async fn sweep(
    store: &Arc<dyn ObjectStore>,
    catalog: &Catalog,
    folder: &str,
    start: &PartitionStart,
) -> anyhow::Result<()> {
    let (segments, _) = catalog
        .list(&partition_prefix(folder, &start.topic, start.partition))
        .await?;
    let before_start: Vec<_> = segments
        .into_iter()
        .filter(|s| s.name.first_offset < start.start_offset)
        .collect();
    let mut doomed: Vec<Path> = Vec::new();
    for segment in &before_start {
        let bytes = match store.get(&segment.path).await {
            Ok(got) => got.bytes().await?,
            // Compacted away meanwhile: its merge is in the listing too.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let decoded = Segment::decode(&bytes)
            .map_err(|e| anyhow::anyhow!("catalog segment {}: {e}", segment.path))?;
        for entry in decoded.entries {
            if entry.first_offset < start.start_offset {
                doomed.push(Path::from(index_path(&entry.path)));
                doomed.push(Path::from(entry.path));
            }
        }
    }
    doomed.sort();
    doomed.dedup();
    // Segments wholly before the start go last: until then they still name what is being deleted.
    doomed.extend(
        before_start
            .iter()
            .filter(|s| s.name.last_offset < start.start_offset)
            .map(|s| s.path.clone()),
    );
    let mut progress = Progress::new("prune", "objects", Some(doomed.len() as u64));
    let mut deletions = futures::stream::iter(doomed)
        .map(|path| async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(anyhow::anyhow!("deleting {path}: {e}")),
            }
        })
        .buffered(DELETE_CONCURRENCY);
    while let Some(result) = deletions.next().await {
        result?;
        progress.inc(1);
    }
    progress.finish();
    Ok(())
}
