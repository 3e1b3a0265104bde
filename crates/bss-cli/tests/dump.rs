//! `bss dump` and `bss organize` on archives in the S3 test bucket (moto).

mod common;

use std::time::Duration;

use bss_testkit::kafka::{create_topic, read_topic};
use bss_testkit::{kafka_brokers, unique};
use common::{archive, expected_latest, history, lines_by_key, listing, Setup, BASE_MS};
use object_store::path::Path;
use object_store::ObjectStoreExt;

#[tokio::test(flavor = "multi_thread")]
async fn dump_keeps_the_latest_value_per_key_as_of_a_time_in_little_memory_and_loads_back() {
    let folder = unique("dump");
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("g"),
        "unused",
        &[(&folder, &folder)],
    );
    let history = history(&folder, 600);
    archive(&setup.store, &folder, &history).await;
    let as_of = BASE_MS + 300_000;
    let expected = expected_latest(&history, as_of);
    assert!(expected.len() > 40 && expected.contains_key(b"moved".as_slice()));

    // 16 KiB of memory for ~150 KB of records: many spill files, each split again.
    let output = setup.path("dump.ndjson");
    let run = setup
        .bss(&[
            "dump",
            "--topic",
            &folder,
            "--as-of",
            &as_of.to_string(),
            "--output",
            &output,
            "--memory",
            "16KiB",
        ])
        .await
        .ok();
    assert!(
        run.stdout
            .contains(&format!("Wrote {} keys", expected.len())),
        "{run:#?}"
    );
    let text = std::fs::read_to_string(&output).expect("dump file");
    assert_eq!(lines_by_key(&text), expected);

    // Values only, into the bucket, with a manifest beside it.
    let prefix = unique("dumps");
    setup
        .bss(&[
            "dump",
            "--topic",
            &folder,
            "--as-of",
            &as_of.to_string(),
            "--output-prefix",
            &prefix,
            "--format",
            "values",
        ])
        .await
        .ok();
    let objects = listing(&setup.store, &prefix).await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    let dump = objects
        .iter()
        .find(|(p, _)| p.ends_with(".ndjson"))
        .expect("dump object");
    let bytes = setup
        .store
        .get(&Path::from(dump.0.as_str()))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let mut values: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    values.sort();
    let mut wanted: Vec<&[u8]> = expected.values().map(Vec::as_slice).collect();
    wanted.sort();
    assert_eq!(values, wanted);

    // The records dump is an initial load: keys, values and headers arrive as archived.
    let topic = unique("reload");
    create_topic(&topic, 2).await;
    setup
        .bss(&[
            "load", "--topic", &topic, "--input", &output, "--format", "records",
        ])
        .await
        .ok();
    let read = read_topic(&topic, expected.len(), Duration::from_secs(30)).await;
    let loaded: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = read
        .iter()
        .map(|r| {
            (
                r.record.key.clone().expect("key"),
                r.record.payload.clone().expect("value"),
            )
        })
        .collect();
    assert_eq!(read.len(), expected.len());
    assert_eq!(loaded, expected);
    assert!(read
        .iter()
        .all(|r| r.record.headers == [(b"origin".to_vec(), Some(vec![0, 1, 0xff]))]));

    let nothing = setup
        .bss(&[
            "dump",
            "--topic",
            &folder,
            "--as-of",
            "2020-01-01",
            "--output",
            &output,
        ])
        .await;
    assert_eq!(nothing.code, 2);
    assert!(
        nothing
            .stderr
            .contains(&format!("folder {folder} holds no archived object")),
        "{nothing:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn organize_writes_a_compacted_generation_that_later_dumps_start_from() {
    let folder = unique("organize");
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("g"),
        "unused",
        &[(&folder, &folder)],
    );
    let history = history(&folder, 400);
    archive(&setup.store, &folder, &history).await;
    let originals = listing(&setup.store, &folder).await;
    let prefix = unique(".organized");
    let as_of = BASE_MS + 200_000;

    let dry = setup
        .bss(&[
            "organize",
            "--topic",
            &folder,
            "--as-of",
            &as_of.to_string(),
            "--prefix",
            &prefix,
            "--dry-run",
        ])
        .await
        .ok();
    assert!(dry.stdout.contains("Dry run"), "{dry:#?}");
    assert!(listing(&setup.store, &prefix).await.is_empty());

    setup
        .bss(&[
            "organize",
            "--topic",
            &folder,
            "--as-of",
            &as_of.to_string(),
            "--prefix",
            &prefix,
        ])
        .await
        .ok();
    assert_eq!(
        listing(&setup.store, &folder).await,
        originals,
        "the original objects are untouched"
    );
    let generation = format!("{prefix}/{folder}/{as_of}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &setup
            .store
            .get(&Path::from(format!("{generation}/manifest.json")))
            .await
            .expect("manifest")
            .bytes()
            .await
            .expect("bytes"),
    )
    .expect("json");
    let expected = expected_latest(&history, as_of);
    assert_eq!(manifest["keys"], expected.len() as u64);

    // The generation is an archive of its own: it decodes, has sidecars, and holds each key once.
    let verified = setup
        .bss(&["verify", "--topic", &generation, "--allow-gaps"])
        .await
        .ok();
    assert!(verified.stdout.contains("OK"), "{verified:#?}");
    assert!(!verified.stdout.contains("missing-index"), "{verified:#?}");
    let all = setup
        .bss(&["inspect", "read", "--topic", &generation])
        .await
        .ok();
    assert_eq!(lines_by_key(&all.stdout), expected);
    let one = setup
        .bss(&["inspect", "read", "--topic", &generation, "--key", "moved"])
        .await
        .ok();
    assert_eq!(one.stdout.lines().count(), 1, "{one:#?}");

    // A later dump reads the generation plus only the objects that may hold newer records, and
    // agrees with a dump of the whole archive.
    let later = BASE_MS + 350_000;
    let incremental = setup.path("incremental.ndjson");
    let run = setup
        .bss(&[
            "dump",
            "--topic",
            &folder,
            "--as-of",
            &later.to_string(),
            "--output",
            &incremental,
            "--organized-prefix",
            &prefix,
        ])
        .await
        .ok();
    assert!(run.stderr.contains("from the organized copy"), "{run:#?}");
    let objects_read: usize = run
        .stderr
        .split(" objects,")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("object count in the summary");
    let up_to_later = originals
        .iter()
        .filter(|(path, _)| {
            bss_layout::ObjectName::parse(path)
                .expect("object name")
                .first_timestamp_ms
                <= later
        })
        .count();
    assert!(
        objects_read < up_to_later * 2 / 3,
        "read {objects_read} objects (generation included); the archive has {up_to_later} up to then"
    );
    let full = setup.path("full.ndjson");
    setup
        .bss(&[
            "dump",
            "--topic",
            &folder,
            "--as-of",
            &later.to_string(),
            "--output",
            &full,
            "--full",
        ])
        .await
        .ok();
    let incremental = lines_by_key(&std::fs::read_to_string(&incremental).expect("file"));
    assert_eq!(
        incremental,
        lines_by_key(&std::fs::read_to_string(&full).expect("file"))
    );
    assert_eq!(incremental, expected_latest(&history, later));

    let again = setup
        .bss(&[
            "organize",
            "--topic",
            &folder,
            "--as-of",
            &as_of.to_string(),
            "--prefix",
            &prefix,
        ])
        .await
        .ok();
    assert!(again.stdout.contains("already complete"), "{again:#?}");
}
