//! `bss` against brokers that enforce security (`tests/stack/secure.sh`): the group's offsets are
//! moved and read back over SASL_SSL with SCRAM-SHA-512 and over mutual TLS.

mod common;

use bss_testkit::kafka::{create_topic_in, produce, producer_in, Cluster, TestRecord};
use bss_testkit::{sasl_ssl_brokers, tls_file, unique, SCRAM_PASSWORD, SCRAM_USER};
use common::{Setup, BASE_MS};

/// Resets the group of `setup` to offset 2 of a 4-record topic of `cluster`, and reads it back.
async fn offsets_move_and_read_back(cluster: &Cluster, setup: impl FnOnce(&str, &str) -> Setup) {
    let topic = unique("secured-offsets");
    create_topic_in(cluster, &topic, 1).await;
    let records: Vec<TestRecord> = (0..4).map(|i| TestRecord::json(0, i, BASE_MS)).collect();
    for record in &records {
        // One record per request, so every broker's watermark is exact.
        produce(&producer_in(cluster), &topic, std::slice::from_ref(record)).await;
    }
    let setup = setup(&topic, &unique("secured-offsets-group"));
    setup
        .bss(&["offsets", "reset", "--to-offset", &format!("{topic}:0=2")])
        .await
        .ok();
    let show = setup.bss(&["offsets", "show"]).await.ok();
    let row = show
        .stdout
        .lines()
        .find(|l| l.contains(&topic))
        .unwrap_or_else(|| panic!("no row: {show:#?}"));
    // TOPIC PART COMMITTED LOW HIGH LAG
    assert_eq!(row.split_whitespace().nth(2), Some("2"), "{row}");
    assert!(!show.stderr.contains(SCRAM_PASSWORD) && !show.stdout.contains(SCRAM_PASSWORD));
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_over_sasl_ssl_scram_sha_512_with_mia_variables() {
    offsets_move_and_read_back(&Cluster::sasl_ssl("SCRAM-SHA-512"), |topic, group| {
        let mut setup = Setup::new(
            &sasl_ssl_brokers(),
            group,
            "unused-events",
            &[(topic, topic)],
        );
        setup.env.extend([
            ("KAFKA_USERNAME".to_owned(), SCRAM_USER.to_owned()),
            ("KAFKA_PASSWORD".to_owned(), SCRAM_PASSWORD.to_owned()),
            (
                "KAFKA_SASL_MECHANISM".to_owned(),
                "SCRAM-SHA-512".to_owned(),
            ),
            ("KAFKA_SSL_CA_LOCATION".to_owned(), tls_file("ca.pem")),
        ]);
        setup
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_over_mutual_tls() {
    offsets_move_and_read_back(&Cluster::mtls(), |topic, group| {
        let setup = Setup::new(
            &bss_testkit::mtls_brokers(),
            group,
            "unused-events",
            &[(topic, topic)],
        );
        let mut yaml = std::fs::read_to_string(&setup.config_path).expect("config");
        for (name, value) in bss_testkit::mtls_properties() {
            yaml.push_str(&format!("  {name}: {value:?}\n"));
        }
        std::fs::write(&setup.config_path, yaml).expect("config");
        setup
    })
    .await;
}
