//! `bss verify`: the archive's guarantees, checked. Per source partition: offsets without gaps or
//! duplicates across objects, every object decodes and agrees with its name, sidecar and catalog
//! entry (the catalog lists exactly the folder's objects), and (with `--events`) with its "file
//! written" event. Files that are not archive objects and empty folders are reported, not skipped.

use bss_archive::Selection;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bss_archive::erase::ErasureState;
use bss_archive::ArchivedObject;
use bss_catalog::Catalog;
use bss_format::{checksum, RecordReader};
use bss_layout::catalog::CatalogEntry;
use bss_layout::index::{index_path, IndexHeader, HEADER_BYTES};
use bss_layout::{FileWrittenEvent, ObjectName};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::progress::Progress;
use crate::{Context, Outcome};

/// Objects downloaded and decoded at once.
const READ_CONCURRENCY: usize = 4;
/// How long reading the events topic up to its end may take.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(120);

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

/// What one object turned out to hold.
#[derive(Debug, Clone)]
struct ObjectFacts {
    object: ArchivedObject,
    checksum: String,
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
    min_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    /// Problems found inside the object.
    findings: Vec<Finding>,
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

/// Offsets between two consecutive objects of a partition that no object holds.
#[derive(Debug, Clone)]
struct Gap {
    folder: String,
    topic: String,
    partition: i32,
    from: i64,
    to: i64,
    object: String,
    previous: String,
}

/// What the broker says about a gap.
enum GapVerdict {
    /// No committed record in the range: markers, aborted or compacted records.
    Undelivered,
    /// The broker delivers a record at this offset of the range: it is missing from the archive.
    Missing(i64),
    /// The broker cannot tell (why).
    Unknown(String),
}

#[derive(Debug, Serialize)]
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
    let mut report = Report {
        ok: true,
        partitions: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let mut checked: Vec<ObjectFacts> = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    // Offsets `bss erase` removed on purpose, per source partition; objects of erasures.
    let mut erased: HashMap<(String, i32), BTreeSet<i64>> = HashMap::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut rewritten: HashSet<String> = HashSet::new();
    for topic in &topics {
        let folder = context.folder(topic);
        let (listed, strays) = archive.list_with_strays(&folder).await?;
        let cataloged = if catalog.is_complete(&folder).await? {
            Some(catalog.select(&folder, &Selection::all()).await?.0)
        } else {
            None
        };
        let retention = catalog.retention(&folder).await?;
        for erasure in archive.erasures(&folder).await? {
            for object in &erasure.objects {
                erased
                    .entry((object.old.topic.clone(), object.old.partition))
                    .or_default()
                    .extend(&object.erased_offsets);
                // Objects an unfinished erasure has written but not cataloged yet, or uncataloged
                // but not deleted yet; and every erased object's event.
                match erasure.state {
                    ErasureState::Planned => in_flight.extend(object.new_path.clone()),
                    ErasureState::Repointed => in_flight.extend([object.old.path.clone()]),
                    ErasureState::Complete => {}
                }
                rewritten.extend(object.new_path.clone());
                rewritten.insert(object.old.path.clone());
            }
        }
        let (objects, leftovers): (Vec<_>, Vec<_>) = listed
            .into_iter()
            .partition(|o| retention.keeps(&o.name.topic, o.name.partition, o.name.first_offset));
        let folder_finding = |kind, detail| Finding {
            kind,
            folder: folder.clone(),
            partition: None,
            object: None,
            detail,
        };
        if objects.is_empty() && strays.is_empty() && cataloged.as_ref().is_none_or(Vec::is_empty) {
            report.problems.push(folder_finding(
                "empty-folder",
                format!(
                    "no archive object in folder {folder:?}: is the topic or folder name right?"
                ),
            ));
        }
        // An organized generation's manifest is the one other file an archive folder may hold.
        let strays: Vec<_> = strays
            .into_iter()
            .filter(|(path, _)| !path.ends_with("/manifest.json"))
            .collect();
        for (path, reason) in &strays {
            report.problems.push(Finding {
                object: Some(path.clone()),
                ..folder_finding(
                    "unknown-object",
                    format!("not an archive object name, so no reader ever selects it: {reason}"),
                )
            });
        }
        // Objects an unfinished erasure wrote (not cataloged yet) or replaced (not deleted yet) hold
        // the same offsets as their counterparts: left out of the checks until it finishes.
        let (pending, objects): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .partition(|o| in_flight.contains(o.path.as_ref()));
        for object in pending {
            report.warnings.push(Finding {
                partition: Some(object.name.partition),
                object: Some(object.path.to_string()),
                ..folder_finding(
                    "erasure-pending",
                    "an unfinished `bss erase` wrote or replaced this object; the next erasure of the folder finishes it".into(),
                )
            });
        }
        for object in leftovers {
            report.warnings.push(Finding {
                partition: Some(object.name.partition),
                object: Some(object.path.to_string()),
                ..folder_finding(
                    "pruned",
                    "before its partition's retention start: an interrupted `bss prune` left it; the next run deletes it".into(),
                )
            });
        }
        let mut progress = Progress::new("verify", "objects", Some(objects.len() as u64));
        let facts: Vec<ObjectFacts> = futures::stream::iter(objects)
            .map(|object| examine(Arc::clone(&store), object))
            .buffered(READ_CONCURRENCY)
            .inspect(|_| progress.inc(1))
            .try_collect()
            .await?;
        progress.finish();
        let mut by_partition: BTreeMap<i32, Vec<&ObjectFacts>> = BTreeMap::new();
        for fact in &facts {
            by_partition
                .entry(fact.object.name.partition)
                .or_default()
                .push(fact);
        }
        for (partition, mut objects) in by_partition {
            objects.sort_by_key(|f| f.object.name.first_offset);
            continuity(&folder, partition, &objects, &mut gaps, &mut report);
            report.partitions.push(PartitionSummary {
                folder: folder.clone(),
                partition,
                objects: objects.len(),
                records: objects.iter().map(|f| f.records).sum(),
                first_offset: objects.iter().find_map(|f| f.first_offset),
                last_offset: objects.iter().rev().find_map(|f| f.last_offset),
                undelivered_offsets: 0,
                erased_offsets: 0,
            });
        }
        let mut without_sidecar = Vec::new();
        for fact in &facts {
            for finding in &fact.findings {
                match finding.kind {
                    "missing-index" => without_sidecar.push(finding.clone()),
                    _ => report.problems.push(finding.clone()),
                }
            }
        }
        // Mia-Platform's storer writes no sidecars: one line for the folder, not one per object.
        match without_sidecar.len() {
            0 => {}
            1 => report.warnings.append(&mut without_sidecar),
            n => report.warnings.push(folder_finding(
                "missing-index",
                format!(
                    "{n} of {} objects have no key-index sidecar (written by Mia-Platform's storer or before sidecars existed; first: {}); the catalog indexes their keys once `bss catalog rebuild` ran",
                    facts.len(),
                    without_sidecar[0].object.as_deref().unwrap_or("?")
                ),
            )),
        }
        match cataloged {
            Some(entries) => compare_catalog(&folder, &facts, entries, &mut report),
            None => report.warnings.push(folder_finding(
                "no-catalog",
                "the folder's catalog is not complete, so readers list the folder: run `bss catalog rebuild`".into(),
            )),
        }
        checked.extend(facts);
    }
    gaps = without_erased(gaps, &erased, &mut report);
    if args.allow_gaps {
        report.warnings.extend(gaps.drain(..).map(|gap| Finding {
            kind: "gap",
            folder: gap.folder,
            partition: Some(gap.partition),
            object: Some(gap.object),
            detail: format!(
                "offsets {}..={} are in no object (between {} and this one); not checked on the broker (--allow-gaps)",
                gap.from, gap.to, gap.previous
            ),
        }));
    }
    if !gaps.is_empty() {
        let verdicts = check_gaps(context, gaps.clone()).await?;
        for (gap, verdict) in gaps.iter().zip(verdicts) {
            let finding = |kind, detail| Finding {
                kind,
                folder: gap.folder.clone(),
                partition: Some(gap.partition),
                object: Some(gap.object.clone()),
                detail,
            };
            let range = format!("offsets {}..={}", gap.from, gap.to);
            match verdict {
                GapVerdict::Undelivered => {
                    if let Some(summary) = report
                        .partitions
                        .iter_mut()
                        .find(|p| p.folder == gap.folder && p.partition == gap.partition)
                    {
                        summary.undelivered_offsets += gap.to - gap.from + 1;
                    }
                }
                GapVerdict::Missing(offset) => report.problems.push(finding(
                    "gap",
                    format!(
                        "{range} are in no object (between {} and this one), and the broker holds a record at offset {offset}",
                        gap.previous
                    ),
                )),
                GapVerdict::Unknown(why) => report.problems.push(finding(
                    "gap",
                    format!(
                        "{range} are in no object (between {} and this one); the broker cannot tell whether they held records ({why}); --allow-gaps accepts such gaps",
                        gap.previous
                    ),
                )),
            }
        }
    }
    if args.events {
        let events = read_events(context).await?;
        match_events(&checked, &events, &rewritten, &mut report);
    }
    report.ok = report.problems.is_empty();
    print_report(&report, args.json)?;
    Ok(if report.ok {
        Outcome::Done
    } else {
        Outcome::ProblemsFound
    })
}

/// Downloads, checksums and decodes one object, comparing it with its name and sidecar.
async fn examine(
    store: Arc<dyn ObjectStore>,
    object: ArchivedObject,
) -> anyhow::Result<ObjectFacts> {
    let stored = store
        .get(&object.path)
        .await
        .with_context(|| format!("reading {}", object.path))?
        .bytes()
        .await
        .with_context(|| format!("reading {}", object.path))?;
    let header = match store
        .get_range(
            &Path::from(index_path(object.path.as_ref())),
            0..HEADER_BYTES,
        )
        .await
    {
        Ok(bytes) => Some(IndexHeader::parse(&bytes)),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(e).with_context(|| format!("reading the sidecar of {}", object.path)),
    };
    tokio::task::spawn_blocking(move || decode(object, &stored, header))
        .await
        .context("decoder task")
}

fn decode(
    object: ArchivedObject,
    stored: &[u8],
    header: Option<Option<IndexHeader>>,
) -> ObjectFacts {
    let mut facts = ObjectFacts {
        checksum: checksum(stored),
        records: 0,
        first_offset: None,
        last_offset: None,
        min_timestamp: None,
        max_timestamp: None,
        findings: Vec::new(),
        object,
    };
    let name = facts.object.name.clone();
    let path = facts.object.path.to_string();
    let finding = |kind, detail: String| Finding {
        kind,
        folder: name.folder.clone(),
        partition: Some(name.partition),
        object: Some(path.clone()),
        detail,
    };
    let reader = match name.compression.decompress(stored) {
        Ok(reader) => reader,
        Err(e) => {
            facts.findings.push(finding("corrupt", e.to_string()));
            return facts;
        }
    };
    let mut first_timestamp = None;
    for record in RecordReader::new(reader, Some(name.topic.clone())) {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                facts.findings.push(finding("corrupt", e.to_string()));
                return facts;
            }
        };
        if record.partition != name.partition || *record.topic != *name.topic {
            facts.findings.push(finding(
                "name-mismatch",
                format!(
                    "record at offset {} is from {}/{}, the name says {}/{}",
                    record.offset, record.topic, record.partition, name.topic, name.partition
                ),
            ));
        }
        if let Some(last) = facts.last_offset {
            if record.offset <= last {
                facts.findings.push(finding(
                    "duplicate",
                    format!(
                        "offset {} follows offset {last} inside the object",
                        record.offset
                    ),
                ));
            }
        } else {
            facts.first_offset = Some(record.offset);
            first_timestamp = Some(record.timestamp_ms.unwrap_or(0));
        }
        if let Some(ts) = record.timestamp_ms {
            facts.min_timestamp = Some(facts.min_timestamp.map_or(ts, |m| m.min(ts)));
            facts.max_timestamp = Some(facts.max_timestamp.map_or(ts, |m| m.max(ts)));
        }
        facts.last_offset = Some(record.offset);
        facts.records += 1;
    }
    if facts.first_offset != Some(name.first_offset) {
        facts.findings.push(finding(
            "name-mismatch",
            format!(
                "the name says the first offset is {}, the object starts at {:?}",
                name.first_offset, facts.first_offset
            ),
        ));
    }
    // Our names repeat the first record's time in the last field; Mia-Platform's hold a wall clock.
    if name.tail_ms == name.first_timestamp_ms
        && first_timestamp
            .is_some_and(|t| ObjectName::name_timestamp(Some(t)) != name.first_timestamp_ms)
    {
        facts.findings.push(finding(
            "name-mismatch",
            format!(
                "the name says the first record's time is {}, it is {:?}",
                name.first_timestamp_ms, first_timestamp
            ),
        ));
    }
    match header {
        None => facts.findings.push(finding(
            "missing-index",
            "no key-index sidecar: key lookups read this object".into(),
        )),
        Some(None) => facts.findings.push(finding(
            "index-mismatch",
            "the sidecar header does not parse".into(),
        )),
        Some(Some(h)) => {
            if h.records != facts.records
                || Some(h.first_offset) != facts.first_offset
                || Some(h.last_offset) != facts.last_offset
            {
                facts.findings.push(finding(
                    "index-mismatch",
                    format!(
                        "sidecar says {} records, offsets {}..={}; object has {} records, offsets {:?}..={:?}",
                        h.records, h.first_offset, h.last_offset, facts.records, facts.first_offset, facts.last_offset
                    ),
                ));
            }
        }
    }
    facts
}

