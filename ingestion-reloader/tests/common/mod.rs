//! Shared set-up of the reloader's end-to-end tests: archive fixtures in the S3 server, the reloader
//! binary started on the stack's broker, and HTTP helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bss_format::{Compression, Header, Record, TimestampType};
use bss_testkit::archive::write_objects;
use bss_testkit::bucket::s3_settings;
use bss_testkit::kafka::{read_topic, TestRecord};
use bss_testkit::process::{http_request, Service};
use bss_testkit::unique;
use object_store::ObjectStore;

pub const RELOADER: &str = env!("CARGO_BIN_EXE_ingestion-reloader");
pub const BASE_TS: i64 = 1_700_000_000_000;

pub fn record(topic: &str, partition: i32, offset: i64, key: Option<&[u8]>) -> Record {
    Record {
        topic: topic.into(),
        partition,
        offset,
        timestamp_ms: Some(BASE_TS + offset * 1000),
        timestamp_type: TimestampType::CreateTime,
        key: key.map(<[u8]>::to_vec),
        payload: Some(
            format!(
                "{{\"offset\":{offset},\"status\":\"{}\"}}",
                if offset % 2 == 0 { "PAID" } else { "NEW" }
            )
            .into_bytes(),
        ),
        headers: vec![
            Header {
                key: "trace".into(),
                value: Some(vec![0, 159, 146, 150]),
            },
            Header {
                key: "empty".into(),
                value: None,
            },
        ],
    }
}

pub struct Fixture {
    pub topic: String,
    pub store: Arc<dyn ObjectStore>,
    pub records: BTreeMap<i32, Vec<Record>>,
    pub paths: Vec<String>,
}

/// `partitions` × `per_partition` records archived in objects of `per_object`, keys `k<offset % keys>`.
pub async fn fixture(partitions: i32, per_partition: i64, per_object: usize, keys: i64) -> Fixture {
    let topic = unique("archived");
    let store = s3_settings().store();
    let mut records = BTreeMap::new();
    let mut paths = Vec::new();
    for partition in 0..partitions {
        let list: Vec<Record> = (0..per_partition)
            .map(|o| {
                record(
                    &topic,
                    partition,
                    o,
                    Some(format!("k{}", o % keys).as_bytes()),
                )
            })
            .collect();
        paths.extend(write_objects(&store, &topic, &list, per_object, Compression::Zstd).await);
        records.insert(partition, list);
    }
    Fixture {
        topic,
        store,
        records,
        paths,
    }
}

pub fn start_reloader(extra: &[(&str, &str)]) -> Service {
    let mut env: Vec<(String, String)> = s3_settings().service_env();
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.push(("KAFKA_BROKERS".into(), bss_testkit::kafka_brokers()));
    env.push(("LOG_LEVEL".into(), "debug".into()));
    env.push(("RELOADER_AUTH".into(), "none".into()));
    // Reloaders of other tests share the bucket: each gets its own job records (replicas of one
    // test share them by passing the same prefix).
    if !extra.iter().any(|(k, _)| *k == "RELOADER_JOBS_PREFIX") {
        env.push(("RELOADER_JOBS_PREFIX".into(), unique(".bss-jobs-test")));
    }
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut service = Service::start(RELOADER, "reloader", &env, &[]);
    service.wait_ready(Duration::from_secs(30));
    service
}

pub fn post(service: &Service, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = http_request(
        service.http_port,
        "POST",
        path,
        &[],
        Some(body.to_string().as_bytes()),
    )
    .expect("answer");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text.clone())),
    )
}

pub fn get(service: &Service, path: &str) -> (u16, serde_json::Value) {
    let (status, text) = http_request(service.http_port, "GET", path, &[], None).expect("answer");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text.clone())),
    )
}

/// Waits until the job leaves "running"; returns its record.
pub fn wait_job(service: &Service, id: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, job) = get(service, &format!("/reingestion/jobs/{id}"));
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job still running: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Offsets (from the payloads) of what a job published on `target`, by partition.
pub async fn published_offsets(target: &str, expected: usize) -> BTreeMap<i32, Vec<i64>> {
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for published in read_topic(target, expected, Duration::from_secs(20)).await {
        let (partition, offset) = source_of(&published.record);
        offsets.entry(partition).or_default().push(offset);
    }
    offsets
}

/// (partition, offset) of a published record (the offset from its payload).
pub fn source_of(record: &TestRecord) -> (i32, i64) {
    let payload: serde_json::Value =
        serde_json::from_slice(record.payload.as_deref().expect("payload")).expect("json payload");
    (
        record.partition,
        payload["offset"].as_i64().expect("offset"),
    )
}

/// Every record published on `target`, in order, once `distinct` different ones arrived.
pub async fn published_in_order(target: &str, distinct: usize) -> Vec<(i32, i64)> {
    bss_testkit::kafka::read_topic_until(target, Duration::from_secs(30), move |records| {
        records
            .iter()
            .map(|r| source_of(&r.record))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= distinct
    })
    .await
    .iter()
    .map(|r| source_of(&r.record))
    .collect()
}

/// Waits until the job completes, stops, or fails for a reason other than a lost replica.
pub fn wait_until_done(service: &Service, id: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, job) = get(service, &format!("/reingestion/jobs/{id}"));
        let taken_over_soon = job["state"] == "interrupted"
            || (job["state"] == "failed"
                && job["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("stopped responding")));
        if job["state"] != "running" && !taken_over_soon {
            return job;
        }
        assert!(Instant::now() < deadline, "{job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Per source partition, the offsets published on `target`, in order.
pub fn offsets_by_partition(published: &[(i32, i64)]) -> BTreeMap<i32, Vec<i64>> {
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (partition, offset) in published {
        by_partition.entry(*partition).or_default().push(*offset);
    }
    by_partition
}
