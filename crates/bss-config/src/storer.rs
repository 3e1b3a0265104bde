//! The storer's settings: Mia-Platform's `application.yaml` shape and environment variables, plus ours.
//! Every setting, its variable and its default are listed in [`ENV_VARS`] and `docs/configuration.md`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use crate::file::{ApplicationFile, MappingEntry};
use crate::{BucketConfig, ConfigError, EnvVar, KafkaConfig, NumberOrText};
use bss_format::Compression;

/// Kafka settings only this service reads (the connection ones are shared).
const OWN_KAFKA_ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "KAFKA_GROUP_ID",
        key: "kafka.group.id",
        default: "",
        help: "consumer group shared by the replicas (required)",
    },
    EnvVar {
        name: "KAFKA_CLIENT_ID",
        key: "kafka.client.id",
        default: "ingestion-storer",
        help: "Kafka client id",
    },
    EnvVar {
        name: "KAFKA_DEQUEUE_STRATEGY",
        key: "kafka.auto.offset.reset",
        default: "latest",
        help: "where a group without committed offsets starts: latest or earliest",
    },
];

const OWN_ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "BSS_EVENTS_TOPIC",
        key: "bss.topics-config.output-events-topic",
        default: "",
        help: "topic of the file-written events (required)",
    },
    EnvVar {
        name: "BSS_ENABLE_POST_INGESTION",
        key: "bss.enable-post-ingestion",
        default: "true",
        help: "forward each message to its post-ingestion topics once stored",
    },
    EnvVar {
        name: "BSS_MAX_BYTES_PER_FILE",
        key: "bss.max-bytes-per-file",
        default: "8MiB",
        help: "seal a file when its records reach this size (uncompressed, approximate)",
    },
    EnvVar {
        name: "BSS_MAX_RECORDS_PER_FILE",
        key: "bss.max-records-per-file",
        default: "1000000",
        help: "seal a file at this many records",
    },
    EnvVar {
        name: "BSS_FLUSH_INTERVAL",
        key: "bss.flush-interval",
        default: "30s",
        help: "seal a file when its first record has waited this long (Mia: cache-upload-timeout); a tenth of it (20–250 ms) without records seals a batch of a quarter of `BSS_MAX_BYTES_PER_FILE` or after a full one",
    },
    EnvVar {
        name: "BSS_MEMORY_BUDGET",
        key: "bss.memory-budget",
        default: "64MiB",
        help:
            "records buffered across all partitions never exceed this; consumption pauses near it",
    },
    EnvVar {
        name: "BSS_COMPRESSION",
        key: "bss.compression",
        default: "none",
        help: "file compression: none (.txt JSON lines, Mia-Platform's format, read by its tools), zstd (.txt.zst, ~5-10x smaller, cheapest CPU; choose it when nothing downstream reads the files with Mia's tools), gzip (.txt.gz, readable by any unzip)",
    },
    EnvVar {
        name: "BSS_MULTIPART_THRESHOLD",
        key: "bss.multipart-threshold",
        default: "16MiB",
        help: "files larger than this are uploaded in parts",
    },
    EnvVar {
        name: "BSS_UPLOAD_CONCURRENCY",
        key: "bss.upload-concurrency",
        default: "8",
        help: "uploads in flight at once, across partitions",
    },
    EnvVar {
        name: "BSS_SHUTDOWN_TIMEOUT",
        key: "bss.shutdown-timeout",
        default: "25s",
        help: "deadline to seal, write, forward and commit on SIGTERM",
    },
    EnvVar {
        name: "HTTP_PORT",
        key: "http-port",
        default: "3000",
        help: "port of /-/health/* and, unless METRICS_PORT is set, /-/metrics",
    },
    EnvVar {
        name: "METRICS_PORT",
        key: "metrics-port",
        default: "",
        help: "a port of its own for /-/metrics (plain HTTP), so that a network policy can open metrics without the rest; empty: /-/metrics is on HTTP_PORT, as in Mia-Platform's services",
    },
    EnvVar {
        name: "LOG_LEVEL",
        key: "log-level",
        default: "info",
        help: "error, warn, info, debug or trace",
    },
];

