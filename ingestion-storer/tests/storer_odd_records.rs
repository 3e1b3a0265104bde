//! Whatever a producer can put in a record is archived losslessly and never crashes or stalls the
//! storer: header keys that are not UTF-8, timestamps far outside years 0..=9999, batches compressed
//! with every Kafka codec.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bss_testkit::bucket::{assert_exactly_once, s3_settings};
use bss_testkit::kafka::{create_topic, produce, producer_on, read_topic, Cluster, TestRecord};
use bss_testkit::{kafka_brokers, unique};
use common::{wait_for_offsets, StorerSetup};

fn record(n: u8, timestamp_ms: i64, headers: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> TestRecord {
    TestRecord {
        partition: 0,
        key: Some(vec![b'k', n]),
        payload: Some(format!("{{\"n\":{n}}}").into_bytes()),
        headers,
        timestamp_ms,
    }
}

/// The storer crashes right after writing the first object (whose name comes from a year-55840
/// record), restarts, adopts it (reading it back) and goes on: every record is stored once, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_header_keys_and_timestamps_are_archived_exactly_and_adopted_after_a_crash() {
    let topic = unique("odd");
    let events = unique("odd-events");
    create_topic(&topic, 1).await;
    create_topic(&events, 1).await;
    let sent = vec![
        // Microseconds sent as milliseconds: year 55840.
        record(
            0,
            1_700_000_000_000_000,
            vec![(vec![0xff, 0xfe, b'k'], Some(b"v".to_vec()))],
        ),
        record(
            1,
            -86_400_000,
            vec![(b"ok".to_vec(), None), (vec![0x80], Some(vec![0, 0xff]))],
        ),
        // Year 10000 exactly, then a timestamp just after the epoch.
        record(2, 253_402_300_800_000, vec![(Vec::new(), Some(Vec::new()))]),
        record(
            3,
            5,
            vec![(b"caf\xc3\xa9".to_vec(), Some(b"text".to_vec()))],
        ),
        record(4, 1_700_000_000_000, vec![]),
    ];
    produce(&producer_on(&kafka_brokers()), &topic, &sent).await;
    // What the broker hands consumers is the reference (it may normalise what it cannot store).
    let on_broker: Vec<TestRecord> = read_topic(&topic, sent.len(), Duration::from_secs(20))
        .await
        .into_iter()
        .map(|r| r.record)
        .collect();
    assert_eq!(on_broker.len(), sent.len());
    assert_eq!(
        on_broker[0].headers, sent[0].headers,
        "the broker keeps binary header keys"
    );

    let mut setup = StorerSetup::new(
        &unique("odd-group"),
        &events,
        &[(&topic, None, &[])],
        "max-records-per-file: 2\nflush-interval: 300ms",
        s3_settings().service_env(),
    );
    setup.set("BSS_FAILPOINT", "after-upload:1");
    let mut crashing = setup.start("storer-odd-crashing");
    let status = crashing.wait_exit(Duration::from_secs(60));
    assert!(
        !status.success(),
        "the failpoint did not fire:\n{}",
        crashing.log()
    );
    setup.set("BSS_FAILPOINT", "");
    let mut storer = setup.start_ready("storer-odd");

    let store = s3_settings().store();
    let expected = BTreeMap::from([(0, sent.len() as i64)]);
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    // Names sort by (clamped) time, not offset: compare in offset order.
    let mut by_offset: Vec<_> = objects.iter().collect();
    by_offset.sort_by_key(|o| o.name.first_offset);
    let archived: Vec<TestRecord> = by_offset
        .iter()
        .flat_map(|o| &o.records)
        .map(TestRecord::from_archived)
        .collect();
    assert_eq!(
        archived, on_broker,
        "archived records differ from the broker's"
    );
    // The first object is named after a clamped time that still parses and sorts (read_folder parsed
    // every name), while its line keeps the exact value.
    let first = objects
        .iter()
        .find(|o| o.name.first_offset == 0)
        .expect("first object");
    assert_eq!(first.name.first_timestamp_ms, bss_format::time::MAX_ISO_MS);
    assert!(
        storer.log().contains("adopt"),
        "the restart did not adopt:\n{}",
        storer.log()
    );
    assert!(storer.terminate(Duration::from_secs(30)).success());
}

/// Records produced in gzip, snappy, lz4 and zstd batches are archived byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_producer_compression_codec_is_archived_byte_for_byte() {
    let topic = unique("codecs");
    let events = unique("codecs-events");
    create_topic(&topic, 4).await;
    create_topic(&events, 1).await;
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    let mut sent = BTreeMap::new();
    for (partition, codec) in codecs.iter().enumerate() {
        let producer = Cluster::with(
            &kafka_brokers(),
            &[("compression.type", codec), ("linger.ms", "50")],
        )
        .client_config()
        .create()
        .expect("producer");
        // Several records per batch (one linger window), repetitive enough to compress.
        let records: Vec<TestRecord> = (0..30)
            .map(|n| {
                let mut r = TestRecord::json(partition as i32, n, 1_700_000_000_000 + n as i64);
                r.payload = Some(
                    format!(
                        "{{\"codec\":\"{codec}\",\"n\":{n},\"pad\":\"{}\"}}",
                        "x".repeat(200)
                    )
                    .into_bytes(),
                );
                r
            })
            .collect();
        produce(&producer, &topic, &records).await;
        sent.insert(partition as i32, records);
    }
    let setup = StorerSetup::new(
        &unique("codecs-group"),
        &events,
        &[(&topic, None, &[])],
        "flush-interval: 300ms",
        s3_settings().service_env(),
    );
    let mut storer = setup.start_ready("storer-codecs");
    let store = s3_settings().store();
    let expected: BTreeMap<i32, i64> = (0..4).map(|p| (p, 30)).collect();
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    for (partition, records) in &sent {
        let archived: Vec<TestRecord> = objects
            .iter()
            .flat_map(|o| &o.records)
            .filter(|r| r.partition == *partition)
            .map(TestRecord::from_archived)
            .collect();
        assert_eq!(
            &archived, records,
            "{} batches",
            codecs[*partition as usize]
        );
    }
    assert!(storer.terminate(Duration::from_secs(30)).success());
}
