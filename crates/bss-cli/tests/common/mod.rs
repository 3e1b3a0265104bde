//! Shared setup of the `bss` tests: a storer configuration (file + environment) and a way to run the
//! tool and capture what it printed.
#![allow(dead_code)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bss_format::{Record, TimestampType};
use object_store::ObjectStore;

pub const BSS: &str = env!("CARGO_BIN_EXE_bss");

/// The storer configuration `bss` reads: topics mapped to folders, Kafka, an S3 bucket (moto).
pub struct Setup {
    pub env: Vec<(String, String)>,
    pub config_path: String,
    pub store: Arc<dyn ObjectStore>,
    pub dir: tempfile::TempDir,
}

/// What a run of `bss` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "bss failed: {self:#?}");
        self
    }
}

impl Setup {
    /// `mapping`: `(ingestion topic, bucket folder)`.
    pub fn new(brokers: &str, group: &str, events_topic: &str, mapping: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut yaml = String::from("bss:\n  topics-config:\n    data-topics-mapping:\n");
        for (ingestion, folder) in mapping {
            yaml.push_str(&format!(
                "      - ingestion: {ingestion}\n        bucket-folder: {folder}\n"
            ));
        }
        yaml.push_str("  max-records-per-file: 40\n  flush-interval: 500\n");
        yaml.push_str("kafka:\n  session.timeout.ms: 6000\n  heartbeat.interval.ms: 2000\n");
        let config_path = dir.path().join("application.yaml");
        std::fs::write(&config_path, yaml).expect("config file");
        let s3 = bss_testkit::bucket::s3_settings();
        let mut env = vec![
            ("KAFKA_BROKERS".to_owned(), brokers.to_owned()),
            ("KAFKA_GROUP_ID".to_owned(), group.to_owned()),
            ("KAFKA_DEQUEUE_STRATEGY".to_owned(), "earliest".to_owned()),
            ("BSS_EVENTS_TOPIC".to_owned(), events_topic.to_owned()),
            ("BSS_ENABLE_POST_INGESTION".to_owned(), "false".to_owned()),
            ("LOG_LEVEL".to_owned(), "info".to_owned()),
        ];
        env.extend(s3.service_env());
        Self {
            env,
            config_path: config_path.to_string_lossy().into_owned(),
            store: s3.store(),
            dir,
        }
    }

    /// Runs `bss --config … args`, waiting at most two minutes.
    pub async fn bss(&self, args: &[&str]) -> Run {
        run(self.command(args)).await
    }

    /// The command, not started (for tests that signal it).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(BSS);
        command
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// A path in the test's own directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// Runs a prepared `bss` command (see [`Setup::command`]), waiting at most two minutes.
pub async fn run(mut command: tokio::process::Command) -> Run {
    let child = command.spawn().expect("bss starts");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("bss finished within two minutes")
        .expect("bss output");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A record of `topic` as the archive holds it.
pub fn record(
    topic: &str,
    partition: i32,
    offset: i64,
    ts: i64,
    key: &str,
    value: Option<&str>,
) -> Record {
    Record {
        topic: Arc::from(topic),
        partition,
        offset,
        timestamp_ms: Some(ts),
        timestamp_type: TimestampType::CreateTime,
        key: Some(key.as_bytes().to_vec()),
        payload: value.map(|v| v.as_bytes().to_vec()),
        headers: vec![bss_format::Header {
            key: "origin".into(),
            value: Some(vec![0, 1, 0xff]),
        }],
    }
}

pub const BASE_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// An archive history of `folder` (topic of the same name): 2 partitions × `per_partition` records,
/// keys `k0…k59` (even keys on partition 0, odd on 1), every 7th record a tombstone, plus key `moved`
/// written on partition 0 and later on partition 1. Timestamps are `BASE_MS + offset seconds`.
pub fn history(folder: &str, per_partition: i64) -> Vec<Vec<Record>> {
    (0..2)
        .map(|partition| {
            let mut records: Vec<Record> = (0..per_partition)
                .map(|offset| {
                    let n = (offset * 7 + offset / 3) % 30 * 2 + i64::from(partition);
                    let key = format!("k{n}");
                    let value = format!(
                        "{{\"key\":\"{key}\",\"offset\":{offset},\"partition\":{partition}}}"
                    );
                    let ts = BASE_MS + offset * 1000;
                    record(
                        folder,
                        partition,
                        offset,
                        ts,
                        &key,
                        (offset % 7 != 6).then_some(value.as_str()),
                    )
                })
                .collect();
            let moved_at = per_partition / 4 + i64::from(partition) * per_partition / 2;
            let offset = per_partition;
            records.push(record(
                folder,
                partition,
                offset,
                BASE_MS + moved_at * 1000,
                "moved",
                Some(&format!("{{\"key\":\"moved\",\"partition\":{partition}}}")),
            ));
            records.sort_by_key(|r| r.offset);
            records
        })
        .collect()
}

/// The newest live value of every key at or before `as_of`, computed the simple way.
pub fn expected_latest(
    history: &[Vec<Record>],
    as_of: i64,
) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let mut newest: std::collections::BTreeMap<Vec<u8>, &Record> = Default::default();
    for record in history
        .iter()
        .flatten()
        .filter(|r| r.timestamp_ms.is_some_and(|t| t <= as_of))
    {
        let key = record.key.clone().expect("key");
        let replace = newest.get(&key).is_none_or(|kept| {
            if kept.partition == record.partition {
                record.offset > kept.offset
            } else {
                record.timestamp_ms > kept.timestamp_ms
            }
        });
        if replace {
            newest.insert(key, record);
        }
    }
    newest
        .into_iter()
        .filter_map(|(k, r)| r.payload.clone().map(|v| (k, v)))
        .collect()
}

/// Path → size of every object under `prefix`.
pub async fn listing(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> std::collections::BTreeMap<String, u64> {
    use futures::TryStreamExt;
    store
        .list(Some(&object_store::path::Path::from(prefix)))
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .expect("list")
}

/// Writes the history into the bucket as the storer would (objects of 25 records with sidecars).
pub async fn archive(store: &Arc<dyn ObjectStore>, folder: &str, history: &[Vec<Record>]) {
    for partition in history {
        bss_testkit::archive::write_objects(
            store,
            folder,
            partition,
            25,
            bss_format::Compression::Zstd,
        )
        .await;
    }
}

/// Key → value of archive lines (`bss dump --format records`, `inspect read`).
pub fn lines_by_key(text: &str) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let record = bss_format::decode_line(line.as_bytes(), None).expect("an archive line");
        let previous = out.insert(record.key.expect("key"), record.payload.expect("value"));
        assert!(previous.is_none(), "a key twice in {line}");
    }
    out
}
