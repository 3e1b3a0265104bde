//! `bss catalog rebuild` over an archive written without a catalog (objects in the storer's format and
//! Mia-Platform `.txt` objects), then readers that use it: `bss inspect read` gives the same exact
//! window with and without the catalog, and only the catalog run skips the listing.

mod common;

use std::collections::BTreeSet;

use bss_format::Compression;
use bss_testkit::archive::{write_mia_object, write_objects};
use bss_testkit::{kafka_brokers, unique};
use common::{record, Run, Setup, BASE_MS};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

const HOUR: i64 = 3_600_000;
const LISTING_WARNING: &str = "has no complete catalog";

fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// (partition, offset) of the records `bss inspect read` printed.
fn printed(run: &Run) -> BTreeSet<(i64, i64)> {
    json_lines(run)
        .iter()
        .map(|v| {
            (
                v["partition"].as_i64().expect("partition"),
                v["offset"].as_i64().expect("offset"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_catalogs_storer_and_mia_objects_once_and_readers_use_it() {
    let folder = unique("rebuild");
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("rebuild-group"),
        &unique("rebuild-events"),
        &[(&folder, &folder)],
    );
    // Partition 0 in the storer's format: a backlog, so each object of 10 records spans 10 hours, and
    // record 13 is two days late (its object starts long after it).
    let timestamp = |offset: i64| {
        if offset == 13 {
            BASE_MS - 48 * HOUR
        } else {
            BASE_MS + offset * HOUR
        }
    };
    let ours: Vec<_> = (0..40)
        .map(|o| {
            record(
                &folder,
                0,
                o,
                timestamp(o),
                &format!("k{}", o % 5),
                Some("{}"),
            )
        })
        .collect();
    write_objects(&setup.store, &folder, &ours, 10, Compression::Zstd).await;
    // Partition 1 as Mia-Platform's storer writes it: no sidecar, five fields per line.
    let mia: Vec<(i64, i64, String)> = (0..30)
        .map(|o| (o, BASE_MS + o * HOUR + 1, format!("k{}", o % 5)))
        .collect();
    for chunk in mia.chunks(15) {
        let lines: Vec<(i64, i64, &str, &str)> = chunk
            .iter()
            .map(|(o, ts, key)| (*o, *ts, key.as_str(), "{}"))
            .collect();
        write_mia_object(&setup.store, &folder, &folder, 1, &lines).await;
    }
    let all: Vec<(i64, i64, i64)> = ours
        .iter()
        .map(|r| (0, r.offset, r.timestamp_ms.expect("ts")))
        .chain(mia.iter().map(|(o, ts, _)| (1, *o, *ts)))
        .collect();
    let (from, to) = (BASE_MS + 12 * HOUR, BASE_MS + 21 * HOUR);
    let want: BTreeSet<(i64, i64)> = all
        .iter()
        .filter(|(_, _, ts)| (from..=to).contains(ts))
        .map(|(p, o, _)| (*p, *o))
        .collect();
    let read_window = [
        "inspect",
        "read",
        "--topic",
        &folder,
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ];

    let listed = setup.bss(&read_window).await.ok();
    assert_eq!(printed(&listed), want, "window by listing");
    assert!(listed.stderr.contains(LISTING_WARNING), "{listed:#?}");

    let dry = setup
        .bss(&["catalog", "rebuild", "--topic", &folder, "--dry-run"])
        .await
        .ok();
    let dry = &json_lines(&dry)[0];
    assert_eq!(
        (dry["missing"].as_u64(), dry["segmentsWritten"].as_u64()),
        (Some(6), Some(0)),
        "{dry}"
    );
    let rebuilt = setup
        .bss(&["catalog", "rebuild", "--topic", &folder])
        .await
        .ok();
    let rebuilt = &json_lines(&rebuilt)[0];
    assert_eq!(rebuilt["missing"], 6, "{rebuilt}");
    assert_eq!(rebuilt["segmentsWritten"], 2, "one segment per partition");
    assert_eq!(rebuilt["complete"], true, "{rebuilt}");
    let again = setup
        .bss(&["catalog", "rebuild", "--topic", &folder])
        .await
        .ok();
    let again = &json_lines(&again)[0];
    assert_eq!(
        (
            again["alreadyCataloged"].as_u64(),
            again["missing"].as_u64()
        ),
        (Some(6), Some(0)),
        "a second run writes nothing: {again}"
    );

    let cataloged = setup.bss(&read_window).await.ok();
    assert_eq!(printed(&cataloged), want, "window by catalog");
    assert!(
        !cataloged.stderr.contains(LISTING_WARNING),
        "{cataloged:#?}"
    );
    let key = setup
        .bss(&["inspect", "read", "--topic", &folder, "--key", "k3"])
        .await
        .ok();
    let with_k3: BTreeSet<(i64, i64)> = all
        .iter()
        .filter(|(_, o, _)| o % 5 == 3)
        .map(|(p, o, _)| (*p, *o))
        .collect();
    assert_eq!(printed(&key), with_k3, "key by catalog");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_object_leaves_the_catalog_incomplete_and_is_named() {
    let folder = unique("rebuild-bad");
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("rebuild-bad-group"),
        &unique("rebuild-bad-events"),
        &[(&folder, &folder)],
    );
    let records: Vec<_> = (0..20)
        .map(|o| record(&folder, 0, o, BASE_MS + o, "k", Some("{}")))
        .collect();
    let paths = write_objects(&setup.store, &folder, &records, 10, Compression::Zstd).await;
    setup
        .store
        .put(
            &Path::from(paths[1].as_str()),
            PutPayload::from_static(b"not zstd at all"),
        )
        .await
        .expect("damage");
    let run = setup.bss(&["catalog", "rebuild", "--topic", &folder]).await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains(&paths[1]), "{run:#?}");
    let report = &json_lines(&run)[0];
    assert_eq!(report["unreadable"], 1, "{report}");
    assert_eq!(report["complete"], false, "{report}");
    let listed = setup
        .bss(&["inspect", "read", "--topic", &folder, "--key", "k"])
        .await;
    assert!(listed.stderr.contains(LISTING_WARNING), "{listed:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_each_partitions_expired_prefix_catalog_first_and_finishes_an_interrupted_run(
) {
    let folder = unique("prune");
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("prune-group"),
        &unique("prune-events"),
        &[(&folder, &folder)],
    );
    // Hourly records in objects of 10; on partition 1, record 15 is 100 hours ahead, so its object
    // is not expired and the objects after it stay too.
    let mut paths = Vec::new();
    for partition in 0..2 {
        let records: Vec<_> = (0..40)
            .map(|o| {
                let ahead = if partition == 1 && o == 15 { 100 } else { 0 };
                let ts = BASE_MS + (o + ahead) * HOUR;
                record(&folder, partition, o, ts, "k", Some("{}"))
            })
            .collect();
        paths.push(write_objects(&setup.store, &folder, &records, 10, Compression::Zstd).await);
    }
    let before = (BASE_MS + 25 * HOUR).to_string();

    let refused = setup
        .bss(&["prune", "--topic", &folder, "--before", &before])
        .await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused.stderr.contains("bss catalog rebuild"),
        "{refused:#?}"
    );

    bss_testkit::archive::catalog_folder(&setup.store, &folder).await;
    let exists = |path: String| {
        let store = setup.store.clone();
        async move { store.head(&Path::from(path)).await.is_ok() }
    };
    let dry = setup
        .bss(&[
            "prune",
            "--topic",
            &folder,
            "--before",
            &before,
            "--dry-run",
        ])
        .await
        .ok();
    let plan = json_lines(&dry);
    let starts: Vec<(i64, i64)> = plan
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().expect("p"),
                p["newStartOffset"].as_i64().expect("o"),
            )
        })
        .collect();
    assert_eq!(starts, vec![(0, 20), (1, 10)], "{dry:#?}");
    assert!(
        exists(paths[0][0].clone()).await,
        "a dry run deletes nothing"
    );

    setup
        .bss(&["prune", "--topic", &folder, "--before", &before])
        .await
        .ok();
    let index = |p: &str| bss_layout::index::index_path(p);
    for (partition, kept_from) in [(0usize, 2usize), (1, 1)] {
        for (n, path) in paths[partition].iter().enumerate() {
            let expected = n >= kept_from;
            assert_eq!(exists(path.clone()).await, expected, "{path}");
            assert_eq!(exists(index(path)).await, expected, "sidecar of {path}");
        }
    }
    let all = setup
        .bss(&["inspect", "read", "--topic", &folder])
        .await
        .ok();
    let expected: BTreeSet<(i64, i64)> = (20..40)
        .map(|o| (0, o))
        .chain((10..40).map(|o| (1, o)))
        .collect();
    assert_eq!(printed(&all), expected);

    // An interrupted run: the marker moved, one object was not deleted yet. Readers already skip it
    // and the next run deletes it.
    let leftover = paths[0][0].clone();
    setup
        .store
        .put(
            &Path::from(leftover.as_str()),
            PutPayload::from_static(b"stale"),
        )
        .await
        .expect("put back");
    let all = setup
        .bss(&["inspect", "read", "--topic", &folder])
        .await
        .ok();
    assert_eq!(printed(&all), expected, "a pruned object is never selected");
    let again = setup
        .bss(&["prune", "--topic", &folder, "--before", &before])
        .await
        .ok();
    assert!(
        json_lines(&again).is_empty(),
        "nothing new expires: {again:#?}"
    );
    assert!(!exists(leftover).await, "the leftover is swept");
    let verified = setup.bss(&["verify", "--topic", &folder]).await.ok();
    assert!(verified.stdout.contains("0 problems"), "{verified:#?}");
}

