//! The reloader against brokers that enforce security (`tests/stack/secure.sh`), replaying records that
//! only a lenient reader survives: binary header keys and timestamps far outside years 0..=9999.

mod common;

use std::time::Duration;

use bss_format::{Compression, Header, Record, TimestampType};
use bss_testkit::archive::write_objects;
use bss_testkit::bucket::s3_settings;
use bss_testkit::kafka::{create_topic_in, read_topic_in, Cluster, TestRecord};
use bss_testkit::process::Service;
use bss_testkit::{sasl_ssl_brokers, tls_file, unique, SCRAM_PASSWORD, SCRAM_USER};

use common::{post, wait_job, RELOADER};

/// Records a producer may legally send and a careless reader would choke on: binary header keys and
/// timestamps year 55840 (microseconds sent as milliseconds), year 10000, 1969.
const ODD_TIMESTAMPS: [i64; 4] = [
    1_700_000_000_000_000,
    253_402_300_800_000,
    -86_400_000,
    1_700_000_000_000,
];

fn odd_records(topic: &str, timestamps: &[i64]) -> Vec<Record> {
    timestamps
        .iter()
        .enumerate()
        .map(|(offset, ts)| Record {
            topic: topic.into(),
            partition: 0,
            offset: offset as i64,
            timestamp_ms: Some(*ts),
            timestamp_type: TimestampType::CreateTime,
            key: Some(vec![b'k', offset as u8]),
            payload: Some(vec![0xff, offset as u8]),
            headers: vec![
                Header {
                    key: vec![0xff, 0xfe, b'a' + offset as u8],
                    value: Some(b"binary key".to_vec()),
                },
                Header {
                    key: "plain".into(),
                    value: None,
                },
            ],
        })
        .collect()
}

/// Archives the odd records, replays the topic through `reloader` into `cluster`, and checks that
/// each arrives byte for byte (original headers first, lineage after).
async fn replays_through(
    cluster: &Cluster,
    timestamps: &[i64],
    env: Vec<(String, String)>,
    args: &[&str],
) {
    let topic = unique("odd-archived");
    let target = unique("odd-target");
    let store = s3_settings().store();
    let records = odd_records(&topic, timestamps);
    write_objects(&store, &topic, &records, 2, Compression::Zstd).await;
    create_topic_in(cluster, &target, 1).await;

    let mut all_env = s3_settings().service_env();
    all_env.push(("RELOADER_AUTH".into(), "none".into()));
    all_env.push(("LOG_LEVEL".into(), "debug".into()));
    all_env.extend(env);
    let mut reloader = Service::start(RELOADER, "reloader-secured", &all_env, args);
    reloader.wait_ready(Duration::from_secs(30));
    let (status, body) = post(
        &reloader,
        "/reingestion/topic",
        serde_json::json!({"topic": topic, "reIngestionTopic": target, "keepPartition": true}),
    );
    assert_eq!(status, 202, "{body}");
    let job = wait_job(
        &reloader,
        body["requestId"].as_str().expect("id"),
        Duration::from_secs(60),
    );
    assert_eq!(job["state"], "completed", "{job}\n{}", reloader.log());
    assert_eq!(job["messagesPublished"], records.len());

    let published = read_topic_in(
        cluster,
        &target,
        Duration::from_secs(30),
        |r| r.len() >= 4,
        true,
    )
    .await;
    let got: Vec<TestRecord> = published
        .iter()
        .map(|r| {
            let mut record = r.record.clone();
            record.headers.truncate(2); // the lineage headers come after the original ones
            record
        })
        .collect();
    let expected: Vec<TestRecord> = records.iter().map(TestRecord::from_archived).collect();
    assert_eq!(got, expected);
    assert!(
        !reloader.log().contains(SCRAM_PASSWORD),
        "the password reached the log"
    );
    assert!(reloader.terminate(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_odd_records_over_sasl_ssl_scram_sha_512_with_mia_variables() {
    let env = vec![
        ("KAFKA_BROKERS".to_owned(), sasl_ssl_brokers()),
        ("KAFKA_USERNAME".to_owned(), SCRAM_USER.to_owned()),
        ("KAFKA_PASSWORD".to_owned(), SCRAM_PASSWORD.to_owned()),
        (
            "KAFKA_SASL_MECHANISM".to_owned(),
            "SCRAM-SHA-512".to_owned(),
        ),
        ("KAFKA_SSL_CA_LOCATION".to_owned(), tls_file("ca.pem")),
    ];
    // nisshi's SQLite storage cannot serve a batch whose timestamps are further apart than an i32
    // (it fails the fetch with TryFromIntError): ordinary timestamps here, the odd ones over mTLS.
    let timestamps: Vec<i64> = (0..4).map(|n| 1_700_000_000_000 + n).collect();
    replays_through(&Cluster::sasl_ssl("SCRAM-SHA-512"), &timestamps, env, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_odd_records_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("application.yaml");
    let mut yaml = String::from("kafka:\n");
    for (name, value) in bss_testkit::mtls_properties() {
        yaml.push_str(&format!("  {name}: {value:?}\n"));
    }
    std::fs::write(&config, yaml).expect("config");
    let env = vec![("KAFKA_BROKERS".to_owned(), bss_testkit::mtls_brokers())];
    let path = config.to_string_lossy().into_owned();
    replays_through(&Cluster::mtls(), &ODD_TIMESTAMPS, env, &["--config", &path]).await;
}
