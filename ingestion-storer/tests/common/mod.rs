//! Shared setup of the storer's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bss_testkit::bucket::{offsets_by_partition, read_folder, ArchivedObject};
use bss_testkit::process::Service;
use object_store::ObjectStore;

pub const STORER: &str = env!("CARGO_BIN_EXE_ingestion-storer");

/// A storer's configuration: a YAML file (topic mapping, Kafka test timings) plus env vars.
pub struct StorerSetup {
    pub env: Vec<(String, String)>,
    pub config_path: String,
    _dir: tempfile::TempDir,
}

/// One mapping entry: `(ingestion, bucket-folder, post-ingestion topics)`.
pub type Mapping<'a> = (&'a str, Option<&'a str>, &'a [&'a str]);

impl StorerSetup {
    /// A storer on the test broker, group `group`, events on `events_topic`, reading from the earliest
    /// offset, with `extra` settings under `bss:` in the YAML and `bucket_env` for the bucket.
    pub fn new(
        group: &str,
        events_topic: &str,
        mapping: &[Mapping<'_>],
        extra_bss_yaml: &str,
        bucket_env: Vec<(String, String)>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut yaml = String::from("bss:\n");
        for line in extra_bss_yaml.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str(&format!("  {line}\n"));
        }
        yaml.push_str("  topics-config:\n    data-topics-mapping:\n");
        for (ingestion, folder, post) in mapping {
            yaml.push_str(&format!("      - ingestion: {ingestion}\n"));
            if let Some(folder) = folder {
                yaml.push_str(&format!("        bucket-folder: {folder}\n"));
            }
            if !post.is_empty() {
                yaml.push_str(&format!("        post-ingestion: [{}]\n", post.join(", ")));
            }
        }
        // Kafka's minimum session timeout: joins are fast on every test broker (see test-world notes).
        yaml.push_str("kafka:\n  session.timeout.ms: 6000\n  heartbeat.interval.ms: 2000\n");
        let config_path = dir.path().join("application.yaml");
        std::fs::write(&config_path, yaml).expect("config file");
        let mut env = vec![
            ("KAFKA_BROKERS".to_owned(), bss_testkit::kafka_brokers()),
            ("KAFKA_GROUP_ID".to_owned(), group.to_owned()),
            ("KAFKA_DEQUEUE_STRATEGY".to_owned(), "earliest".to_owned()),
            ("BSS_EVENTS_TOPIC".to_owned(), events_topic.to_owned()),
            ("LOG_LEVEL".to_owned(), "debug".to_owned()),
        ];
        env.extend(bucket_env);
        Self {
            env,
            config_path: config_path.to_string_lossy().into_owned(),
            _dir: dir,
        }
    }

    /// Adds librdkafka properties to the file's `kafka:` section (its last one).
    pub fn add_kafka_properties(&self, properties: &[(&str, &str)]) {
        let mut yaml = std::fs::read_to_string(&self.config_path).expect("config file");
        for (name, value) in properties {
            yaml.push_str(&format!("  {name}: {value:?}\n"));
        }
        std::fs::write(&self.config_path, yaml).expect("config file");
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    pub fn start(&self, name: &str) -> Service {
        Service::start(STORER, name, &self.env, &["--config", &self.config_path])
    }

    pub fn start_ready(&self, name: &str) -> Service {
        let mut service = self.start(name);
        service.wait_ready(Duration::from_secs(60));
        service
    }
}

/// Polls the bucket until `folder` holds at least `expected[p]` distinct offsets for each partition.
pub async fn wait_for_offsets(
    store: &Arc<dyn ObjectStore>,
    folder: &str,
    expected: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> Vec<ArchivedObject> {
    let deadline = Instant::now() + timeout;
    loop {
        let objects = read_folder(store, folder).await;
        let found = offsets_by_partition(&objects);
        let complete = expected.iter().all(|(p, n)| {
            let mut offsets = found.get(p).cloned().unwrap_or_default();
            offsets.sort_unstable();
            offsets.dedup();
            offsets.len() as i64 >= *n
        });
        if complete {
            return objects;
        }
        assert!(
            Instant::now() < deadline,
            "bucket folder {folder} incomplete after {timeout:?}: have {:?}, want {expected:?}",
            found.iter().map(|(p, o)| (p, o.len())).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
