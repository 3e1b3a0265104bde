//! Every seal trigger: size, count, age (an idle partition's tail), quiet (the end of a backlog), shutdown;
//! and memory pressure.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

use bss_testkit::bucket::{assert_exactly_once, read_folder, s3_settings};
use bss_testkit::kafka::{create_topic, produce, producer, TestRecord};
use bss_testkit::process::Service;
use bss_testkit::unique;
use common::{wait_for_offsets, StorerSetup};
use ingestion_storer::batch::record_weight;

async fn topic_with_records(partitions: i32, per_partition: u64) -> (String, String) {
    let topic = unique("flush");
    let events = unique("flush-events");
    create_topic(&topic, partitions).await;
    create_topic(&events, 1).await;
    let producer = producer();
    for partition in 0..partitions {
        let records: Vec<_> = (0..per_partition)
            .map(|n| TestRecord::json(partition, n, 1_700_000_000_000 + n as i64))
            .collect();
        produce(&producer, &topic, &records).await;
    }
    (topic, events)
}

/// A storer archiving `topic` into the test bucket with the extra `settings`, ready; and the bucket.
fn start_storer(
    topic: &str,
    events: &str,
    settings: &str,
    name: &str,
) -> (Service, Arc<dyn ObjectStore>) {
    let s3 = s3_settings();
    let setup = StorerSetup::new(
        &unique("g"),
        events,
        &[(topic, None, &[])],
        settings,
        s3.service_env(),
    );
    (setup.start_ready(name), s3.store())
}

