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
