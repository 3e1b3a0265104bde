//! `bss catalog`: build the catalog of objects written without one, compact it, show its size.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use bss_archive::{Archive, Selection};
use bss_catalog::{Catalog, CompactionPolicy};
use bss_layout::catalog::folder_prefix;
use clap::Subcommand;
use futures::StreamExt;

use crate::progress::Progress;
use crate::{Context, Outcome};

/// Objects per segment written by a rebuild (level 1, like an hour of the storer's objects).
const REBUILD_SEGMENT_OBJECTS: usize = 256;
/// Objects read at once while rebuilding.
const REBUILD_CONCURRENCY: usize = 8;

/// `bss catalog …`
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Catalog the objects the catalog does not list yet (written before it existed, or by
    /// Mia-Platform's storer: `.txt` objects included), then mark the folder's catalog complete so
    /// readers stop listing the folder. Run it after every storer replica runs a catalog-aware version.
    Rebuild {
        /// Topic (or folder) to catalog; repeat for several [default: every configured topic].
        #[arg(long)]
        topic: Vec<String>,
        /// Report what is missing without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Merge the catalog segments that are due now (the storer does it in the background).
    Compact {
        /// Topic (or folder); repeat for several [default: every configured topic].
        #[arg(long)]
        topic: Vec<String>,
    },
    /// Print each folder's catalog: segments per level, their bytes, and whether it is complete.
    Show {
        /// Topic (or folder); repeat for several [default: every configured topic].
        #[arg(long)]
        topic: Vec<String>,
    },
}

/// Runs a `bss catalog` command.
pub async fn run(context: &Context, command: CatalogCommand) -> anyhow::Result<Outcome> {
    let archive = context.archive()?;
    let catalog = Catalog::new(Arc::clone(archive.store()));
    let folders = |topics: Vec<String>| -> BTreeSet<String> {
        let topics = if topics.is_empty() {
            context.ingestion_topics()
        } else {
            topics
        };
        topics.iter().map(|t| context.folder(t)).collect()
    };
    let mut outcome = Outcome::Done;
    match command {
        CatalogCommand::Rebuild { topic, dry_run } => {
            for folder in folders(topic) {
                if !rebuild(&archive, &catalog, &folder, dry_run).await? {
                    outcome = Outcome::ProblemsFound;
                }
            }
        }
        CatalogCommand::Compact { topic } => {
            for folder in folders(topic) {
                compact(&catalog, &folder).await?;
            }
        }
        CatalogCommand::Show { topic } => {
            for folder in folders(topic) {
                show(&catalog, &folder).await?;
            }
        }
    }
    Ok(outcome)
}

/// Catalogs what is missing in `folder`; `false` when an object could not be read (the folder is then
/// not marked complete: a reader must keep listing it, or it would miss that object).
async fn rebuild(
    archive: &Archive,
    catalog: &Catalog,
    folder: &str,
    dry_run: bool,
) -> anyhow::Result<bool> {
    let listed = archive.list(folder).await?;
    let (known, _) = catalog.select(folder, &Selection::all()).await?;
    let known: HashSet<String> = known.into_iter().map(|e| e.path).collect();
    let missing: Vec<_> = listed
        .iter()
        .filter(|o| !known.contains(o.path.as_ref()))
        .cloned()
        .collect();
    tracing::info!(
        folder,
        objects = listed.len(),
        cataloged = known.len(),
        missing = missing.len(),
        "catalog rebuild"
    );
    let mut unreadable = 0usize;
    let mut segments = 0usize;
    if !dry_run {
        let mut progress = Progress::new("cataloging", "objects", Some(missing.len() as u64));
        let mut described = futures::stream::iter(missing.iter())
            .map(|object| async move { (object, archive.describe(object).await) })
            .buffer_unordered(REBUILD_CONCURRENCY);
        let mut by_partition: BTreeMap<(String, i32), Vec<_>> = BTreeMap::new();
        while let Some((object, result)) = described.next().await {
            progress.inc(1);
            match result {
                Ok((entry, keys)) => by_partition
                    .entry((entry.topic.clone(), entry.partition))
                    .or_default()
                    .push((entry, keys)),
                Err(error) => {
                    unreadable += 1;
                    tracing::error!(path = %object.path, error = %error, "cannot catalog this object");
                }
            }
        }
        progress.finish();
        for (_, mut described) in by_partition {
            described.sort_by_key(|(entry, _)| entry.first_offset);
            for chunk in described.chunks(REBUILD_SEGMENT_OBJECTS) {
                let entries: Vec<_> = chunk.iter().map(|(e, _)| e.clone()).collect();
                let keys = chunk.iter().map(|(_, k)| k.clone()).collect();
                catalog.write_segment(folder, 1, &entries, keys).await?;
                segments += 1;
            }
        }
    }
    let complete = !dry_run && unreadable == 0;
    if complete {
        catalog.mark_complete(folder, "bss catalog rebuild").await?;
    }
    println!(
        "{}",
        serde_json::json!({
            "folder": folder,
            "objects": listed.len(),
            "alreadyCataloged": known.len(),
            "missing": missing.len(),
            "unreadable": unreadable,
            "segmentsWritten": segments,
            "complete": complete || (dry_run && catalog.is_complete(folder).await?),
            "dryRun": dry_run,
        })
    );
    Ok(unreadable == 0)
}

async fn compact(catalog: &Catalog, folder: &str) -> anyhow::Result<()> {
    let (segments, _) = catalog.list(&folder_prefix(folder)).await?;
    let partitions: BTreeSet<(String, i32)> = segments
        .iter()
        .map(|s| (s.name.topic.clone(), s.name.partition))
        .collect();
    let policy = CompactionPolicy::default();
    for (topic, partition) in partitions {
        let done = catalog
            .compact_partition(folder, &topic, partition, &policy)
            .await?;
        println!(
            "{}",
            serde_json::json!({
                "folder": folder, "topic": topic, "partition": partition,
                "merged": done.merged, "written": done.written, "deleted": done.deleted,
            })
        );
    }
    Ok(())
}

async fn show(catalog: &Catalog, folder: &str) -> anyhow::Result<()> {
    let (segments, _) = catalog.list(&folder_prefix(folder)).await?;
    let mut levels: BTreeMap<u8, (usize, u64)> = BTreeMap::new();
    for segment in &segments {
        let level = levels.entry(segment.name.level).or_default();
        level.0 += 1;
        level.1 += segment.size;
    }
    let levels: Vec<_> = levels
        .into_iter()
        .map(|(level, (count, bytes))| serde_json::json!({"level": level, "segments": count, "bytes": bytes}))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "folder": folder,
            "complete": catalog.is_complete(folder).await?,
            "levels": levels,
        })
    );
    Ok(())
}