fn sealed(storer: &bss_testkit::process::Service, reason: &str) -> f64 {
    storer
        .metric(&format!("bss_batches_sealed_total{{reason=\"{reason}\"}}"))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seals_by_count_then_writes_the_tail_of_the_backlog_once_the_partition_is_quiet() {
    let (topic, events) = topic_with_records(1, 30).await;
    let (mut storer, store) = start_storer(
        &topic,
        &events,
        "max-records-per-file: 7\nflush-interval: 10m",
        "count",
    );
    // The last two records follow full batches: they are written when nothing more arrives, not
    // after the 10-minute interval.
    let objects = wait_for_offsets(
        &store,
        &topic,
        &BTreeMap::from([(0, 30)]),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        objects.iter().map(|o| o.records.len()).collect::<Vec<_>>(),
        vec![7, 7, 7, 7, 2]
    );
    assert_eq!(sealed(&storer, "count"), 4.0);
    assert_eq!(sealed(&storer, "quiet"), 1.0);
    assert_eq!(sealed(&storer, "age"), 0.0);
    assert!(storer.terminate(Duration::from_secs(30)).success());
    assert_exactly_once(
        &read_folder(&store, &topic).await,
        &BTreeMap::from([(0, 30)]),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_batch_waits_for_its_interval_until_shutdown_seals_it() {
    let (topic, events) = topic_with_records(1, 3).await;
    let (mut storer, store) = start_storer(
        &topic,
        &events,
        "max-records-per-file: 7\nflush-interval: 10m",
        "small",
    );
    storer.wait_log("partitions assigned", 1, Duration::from_secs(30));
    // Well past the quiet delay (250 ms at this interval): three records are not worth a file yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(read_folder(&store, &topic).await.is_empty());
    assert!(
        storer.terminate(Duration::from_secs(30)).success(),
        "{}",
        storer.log()
    );
    let objects = read_folder(&store, &topic).await;
    assert_eq!(objects.len(), 1);
    assert_exactly_once(&objects, &BTreeMap::from([(0, 3)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seals_by_size() {
    let (topic, events) = topic_with_records(1, 100).await;
    // Each sample record weighs about 200 bytes: about 10 per 2 KiB file.
    let (mut storer, store) = start_storer(
        &topic,
        &events,
        "max-bytes-per-file: 2KiB\nflush-interval: 10m",
        "size",
    );
    let objects = wait_for_offsets(
        &store,
        &topic,
        &BTreeMap::from([(0, 80)]),
        Duration::from_secs(30),
    )
    .await;
    assert!(objects.len() >= 8, "{} objects", objects.len());
    for object in &objects {
        let weight: u64 = object
            .records
            .iter()
            .map(|r| {
                let mut line = Vec::new();
                bss_format::encode_line(r, &mut line);
                record_weight(line.len())
            })
            .sum();
        assert!(weight <= 2048, "{} weighs {weight} bytes", object.path);
    }
    assert!(sealed(&storer, "size") >= 8.0);
    assert_eq!(sealed(&storer, "age"), 0.0);
    assert!(storer.terminate(Duration::from_secs(30)).success());
    assert_exactly_once(
        &read_folder(&store, &topic).await,
        &BTreeMap::from([(0, 100)]),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_partition_tail_reaches_the_bucket_within_the_flush_interval() {
    let (topic, events) = topic_with_records(2, 5).await;
    let (mut storer, store) = start_storer(&topic, &events, "flush-interval: 1s", "age");
    // No further message arrives, yet both tails are written.
    let objects = wait_for_offsets(
        &store,
        &topic,
        &BTreeMap::from([(0, 5), (1, 5)]),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(objects.len(), 2);
    assert_eq!(sealed(&storer, "age"), 2.0);
    produce(
        &producer(),
        &topic,
        &[TestRecord::json(0, 99, 1_700_000_100_000)],
    )
    .await;
    let objects = wait_for_offsets(
        &store,
        &topic,
        &BTreeMap::from([(0, 6), (1, 5)]),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(objects.len(), 3);
    assert!(storer.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_seals_early_and_everything_is_still_stored_once() {
    // 4 partitions × 400 records × 4 KB = 6.4 MB against a 4 MiB budget, with 4 MiB files and a
    // 10-minute interval: only the budget can seal batches before shutdown.
    let topic = unique("memory");
    let events = unique("memory-events");
    create_topic(&topic, 4).await;
    create_topic(&events, 1).await;
    let producer = producer();
    let payload = vec![b'x'; 4000];
    for partition in 0..4 {
        let records: Vec<_> = (0..400)
            .map(|n| TestRecord {
                partition,
                key: Some(n.to_string().into_bytes()),
                payload: Some(payload.clone()),
                headers: vec![],
                timestamp_ms: 1_700_000_000_000 + n,
            })
            .collect();
        produce(&producer, &topic, &records).await;
    }
    let s3 = s3_settings();
    let mut setup = StorerSetup::new(
        &unique("g"),
        &events,
        &[(&topic, None, &[])],
        "memory-budget: 4MiB\nmax-bytes-per-file: 4MiB\nflush-interval: 10m",
        s3.service_env(),
    );
    let mut storer = setup.start_ready("memory");
    let store = s3.store();
    // 1.6 MiB per partition, 6.4 MiB in all: only memory pressure can seal before the 10-minute interval.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sealed(&storer, "memory") < 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no memory seal; log:\n{}",
            storer.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let buffered = storer.metric("bss_buffered_bytes").expect("gauge");
    assert!(buffered <= (4 << 20) as f64, "{buffered} bytes buffered");
    assert!(storer.log().contains("consumption paused"));
    assert!(storer.terminate(Duration::from_secs(30)).success());
    // What was not consumed before the stop is read by the next run, from the committed offsets.
    setup.set("BSS_FLUSH_INTERVAL", "1s");
    let mut storer = setup.start_ready("memory-restart");
    let expected: BTreeMap<i32, i64> = (0..4).map(|p| (p, 400)).collect();
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    assert!(storer.terminate(Duration::from_secs(30)).success());
}

/// Peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_partitions_of_large_records_keep_memory_within_the_budget_plus_64_mib() {
    // 64 partitions × 3 records of 1 MiB (192 MiB) through a 32 MiB budget: the sizing guide
    // (docs/operations.md) promises the process stays under budget + 64 MiB, allocator and
    // librdkafka included.
    let topic = unique("big-records");
    let events = unique("big-records-events");
    create_topic(&topic, 64).await;
    create_topic(&events, 1).await;
    let producer = producer();
    for partition in 0..64 {
        let records: Vec<_> = (0..3)
            .map(|n| TestRecord {
                partition,
                key: Some(format!("{partition}-{n}").into_bytes()),
                payload: Some(vec![b'a' + (partition % 26) as u8; 1 << 20]),
                headers: vec![],
                timestamp_ms: 1_700_000_000_000 + n,
            })
            .collect();
        produce(&producer, &topic, &records).await;
    }
    let (mut storer, store) = start_storer(
        &topic,
        &events,
        "memory-budget: 32MiB\nmax-bytes-per-file: 4MiB\nflush-interval: 1s",
        "big-records",
    );
    let expected: BTreeMap<i32, i64> = (0..64).map(|p| (p, 3)).collect();
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(180)).await;
    assert_exactly_once(&objects, &expected);
    let peak = peak_rss(storer.pid());
    eprintln!("peak RSS {} MiB for a 32 MiB budget", peak >> 20);
    assert!(
        peak <= (32 + 64) << 20,
        "peak RSS {} MiB for a 32 MiB budget",
        peak >> 20
    );
    assert!(storer.terminate(Duration::from_secs(30)).success());
}
