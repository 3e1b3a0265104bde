//! An object name belongs to one batch, whatever the settings: a restart with another compression
//! adopts what the previous run wrote instead of storing the offsets twice, and an object that is not
//! the batch's own at its name stops the partition loudly instead of looping.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bss_format::{Compression, Record, TimestampType};
use bss_layout::ObjectName;
use bss_testkit::archive::write_objects;
use bss_testkit::bucket::{assert_exactly_once, read_folder, s3_settings};
use bss_testkit::kafka::{create_topic, produce, producer, read_topic, TestRecord};
use bss_testkit::unique;
use common::{wait_for_offsets, StorerSetup};
use object_store::ObjectStoreExt;

const BASE_TS: i64 = 1_700_000_000_000;

fn records(count: u64) -> Vec<TestRecord> {
    (0..count)
        .map(|n| TestRecord::json(0, n, BASE_TS + n as i64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_another_compression_adopts_instead_of_storing_twice() {
    let topic = unique("recompress");
    let events = unique("recompress-events");
    create_topic(&topic, 1).await;
    create_topic(&events, 1).await;
    produce(&producer(), &topic, &records(30)).await;
    let mut setup = StorerSetup::new(
        &unique("recompress-group"),
        &events,
        &[(&topic, None, &[])],
        "max-records-per-file: 10\nflush-interval: 300ms\ncompression: gzip",
        s3_settings().service_env(),
    );
    // Two gzip objects written, the second one not committed.
    setup.set("BSS_FAILPOINT", "after-upload:2");
    let mut crashing = setup.start("storer-gzip");
    assert!(
        !crashing.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        crashing.log()
    );
    setup.set("BSS_FAILPOINT", "");
    setup.set("BSS_COMPRESSION", "zstd");
    let mut storer = setup.start_ready("storer-zstd");
    let store = s3_settings().store();
    let expected = BTreeMap::from([(0, 30)]);
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    let extensions: Vec<(i64, Compression)> = objects
        .iter()
        .map(|o| (o.name.first_offset, o.name.compression))
        .collect();
    assert!(
        extensions.contains(&(10, Compression::Gzip))
            && extensions.contains(&(20, Compression::Zstd)),
        "{extensions:?}"
    );
    assert!(storer.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_at_a_batch_name_stops_the_partition_loudly_until_removed() {
    let topic = unique("foreign");
    let events = unique("foreign-events");
    create_topic(&topic, 1).await;
    create_topic(&events, 1).await;
    let sent = records(5);
    produce(&producer(), &topic, &sent).await;
    // Something else sits where the batch starting at offset 0 goes: records of offset 100 on.
    let store = s3_settings().store();
    let foreign: Vec<Record> = (100..103)
        .map(|offset| Record {
            topic: topic.as_str().into(),
            partition: 0,
            offset,
            timestamp_ms: Some(BASE_TS),
            timestamp_type: TimestampType::CreateTime,
            key: None,
            payload: Some(b"foreign".to_vec()),
            headers: Vec::new(),
        })
        .collect();
    let name = ObjectName::for_batch(&topic, &topic, 0, 0, Some(BASE_TS), Compression::Zstd);
    let written = write_objects(&store, &topic, &foreign, 10, Compression::Zstd).await;
    store
        .rename(&written[0].as_str().into(), &name.path().as_str().into())
        .await
        .expect("placed at the batch's name");

    let setup = StorerSetup::new(
        &unique("foreign-group"),
        &events,
        &[(&topic, None, &[])],
        "flush-interval: 300ms",
        s3_settings().service_env(),
    );
    let mut storer = setup.start("storer-foreign");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reason = storer
            .get("/-/health/ready")
            .map(|(_, body)| body)
            .unwrap_or_default();
        if reason.contains(&name.file_name()) && reason.contains("move it away") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not reported: {reason}\n{}",
            storer.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Stopped, not looping: no event was emitted for the foreign object.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(read_topic(&events, 1, Duration::from_secs(3))
        .await
        .is_empty());

    store
        .delete(&name.path().as_str().into())
        .await
        .expect("removed by the operator");
    let expected = BTreeMap::from([(0, 5)]);
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    assert_eq!(read_folder(&store, &topic).await.len(), objects.len());
    assert!(storer.terminate(Duration::from_secs(30)).success());
}

/// A replica that stays in the group without a partition (here: a second replica of a one-partition
/// topic; in production also a group wedged on the broker) is reported, not silently idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_owning_no_partition_for_long_is_not_ready_and_says_why() {
    let topic = unique("spare");
    let events = unique("spare-events");
    create_topic(&topic, 1).await;
    create_topic(&events, 1).await;
    let setup = StorerSetup::new(
        &unique("spare-group"),
        &events,
        &[(&topic, None, &[])],
        "flush-interval: 300ms",
        s3_settings().service_env(),
    );
    let mut owner = setup.start_ready("storer-owner");
    let deadline = Instant::now() + Duration::from_secs(30);
    while owner.metric("bss_assigned_partitions") != Some(1.0) {
        assert!(Instant::now() < deadline, "{}", owner.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    // The group may hand the partition to either replica: the one left without it is the spare.
    let mut other = setup.start("storer-other");
    let deadline = Instant::now() + Duration::from_secs(75);
    let spare_is_other = loop {
        let reported = |service: &bss_testkit::process::Service| {
            service
                .get("/-/health/ready")
                .is_some_and(|(status, body)| {
                    status == 503 && body.contains("assigned no partition")
                })
        };
        if reported(&other) {
            break true;
        }
        if reported(&owner) {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            owner.log(),
            other.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let (spare, owner) = if spare_is_other {
        (&mut other, &mut owner)
    } else {
        (&mut owner, &mut other)
    };
    assert_eq!(spare.metric("bss_assigned_partitions"), Some(0.0));
    assert_eq!(owner.metric("bss_assigned_partitions"), Some(1.0));
    assert!(spare.terminate(Duration::from_secs(30)).success());
    assert!(owner.terminate(Duration::from_secs(30)).success());
}
