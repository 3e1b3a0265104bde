//! The storer against brokers that enforce security (`tests/stack/secure.sh`): SASL_SSL with SCRAM
//! checked against stored credentials, and TLS that requires a client certificate.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bss_testkit::bucket::{assert_exactly_once, s3_settings};
use bss_testkit::kafka::{
    create_topic_in, produce, producer_in, read_topic_in, Cluster, TestRecord,
};
use bss_testkit::{sasl_ssl_brokers, tls_file, unique, KEY_PASSWORD, SCRAM_PASSWORD, SCRAM_USER};
use common::{wait_for_offsets, StorerSetup};

type KeyAndValue = (Option<Vec<u8>>, Option<Vec<u8>>);

fn records(count: u64) -> Vec<TestRecord> {
    (0..count)
        .map(|n| TestRecord::json((n % 2) as i32, n, 1_700_000_000_000 + n as i64))
        .collect()
}

/// Produces 20 records on two partitions of a new topic of `cluster`, runs `storer`, and checks that
/// the bucket holds each exactly once, byte for byte, and that the events reached the events topic.
async fn archives_through(cluster: &Cluster, setup: impl FnOnce(&str, &str, &str) -> StorerSetup) {
    let topic = unique("secured");
    let events = unique("secured-events");
    create_topic_in(cluster, &topic, 2).await;
    create_topic_in(cluster, &events, 1).await;
    let sent = records(20);
    produce(&producer_in(cluster), &topic, &sent).await;

    let storer_setup = setup(&unique("secured-group"), &events, &topic);
    let mut storer = storer_setup.start_ready("storer-secured");
    let store = s3_settings().store();
    let expected = BTreeMap::from([(0, 10), (1, 10)]);
    let objects = wait_for_offsets(&store, &topic, &expected, Duration::from_secs(60)).await;
    assert_exactly_once(&objects, &expected);
    for partition in [0, 1] {
        let stored: Vec<KeyAndValue> = objects
            .iter()
            .flat_map(|o| &o.records)
            .filter(|r| r.partition == partition)
            .map(|r| (r.key.clone(), r.payload.clone()))
            .collect();
        let produced: Vec<KeyAndValue> = sent
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| (r.key.clone(), r.payload.clone()))
            .collect();
        assert_eq!(stored, produced, "partition {partition}");
    }
    let announced = read_topic_in(
        cluster,
        &events,
        Duration::from_secs(30),
        move |events| events.len() >= objects.len(),
        true,
    )
    .await;
    assert!(
        !announced.is_empty(),
        "no file-written event over the secured connection"
    );
    let status = storer.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean stop: {status:?}\n{}", storer.log());
    let log = storer.log();
    for secret in [SCRAM_PASSWORD, KEY_PASSWORD] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_over_sasl_ssl_scram_sha_512_with_only_mia_variables() {
    let cluster = Cluster::sasl_ssl("SCRAM-SHA-512");
    archives_through(&cluster, |group, events, topic| {
        let mut setup = StorerSetup::new(
            group,
            events,
            &[(topic, None, &[])],
            "flush-interval: 500ms",
            s3_settings().service_env(),
        );
        // Mia-Platform's variables: a username implies SASL_SSL; the CA is the one extra setting.
        setup.set("KAFKA_BROKERS", &sasl_ssl_brokers());
        setup.set("KAFKA_USERNAME", SCRAM_USER);
        setup.set("KAFKA_PASSWORD", SCRAM_PASSWORD);
        setup.set("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512");
        setup.set("KAFKA_SSL_CA_LOCATION", &tls_file("ca.pem"));
        setup
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_over_mutual_tls_with_an_encrypted_client_key() {
    let cluster = Cluster::mtls();
    archives_through(&cluster, |group, events, topic| {
        let mut setup = StorerSetup::new(
            group,
            events,
            &[(topic, None, &[])],
            "flush-interval: 500ms",
            s3_settings().service_env(),
        );
        setup.set("KAFKA_BROKERS", &bss_testkit::mtls_brokers());
        let properties = bss_testkit::mtls_properties();
        let borrowed: Vec<(&str, &str)> =
            properties.iter().map(|(k, v)| (*k, v.as_str())).collect();
        setup.add_kafka_properties(&borrowed);
        setup
    })
    .await;
}

/// SCRAM-SHA-256 (Mia-Platform's default mechanism) against the same enforcing broker. SASL/PLAIN has
/// no server here: neither nisshi nor tansu offers the mechanism (see docs/deployment.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_256_connects() {
    let topic = unique("mechanism");
    let cluster = Cluster::sasl_ssl("SCRAM-SHA-256");
    create_topic_in(&cluster, &topic, 1).await;
    produce(&producer_in(&cluster), &topic, &records(2)[..1]).await;
    let read = read_topic_in(
        &cluster,
        &topic,
        Duration::from_secs(20),
        |r| !r.is_empty(),
        true,
    )
    .await;
    assert_eq!(read.len(), 1);
}

/// A storer that cannot get in stays not ready and its readiness reason says why, without printing
/// the secret.
fn refused(setup: &StorerSetup, name: &str, expected_reason: &str) {
    let mut storer = setup.start(name);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = storer.log();
        if log
            .lines()
            .any(|line| line.contains("\"not ready\"") && line.contains(expected_reason))
        {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: no readiness reason with {expected_reason:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let ready = storer.get("/-/health/ready").map(|(status, _)| status);
    assert_ne!(
        ready,
        Some(200),
        "{name}: ready although the broker refuses it"
    );
    assert!(
        !log.contains("wrong-password-1234"),
        "{name}: the password reached the log"
    );
    storer.kill();
}

#[test]
fn wrong_password_wrong_ca_and_missing_client_certificate_are_refused() {
    let topic = unique("refused");
    let store_env = s3_settings().service_env();
    let base = |brokers: &str| {
        let mut setup = StorerSetup::new(
            &unique("refused"),
            &topic,
            &[(&topic, None, &[])],
            "",
            store_env.clone(),
        );
        setup.set("KAFKA_BROKERS", brokers);
        setup
    };

    let mut wrong_password = base(&sasl_ssl_brokers());
    wrong_password.set("KAFKA_USERNAME", SCRAM_USER);
    wrong_password.set("KAFKA_PASSWORD", "wrong-password-1234");
    wrong_password.set("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512");
    wrong_password.set("KAFKA_SSL_CA_LOCATION", &tls_file("ca.pem"));
    refused(
        &wrong_password,
        "storer-wrong-password",
        "SASL authentication error",
    );

    let mut wrong_ca = base(&sasl_ssl_brokers());
    wrong_ca.set("KAFKA_USERNAME", SCRAM_USER);
    wrong_ca.set("KAFKA_PASSWORD", SCRAM_PASSWORD);
    wrong_ca.set("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512");
    wrong_ca.set("KAFKA_SSL_CA_LOCATION", &tls_file("other-ca.pem"));
    refused(&wrong_ca, "storer-wrong-ca", "certificate verify failed");

    let no_client_certificate = base(&bss_testkit::mtls_brokers());
    no_client_certificate.add_kafka_properties(&[
        ("security.protocol", "SSL"),
        ("ssl.ca.location", &tls_file("ca.pem")),
    ]);
    refused(
        &no_client_certificate,
        "storer-no-client-certificate",
        "certificate required",
    );
}