/// The gaps minus the offsets `bss erase` removed on purpose (counted in the partition's summary).
fn without_erased(
    gaps: Vec<Gap>,
    erased: &HashMap<(String, i32), BTreeSet<i64>>,
    report: &mut Report,
) -> Vec<Gap> {
    let mut remaining = Vec::new();
    for gap in gaps {
        let Some(offsets) = erased.get(&(gap.topic.clone(), gap.partition)) else {
            remaining.push(gap);
            continue;
        };
        let mut from = gap.from;
        let mut count = 0;
        for &offset in offsets.range(gap.from..=gap.to) {
            if offset > from {
                remaining.push(Gap {
                    from,
                    to: offset - 1,
                    ..gap.clone()
                });
            }
            from = offset + 1;
            count += 1;
        }
        if from <= gap.to {
            remaining.push(Gap {
                from,
                ..gap.clone()
            });
        }
        if let Some(summary) = report
            .partitions
            .iter_mut()
            .find(|p| p.folder == gap.folder && p.partition == gap.partition)
        {
            summary.erased_offsets += count;
        }
    }
    remaining
}

/// The catalog lists exactly the folder's objects, each as it is: an object missing from it is never
/// selected by a reader, an entry without its object fails every replay that selects it.
fn compare_catalog(
    folder: &str,
    facts: &[ObjectFacts],
    entries: Vec<CatalogEntry>,
    report: &mut Report,
) {
    let mut by_path: HashMap<String, CatalogEntry> =
        entries.into_iter().map(|e| (e.path.clone(), e)).collect();
    for fact in facts {
        let path = fact.object.path.to_string();
        let finding = |kind, detail| Finding {
            kind,
            folder: folder.to_owned(),
            partition: Some(fact.object.name.partition),
            object: Some(path.clone()),
            detail,
        };
        let Some(entry) = by_path.remove(&path) else {
            report.problems.push(finding(
                "uncataloged",
                "the catalog does not list this object, so no reader selects it: run `bss catalog rebuild`".into(),
            ));
            continue;
        };
        if !fact.findings.is_empty() && fact.first_offset.is_none() {
            continue; // Undecodable: already a problem of its own.
        }
        let span = |low: Option<i64>, high: Option<i64>| {
            let show = |v: Option<i64>| v.map_or("none".to_owned(), |v| v.to_string());
            format!("{}..={}", show(low), show(high))
        };
        let compared = [
            (
                "records",
                entry.records.to_string(),
                fact.records.to_string(),
            ),
            (
                "bytes",
                entry.bytes.to_string(),
                fact.object.size.to_string(),
            ),
            ("checksum", entry.checksum.clone(), fact.checksum.clone()),
            (
                "offsets",
                span(Some(entry.first_offset), Some(entry.last_offset)),
                span(fact.first_offset, fact.last_offset),
            ),
            (
                "timestamps",
                span(entry.min_timestamp, entry.max_timestamp),
                span(fact.min_timestamp, fact.max_timestamp),
            ),
        ];
        let differences: Vec<String> = compared
            .into_iter()
            .filter(|(_, cataloged, actual)| cataloged != actual)
            .map(|(what, cataloged, actual)| format!("{what} {cataloged} vs {actual}"))
            .collect();
        if !differences.is_empty() {
            report.problems.push(finding(
                "catalog-mismatch",
                format!(
                    "catalog entry and object differ (catalog vs object): {}",
                    differences.join(", ")
                ),
            ));
        }
    }
    for (path, entry) in by_path {
        report.problems.push(Finding {
            kind: "dangling-entry",
            folder: folder.to_owned(),
            partition: Some(entry.partition),
            object: Some(path),
            detail: "the catalog lists this object but it is not in the bucket: replays that select it fail".into(),
        });
    }
}

