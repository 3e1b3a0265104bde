//! Durability: the process dies abruptly at every step of the write protocol (and at random moments),
//! restarts, and the bucket still holds every offset exactly once; events and forwarding are at least once.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bss_layout::FileWrittenEvent;
use bss_testkit::bucket::{assert_exactly_once, s3_settings};
use bss_testkit::kafka::{
    create_topic, of_partition, produce, producer, read_topic_until, ReadRecord, TestRecord,
};
use bss_testkit::unique;
use common::{wait_for_offsets, StorerSetup};

const PARTITIONS: i32 = 2;
const PER_PARTITION: u64 = 120;

struct Scenario {
    topic: String,
    post: String,
    events: String,
    setup: StorerSetup,
    produced: BTreeMap<i32, Vec<TestRecord>>,
}

async fn scenario(settings: &str) -> Scenario {
    let topic = unique("crash");
    let post = unique("crash-post");
    let events = unique("crash-events");
    create_topic(&topic, PARTITIONS).await;
    create_topic(&post, PARTITIONS).await;
    create_topic(&events, 1).await;
    let producer = producer();
    let mut produced = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let records: Vec<_> = (0..PER_PARTITION)
            .map(|n| TestRecord::json(partition, n, 1_700_000_000_000 + n as i64))
            .collect();
        produce(&producer, &topic, &records).await;
        produced.insert(partition, records);
    }
    let setup = StorerSetup::new(
        &unique("g"),
        &events,
        &[(&topic, None, &[&post])],
        settings,
        s3_settings().service_env(),
    );
    Scenario {
        topic,
        post,
        events,
        setup,
        produced,
    }
}

/// Checks the bucket (exactly once), the events (one at least per object) and the forwarded records
/// (each at least once, first occurrences in offset order).
async fn check_outcome(s: &Scenario) {
    let store = s3_settings().store();
    let expected: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, PER_PARTITION as i64)).collect();
    let objects = wait_for_offsets(&store, &s.topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);

    let paths: HashSet<String> = objects.iter().map(|o| o.path.clone()).collect();
    let wanted = paths.clone();
    let events = read_topic_until(&s.events, Duration::from_secs(20), move |events| {
        announced_paths(events).is_superset(&wanted)
    })
    .await;
    let announced = announced_paths(&events);
    for object in &objects {
        assert!(
            announced.contains(&object.path),
            "no event for {}",
            object.path
        );
    }

    let total = (PARTITIONS as u64 * PER_PARTITION) as usize;
    let forwarded = read_topic_until(&s.post, Duration::from_secs(30), move |records| {
        records
            .iter()
            .map(|r| (r.partition, r.record.key.clone()))
            .collect::<HashSet<_>>()
            .len()
            >= total
    })
    .await;
    for partition in 0..PARTITIONS {
        let got = of_partition(&forwarded, partition);
        let mut seen = HashSet::new();
        let first_occurrences: Vec<TestRecord> = got
            .into_iter()
            .filter(|r| seen.insert(r.key.clone()))
            .collect();
        assert_eq!(
            first_occurrences, s.produced[&partition],
            "partition {partition}: forwarded records"
        );
    }
}

fn announced_paths(events: &[ReadRecord]) -> HashSet<String> {
    events
        .iter()
        .map(|e| {
            serde_json::from_slice::<FileWrittenEvent>(e.record.payload.as_deref().expect("value"))
                .expect("event")
                .file_path
        })
        .collect()
}

async fn crash_at(failpoint: &str) {
    let mut s = scenario("max-records-per-file: 25\nflush-interval: 500ms").await;
    s.setup.set("BSS_FAILPOINT", failpoint);
    let mut crashing = s.setup.start("crashing");
    let status = crashing.wait_exit(Duration::from_secs(60));
    assert!(
        !status.success(),
        "{failpoint} did not fire; log:\n{}",
        crashing.log()
    );
    assert!(crashing.log().contains(&format!(
        "failpoint {}",
        failpoint.split(':').next().unwrap_or_default()
    )));
    s.setup.set("BSS_FAILPOINT", "");
    let mut restarted = s.setup.start_ready("restarted");
    check_outcome(&s).await;
    assert!(restarted.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_an_upload() {
    crash_at("before-upload:3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_an_upload_before_its_event() {
    crash_at("after-upload:3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_an_event_before_forwarding() {
    crash_at("after-event:3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_forwarding_before_the_commit() {
    crash_at("after-forward:5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_a_commit() {
    crash_at("after-commit:2").await;
}

/// After a crash the flush trigger may cut batches differently (here: by age, then by count), so the
/// re-read batch overlaps the object written before the crash without matching it: the write-once put
/// detects it, the object is adopted and only the remainder is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_different_batch_limits_adopts_the_objects_written_before() {
    let mut s = scenario("max-records-per-file: 40\nflush-interval: 500ms").await;
    s.setup.set("BSS_FAILPOINT", "after-upload:2");
    let mut crashing = s.setup.start("crashing");
    assert!(!crashing.wait_exit(Duration::from_secs(60)).success());
    s.setup.set("BSS_FAILPOINT", "");
    s.setup.set("BSS_MAX_RECORDS_PER_FILE", "15");
    let mut restarted = s.setup.start_ready("restarted");
    check_outcome(&s).await;
    assert!(
        restarted
            .metric("bss_objects_recovered_total")
            .unwrap_or(0.0)
            >= 1.0,
        "{}",
        restarted.log()
    );
    assert!(restarted.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_while_consuming() {
    let s = scenario("max-records-per-file: 10\nflush-interval: 300ms").await;
    for (round, delay_ms) in [700u64, 1300, 400].into_iter().enumerate() {
        let mut storer = s.setup.start(&format!("killed-{round}"));
        // Group joins take about 3 s; kill somewhere during or after the first writes.
        tokio::time::sleep(Duration::from_millis(3000 + delay_ms + rand_jitter())).await;
        storer.kill();
    }
    let mut last = s.setup.start_ready("survivor");
    check_outcome(&s).await;
    assert!(last.terminate(Duration::from_secs(30)).success());
}

fn rand_jitter() -> u64 {
    u64::from(std::process::id() % 300)
}