/// The findings of `bss verify --json`: (kind, object or folder) pairs.
fn findings(run: &Run, which: &str) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json report");
    report[which]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().expect("kind").to_owned(),
                f["object"]
                    .as_str()
                    .unwrap_or(f["folder"].as_str().expect("folder"))
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_checks_the_catalog_against_the_objects_and_reports_every_stray() {
    let folder = unique("verify-catalog");
    let unknown = unique("no-such-folder");
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("verify-catalog-group"),
        &unique("verify-catalog-events"),
        &[(&folder, &folder)],
    );
    // A Mia-Platform archive: three objects without sidecars, no catalog.
    for n in 0..3i64 {
        let lines: Vec<(i64, i64, &str, &str)> = (0..5)
            .map(|i| (n * 5 + i, BASE_MS + n * 5 + i, "k", "{}"))
            .collect();
        write_mia_object(&setup.store, &folder, &folder, 0, &lines).await;
    }
    let mia = setup
        .bss(&["verify", "--topic", &folder, "--allow-gaps", "--json"])
        .await
        .ok();
    assert_eq!(
        findings(&mia, "warnings"),
        vec![
            ("missing-index".to_owned(), folder.clone()),
            ("no-catalog".to_owned(), folder.clone())
        ],
        "one line per folder, not one per object: {mia:#?}"
    );
    assert!(mia.stdout.contains("3 of 3 objects"), "{mia:#?}");

    // Cataloged, then damaged in every way the catalog can disagree with the bucket.
    bss_testkit::archive::catalog_folder(&setup.store, &folder).await;
    let ours: Vec<_> = (15..25)
        .map(|o| record(&folder, 0, o, BASE_MS + o, "k", Some("{}")))
        .collect();
    let late = write_objects(&setup.store, &folder, &ours, 5, Compression::Zstd).await;
    let stray = format!("{folder}/notes.csv");
    setup
        .store
        .put(
            &Path::from(stray.as_str()),
            PutPayload::from_static(b"a,b\n"),
        )
        .await
        .expect("stray");
    let listed = bss_archive::Archive::new(
        setup.store.clone(),
        std::sync::Arc::new(bss_archive::NoObserver),
    )
    .list(&folder)
    .await
    .expect("list");
    let mia_paths: Vec<String> = listed
        .iter()
        .map(|o| o.path.to_string())
        .filter(|p| p.ends_with(".txt"))
        .collect();
    setup
        .store
        .delete(&Path::from(mia_paths[0].as_str()))
        .await
        .expect("delete");
    let changed = r#"{"timestamp":"2026-01-01T00:00:00.005Z","partition":0,"offset":5,"key":"k","payload":"{}"}
{"timestamp":"2026-01-01T00:00:00.009Z","partition":0,"offset":9,"key":"k","payload":"{}"}
"#;
    setup
        .store
        .put(
            &Path::from(mia_paths[1].as_str()),
            PutPayload::from_static(changed.as_bytes()),
        )
        .await
        .expect("rewrite");
    let damaged = setup
        .bss(&["verify", "--topic", &folder, "--allow-gaps", "--json"])
        .await;
    assert_eq!(damaged.code, 1, "{damaged:#?}");
    let mut problems = findings(&damaged, "problems");
    problems.sort();
    let mut want = vec![
        ("catalog-mismatch".to_owned(), mia_paths[1].clone()),
        ("dangling-entry".to_owned(), mia_paths[0].clone()),
        ("uncataloged".to_owned(), late[0].clone()),
        ("uncataloged".to_owned(), late[1].clone()),
        ("unknown-object".to_owned(), stray.clone()),
    ];
    want.sort();
    assert_eq!(problems, want, "{damaged:#?}");

    let empty = setup.bss(&["verify", "--topic", &unknown, "--json"]).await;
    assert_eq!(empty.code, 1, "{empty:#?}");
    assert_eq!(
        findings(&empty, "problems"),
        vec![("empty-folder".to_owned(), unknown.clone())]
    );
}