/// Offsets across consecutive objects of one partition: each must start right after the previous
/// (an overlap is a problem; a hole is collected in `gaps` for the broker to classify).
fn continuity(
    folder: &str,
    partition: i32,
    objects: &[&ObjectFacts],
    gaps: &mut Vec<Gap>,
    report: &mut Report,
) {
    let mut previous: Option<(&ObjectFacts, i64)> = None;
    for fact in objects {
        let (Some(first), Some(last)) = (fact.first_offset, fact.last_offset) else {
            continue;
        };
        if let Some((before, before_last)) = previous {
            if first <= before_last {
                report.problems.push(Finding {
                    kind: "duplicate",
                    folder: folder.to_owned(),
                    partition: Some(partition),
                    object: Some(fact.object.path.to_string()),
                    detail: format!(
                        "offsets {first}..={} are also in {}",
                        before_last.min(last),
                        before.object.path
                    ),
                });
            } else if first > before_last + 1 {
                gaps.push(Gap {
                    folder: folder.to_owned(),
                    topic: fact.object.name.topic.clone(),
                    partition,
                    from: before_last + 1,
                    to: first - 1,
                    object: fact.object.path.to_string(),
                    previous: before.object.path.to_string(),
                });
            }
        }
        if previous.is_none_or(|(_, l)| last > l) {
            previous = Some((fact, last));
        }
    }
}

