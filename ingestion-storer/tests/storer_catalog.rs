//! The catalog the storer writes, read back by the readers' selection (`bss_archive::Archive::select`,
//! used by the reloader's jobs and reads and by `bss inspect`): exact time windows and key lookups over
//! a backlog archived in objects that span days, with late and out-of-order timestamps; the same
//! answers when the folder has no complete catalog and readers fall back to a listing.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bss_archive::{Archive, ReadObserver, Selection};
use bss_catalog::{Catalog, ReadCost};
use bss_layout::catalog::complete_marker;
use bss_testkit::bucket::s3_settings;
use bss_testkit::kafka::{create_topic, produce, producer, TestRecord};
use bss_testkit::unique;
use common::{wait_for_offsets, StorerSetup};
use object_store::path::Path;
use object_store::ObjectStoreExt;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const BASE: i64 = 1_750_000_000_000;

#[derive(Default)]
struct Counting {
    fallbacks: AtomicU64,
    catalog_lists: AtomicU64,
    objects_read: AtomicU64,
}

impl ReadObserver for Counting {
    fn object_read(&self, _ok: bool, _bytes: u64) {
        self.objects_read.fetch_add(1, Ordering::SeqCst);
    }
    fn catalog_read(&self, cost: &ReadCost) {
        self.catalog_lists.fetch_add(cost.lists, Ordering::SeqCst);
    }
    fn listing_fallback(&self, _folder: &str) {
        self.fallbacks.fetch_add(1, Ordering::SeqCst);
    }
}

/// Hourly records, except every 17th is three days late and every 23rd two days ahead.
fn timestamp(n: i64) -> i64 {
    let mut ts = BASE + n * HOUR;
    if n % 17 == 5 {
        ts -= 3 * DAY;
    }
    if n % 23 == 7 {
        ts += 2 * DAY;
    }
    ts
}

/// (partition, offset) of the records the archive returns for a window and key.
async fn found(
    archive: &Archive,
    folder: &str,
    from: Option<i64>,
    to: Option<i64>,
    key: Option<&[u8]>,
) -> BTreeSet<(i32, i64)> {
    let mut found = BTreeSet::new();
    let selection = Selection::window(from, to).with_key(key.map(<[u8]>::to_vec));
    let selected = archive.select(folder, &selection).await.expect("selects");
    for object in selected.into_values().flatten() {
        let mut chunks = archive.read(&object).await.expect("reads");
        while let Some(chunk) = chunks.recv().await {
            for record in chunk.expect("decodes") {
                if selection.selects(&record) {
                    found.insert((record.partition, record.offset));
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_keys_are_exact_from_the_catalog_and_from_a_listing() {
    let topic = unique("backlog");
    let events = unique("events");
    create_topic(&topic, 2).await;
    create_topic(&events, 1).await;
    // The whole history is produced before the storer starts: it catches up a backlog, so every
    // object spans some forty hours of record time, plus late and early records.
    let per_partition = 150i64;
    let mut produced = Vec::new();
    for partition in 0..2 {
        let records: Vec<TestRecord> = (0..per_partition)
            .map(|n| TestRecord {
                partition,
                key: Some(format!("k{}", n % 40).into_bytes()),
                payload: Some(format!("{{\"n\":{n}}}").into_bytes()),
                headers: vec![],
                timestamp_ms: timestamp(n),
            })
            .collect();
        produce(&producer(), &topic, &records).await;
        produced.extend(
            (0..per_partition).map(|n| (partition, n, timestamp(n), format!("k{}", n % 40))),
        );
    }

    let s3 = s3_settings();
    let setup = StorerSetup::new(
        &unique("group"),
        &events,
        &[(&topic, None, &[])],
        "max-records-per-file: 40\nflush-interval: 1s\ncompression: zstd",
        s3.service_env(),
    );
    let storer = setup.start_ready("catalog");
    let store = s3.store();
    let expected = (0..2).map(|p| (p, per_partition)).collect();
    wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    drop(storer);

    let catalog = Catalog::new(Arc::clone(&store));
    assert!(
        catalog.is_complete(&topic).await.expect("head"),
        "a storer that starts on an empty folder catalogs it completely"
    );
    let (entries, _) = catalog
        .select(&topic, &Selection::all())
        .await
        .expect("catalog");
    assert_eq!(
        entries.len(),
        8,
        "2 partitions × 150 records in objects of 40"
    );
    let first = entries
        .iter()
        .find(|e| e.partition == 0 && e.first_offset == 0)
        .expect("first object");
    let (min, max) = (
        first.min_timestamp.expect("min"),
        first.max_timestamp.expect("max"),
    );
    assert!(
        max - min > DAY,
        "a backlog object spans more than a day: {min}..{max}"
    );
    // The first object holds the oldest record of all; the second one's edge has records before it.
    let second_min = entries
        .iter()
        .find(|e| e.partition == 0 && e.first_offset == 40)
        .and_then(|e| e.min_timestamp)
        .expect("second object");
    let windows = [
        // The user's report: a start alone, inside objects that began long before it.
        (Some(BASE + 50 * HOUR), None),
        (Some(BASE + 50 * HOUR), Some(BASE + 90 * HOUR)),
        // One record's exact time, inside one object.
        (Some(BASE + 61 * HOUR), Some(BASE + 61 * HOUR)),
        // The edges of one object.
        (Some(min), Some(min)),
        (Some(max), Some(max)),
        (Some(max + 1), None),
        (None, Some(second_min - 1)),
        (None, Some(second_min)),
        // Only the late ones, and only the early ones.
        (None, Some(BASE - 2 * DAY)),
        (Some(BASE + 150 * HOUR), None),
    ];
    let observer = Arc::new(Counting::default());
    let archive = Archive::new(Arc::clone(&store), observer.clone());
    for pass in ["catalog", "listing"] {
        for (from, to) in windows {
            let want: BTreeSet<(i32, i64)> = produced
                .iter()
                .filter(|(_, _, ts, _)| {
                    from.is_none_or(|f| *ts >= f) && to.is_none_or(|t| *ts <= t)
                })
                .map(|(p, o, _, _)| (*p, *o))
                .collect();
            assert!(!want.is_empty(), "window {from:?}..{to:?} holds records");
            let got = found(&archive, &topic, from, to, None).await;
            assert_eq!(got, want, "{pass}: window {from:?}..{to:?}");
        }
        let want: BTreeSet<(i32, i64)> = produced
            .iter()
            .filter(|(_, _, _, key)| key == "k7")
            .map(|(p, o, _, _)| (*p, *o))
            .collect();
        let reads_before = observer.objects_read.load(Ordering::SeqCst);
        assert_eq!(
            found(&archive, &topic, None, None, Some(b"k7")).await,
            want,
            "{pass}: key"
        );
        let objects_with_key = want
            .iter()
            .map(|(p, o)| (*p, o / 40))
            .collect::<BTreeSet<_>>()
            .len() as u64;
        let reads = observer.objects_read.load(Ordering::SeqCst) - reads_before;
        assert!(
            reads <= objects_with_key,
            "{pass}: read {reads} objects for a key in {objects_with_key}"
        );
        if pass == "catalog" {
            assert_eq!(
                observer.fallbacks.load(Ordering::SeqCst),
                0,
                "no listing with a catalog"
            );
            assert!(observer.catalog_lists.load(Ordering::SeqCst) > 0);
            // Without the marker, readers cannot know the catalog lists everything: they list.
            store
                .delete(&Path::from(complete_marker(&topic)))
                .await
                .expect("delete marker");
        } else {
            assert!(observer.fallbacks.load(Ordering::SeqCst) > 0);
        }
    }
}