/// Every environment variable the service reads (the shared Kafka and bucket ones from `bss-config`,
/// then its own), the file key each sets, and its default.
pub static ENV_VARS: std::sync::LazyLock<Vec<EnvVar>> =
    std::sync::LazyLock::new(|| crate::service_env_vars(OWN_KAFKA_ENV_VARS, OWN_ENV_VARS));

/// The Markdown table of [`ENV_VARS`] that `docs/configuration.md` must contain (checked by a test).
pub fn reference_table() -> String {
    crate::reference_table(&ENV_VARS)
}

/// The storer reads the shared file; the reloader's section is accepted, not read.
type RawConfig = ApplicationFile<Option<serde::de::IgnoredAny>>;

/// One ingestion topic and where its records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMapping {
    /// Ingestion topic consumed.
    pub ingestion: String,
    /// Bucket folder of its objects (default: the topic name).
    pub folder: String,
    /// Topics each record is forwarded to once stored (when post-ingestion is enabled).
    pub post_ingestion: Vec<String>,
}

/// When a partition's open batch becomes a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Seal at this many (approximate, uncompressed) bytes.
    pub max_bytes: u64,
    /// Seal at this many records.
    pub max_records: u64,
    /// Seal when the first record has waited this long.
    pub flush_interval: Duration,
}

impl BatchLimits {
    /// How long a partition must receive nothing before a batch of a quarter of `max_bytes` or more
    /// is sealed without waiting for its age: a tenth of the flush interval, between 20 and 250 ms.
    pub fn quiet_after(&self) -> Duration {
        (self.flush_interval / 10).clamp(Duration::from_millis(20), Duration::from_millis(250))
    }
}

/// How the memory budget is split, derived once from the settings: librdkafka's prefetch queue (which
/// may still deliver after a pause) is set aside, and the consume loop pauses and resumes around the
/// rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// librdkafka's prefetch queue (`queued.max.messages.kbytes`): configured, else an eighth of the
    /// budget between 1 and 16 MiB (and then set in the Kafka properties).
    pub prefetch_kbytes: u64,
    /// Pause consumption at this many buffered bytes: the budget minus the prefetch queue, at least
    /// half the budget.
    pub high_water_bytes: u64,
    /// Resume below this many buffered bytes; seal the largest batch when open ones reach it.
    pub low_water_bytes: u64,
}

impl MemoryPlan {
    fn derive(kafka: &mut KafkaConfig, budget: u64) -> Result<Self, ConfigError> {
        const QUEUE: &str = "queued.max.messages.kbytes";
        let prefetch_kbytes = match kafka.whole_number(&ENV_VARS, QUEUE, "KiB")? {
            Some(kbytes) => kbytes,
            None => {
                let kbytes = (budget / 8 / 1024).clamp(1024, 16 * 1024);
                kafka.set_default(QUEUE, &kbytes.to_string());
                kbytes
            }
        };
        let high_water_bytes = budget
            .saturating_sub(prefetch_kbytes * 1024)
            .max(budget / 2);
        Ok(Self {
            prefetch_kbytes,
            high_water_bytes,
            low_water_bytes: high_water_bytes / 4 * 3,
        })
    }
}

/// Deadlines that follow from the consumer group's `session.timeout.ms`, derived once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTimings {
    /// librdkafka's session timeout (its default, 45 s, unless configured).
    pub session_timeout: Duration,
    /// How long revoked partitions may take to drain: two thirds of the session timeout, so a
    /// revoke finishes before the group gives up on this member.
    pub drain_timeout: Duration,
    /// A rebalance taking longer than this is reported unhealthy: three session timeouts (a join
    /// waits up to one for every member, then syncs), at least 30 s.
    pub stuck_rebalance_after: Duration,
}

impl GroupTimings {
    fn derive(kafka: &KafkaConfig) -> Result<Self, ConfigError> {
        const SESSION: &str = "session.timeout.ms";
        let session_ms = kafka
            .whole_number(&ENV_VARS, SESSION, "milliseconds")?
            .unwrap_or(45_000);
        Ok(Self {
            session_timeout: Duration::from_millis(session_ms),
            drain_timeout: Duration::from_millis(session_ms * 2 / 3),
            stuck_rebalance_after: Duration::from_millis(session_ms * 3)
                .max(Duration::from_secs(30)),
        })
    }
}

