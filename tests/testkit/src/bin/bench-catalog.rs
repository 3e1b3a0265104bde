//! Catalog benchmark (run by `tests/bench/catalog.sh`, release build, the stack's S3 protocol server).
//!
//! Archives N small objects (default 100,000; 4 partitions; 10 records each; zstd) spanning 30 days
//! of record time, every 50th object with one record two days late; one key ("needle") in exactly
//! 10 objects. The catalog is written as the storer's compaction leaves it (level-1 segments of 64
//! objects merged into level 2). Then, through the readers' own path (`bss_archive::Archive::select`):
//! - a key lookup: GETs, bytes (segments + candidate objects) as a share of the archive, time; the
//!   false-positive rate over 200 absent keys;
//! - one-hour windows: objects read ÷ objects that really overlap the hour, LIST requests;
//! - the catalog's size per million objects;
//! - the floor of a reader without a catalog: one LIST of the folder (N objects), timed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bss_archive::{Archive, ReadObserver, Selection};
use bss_catalog::{Catalog, CompactionPolicy, ReadCost};
use bss_format::{encode_line, Compression, Header, Record, TimestampType};
use bss_layout::catalog::{folder_prefix, CatalogEntry};
use bss_layout::index::key_hash;
use bss_layout::ObjectName;
use bss_testkit::bucket::s3_settings;
use bss_testkit::unique;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::{Rng, SeedableRng};

const PARTITIONS: i32 = 4;
const RECORDS_PER_OBJECT: i64 = 10;
const SPAN_MS: i64 = 30 * 24 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;
const BASE_MS: i64 = 1_767_225_600_000;
const NEEDLE: &[u8] = b"needle";
const PUT_CONCURRENCY: usize = 64;

#[derive(Default)]
struct Counting {
    lists: AtomicU64,
    gets: AtomicU64,
    bytes: AtomicU64,
    objects: AtomicU64,
}

impl ReadObserver for Counting {
    fn object_read(&self, _ok: bool, bytes: u64) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn catalog_read(&self, cost: &ReadCost) {
        self.lists.fetch_add(cost.lists, Ordering::Relaxed);
        self.gets.fetch_add(cost.gets, Ordering::Relaxed);
        self.bytes.fetch_add(cost.bytes, Ordering::Relaxed);
    }
}

impl Counting {
    fn take(&self) -> (u64, u64, u64, u64) {
        (
            self.lists.swap(0, Ordering::Relaxed),
            self.gets.swap(0, Ordering::Relaxed),
            self.bytes.swap(0, Ordering::Relaxed),
            self.objects.swap(0, Ordering::Relaxed),
        )
    }
}

/// One generated object: its encoded bytes and what the catalog records about it.
struct Generated {
    path: String,
    stored: Vec<u8>,
    entry: CatalogEntry,
    keys: Vec<u64>,
}

