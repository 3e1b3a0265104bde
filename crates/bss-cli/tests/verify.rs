//! `bss verify` and `bss inspect` on an archive written by the real storer (on noida-db, whose
//! watermarks let the events topic be read to its end), then damaged on purpose.

mod common;

use std::time::{Duration, Instant};

use bss_testkit::bucket::{offsets_by_partition, read_folder};
use bss_testkit::kafka::{create_topic_on, produce, producer_on, TestRecord};
use bss_testkit::process::Service;
use bss_testkit::{time_aware_kafka_brokers, unique};
use common::{Setup, BASE_MS, BSS};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

fn storer_binary() -> String {
    let path = std::path::Path::new(BSS).with_file_name("ingestion-storer");
    assert!(
        path.exists(),
        "{} is not built: run the tests with --workspace",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_on_a_storer_archive_and_names_every_kind_of_damage() {
    let brokers = time_aware_kafka_brokers();
    let topic = unique("verify");
    let events = unique("verify-events");
    let folder = unique("verify-folder");
    create_topic_on(&brokers, &topic, 2).await;
    create_topic_on(&brokers, &events, 1).await;
    let records: Vec<TestRecord> = (0..2)
        .flat_map(|p| (0..100).map(move |i| TestRecord::json(p, i, BASE_MS + i as i64 * 1000)))
        .collect();
    produce(&producer_on(&brokers), &topic, &records).await;
    let setup = Setup::new(
        &brokers,
        &unique("verify-group"),
        &events,
        &[(&topic, &folder)],
    );

    let mut storer = Service::start(
        &storer_binary(),
        "storer",
        &setup.env,
        &["--config", &setup.config_path],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = offsets_by_partition(&read_folder(&setup.store, &folder).await);
        if stored.values().map(Vec::len).sum::<usize>() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the storer archived {stored:?}\n{}",
            storer.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A graceful stop: every object is announced before the storer exits.
    assert!(
        storer.terminate(Duration::from_secs(30)).success(),
        "{}",
        storer.log()
    );

    let verified = setup.bss(&["verify", "--events"]).await.ok();
    assert!(
        verified.stdout.contains("OK: 2 partitions")
            && verified
                .stdout
                .contains("200 records, 0 problems, 0 warnings"),
        "{verified:#?}"
    );

    let topics = setup.bss(&["inspect", "topics"]).await.ok();
    let row = topics
        .stdout
        .lines()
        .find(|l| l.starts_with(&folder))
        .unwrap_or_else(|| panic!("{topics:#?}"));
    assert!(
        row.contains("2026-01-01T00:00:00.000Z") && row.contains("2026-01-01T00:01:39.000Z"),
        "{row}"
    );
    let objects = setup
        .bss(&["inspect", "objects", "--topic", &topic, "--json"])
        .await
        .ok();
    let objects: Vec<serde_json::Value> = serde_json::from_str(&objects.stdout).expect("json");
    assert_eq!(
        objects
            .iter()
            .map(|o| o["records"].as_u64().expect("records"))
            .sum::<u64>(),
        200
    );
    let by_key = setup
        .bss(&["inspect", "read", "--topic", &topic, "--key", r#"{"id":7}"#])
        .await
        .ok();
    assert_eq!(
        by_key.stdout.lines().count(),
        2,
        "key 7 is on both partitions: {by_key:#?}"
    );
    let window = setup
        .bss(&[
            "inspect",
            "read",
            "--topic",
            &topic,
            "--from",
            "2026-01-01T00:00:10Z",
            "--to",
            &(BASE_MS + 19_999).to_string(),
        ])
        .await
        .ok();
    assert_eq!(window.stdout.lines().count(), 20, "{window:#?}");
    let first = objects[0]["path"].as_str().expect("path");
    let one = setup
        .bss(&["inspect", "read", "--object", first])
        .await
        .ok();
    assert_eq!(
        one.stdout.lines().count() as u64,
        objects[0]["records"].as_u64().expect("records")
    );

    // Damage: an object of partition 0 disappears (a gap, and its event has no object), and an
    // undecodable object without a sidecar or an event appears on partition 1.
    let victim = objects
        .iter()
        .filter(|o| o["partition"] == 0)
        .nth(1)
        .and_then(|o| o["path"].as_str())
        .expect("a second object on partition 0");
    setup
        .store
        .delete(&Path::from(victim))
        .await
        .expect("delete");
    let garbage = format!("{folder}/2026-01-01T00:05:00.000Z_{topic}_1_100_1767226000000.txt.zst");
    setup
        .store
        .put(
            &Path::from(garbage.as_str()),
            PutPayload::from_static(b"not zstd"),
        )
        .await
        .expect("put");

    let damaged = setup.bss(&["verify", "--events", "--json"]).await;
    assert_eq!(damaged.code, 1, "{damaged:#?}");
    let report: serde_json::Value = serde_json::from_str(&damaged.stdout).expect("json report");
    let kinds: Vec<(&str, &str)> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().expect("kind"),
                p["object"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for expected in [
        ("gap", ""),
        ("orphan-event", victim),
        ("corrupt", garbage.as_str()),
        ("missing-event", garbage.as_str()),
    ] {
        assert!(
            kinds
                .iter()
                .any(|(k, o)| *k == expected.0 && (expected.1.is_empty() || *o == expected.1)),
            "{expected:?} not in {kinds:?}"
        );
    }
    assert_eq!(report["ok"], false);
    // The broker shows records in the gap: a loss. --allow-gaps (for archives compacted on purpose)
    // turns gaps into warnings without asking the broker.
    assert!(
        damaged
            .stdout
            .contains("the broker holds a record at offset"),
        "{damaged:#?}"
    );
    let text = setup.bss(&["verify", "--allow-gaps"]).await;
    assert_eq!(text.code, 1, "the corrupt object still fails: {text:#?}");
    assert!(
        text.stdout.contains("WARNING gap") && text.stdout.contains("PROBLEM corrupt"),
        "{text:#?}"
    );
}

/// Commits 3 records, aborts 3, commits 2 (offsets 0-2 and 8-9 hold records; 3, 7 and 10 are
/// markers; 4-6 aborted).
async fn transactional_topic(brokers: &str, topic: &str) {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let producer: FutureProducer = bss_testkit::kafka::Cluster::plain(brokers)
        .client_config()
        .set("transactional.id", unique("verify-txn"))
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(20);
    producer.init_transactions(timeout).expect("init");
    for (count, commit) in [(3, true), (3, false), (2, true)] {
        producer.begin_transaction().expect("begin");
        for n in 0..count {
            let value = format!("{{\"n\":{n}}}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .payload(&value)
                        .partition(0),
                    rdkafka::util::Timeout::Never,
                )
                .await
                .expect("sent");
        }
        if commit {
            producer.commit_transaction(timeout).expect("commit");
        } else {
            producer.abort_transaction(timeout).expect("abort");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_of_transaction_markers_and_aborted_records_are_not_gaps() {
    let brokers = time_aware_kafka_brokers();
    let topic = unique("verify-txn");
    create_topic_on(&brokers, &topic, 1).await;
    transactional_topic(&brokers, &topic).await;
    let setup = Setup::new(
        &brokers,
        &unique("verify-txn-group"),
        "unused-events",
        &[(&topic, &topic)],
    );
    // The archive the storer makes of it, one record per object: offsets 0, 1, 2, 8, 9.
    let records: Vec<bss_format::Record> = [0, 1, 2, 8, 9]
        .into_iter()
        .map(|offset| common::record(&topic, 0, offset, BASE_MS + offset, "k", Some("{}")))
        .collect();
    bss_testkit::archive::write_objects(
        &setup.store,
        &topic,
        &records,
        1,
        bss_format::Compression::Zstd,
    )
    .await;
    let run = setup.bss(&["verify"]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains("5 offsets without a committed record"),
        "{run:#?}"
    );
    // The same archive without offset 8: a real loss, proven by the broker.
    setup
        .store
        .delete(&object_store::path::Path::from(
            read_folder(&setup.store, &topic).await[3].path.as_str(),
        ))
        .await
        .expect("delete");
    let run = setup.bss(&["verify"]).await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains("the broker holds a record at offset 8"),
        "{run:#?}"
    );
}

/// Records a producer may legally send: binary header keys, timestamps in years 55840 and 10000 and
/// before 1970. `bss` reads, verifies and prints them losslessly.
#[tokio::test(flavor = "multi_thread")]
async fn odd_records_are_verified_and_read_back_losslessly() {
    let topic = unique("verify-odd");
    let setup = Setup::new(
        &time_aware_kafka_brokers(),
        &unique("verify-odd-group"),
        "unused-events",
        &[(&topic, &topic)],
    );
    let records: Vec<bss_format::Record> =
        [1_700_000_000_000_000, 253_402_300_800_000, -86_400_000]
            .into_iter()
            .enumerate()
            .map(|(offset, ts)| {
                let mut record = common::record(&topic, 0, offset as i64, ts, "k", Some("{}"));
                record.headers.push(bss_format::Header {
                    key: vec![0xff, 0xfe, b'k'],
                    value: None,
                });
                record
            })
            .collect();
    bss_testkit::archive::write_objects(
        &setup.store,
        &topic,
        &records,
        2,
        bss_format::Compression::Zstd,
    )
    .await;
    let verified = setup.bss(&["verify"]).await;
    assert_eq!(verified.code, 0, "{verified:#?}");
    let read = setup
        .bss(&["inspect", "read", "--topic", &topic])
        .await
        .ok();
    let mut back: Vec<bss_format::Record> = read
        .stdout
        .lines()
        .map(|line| bss_format::decode_line(line.as_bytes(), None).expect("an archive line"))
        .collect();
    back.sort_by_key(|r| r.offset);
    assert_eq!(back, records);
}