/// The validated storer configuration.
#[derive(Debug, Clone)]
pub struct StorerConfig {
    /// librdkafka properties for every client.
    pub kafka: KafkaConfig,
    /// Bucket.
    pub bucket: BucketConfig,
    /// Ingestion topics.
    pub topics: Vec<TopicMapping>,
    /// Events topic.
    pub events_topic: String,
    /// Whether records are forwarded to post-ingestion topics.
    pub post_ingestion: bool,
    /// Batch sealing limits.
    pub limits: BatchLimits,
    /// Budget of buffered record bytes across partitions.
    pub memory_budget_bytes: u64,
    /// How the budget is shared with librdkafka's prefetch queue.
    pub memory: MemoryPlan,
    /// Deadlines that follow from the consumer group's session timeout.
    pub group: GroupTimings,
    /// File compression.
    pub compression: Compression,
    /// Multipart above this size.
    pub multipart_threshold_bytes: u64,
    /// Uploads in flight across partitions.
    pub upload_concurrency: usize,
    /// Drain deadline at shutdown.
    pub shutdown_timeout: Duration,
    /// Health and metrics port.
    pub http_port: u16,
    /// A port of its own for `/-/metrics`, if any.
    pub metrics_port: Option<u16>,
    /// Log level.
    pub log_level: String,
}

impl StorerConfig {
    /// Loads and validates from an optional file and the given environment.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = crate::load(file, env, &ENV_VARS)?;
        Self::validate(raw, env)
    }

    fn validate(raw: RawConfig, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::invalid(&ENV_VARS, key, reason);
        let mut kafka = raw.kafka.validate(&ENV_VARS, env)?;
        if kafka.get("group.id").is_none_or(|g| g.trim().is_empty()) {
            return Err(invalid("kafka.group.id", "is required".into()));
        }
        // Our defaults where Mia's and librdkafka's differ or where correctness needs them.
        kafka.set_default("client.id", "ingestion-storer");
        kafka.set_default("auto.offset.reset", "latest");
        // librdkafka's default too, stated because the guarantee depends on it: records of aborted
        // transactions are never archived or forwarded.
        kafka.set_default("isolation.level", "read_committed");
        for (property, required) in [
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ] {
            if kafka.get(property).is_some_and(|v| v != required) {
                return Err(invalid(
                    &format!("kafka.{property}"),
                    format!(
                        "must be {required}: the storer commits only what is durable in the bucket"
                    ),
                ));
            }
            kafka.set_default(property, required);
        }

        let bss = raw.bss;
        let bucket = bss.bucket.validate(&ENV_VARS, "bss.bucket")?;
        let events_topic = bss
            .topics_config
            .output_events_topic
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    "bss.topics-config.output-events-topic",
                    "is required".into(),
                )
            })?;
        let post_ingestion = crate::or_default(
            bss.enable_post_ingestion,
            &ENV_VARS,
            "bss.enable-post-ingestion",
        )?;
        let topics = validate_mapping(bss.topics_config.data_topics_mapping, post_ingestion)?;

        // Unset: the documented default, read as a value would be.
        let bytes = |value: Option<NumberOrText>, key: &str| {
            crate::number_or_default(value, &ENV_VARS, key).bytes(&ENV_VARS, key)
        };
        let millis = |value: Option<NumberOrText>, key: &str| {
            crate::number_or_default(value, &ENV_VARS, key).millis(&ENV_VARS, key)
        };
        let limits = BatchLimits {
            max_bytes: bytes(bss.max_bytes_per_file, "bss.max-bytes-per-file")?,
            max_records: crate::or_default(
                bss.max_records_per_file,
                &ENV_VARS,
                "bss.max-records-per-file",
            )?,
            flush_interval: Duration::from_millis(millis(
                bss.flush_interval.or(bss.cache_upload_timeout),
                "bss.flush-interval",
            )?),
        };
        if limits.max_bytes == 0 {
            return Err(invalid(
                "bss.max-bytes-per-file",
                "must be greater than 0".into(),
            ));
        }
        if limits.max_records == 0 {
            return Err(invalid(
                "bss.max-records-per-file",
                "must be greater than 0".into(),
            ));
        }
        if limits.flush_interval.is_zero() {
            return Err(invalid(
                "bss.flush-interval",
                "must be greater than 0".into(),
            ));
        }
        let memory_budget_bytes = bytes(bss.memory_budget, "bss.memory-budget")?;
        if memory_budget_bytes < 4 << 20 {
            return Err(invalid("bss.memory-budget", "must be at least 4MiB".into()));
        }
        if bss.max_cache_size.is_some() {
            tracing::warn!("bss.max-cache-size is Mia-Platform's per-partition cache; it is ignored, bss.memory-budget bounds memory");
        }
        let compression = crate::or_default(bss.compression, &ENV_VARS, "bss.compression")?
            .parse()
            .map_err(|e: bss_format::UnknownCompression| {
                invalid("bss.compression", e.to_string())
            })?;
        let multipart_threshold_bytes = bytes(bss.multipart_threshold, "bss.multipart-threshold")?;
        if multipart_threshold_bytes < 5 << 20 {
            return Err(invalid(
                "bss.multipart-threshold",
                "must be at least 5MiB (the smallest S3 part)".into(),
            ));
        }
        let upload_concurrency =
            crate::or_default(bss.upload_concurrency, &ENV_VARS, "bss.upload-concurrency")?;
        if upload_concurrency == 0 {
            return Err(invalid(
                "bss.upload-concurrency",
                "must be greater than 0".into(),
            ));
        }
        let memory = MemoryPlan::derive(&mut kafka, memory_budget_bytes)?;
        let group = GroupTimings::derive(&kafka)?;
        let shutdown_timeout =
            Duration::from_millis(millis(bss.shutdown_timeout, "bss.shutdown-timeout")?);
        let http_port = crate::or_default(raw.http_port, &ENV_VARS, "http-port")?;
        Ok(Self {
            kafka,
            bucket,
            topics,
            events_topic,
            post_ingestion,
            limits,
            memory_budget_bytes,
            memory,
            group,
            compression,
            multipart_threshold_bytes,
            upload_concurrency,
            shutdown_timeout,
            http_port,
            metrics_port: crate::metrics_port(raw.metrics_port, http_port, &ENV_VARS)?,
            log_level: crate::log_level(raw.log_level, &ENV_VARS)?,
        })
    }

    /// The mapping entry of an ingestion topic.
    pub fn mapping(&self, topic: &str) -> Option<&TopicMapping> {
        self.topics.iter().find(|m| m.ingestion == topic)
    }
}

