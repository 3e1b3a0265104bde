//! `bss offsets` against a broker whose ListOffsets by time is right (noida-db).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bss_testkit::kafka::{create_topic_on, produce, producer_on, TestRecord};
use bss_testkit::{time_aware_kafka_brokers, unique};
use common::Setup;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, TopicPartitionList};

const BASE_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn consumer(group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", time_aware_kafka_brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "2000")
        .create()
        .expect("consumer")
}

/// The group's committed offsets, read by a client of our own (not by the tool under test).
fn committed(group: &str, topic: &str) -> Vec<i64> {
    let consumer = consumer(group);
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    list.add_partition(topic, 1);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    (0..2)
        .map(|p| {
            committed
                .find_partition(topic, p)
                .and_then(|e| e.offset().to_raw())
                .expect("an offset")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_plans_then_moves_the_group_to_a_time_the_ends_or_explicit_offsets() {
    let brokers = time_aware_kafka_brokers();
    let topic = unique("offsets");
    let group = unique("offsets-group");
    create_topic_on(&brokers, &topic, 2).await;
    let records: Vec<TestRecord> = (0..2)
        .flat_map(|p| (0..10).map(move |i| TestRecord::json(p, i, BASE_MS + i as i64 * 1000)))
        .collect();
    produce(&producer_on(&brokers), &topic, &records).await;
    let setup = Setup::new(&brokers, &group, "unused-events", &[(&topic, &topic)]);

    // The plan is shown and nothing is committed.
    let plan = setup
        .bss(&[
            "offsets",
            "reset",
            "--to-datetime",
            "2026-01-01T00:00:05Z",
            "--dry-run",
        ])
        .await
        .ok();
    assert!(plan.stdout.contains("Plan for group"), "{plan:#?}");
    assert!(plan.stdout.contains("Dry run"), "{plan:#?}");
    assert_eq!(
        committed(&group, &topic),
        vec![-1001, -1001],
        "a dry run committed"
    );

    // To a time: the first record at or after it.
    let reset = setup
        .bss(&["offsets", "reset", "--to-datetime", "2026-01-01T00:00:05Z"])
        .await
        .ok();
    assert!(reset.stdout.contains("Committed for group"), "{reset:#?}");
    assert_eq!(committed(&group, &topic), vec![5, 5]);

    // Between two records: the next one. After the last: the end.
    setup
        .bss(&[
            "offsets",
            "reset",
            "--to-datetime",
            &(BASE_MS + 7_500).to_string(),
        ])
        .await
        .ok();
    assert_eq!(committed(&group, &topic), vec![8, 8]);
    setup
        .bss(&["offsets", "reset", "--to-datetime", "2030-01-01"])
        .await
        .ok();
    assert_eq!(committed(&group, &topic), vec![10, 10]);

    setup.bss(&["offsets", "reset", "--to-earliest"]).await.ok();
    assert_eq!(committed(&group, &topic), vec![0, 0]);
    setup.bss(&["offsets", "reset", "--to-latest"]).await.ok();
    assert_eq!(committed(&group, &topic), vec![10, 10]);

    // Explicit offsets touch only the partitions named.
    setup
        .bss(&["offsets", "reset", "--to-offset", &format!("{topic}:1=3")])
        .await
        .ok();
    assert_eq!(committed(&group, &topic), vec![10, 3]);

    // Outside the log: refused, naming the partition, nothing changed.
    let refused = setup
        .bss(&["offsets", "reset", "--to-offset", &format!("{topic}:0=99")])
        .await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains(&format!("{topic}/0 is outside the log")),
        "{refused:#?}"
    );
    assert_eq!(committed(&group, &topic), vec![10, 3]);

    // A consumer of the group (as the storer) resumes exactly there.
    let member = consumer(&group);
    member.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        assert!(Instant::now() < deadline, "no message after the reset");
        if let Some(Ok(message)) = member.poll(Duration::from_millis(200)) {
            break (message.partition(), message.offset());
        }
    };
    assert_eq!(first, (1, 3));

    // While the group has a member, a reset is refused and says why.
    let polling = Arc::new(AtomicBool::new(true));
    let keep_polling = Arc::clone(&polling);
    let member_thread = std::thread::spawn(move || {
        while keep_polling.load(Ordering::SeqCst) {
            let _ = member.poll(Duration::from_millis(100));
        }
        member.unsubscribe();
    });
    let busy = setup.bss(&["offsets", "reset", "--to-earliest"]).await;
    polling.store(false, Ordering::SeqCst);
    member_thread.join().expect("member thread");
    assert_eq!(busy.code, 2, "{busy:#?}");
    assert!(busy.stderr.contains("active member"), "{busy:#?}");
    assert!(
        busy.stdout.contains("Plan for group"),
        "the plan comes first: {busy:#?}"
    );
    assert_eq!(
        committed(&group, &topic),
        vec![10, 3],
        "a refused reset committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn show_reports_committed_offsets_and_lag_and_bad_arguments_are_named() {
    let brokers = time_aware_kafka_brokers();
    let topic = unique("offsets-show");
    let group = unique("offsets-show-group");
    create_topic_on(&brokers, &topic, 2).await;
    let records: Vec<TestRecord> = (0..4).map(|i| TestRecord::json(0, i, BASE_MS)).collect();
    produce(&producer_on(&brokers), &topic, &records).await;
    let setup = Setup::new(&brokers, &group, "unused-events", &[(&topic, &topic)]);
    setup
        .bss(&["offsets", "reset", "--to-offset", &format!("{topic}:0=1")])
        .await
        .ok();
    let show = setup.bss(&["offsets", "show"]).await.ok();
    let row = show
        .stdout
        .lines()
        .find(|l| l.contains(&topic) && l.split_whitespace().nth(1) == Some("0"))
        .unwrap_or_else(|| panic!("no row for partition 0: {show:#?}"));
    // TOPIC PART COMMITTED LOW HIGH LAG
    assert_eq!(
        row.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["1", "0", "4", "3"],
        "{row}"
    );

    let missing = setup
        .bss(&[
            "offsets",
            "reset",
            "--to-earliest",
            "--topic",
            "no-such-topic-x",
        ])
        .await;
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no-such-topic-x"), "{missing:#?}");
    let two_targets = setup
        .bss(&["offsets", "reset", "--to-earliest", "--to-latest"])
        .await;
    assert_eq!(two_targets.code, 2);
    assert!(
        two_targets.stderr.contains("cannot be used with"),
        "{two_targets:#?}"
    );
    let bad_time = setup
        .bss(&["offsets", "reset", "--to-datetime", "soon"])
        .await;
    assert!(
        bad_time.stderr.contains("\"soon\" is not a time"),
        "{bad_time:#?}"
    );
}
