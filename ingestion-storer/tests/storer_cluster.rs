//! Two replicas sharing partitions through a rebalance, and a bucket outage in the middle of a stream.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bss_testkit::bucket::{assert_exactly_once, s3_settings};
use bss_testkit::kafka::{
    create_topic, produce, producer, read_topic, read_topic_until, TestRecord,
};
use bss_testkit::proxy::Proxy;
use bss_testkit::unique;
use common::{wait_for_offsets, StorerSetup};

fn wave(partitions: i32, from: u64, to: u64) -> Vec<TestRecord> {
    (0..partitions)
        .flat_map(|p| (from..to).map(move |n| TestRecord::json(p, n, 1_700_000_000_000 + n as i64)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_partitions_and_survive_a_rebalance_exactly_once() {
    let topic = unique("cluster");
    let events = unique("cluster-events");
    create_topic(&topic, 4).await;
    create_topic(&events, 1).await;
    let producer = producer();
    let setup = StorerSetup::new(
        &unique("g"),
        &events,
        &[(&topic, None, &[])],
        "max-records-per-file: 20\nflush-interval: 400ms",
        s3_settings().service_env(),
    );
    let store = s3_settings().store();

    let mut first = setup.start_ready("replica-a");
    first.wait_log("partitions assigned", 1, Duration::from_secs(30));
    produce(&producer, &topic, &wave(4, 0, 50)).await;
    let mut second = setup.start_ready("replica-b");
    // Keep producing while the group rebalances to two members.
    for round in 0..6 {
        produce(
            &producer,
            &topic,
            &wave(4, 50 + round * 25, 75 + round * 25),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    wait_for_offsets(
        &store,
        &topic,
        &(0..4).map(|p| (p, 200)).collect(),
        Duration::from_secs(60),
    )
    .await;
    second.wait_log("partitions assigned", 1, Duration::from_secs(30));
    assert!(
        first.log().contains("partitions revoked"),
        "{}",
        first.log()
    );
    assert!(second.log().contains("object written"), "{}", second.log());
    // The first replica leaves: the second takes every partition back.
    assert!(
        first.terminate(Duration::from_secs(30)).success(),
        "{}",
        first.log()
    );
    produce(&producer, &topic, &wave(4, 200, 260)).await;
    let expected: BTreeMap<i32, i64> = (0..4).map(|p| (p, 260)).collect();
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    assert!(second.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_outage_pauses_forwarding_and_recovers_without_loss() {
    let topic = unique("outage");
    let post = unique("outage-post");
    let events = unique("outage-events");
    create_topic(&topic, 2).await;
    create_topic(&post, 2).await;
    create_topic(&events, 1).await;
    let s3 = s3_settings();
    let target = s3.endpoint.trim_start_matches("http://").to_owned();
    let mut proxy = Proxy::start(&target).await;
    let mut bucket_env = s3.service_env();
    bucket_env.retain(|(k, _)| k != "BUCKET_ENDPOINT");
    bucket_env.push((
        "BUCKET_ENDPOINT".into(),
        format!("http://127.0.0.1:{}", proxy.port),
    ));
    let setup = StorerSetup::new(
        &unique("g"),
        &events,
        &[(&topic, None, &[&post])],
        "max-records-per-file: 10\nflush-interval: 300ms",
        bucket_env,
    );
    let store = s3.store();
    let producer = producer();

    let mut storer = setup.start_ready("outage");
    produce(&producer, &topic, &wave(2, 0, 30)).await;
    wait_for_offsets(
        &store,
        &topic,
        &BTreeMap::from([(0, 30), (1, 30)]),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        read_topic(&post, 60, Duration::from_secs(20)).await.len(),
        60
    );

    // The bucket server goes away: nothing new may be forwarded, and the storer turns not-ready.
    proxy.down().await;
    produce(&producer, &topic, &wave(2, 30, 80)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while matches!(storer.get("/-/health/ready"), Some((200, _))) {
        assert!(
            std::time::Instant::now() < deadline,
            "still ready during the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let during = read_topic(&post, 61, Duration::from_secs(3)).await;
    assert_eq!(
        during.len(),
        60,
        "records were forwarded before being stored"
    );

    // The server comes back: the storer recovers by itself and loses nothing.
    proxy.up().await;
    let expected = BTreeMap::from([(0, 80), (1, 80)]);
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    let forwarded = read_topic_until(&post, Duration::from_secs(30), |r| r.len() >= 160).await;
    assert_eq!(forwarded.len(), 160);
    storer.wait_ready(Duration::from_secs(30));
    assert!(storer.terminate(Duration::from_secs(30)).success());
}
