//! `bss verify`: the archive's guarantees, checked. Per source partition: offsets without gaps or
//! duplicates across objects, every object decodes and agrees with its name, sidecar and catalog
//! entry (the catalog lists exactly the folder's objects), and (with `--events`) with its "file
//! written" event. Files that are not archive objects and empty folders are reported, not skipped.
//!
//! Each check is a module of its own over in-memory inputs: [`objects`] (one object against its name
//! and sidecar), [`folder`] (what a listing holds), [`continuity`] (offsets across objects),
//! [`catalog`] (the catalog against the bucket), [`gaps`] (holes, asked of the broker) and [`events`]
//! (the "file written" events).

mod catalog;
mod continuity;
mod events;
mod folder;
mod gaps;
mod objects;

use std::sync::Arc;

use bss_archive::Selection;
use bss_catalog::Catalog;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::progress::Progress;
use crate::{Context, Outcome};
use objects::ObjectFacts;

/// Objects downloaded and decoded at once.
const READ_CONCURRENCY: usize = 4;

/// Arguments of `bss verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Ingestion topic (or folder) to verify; repeat for several [default: every ingestion topic of
    /// the configuration].
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Also match every object with its "file written" event (reads the events topic from its
    /// beginning; objects older than the topic's retention then show as missing their event).
    #[arg(long)]
    events: bool,
    /// Report every offset gap as a warning without asking the broker: for archives that are
    /// compacted on purpose (an `organize` generation) or whose source topic is gone. Without it,
    /// each gap is checked on the broker: offsets holding no committed record there (transaction
    /// markers, aborted or compacted records) are expected, anything else is a problem.
    #[arg(long)]
    allow_gaps: bool,
    /// Check the Parquet copy under this prefix (`bss organize --format parquet`) instead of the
    /// archive: it must hold exactly the archive's records up to its manifest, each once.
    #[arg(long, num_args = 0..=1, default_missing_value = ".bss-parquet", value_name = "PREFIX")]
    parquet: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Something wrong in the archive.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `corrupt`, `gap`, `duplicate`, `name-mismatch`, `index-mismatch`, `missing-index`,
    /// `uncataloged`, `dangling-entry`, `catalog-mismatch`, `unknown-object`, `empty-folder`,
    /// `no-catalog`, `pruned`, `missing-event`, `event-mismatch` or `orphan-event`.
    pub kind: &'static str,
    /// Folder of the object.
    pub folder: String,
    /// Source partition.
    pub partition: Option<i32>,
    /// Object path.
    pub object: Option<String>,
    /// What exactly is wrong.
    pub detail: String,
}

/// Per-partition summary of the report.
#[derive(Debug, Serialize)]
struct PartitionSummary {
    folder: String,
    partition: i32,
    objects: usize,
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    /// Offsets between objects that the broker confirmed hold no committed record.
    undelivered_offsets: i64,
    /// Offsets between objects that `bss erase` removed on purpose.
    erased_offsets: i64,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    ok: bool,
    partitions: Vec<PartitionSummary>,
    problems: Vec<Finding>,
    warnings: Vec<Finding>,
}