fn validate_mapping(
    raw: Vec<MappingEntry>,
    post_ingestion: bool,
) -> Result<Vec<TopicMapping>, ConfigError> {
    const KEY: &str = "bss.topics-config.data-topics-mapping";
    let invalid = |reason: String| ConfigError::invalid(&ENV_VARS, KEY, reason);
    if raw.is_empty() {
        return Err(invalid(
            "is required: at least one entry with an `ingestion` topic".into(),
        ));
    }
    let mut seen = HashSet::new();
    let mut folders = HashSet::new();
    let mut topics = Vec::with_capacity(raw.len());
    for (index, entry) in raw.into_iter().enumerate() {
        let ingestion = entry.ingestion.trim().to_owned();
        if ingestion.is_empty() {
            return Err(invalid(format!("entry {index}: `ingestion` is empty")));
        }
        if !seen.insert(ingestion.clone()) {
            return Err(invalid(format!(
                "entry {index}: topic {ingestion:?} is mapped twice"
            )));
        }
        let folder = entry.bucket_folder.unwrap_or_else(|| ingestion.clone());
        if folder.is_empty()
            || folder.starts_with('/')
            || folder.ends_with('/')
            || folder
                .split('/')
                .any(|s| s == ".." || s == "." || s.is_empty())
        {
            return Err(invalid(format!(
                "entry {index}: bucket-folder {folder:?} must be a relative path without empty, `.` or `..` segments"
            )));
        }
        if !folders.insert(folder.clone()) {
            return Err(invalid(format!(
                "entry {index}: bucket-folder {folder:?} is used twice"
            )));
        }
        if entry.post_ingestion.contains(&ingestion) {
            return Err(invalid(format!(
                "entry {index}: {ingestion:?} forwards to itself, which would loop forever"
            )));
        }
        topics.push(TopicMapping {
            ingestion,
            folder,
            post_ingestion: if post_ingestion {
                entry.post_ingestion
            } else {
                Vec::new()
            },
        });
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const MIA_YAML: &str = r#"
bss:
  enable-post-ingestion: true
  max-bytes-per-file: 1048576
  cache-upload-timeout: 5s
  max-cache-size: 10MB
  topics-config:
    output-events-topic: bss-events
    data-topics-mapping:
      - ingestion: orders.ingestion
        bucket-folder: orders
        post-ingestion: [orders.post]
      - ingestion: customers.ingestion
kafka:
  security.protocol: SASL_SSL
"#;

    fn load_yaml(yaml: &str, vars: &[(&str, &str)]) -> Result<StorerConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("application.yaml");
        std::fs::write(&path, yaml).expect("write");
        StorerConfig::load(Some(&path), &env(vars))
    }

    const REQUIRED_ENV: &[(&str, &str)] = &[
        ("KAFKA_BROKERS", "localhost:9092"),
        ("KAFKA_GROUP_ID", "storer"),
        ("BUCKET_TYPE", "s3"),
        ("BUCKET_NAME", "archive"),
        ("BUCKET_ENDPOINT", "http://127.0.0.1:9000"),
    ];

    #[test]
    fn accepts_mia_platform_application_yaml_and_env_names() {
        let config = load_yaml(MIA_YAML, REQUIRED_ENV).expect("valid");
        assert_eq!(config.events_topic, "bss-events");
        // Mia's configuration has no compression key: its uncompressed `.txt` files.
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.limits.max_bytes, 1 << 20);
        assert_eq!(config.limits.flush_interval, Duration::from_secs(5));
        assert_eq!(config.topics[0].folder, "orders");
        assert_eq!(
            config.topics[0].post_ingestion,
            vec!["orders.post".to_owned()]
        );
        assert_eq!(config.topics[1].folder, "customers.ingestion");
        assert_eq!(config.kafka.get("group.id"), Some("storer"));
        assert_eq!(config.kafka.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.kafka.get("security.protocol"), Some("SASL_SSL"));
        let BucketConfig::S3(s3) = &config.bucket else {
            panic!("s3 expected")
        };
        assert!(
            s3.allow_http,
            "an http:// endpoint works without further settings"
        );
    }

    #[test]
    fn unset_settings_take_their_documented_defaults() {
        let yaml = "bss:\n  topics-config:\n    output-events-topic: e\n    data-topics-mapping:\n      - ingestion: a\n";
        let config = load_yaml(yaml, REQUIRED_ENV).expect("valid");
        assert!(config.post_ingestion);
        assert_eq!(config.limits.max_bytes, 8 << 20);
        assert_eq!(config.limits.max_records, 1_000_000);
        assert_eq!(config.limits.flush_interval, Duration::from_secs(30));
        assert_eq!(config.memory_budget_bytes, 64 << 20);
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.multipart_threshold_bytes, 16 << 20);
        assert_eq!(config.upload_concurrency, 8);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(25));
        assert_eq!((config.http_port, config.metrics_port), (3000, None));
        assert_eq!(config.log_level, "info");
    }

    #[test]
    fn memory_and_group_deadlines_are_derived_once_from_the_settings() {
        let mut vars = REQUIRED_ENV.to_vec();
        vars.push(("BSS_MEMORY_BUDGET", "64MiB"));
        let config = load_yaml(MIA_YAML, &vars).expect("valid");
        // An eighth of the budget for librdkafka's queue, set in the client's properties too.
        assert_eq!(config.memory.prefetch_kbytes, 8 * 1024);
        assert_eq!(config.kafka.get("queued.max.messages.kbytes"), Some("8192"));
        assert_eq!(config.memory.high_water_bytes, 56 << 20);
        assert_eq!(config.memory.low_water_bytes, 42 << 20);
        assert_eq!(config.group.session_timeout, Duration::from_secs(45));
        assert_eq!(config.group.drain_timeout, Duration::from_secs(30));
        assert_eq!(config.group.stuck_rebalance_after, Duration::from_secs(135));

        let yaml =
            format!("{MIA_YAML}  queued.max.messages.kbytes: 40960\n  session.timeout.ms: 6000\n");
        let config = load_yaml(&yaml, &vars).expect("valid");
        // A queue of 40 MiB leaves at least half the budget to the loop.
        assert_eq!(config.memory.prefetch_kbytes, 40960);
        assert_eq!(config.memory.high_water_bytes, 32 << 20);
        assert_eq!(config.group.drain_timeout, Duration::from_secs(4));
        assert_eq!(config.group.stuck_rebalance_after, Duration::from_secs(30));

        let yaml = format!("{MIA_YAML}  session.timeout.ms: soon\n");
        let error = load_yaml(&yaml, &vars).expect_err("invalid").to_string();
        assert!(error.contains("kafka.session.timeout.ms"), "{error}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut vars = REQUIRED_ENV.to_vec();
        vars.extend([
            ("BSS_MAX_BYTES_PER_FILE", "2MiB"),
            ("BSS_ENABLE_POST_INGESTION", "false"),
            ("BSS_COMPRESSION", "gzip"),
        ]);
        let config = load_yaml(MIA_YAML, &vars).expect("valid");
        assert_eq!(config.limits.max_bytes, 2 << 20);
        assert!(!config.post_ingestion && config.topics[0].post_ingestion.is_empty());
        assert_eq!(config.compression, Compression::Gzip);
    }

    #[test]
    fn bad_values_name_the_setting() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (MIA_YAML, &[("BSS_MAX_BYTES_PER_FILE", "lots")], "bss.max-bytes-per-file (BSS_MAX_BYTES_PER_FILE)"),
            (MIA_YAML, &[("BSS_COMPRESSION", "lz4")], "bss.compression (BSS_COMPRESSION)"),
            (MIA_YAML, &[("BUCKET_TYPE", "azure")], "bss.bucket.type (BUCKET_TYPE)"),
            (MIA_YAML, &[("KAFKA_GROUP_ID", " ")], "kafka.group.id"),
            (MIA_YAML, &[("BSS_FLUSH_INTERVAL", "0")], "bss.flush-interval"),
            (MIA_YAML, &[("BSS_ENABLE_POST_INGESTION", "maybe")], "enable-post-ingestion"),
            ("bss:\n  unknown-key: 1\n", &[], "unknown-key"),
            ("bss:\n  topics-config:\n    output-events-topic: e\n", &[], "data-topics-mapping"),
            ("bss:\n  topics-config:\n    output-events-topic: e\n    data-topics-mapping:\n      - ingestion: a\n        bucket-folder: ../x\n", &[], "bucket-folder"),
            ("bss:\n  topics-config:\n    output-events-topic: e\n    data-topics-mapping:\n      - ingestion: a\n      - ingestion: a\n", &[], "mapped twice"),
        ];
        for (yaml, overrides, expected) in cases {
            let mut vars = REQUIRED_ENV.to_vec();
            vars.retain(|(name, _)| !overrides.iter().any(|(o, _)| o == name));
            vars.extend_from_slice(overrides);
            let error = load_yaml(yaml, &vars).expect_err(expected).to_string();
            assert!(
                error.contains(expected),
                "expected {expected:?} in: {error}"
            );
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn the_configuration_reference_lists_every_setting_with_its_default() {
        let doc = include_str!("../../../docs/configuration.md");
        let table = reference_table();
        assert!(
            doc.contains(&table),
            "docs/configuration.md must contain this table:\n{table}"
        );
    }

    #[test]
    fn secrets_do_not_appear_in_the_printed_configuration() {
        let mut vars = REQUIRED_ENV.to_vec();
        vars.extend([
            ("KAFKA_PASSWORD", "kafka-secret-1"),
            ("S3_KEY_ID", "id"),
            ("S3_KEY", "s3-secret-2"),
        ]);
        let printed = format!("{:?}", load_yaml(MIA_YAML, &vars).expect("valid"));
        assert!(
            !printed.contains("kafka-secret-1") && !printed.contains("s3-secret-2"),
            "{printed}"
        );
    }
}