fn generate(
    folder: &str,
    partition: i32,
    index: i64,
    per_partition: i64,
    needle: bool,
) -> Generated {
    let mut rng = rand::rngs::StdRng::seed_from_u64((partition as u64) << 32 | index as u64);
    let stride = SPAN_MS / per_partition;
    let first_ts = BASE_MS + index * stride + i64::from(partition) * 997;
    let records: Vec<Record> = (0..RECORDS_PER_OBJECT)
        .map(|i| {
            let mut ts = first_ts + i * stride / RECORDS_PER_OBJECT;
            if index % 50 == 3 && i == 5 {
                ts -= 2 * 24 * HOUR_MS;
            }
            let key = if needle && i == 0 {
                NEEDLE.to_vec()
            } else {
                format!("{{\"id\":\"c{:016x}\"}}", rng.random::<u64>()).into_bytes()
            };
            Record {
                topic: folder.into(),
                partition,
                offset: index * RECORDS_PER_OBJECT + i,
                timestamp_ms: Some(ts),
                timestamp_type: TimestampType::CreateTime,
                key: Some(key),
                payload: Some(
                    format!(
                        "{{\"orderId\":{},\"status\":\"{}\",\"amount\":{}.{:02},\"customer\":\"c{:08x}\"}}",
                        rng.random::<u32>(),
                        ["NEW", "PAID", "SHIPPED"][rng.random_range(0..3)],
                        rng.random_range(1..5000),
                        rng.random_range(0..100),
                        rng.random::<u32>()
                    )
                    .into_bytes(),
                ),
                headers: vec![Header {
                    key: "source".into(),
                    value: Some(b"bench".to_vec()),
                }],
            }
        })
        .collect();
    let mut plain = Vec::new();
    for record in &records {
        encode_line(record, &mut plain);
    }
    let stored = Compression::Zstd.compress(&plain);
    let first = &records[0];
    let path = ObjectName::for_batch(
        folder,
        folder,
        partition,
        first.offset,
        first.timestamp_ms,
        Compression::Zstd,
    )
    .path();
    let timestamps = records.iter().filter_map(|r| r.timestamp_ms);
    let entry = CatalogEntry {
        path: path.clone(),
        topic: folder.to_owned(),
        partition,
        first_offset: first.offset,
        last_offset: records[records.len() - 1].offset,
        records: records.len() as u64,
        min_timestamp: timestamps.clone().min(),
        max_timestamp: timestamps.max(),
        bytes: stored.len() as u64,
        checksum: bss_format::checksum(&stored),
        index_path: None,
    };
    let keys = records
        .iter()
        .filter_map(|r| r.key.as_deref().map(key_hash))
        .collect();
    Generated {
        path,
        stored,
        entry,
        keys,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let objects: i64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("OBJECTS must be a number")?
        .unwrap_or(100_000);
    let per_partition = objects / i64::from(PARTITIONS);
    let store: Arc<dyn ObjectStore> = s3_settings().store();
    let folder = unique("bench-catalog");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut needles = BTreeSet::new();
    while needles.len() < 10 {
        needles.insert((
            rng.random_range(0..PARTITIONS),
            rng.random_range(0..per_partition),
        ));
    }

    // 1. The archive and its catalog.
    let started = Instant::now();
    let catalog = Catalog::new(Arc::clone(&store));
    let mut archive_bytes = 0u64;
    let mut truth: Vec<CatalogEntry> = Vec::new();
    for partition in 0..PARTITIONS {
        let generated = futures::stream::iter(0..per_partition)
            .map(|i| {
                let (store, folder) = (Arc::clone(&store), folder.clone());
                let needle = needles.contains(&(partition, i));
                async move {
                    let object = tokio::task::spawn_blocking(move || {
                        generate(&folder, partition, i, per_partition, needle)
                    })
                    .await?;
                    store
                        .put(
                            &Path::from(object.path.as_str()),
                            object.stored.clone().into(),
                        )
                        .await?;
                    anyhow::Ok(object)
                }
            })
            .buffered(PUT_CONCURRENCY)
            .try_collect::<Vec<Generated>>()
            .await?;
        for chunk in generated.chunks(64) {
            let entries: Vec<CatalogEntry> = chunk.iter().map(|g| g.entry.clone()).collect();
            let keys = chunk.iter().map(|g| g.keys.clone()).collect();
            catalog.write_segment(&folder, 1, &entries, keys).await?;
        }
        archive_bytes += generated.iter().map(|g| g.entry.bytes).sum::<u64>();
        truth.extend(generated.into_iter().map(|g| g.entry));
        eprintln!("partition {partition} written ({:.0?})", started.elapsed());
    }
    let written = started.elapsed();
    let policy = CompactionPolicy {
        grace: std::time::Duration::ZERO,
        ..CompactionPolicy::default()
    };
    for partition in 0..PARTITIONS {
        loop {
            let done = catalog
                .compact_partition(&folder, &folder, partition, &policy)
                .await?;
            if done.written == 0 && done.deleted == 0 {
                break;
            }
        }
    }
    catalog.mark_complete(&folder, "bench").await?;
    let (segments, _) = catalog.list(&folder_prefix(&folder)).await?;
    let catalog_bytes: u64 = segments.iter().map(|s| s.size).sum();
    println!(
        "archive: {objects} objects, {} records, {:.1} MiB, written in {:.1?} ({:.0} objects/s)",
        objects * RECORDS_PER_OBJECT,
        archive_bytes as f64 / 1_048_576.0,
        written,
        objects as f64 / written.as_secs_f64()
    );
    println!(
        "catalog: {} segments, {:.2} MiB = {:.0} bytes per object = {:.0} MiB per million objects",
        segments.len(),
        catalog_bytes as f64 / 1_048_576.0,
        catalog_bytes as f64 / objects as f64,
        catalog_bytes as f64 / objects as f64
    );

    let counting = Arc::new(Counting::default());
    let archive = Archive::new(Arc::clone(&store), counting.clone());

    // 2. A key present in 10 objects.
    let started = Instant::now();
    let selected = archive
        .select(&folder, &Selection::all().with_key(Some(NEEDLE.to_vec())))
        .await?;
    let mut found = 0;
    for object in selected.values().flatten() {
        let mut chunks = archive.read(object).await?;
        while let Some(chunk) = chunks.recv().await {
            found += chunk?
                .iter()
                .filter(|r| r.key.as_deref() == Some(NEEDLE))
                .count();
        }
    }
    let elapsed = started.elapsed();
    let (lists, gets, bytes, objects_read) = counting.take();
    println!(
        "key lookup: {found} records from {objects_read} objects (10 hold it); {gets} GETs (+1 HEAD), {lists} LIST pages, {bytes} bytes = {:.4} % of the archive; {:.0?}",
        100.0 * bytes as f64 / archive_bytes as f64,
        elapsed
    );
    anyhow::ensure!(found == 10, "the key is in 10 records, found {found}");

    // False positives: absent keys.
    let mut candidates = 0usize;
    let absent = 200;
    for n in 0..absent {
        let key = format!("absent-{n}");
        candidates += archive
            .select(&folder, &Selection::all().with_key(Some(key.into_bytes())))
            .await?
            .values()
            .map(Vec::len)
            .sum::<usize>();
    }
    let (_, absent_gets, absent_bytes, _) = counting.take();
    println!(
        "absent keys: {candidates} candidate objects over {absent} lookups of {objects} objects: false-positive rate {:.2e}; {:.1} GETs and {:.0} bytes per lookup",
        candidates as f64 / (absent as f64 * objects as f64),
        absent_gets as f64 / absent as f64,
        absent_bytes as f64 / absent as f64
    );

    // 3. One-hour windows.
    for n in 0..5 {
        let from = BASE_MS + SPAN_MS / 6 * (n + 1) + 1_234_567;
        let to = from + HOUR_MS - 1;
        let overlapping = truth
            .iter()
            .filter(|e| e.may_overlap(Some(from), Some(to)))
            .count();
        let started = Instant::now();
        let selected: usize = archive
            .select(&folder, &Selection::window(Some(from), Some(to)))
            .await?
            .values()
            .map(Vec::len)
            .sum();
        let elapsed = started.elapsed();
        let (lists, gets, bytes, _) = counting.take();
        println!(
            "window of 1 hour #{n}: {selected} objects selected, {overlapping} overlap it (ratio {:.2}); catalog: {lists} LIST pages, {gets} GETs, {bytes} bytes; data LISTs 0; {:.0?}",
            selected as f64 / overlapping.max(1) as f64,
            elapsed
        );
    }

    // 4. Without a catalog a reader lists the folder first.
    let started = Instant::now();
    let listed = archive.list(&folder).await?.len();
    println!(
        "listing the folder (the floor of a reader without a catalog): {listed} objects, {} LIST pages, {:.1?}; then one sidecar GET per object for a key",
        listed.div_ceil(1000),
        started.elapsed()
    );
    Ok(())
}