/// Runs `bss verify`.
pub async fn run(context: &Context, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let archive = context.archive()?;
    let store = archive.store().clone();
    let catalog = Catalog::new(Arc::clone(&store));
    let topics = if args.topics.is_empty() {
        context.ingestion_topics()
    } else {
        args.topics.clone()
    };
    if let Some(prefix) = &args.parquet {
        return crate::columnar::verify(context, &topics, prefix, args.json).await;
    }
    let mut report = Report::default();
    let mut checked: Vec<ObjectFacts> = Vec::new();
    let mut gaps = Vec::new();
    let mut erasures = folder::Erasures::default();
    for topic in &topics {
        let folder = context.folder(topic);
        let (objects, strays) = archive.list_with_strays(&folder).await?;
        let cataloged = if catalog.is_complete(&folder).await? {
            Some(catalog.select(&folder, &Selection::all()).await?.0)
        } else {
            None
        };
        let retention = catalog.retention(&folder).await?;
        for erasure in archive.erasures(&folder).await? {
            erasures.add(&erasure);
        }
        let listing = folder::Listing {
            objects,
            strays,
            catalog_empty: cataloged.as_ref().is_none_or(Vec::is_empty),
        };
        let objects = folder::sort_out(&folder, listing, &retention, &erasures, &mut report);
        let mut progress = Progress::new("verify", "objects", Some(objects.len() as u64));
        let facts: Vec<ObjectFacts> = futures::stream::iter(objects)
            .map(|object| objects::examine(Arc::clone(&store), object))
            .buffered(READ_CONCURRENCY)
            .inspect(|_| progress.inc(1))
            .try_collect()
            .await?;
        progress.finish();
        continuity::summarize(&folder, &facts, &mut gaps, &mut report);
        folder::report_objects(&folder, &facts, &mut report);
        match cataloged {
            Some(entries) => catalog::compare(&folder, &facts, entries, &mut report),
            None => report.warnings.push(Finding {
                kind: "no-catalog",
                folder: folder.clone(),
                partition: None,
                object: None,
                detail: "the folder's catalog is not complete, so readers list the folder: run `bss catalog rebuild`".into(),
            }),
        }
        checked.extend(facts);
    }
    let gaps = continuity::without_erased(gaps, &erasures.erased, &mut report);
    if args.allow_gaps {
        gaps::accept(gaps, &mut report);
    } else if !gaps.is_empty() {
        let verdicts = gaps::check(context, gaps.clone()).await?;
        gaps::apply(&gaps, verdicts, &mut report);
    }
    if args.events {
        let events = events::read(context).await?;
        events::compare(&checked, &events, &erasures.rewritten, &mut report);
    }
    report.ok = report.problems.is_empty();
    print_report(&report, args.json)?;
    Ok(if report.ok {
        Outcome::Done
    } else {
        Outcome::ProblemsFound
    })
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for p in &report.partitions {
        let range = match (p.first_offset, p.last_offset) {
            (Some(first), Some(last)) => format!("offsets {first}..={last}"),
            _ => "no records".to_owned(),
        };
        let undelivered = if p.undelivered_offsets > 0 {
            format!(
                ", {} offsets without a committed record (transaction markers, aborted or compacted records)",
                p.undelivered_offsets
            )
        } else {
            String::new()
        };
        let erased = if p.erased_offsets > 0 {
            format!(", {} offsets erased by `bss erase`", p.erased_offsets)
        } else {
            String::new()
        };
        println!(
            "{}/{}: {} objects, {} records, {range}{undelivered}{erased}",
            p.folder, p.partition, p.objects, p.records
        );
    }
    for (title, findings) in [("WARNING", &report.warnings), ("PROBLEM", &report.problems)] {
        for f in findings {
            let place = match (f.partition, &f.object) {
                (_, Some(object)) => object.clone(),
                (Some(p), None) => format!("{}/{p}", f.folder),
                (None, None) => f.folder.clone(),
            };
            println!("{title} {}: {place}: {}", f.kind, f.detail);
        }
    }
    println!(
        "{}: {} partitions, {} objects, {} records, {} problems, {} warnings",
        if report.ok { "OK" } else { "FAILED" },
        report.partitions.len(),
        report.partitions.iter().map(|p| p.objects).sum::<usize>(),
        report.partitions.iter().map(|p| p.records).sum::<u64>(),
        report.problems.len(),
        report.warnings.len()
    );
    Ok(())
}

/// Inputs for the checks' unit tests.
#[cfg(test)]
mod fixtures {
    use bss_archive::ArchivedObject;
    use bss_format::{Compression, Record, TimestampType};
    use bss_layout::ObjectName;

    use super::objects::ObjectFacts;

    pub(super) const TOPIC: &str = "orders";

    pub(super) fn record(partition: i32, offset: i64) -> Record {
        Record {
            topic: TOPIC.into(),
            partition,
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset),
            timestamp_type: TimestampType::CreateTime,
            key: Some(format!("k{offset}").into_bytes()),
            payload: Some(b"{}".to_vec()),
            headers: vec![],
        }
    }

    pub(super) fn object(partition: i32, first: i64, size: u64) -> ArchivedObject {
        let name = ObjectName::for_batch(
            TOPIC,
            TOPIC,
            partition,
            first,
            Some(1_700_000_000_000 + first),
            Compression::Zstd,
        );
        ArchivedObject {
            path: name.path().as_str().into(),
            name,
            size,
        }
    }

    /// An object of offsets `first..=last` that decoded cleanly.
    pub(super) fn facts(partition: i32, first: i64, last: i64) -> ObjectFacts {
        ObjectFacts {
            object: object(partition, first, 100),
            checksum: format!("sum-{first}"),
            records: (last - first + 1) as u64,
            first_offset: Some(first),
            last_offset: Some(last),
            min_timestamp: Some(1_700_000_000_000 + first),
            max_timestamp: Some(1_700_000_000_000 + last),
            findings: Vec::new(),
        }
    }

    pub(super) fn kinds(findings: &[super::Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.kind).collect()
    }
}