/// Asks the source topic, as a `read_committed` consumer, what each gap held: the first record it
/// delivers from the gap's start says whether the gap lost a record or only spans offsets that
/// consumers never see.
async fn check_gaps(context: &Context, gaps: Vec<Gap>) -> anyhow::Result<Vec<GapVerdict>> {
    // The storer's settings, so `isolation.level` is the one it archived with (read_committed unless
    // the user changed it).
    let group = format!("bss-verify-{}", std::process::id());
    let consumer = bss_kafka::tool_consumer(&context.config.kafka, &group, true)
        .context("creating the Kafka client")?;
    let task = tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        gaps.iter()
            .map(|gap| {
                let low = match consumer.fetch_watermarks(&gap.topic, gap.partition, timeout) {
                    Ok((low, _)) => low,
                    Err(e) => {
                        return GapVerdict::Unknown(format!(
                            "reading {}/{}: {e}",
                            gap.topic, gap.partition
                        ))
                    }
                };
                if gap.from < low {
                    return GapVerdict::Unknown(format!(
                        "the topic now starts at offset {low} (retention)"
                    ));
                }
                let mut assignment = TopicPartitionList::new();
                if let Err(e) = assignment.add_partition_offset(
                    &gap.topic,
                    gap.partition,
                    Offset::Offset(gap.from),
                ) {
                    return GapVerdict::Unknown(e.to_string());
                }
                if let Err(e) = consumer.assign(&assignment) {
                    return GapVerdict::Unknown(e.to_string());
                }
                let deadline = Instant::now() + timeout;
                while Instant::now() < deadline {
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(message)) if message.offset() <= gap.to => {
                            return GapVerdict::Missing(message.offset())
                        }
                        Some(Ok(_)) => return GapVerdict::Undelivered,
                        Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                            return GapVerdict::Undelivered
                        }
                        Some(Err(e)) => return GapVerdict::Unknown(e.to_string()),
                        None => {}
                    }
                }
                GapVerdict::Unknown(format!(
                    "no answer from {}/{} within {timeout:?}",
                    gap.topic, gap.partition
                ))
            })
            .collect()
    });
    task.await.context("gap check task")
}

