//! Transactional source topics, on the test broker that honours transactions (noida-db): records of
//! aborted transactions are never archived, and the offsets taken by transaction markers and aborted
//! records are stepped over without breaking exactly-once, across a crash and its adoption.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bss_testkit::bucket::s3_settings;
use bss_testkit::kafka::{create_topic_on, Cluster};
use bss_testkit::{time_aware_kafka_brokers, unique};
use common::{wait_for_offsets, StorerSetup};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::TopicPartitionList;

/// Commits `c1-0..2`, aborts `ab-0..2`, commits `c2-0..1`: offsets 0-2 and 8-9 hold committed records,
/// 3 and 7 and 10 are markers, 4-6 aborted records; the log ends at 11.
async fn produce_transactions(brokers: &str, topic: &str) {
    let producer: FutureProducer = Cluster::plain(brokers)
        .client_config()
        .set("transactional.id", unique("txn"))
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(20);
    producer
        .init_transactions(timeout)
        .expect("init transactions");
    for (prefix, count, commit) in [("c1", 3, true), ("ab", 3, false), ("c2", 2, true)] {
        producer.begin_transaction().expect("begin");
        for n in 0..count {
            let value = format!("{prefix}-{n}");
            let key = format!("{prefix}{n}");
            producer
                .send(
                    FutureRecord::to(topic)
                        .key(&key)
                        .payload(&value)
                        .partition(0),
                    Timeout::Never,
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

fn committed_offset(brokers: &str, group: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = Cluster::plain(brokers)
        .client_config()
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .ok()?;
    committed
        .elements()
        .first()
        .and_then(|e| e.offset().to_raw())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_records_are_never_archived_and_markers_are_stepped_over_across_a_crash() {
    let brokers = time_aware_kafka_brokers();
    let topic = unique("txn");
    let events = unique("txn-events");
    create_topic_on(&brokers, &topic, 1).await;
    create_topic_on(&brokers, &events, 1).await;
    produce_transactions(&brokers, &topic).await;

    // One record per object, so that the markers and the aborted records fall between objects; the
    // storer dies right after writing the object of offset 8 (the first after the aborted ones),
    // before committing it, and the next one must adopt it. noida-db never expires a member that died
    // without leaving (measured: a new member waited over 40 s), so the restart joins a fresh group
    // from the earliest offset: it re-reads everything and adopts every object already written.
    let mut setup = StorerSetup::new(
        &unique("txn-crashed-group"),
        &events,
        &[(&topic, None, &[])],
        "max-records-per-file: 1\nflush-interval: 300ms",
        s3_settings().service_env(),
    );
    setup.set("KAFKA_BROKERS", &brokers);
    setup.set("BSS_FAILPOINT", "after-upload:4");
    let mut crashing = setup.start("storer-txn-crashing");
    assert!(
        !crashing.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        crashing.log()
    );
    setup.set("BSS_FAILPOINT", "");
    let group = unique("txn-group");
    setup.set("KAFKA_GROUP_ID", &group);
    let mut storer = setup.start_ready("storer-txn");

    let store = s3_settings().store();
    let objects = wait_for_offsets(
        &store,
        &topic,
        &BTreeMap::from([(0, 5)]),
        Duration::from_secs(60),
    )
    .await;
    let mut stored: Vec<(i64, String)> = objects
        .iter()
        .flat_map(|o| &o.records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    stored.sort();
    let expected: Vec<(i64, String)> = [
        (0, "c1-0"),
        (1, "c1-1"),
        (2, "c1-2"),
        (8, "c2-0"),
        (9, "c2-1"),
    ]
    .into_iter()
    .map(|(o, v)| (o, v.to_owned()))
    .collect();
    assert_eq!(stored, expected, "exactly the committed records, each once");
    let adopted = storer.log().matches("adopting it").count();
    assert_eq!(
        adopted,
        4,
        "objects 0, 1, 2 and 8 adopted, 9 written:\n{}",
        storer.log()
    );

    // The group's offset reaches the log end (past the last marker), so its lag clears.
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed_offset(&brokers, &group, &topic) != Some(11) {
        assert!(
            Instant::now() < deadline,
            "committed offset stuck at {:?}\n{}",
            committed_offset(&brokers, &group, &topic),
            storer.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(storer.terminate(Duration::from_secs(30)).success());
}
