//! A durable broker killed right after writes and restarted: writes it had acknowledged may be lost,
//! which puts librdkafka's idempotent producer in a fatal state (`OutOfOrderSequenceNumber`). The
//! storer must replace that producer and go on archiving and announcing, not stay "live" and stuck.
//! The broker is a private noida-db (it persists to its data folder), so other tests are not touched.
//! noida-db did not lose an acknowledged write in our runs, so this test proves the storer rides out
//! broker kills and restarts; the replacement of a producer in the fatal state is proven by the unit
//! test `publisher::tests`, with librdkafka's own fatal-error hook.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bss_testkit::bucket::{assert_exactly_once, s3_settings};
use bss_testkit::kafka::{
    create_topic_on, produce, producer_on, read_topic_in, Cluster, TestRecord,
};
use bss_testkit::{free_port, unique};
use common::{wait_for_offsets, StorerSetup};

fn noida_binary() -> String {
    format!(
        "{}/../target/stack/venv/bin/noida-db",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn start_noida(port: u16, dir: &std::path::Path) -> Child {
    let child = Command::new(noida_binary())
        .args([
            "start",
            "--only",
            "kafka",
            "--kafka-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("noida-db starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "noida-db did not open port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storer_goes_on_after_a_broker_loses_acknowledged_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let mut broker = start_noida(port, dir.path());
    let topic = unique("restart");
    let events = unique("restart-events");
    create_topic_on(&brokers, &topic, 1).await;
    create_topic_on(&brokers, &events, 1).await;
    let mut setup = StorerSetup::new(
        &unique("restart-group"),
        &events,
        &[(&topic, None, &[])],
        "max-records-per-file: 1\nflush-interval: 100ms",
        s3_settings().service_env(),
    );
    setup.set("KAFKA_BROKERS", &brokers);
    let mut storer = setup.start_ready("storer-broker-restart");

    // Kill the broker at several moments right after the storer's writes, restarting it each time.
    let mut sent = 0u64;
    for delay_ms in [5, 15, 30, 45, 60, 80, 100, 150] {
        produce(
            &producer_on(&brokers),
            &topic,
            &[TestRecord::json(0, sent, 1_700_000_000_000)],
        )
        .await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = broker.kill();
        let _ = broker.wait();
        broker = start_noida(port, dir.path());
    }
    // Then the storer must archive and announce what comes next.
    let more: Vec<TestRecord> = (sent..sent + 5)
        .map(|n| TestRecord::json(0, n, 1_700_000_000_000))
        .collect();
    produce(&producer_on(&brokers), &topic, &more).await;
    let total = (sent + 5) as i64;
    let store = s3_settings().store();
    let expected = BTreeMap::from([(0, total)]);
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(90)).await;
    assert_exactly_once(&objects, &expected);
    let cluster = Cluster::plain(&brokers);
    let last_path = objects
        .iter()
        .max_by_key(|o| o.name.first_offset)
        .map(|o| o.path.clone())
        .expect("objects");
    let announced = read_topic_in(
        &cluster,
        &events,
        Duration::from_secs(60),
        move |events| {
            events.iter().any(|e| {
                e.record
                    .payload
                    .as_deref()
                    .is_some_and(|p| String::from_utf8_lossy(p).contains(&last_path))
            })
        },
        true,
    )
    .await;
    assert!(
        !announced.is_empty(),
        "no event for the last object after the broker restarts:\n{}",
        storer.log()
    );
    let log = storer.log();
    eprintln!(
        "fatal producer errors replaced: {}",
        log.matches("replaced it with a new one").count()
    );
    assert!(storer.terminate(Duration::from_secs(30)).success(), "{log}");
    let _ = broker.kill();
}