/// Every event of the events topic, from its beginning to the end it had when reading started.
async fn read_events(context: &Context) -> anyhow::Result<Vec<FileWrittenEvent>> {
    let topic = context.config.events_topic.clone();
    let consumer = context.consumer(&format!("bss-verify-{}", std::process::id()))?;
    let task = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<FileWrittenEvent>> {
        let timeout = Duration::from_secs(10);
        let partitions = bss_kafka::partition_count(consumer.client(), &topic, timeout)
            .with_context(|| format!("reading the metadata of the events topic {topic}"))?
            .with_context(|| format!("the events topic {topic} does not exist"))?;
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, timeout)
                .with_context(|| format!("reading the end of {topic}/{partition}"))?;
            if high > low {
                ends.insert(partition, high);
                assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
            }
        }
        consumer.assign(&assignment)?;
        let deadline = Instant::now() + EVENTS_TIMEOUT;
        let mut events = Vec::new();
        let mut progress = Progress::new("events", "events", None);
        while !ends.is_empty() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the events topic {topic} was not read to its end within {EVENTS_TIMEOUT:?}"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.with_context(|| format!("reading {topic}"))?;
            if let Some(payload) = message.payload() {
                match serde_json::from_slice::<FileWrittenEvent>(payload) {
                    Ok(event) => events.push(event),
                    Err(e) => tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        error = %e,
                        "skipping a message of the events topic that is not a file-written event"
                    ),
                }
            }
            progress.inc(1);
            if ends
                .get(&message.partition())
                .is_some_and(|&end| message.offset() + 1 >= end)
            {
                ends.remove(&message.partition());
            }
        }
        progress.finish();
        Ok(events)
    });
    task.await.context("events reader task")?
}

/// Every object has an event that agrees with it; every event of a verified folder has its object.
fn match_events(
    checked: &[ObjectFacts],
    events: &[FileWrittenEvent],
    rewritten: &HashSet<String>,
    report: &mut Report,
) {
    let mut by_path: HashMap<&str, Vec<&FileWrittenEvent>> = HashMap::new();
    for event in events {
        by_path
            .entry(event.file_path.as_str())
            .or_default()
            .push(event);
    }
    let folders: std::collections::HashSet<&str> = checked
        .iter()
        .map(|f| f.object.name.folder.as_str())
        .collect();
    for fact in checked {
        let path = fact.object.path.as_ref();
        let finding = |kind, detail| Finding {
            kind,
            folder: fact.object.name.folder.clone(),
            partition: Some(fact.object.name.partition),
            object: Some(path.to_owned()),
            detail,
        };
        let Some(announced) = by_path.remove(path) else {
            if rewritten.contains(path) {
                continue; // Written by `bss erase`, not announced by the storer.
            }
            report.problems.push(finding(
                "missing-event",
                "no file-written event names this object".into(),
            ));
            continue;
        };
        // A batch re-announced after a crash has identical events; each must agree.
        for event in announced {
            let mut differences = Vec::new();
            if event.checksum != fact.checksum {
                differences.push(format!("checksum {} vs {}", event.checksum, fact.checksum));
            }
            if event.batch_size != fact.records {
                differences.push(format!(
                    "batchSize {} vs {} records",
                    event.batch_size, fact.records
                ));
            }
            if event.byte_size != fact.object.size {
                differences.push(format!(
                    "byteSize {} vs {} bytes",
                    event.byte_size, fact.object.size
                ));
            }
            if Some(event.batch_offset_start) != fact.first_offset
                || Some(event.batch_offset_end) != fact.last_offset
            {
                differences.push(format!(
                    "offsets {}..={} vs {:?}..={:?}",
                    event.batch_offset_start,
                    event.batch_offset_end,
                    fact.first_offset,
                    fact.last_offset
                ));
            }
            if !differences.is_empty() {
                report.problems.push(finding(
                    "event-mismatch",
                    format!("event and object differ: {}", differences.join(", ")),
                ));
            }
        }
    }
    for (path, _) in by_path {
        let folder = path.rsplit_once('/').map_or("", |(f, _)| f);
        if folders.contains(folder) && !rewritten.contains(path) {
            report.problems.push(Finding {
                kind: "orphan-event",
                folder: folder.to_owned(),
                partition: None,
                object: Some(path.to_owned()),
                detail: "an event announces this object but it is not in the bucket".into(),
            });
        }
    }
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
