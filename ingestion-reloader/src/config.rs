//! The reloader's settings. Same conventions as the storer (Mia-Platform's env names, `--config PATH`,
//! validation at start-up), and the same `application.yaml` serves both services: its schema is
//! `bss_config::file`, and this module reads the shared parts and adds the `reloader` section.

use std::collections::HashMap;
use std::path::Path;

use bss_config::{BucketConfig, ConfigError, EnvVar, KafkaConfig, NumberOrText};
use serde::Deserialize;

/// Kafka settings only this service reads (the connection ones are shared).
const OWN_KAFKA_ENV_VARS: &[EnvVar] = &[
    EnvVar { name: "KAFKA_CLIENT_ID", key: "kafka.client.id", default: "ingestion-reloader", help: "Kafka client id" },
    EnvVar { name: "KAFKA_GROUP_ID", key: "kafka.group.id", default: "", help: "accepted for compatibility with Mia-Platform's reloader; unused (the reloader only produces)" },
];

const OWN_ENV_VARS: &[EnvVar] = &[
    EnvVar { name: "RELOADER_MAX_CONCURRENT_JOBS", key: "reloader.max-concurrent-jobs", default: "4", help: "reingestion jobs running at once on one replica; more are refused with 429" },
    EnvVar { name: "RELOADER_JOB_RETENTION", key: "reloader.job-retention", default: "30d", help: "how long finished job records are kept (by the day the job started); `GET /reingestion/jobs?since=` reaches back at most this far" },
    EnvVar { name: "RELOADER_JOBS_PREFIX", key: "reloader.jobs-prefix", default: ".bss-jobs", help: "where job records live in the bucket (must start with `.bss-`); give each deployment sharing a bucket its own, so none lists, stops or takes over another's jobs" },
    EnvVar { name: "RELOADER_EXACTLY_ONCE", key: "reloader.exactly-once", default: "false", help: "publish each object of a job in a Kafka transaction with the job's checkpoints, so read_committed consumers of the target see every record exactly once across takeovers (needs RELOADER_CHECKPOINT_TOPIC and a broker with transactions)" },
    EnvVar { name: "RELOADER_CHECKPOINT_TOPIC", key: "reloader.checkpoint-topic", default: "", help: "existing topic (compacted, one partition is enough) where exactly-once jobs commit their checkpoints" },
    EnvVar { name: "RELOADER_WORK_TOPIC", key: "reloader.work-topic", default: "", help: "existing topic through which replicas share large jobs: a job over several source partitions is split into one work item per partition, and the consumer group `<topic>-workers` of all replicas runs them (a replica runs one item per work partition it is assigned); unset: a job runs on the replica that accepted it" },
    EnvVar { name: "RELOADER_AUDIT_TOPIC", key: "reloader.audit-topic", default: "", help: "existing topic that also receives every audit record (one JSON record per start, stop, resume or erasure, keyed by the principal); the records are always in the log (target `audit`)" },
    EnvVar { name: "RELOADER_PROTECTED_TOPICS", key: "reloader.protected-topics", default: "", help: "comma-separated topic patterns (`*` wildcards) no job may publish to, whatever its credential's scopes; the storer's events topic (`bss.topics-config.output-events-topic`) and the mapped ingestion topics are always protected" },
    EnvVar { name: "RELOADER_TIME_LOOKBACK", key: "reloader.time-lookback", default: "", help: "deprecated and ignored (still accepted): windows now select objects by their real smallest and largest timestamps, so no look-back is needed" },
    EnvVar { name: "RELOADER_LINEAGE_HEADERS", key: "reloader.lineage-headers", default: "false", help: "add bss-source-topic/partition/offset and bss-job-id headers to republished records" },
    EnvVar { name: "RELOADER_REPLICA_ID", key: "reloader.replica-id", default: "$HOSTNAME", help: "name of this replica in job records" },
    EnvVar { name: "RELOADER_AUTH", key: "reloader.auth.mode", default: "required", help: "required: every API call needs an API key or a JWT; none: no checks (local use only, logged as a warning)" },
    EnvVar { name: "RELOADER_API_KEYS_FILE", key: "reloader.auth.api-keys-file", default: "", help: "file of API keys, one `name:scopes:key` per line; scopes joined by +: read[:<topics>], reingest[:<sources>-><targets>], stop, erase[:<topics>], admin (see docs/reloader-api.md)" },
    EnvVar { name: "RELOADER_JWT_HS256_SECRET_FILE", key: "reloader.auth.jwt-hs256-secret-file", default: "", help: "file holding the HS256 secret (32+ characters) of accepted JWTs" },
    EnvVar { name: "RELOADER_JWT_RS256_PUBLIC_KEY_FILE", key: "reloader.auth.jwt-rs256-public-key-file", default: "", help: "PEM RSA public key of accepted RS256 JWTs" },
    EnvVar { name: "RELOADER_JWKS_URL", key: "reloader.auth.jwks-url", default: "", help: "JWKS URL of the identity provider (RS256 keys by kid, cached 10 minutes)" },
    EnvVar { name: "RELOADER_JWT_ISSUER", key: "reloader.auth.jwt-issuer", default: "", help: "required `iss` of JWTs (not checked when unset)" },
    EnvVar { name: "RELOADER_JWT_AUDIENCE", key: "reloader.auth.jwt-audience", default: "", help: "required `aud` of JWTs (not checked when unset)" },
    EnvVar { name: "RELOADER_JWT_ROLES_CLAIM", key: "reloader.auth.jwt-roles-claim", default: "roles", help: "claim of JWTs holding role names, a dotted path for nested claims (Keycloak: `realm_access.roles`); roles are mapped to scopes by RELOADER_JWT_ROLE_SCOPES, and `bss:`-prefixed entries are scopes themselves" },
    EnvVar { name: "RELOADER_JWT_ROLE_SCOPES", key: "reloader.auth.jwt-role-scopes", default: "", help: "scopes granted by JWT roles, `role=scopes` entries separated by `;`, scopes joined by + as in the keys file (`bss-operator=reingest+read;bss-analyst=read:orders.*`); unknown roles grant nothing" },
    EnvVar { name: "RELOADER_ERASURE_HASH_KEY_FILE", key: "reloader.erasure-hash-key-file", default: "", help: "file holding a secret (32+ bytes) that keys the hash of an erased key kept in the erasure record (HMAC-SHA256), so that whoever holds it can tell whether a key was erased and nobody else can guess it; the same file as `bss erase --hash-key-file`; unset: each erasure uses a random secret it forgets" },
    EnvVar { name: "RELOADER_MEMORY_BUDGET", key: "reloader.memory-budget", default: "384MiB", help: "memory for replays across all running jobs of a replica: a quarter goes to librdkafka's producer queue (`queue.buffering.max.kbytes`, unless set), the rest bounds the objects being read ahead and decoded, each held until its records are handed to the producer; jobs wait for room rather than grow. The default fits the chart's 512Mi limit; at least 32MiB" },
    EnvVar { name: "RELOADER_MAX_OBJECT_BYTES", key: "reloader.max-object-bytes", default: "4GiB", help: "largest archive object read back, stored or once decompressed; a larger one is refused as corrupt (422 naming the object) instead of exhausting memory or time (a decompression bomb)" },
    EnvVar { name: "RELOADER_TLS_CERT_FILE", key: "reloader.tls.cert-file", default: "", help: "PEM certificate chain (server certificate first): with RELOADER_TLS_KEY_FILE, the port serves HTTPS only; both files are reloaded within 5 s of a change (a pair that does not load is logged and the previous one kept)" },
    EnvVar { name: "RELOADER_TLS_KEY_FILE", key: "reloader.tls.key-file", default: "", help: "PEM private key (PKCS#8, PKCS#1 or SEC1) of RELOADER_TLS_CERT_FILE" },
    EnvVar { name: "HTTP_PORT", key: "http-port", default: "3000", help: "port of the REST API, /-/health/* and, unless METRICS_PORT is set, /-/metrics" },
    EnvVar { name: "METRICS_PORT", key: "metrics-port", default: "", help: "a port of its own for /-/metrics (plain HTTP, even when the API port serves HTTPS), so that a network policy can open metrics without the API; empty: /-/metrics is on HTTP_PORT, as in Mia-Platform's services" },
    EnvVar { name: "LOG_LEVEL", key: "log-level", default: "info", help: "error, warn, info, debug or trace" },
];

/// Every environment variable the service reads (the shared Kafka and bucket ones from `bss-config`,
/// then its own), the file key each sets, and its default.
pub static ENV_VARS: std::sync::LazyLock<Vec<EnvVar>> =
    std::sync::LazyLock::new(|| bss_config::service_env_vars(OWN_KAFKA_ENV_VARS, OWN_ENV_VARS));

/// The Markdown table of [`ENV_VARS`] that `docs/configuration.md` must contain (checked by a test).
pub fn reference_table() -> String {
    bss_config::reference_table(&ENV_VARS)
}

/// The shared file, with the reloader's section read.
type RawConfig = bss_config::file::ApplicationFile<RawReloader>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReloader {
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    tls: RawTls,
    max_concurrent_jobs: Option<usize>,
    max_object_bytes: Option<NumberOrText>,
    memory_budget: Option<NumberOrText>,
    job_retention: Option<NumberOrText>,
    jobs_prefix: Option<String>,
    exactly_once: Option<bool>,
    checkpoint_topic: Option<String>,
    work_topic: Option<String>,
    audit_topic: Option<String>,
    protected_topics: Option<String>,
    time_lookback: Option<NumberOrText>,
    lineage_headers: Option<bool>,
    replica_id: Option<String>,
    erasure_hash_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAuth {
    mode: Option<String>,
    api_keys_file: Option<String>,
    jwt_hs256_secret_file: Option<String>,
    jwt_rs256_public_key_file: Option<String>,
    jwks_url: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    jwt_roles_claim: Option<String>,
    jwt_role_scopes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
}

/// How a replica's memory budget is shared, derived once: librdkafka's producer queue, and the
/// objects being replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The whole budget.
    pub budget_bytes: u64,
    /// librdkafka's producer queue (`queue.buffering.max.kbytes`): configured, else a quarter of the
    /// budget (and then set in the Kafka properties).
    pub producer_queue_kbytes: u64,
    /// What the objects being read ahead, decoded and published may hold at once: the rest.
    pub replay_bytes: u64,
}

impl MemoryPlan {
    fn derive(kafka: &mut KafkaConfig, budget_bytes: u64) -> Result<Self, ConfigError> {
        const QUEUE: &str = "queue.buffering.max.kbytes";
        let invalid = |key: &str, reason: String| ConfigError::invalid(&ENV_VARS, key, reason);
        if budget_bytes < 32 << 20 {
            return Err(invalid(
                "reloader.memory-budget",
                "must be at least 32MiB".into(),
            ));
        }
        let producer_queue_kbytes = match kafka.whole_number(&ENV_VARS, QUEUE, "KiB")? {
            Some(kbytes) => kbytes,
            None => {
                let kbytes = budget_bytes / 4 / 1024;
                kafka.set_default(QUEUE, &kbytes.to_string());
                kbytes
            }
        };
        let replay_bytes = budget_bytes.saturating_sub(producer_queue_kbytes * 1024);
        if replay_bytes < 16 << 20 {
            return Err(invalid(
                &format!("kafka.{QUEUE}"),
                format!("{producer_queue_kbytes} KiB leaves less than 16MiB of reloader.memory-budget (RELOADER_MEMORY_BUDGET) to replays"),
            ));
        }
        Ok(Self {
            budget_bytes,
            producer_queue_kbytes,
            replay_bytes,
        })
    }
}

/// One archived topic: its folder and default reingestion target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedTopic {
    /// Ingestion topic name.
    pub topic: String,
    /// Bucket folder.
    pub folder: String,
    /// Where `reIngestionTopic` defaults to: the `reingestion` topic, else the first post-ingestion one.
    pub default_target: Option<String>,
}

/// The validated reloader configuration.
#[derive(Debug, Clone)]
pub struct ReloaderConfig {
    /// librdkafka properties.
    pub kafka: KafkaConfig,
    /// Bucket.
    pub bucket: BucketConfig,
    /// Known topics (optional: any folder can be reingested by name).
    pub topics: Vec<ArchivedTopic>,
    /// Cap of running jobs on this replica.
    pub max_concurrent_jobs: usize,
    /// Largest object read back, stored or decompressed.
    pub max_object_bytes: u64,
    /// How the memory budget is shared.
    pub memory: MemoryPlan,
    /// How long finished job records are kept.
    pub job_retention: std::time::Duration,
    /// Where job records live.
    pub jobs_prefix: String,
    /// With exactly-once publication: the checkpoint topic.
    pub exactly_once: Option<String>,
    /// The work topic of jobs shared by replicas.
    pub work_topic: Option<String>,
    /// Where audit records also go.
    pub audit_topic: Option<String>,
    /// Topic patterns no job may publish to (`*` wildcards).
    pub protected_topics: Vec<String>,
    /// Whether lineage headers are added.
    pub lineage_headers: bool,
    /// The secret that keys erased keys' hashes (loaded at start).
    pub erasure_hash_key: Option<bss_archive::erase::ErasureHashKey>,
    /// This replica's name.
    pub replica_id: String,
    /// HTTPS certificate chain and key files.
    pub tls: Option<(String, String)>,
    /// Access control.
    pub auth: AuthSettings,
    /// HTTP port.
    pub http_port: u16,
    /// A port of its own for `/-/metrics`, if any.
    pub metrics_port: Option<u16>,
    /// Log level.
    pub log_level: String,
}

impl ReloaderConfig {
    /// Loads and validates from an optional file and the given environment.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = bss_config::load(file, env, &ENV_VARS)?;
        let invalid = |key: &str, reason: String| ConfigError::invalid(&ENV_VARS, key, reason);
        let mut kafka = raw.kafka.validate(&ENV_VARS, env)?;
        kafka.set_default("client.id", "ingestion-reloader");
        let bucket = raw.bss.bucket.validate(&ENV_VARS, "bss.bucket")?;
        // Never a reingestion target: the storer's events topic and the ingestion topics.
        let mut protected_topics: Vec<String> = raw
            .bss
            .topics_config
            .output_events_topic
            .clone()
            .into_iter()
            .chain(
                raw.bss
                    .topics_config
                    .data_topics_mapping
                    .iter()
                    .map(|m| m.ingestion.clone()),
            )
            .collect();
        let mut topics = Vec::new();
        for (index, entry) in raw
            .bss
            .topics_config
            .data_topics_mapping
            .into_iter()
            .enumerate()
        {
            if entry.ingestion.trim().is_empty() {
                return Err(invalid(
                    "bss.topics-config.data-topics-mapping",
                    format!("entry {index}: `ingestion` is empty"),
                ));
            }
            topics.push(ArchivedTopic {
                folder: entry
                    .bucket_folder
                    .unwrap_or_else(|| entry.ingestion.clone()),
                default_target: entry
                    .reingestion
                    .or_else(|| entry.post_ingestion.first().cloned()),
                topic: entry.ingestion,
            });
        }
        let reloader = raw.reloader;
        protected_topics.extend(
            reloader
                .protected_topics
                .iter()
                .flat_map(|list| list.split(','))
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty()),
        );
        protected_topics.sort();
        protected_topics.dedup();
        let max_concurrent_jobs = bss_config::or_default(
            reloader.max_concurrent_jobs,
            &ENV_VARS,
            "reloader.max-concurrent-jobs",
        )?;
        if max_concurrent_jobs == 0 {
            return Err(invalid(
                "reloader.max-concurrent-jobs",
                "must be greater than 0".into(),
            ));
        }
        let job_retention = bss_config::number_or_default(
            reloader.job_retention,
            &ENV_VARS,
            "reloader.job-retention",
        )
        .millis(&ENV_VARS, "reloader.job-retention")?;
        if job_retention < 86_400_000 {
            return Err(invalid(
                "reloader.job-retention",
                "must be at least 1d (records are pruned by day)".into(),
            ));
        }
        let jobs_prefix =
            bss_config::or_default(reloader.jobs_prefix, &ENV_VARS, "reloader.jobs-prefix")?;
        let valid_segment = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if !jobs_prefix.starts_with(".bss-") || !jobs_prefix.chars().all(valid_segment) {
            return Err(invalid(
                "reloader.jobs-prefix",
                format!("{jobs_prefix:?} must start with `.bss-` (hidden from the archive's folders) and hold only letters, digits, `-`, `_` and `.`"),
            ));
        }
        let exactly_once = match (
            bss_config::or_default(reloader.exactly_once, &ENV_VARS, "reloader.exactly-once")?,
            reloader.checkpoint_topic,
        ) {
            (false, _) => None,
            (true, Some(topic)) if !topic.trim().is_empty() => Some(topic),
            (true, _) => {
                return Err(invalid(
                    "reloader.checkpoint-topic",
                    "is required when reloader.exactly-once is true".into(),
                ))
            }
        };
        // Deprecated: still validated so a typo is reported, but no longer used.
        if let Some(lookback) = &reloader.time_lookback {
            lookback.millis(&ENV_VARS, "reloader.time-lookback")?;
        }
        let replica_id = reloader
            .replica_id
            .or_else(|| env.get("HOSTNAME").cloned())
            .unwrap_or_else(|| format!("reloader-{}", std::process::id()));
        let raw_auth = reloader.auth;
        let disabled = match raw_auth.mode.as_deref() {
            None | Some("required") => false,
            Some("none") => true,
            Some(other) => {
                return Err(invalid(
                    "reloader.auth.mode",
                    format!("{other:?} is not an auth mode (expected required or none)"),
                ))
            }
        };
        if let Some(url) = &raw_auth.jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid(
                    "reloader.auth.jwks-url",
                    format!("{url:?} must be an http(s) URL"),
                ));
            }
        }
        let auth = AuthSettings {
            disabled,
            api_keys_file: raw_auth.api_keys_file,
            hs256_secret_file: raw_auth.jwt_hs256_secret_file,
            rs256_public_key_file: raw_auth.jwt_rs256_public_key_file,
            jwks_url: raw_auth.jwks_url,
            issuer: raw_auth.jwt_issuer,
            audience: raw_auth.jwt_audience,
            roles_claim: bss_config::or_default(
                raw_auth.jwt_roles_claim.filter(|c| !c.trim().is_empty()),
                &ENV_VARS,
                "reloader.auth.jwt-roles-claim",
            )?,
            role_scopes: raw_auth.jwt_role_scopes,
        };
        let present = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let tls = match (
            present(reloader.tls.cert_file),
            present(reloader.tls.key_file),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "reloader.tls.key-file",
                    "is required with a certificate file".to_owned(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "reloader.tls.cert-file",
                    "is required with a key file".to_owned(),
                ))
            }
        };
        let max_object_bytes = bss_config::number_or_default(
            reloader.max_object_bytes,
            &ENV_VARS,
            "reloader.max-object-bytes",
        )
        .bytes(&ENV_VARS, "reloader.max-object-bytes")?;
        if max_object_bytes == 0 {
            return Err(invalid(
                "reloader.max-object-bytes",
                "must be positive".to_owned(),
            ));
        }
        let erasure_hash_key = match reloader
            .erasure_hash_key_file
            .filter(|f| !f.trim().is_empty())
        {
            Some(file) => Some(
                bss_archive::erase::ErasureHashKey::load(&file)
                    .map_err(|e| invalid("reloader.erasure-hash-key-file", e.to_string()))?,
            ),
            None => None,
        };
        let memory = MemoryPlan::derive(
            &mut kafka,
            bss_config::number_or_default(
                reloader.memory_budget,
                &ENV_VARS,
                "reloader.memory-budget",
            )
            .bytes(&ENV_VARS, "reloader.memory-budget")?,
        )?;
        let http_port = bss_config::or_default(raw.http_port, &ENV_VARS, "http-port")?;
        Ok(Self {
            memory,
            erasure_hash_key,
            auth,
            tls,
            max_object_bytes,
            kafka,
            bucket,
            topics,
            max_concurrent_jobs,
            job_retention: std::time::Duration::from_millis(job_retention),
            jobs_prefix,
            exactly_once,
            work_topic: reloader.work_topic.filter(|t| !t.trim().is_empty()),
            audit_topic: reloader.audit_topic.filter(|t| !t.trim().is_empty()),
            protected_topics,
            lineage_headers: bss_config::or_default(
                reloader.lineage_headers,
                &ENV_VARS,
                "reloader.lineage-headers",
            )?,
            replica_id,
            http_port,
            metrics_port: bss_config::metrics_port(raw.metrics_port, http_port, &ENV_VARS)?,
            log_level: bss_config::log_level(raw.log_level, &ENV_VARS)?,
        })
    }

    /// The folder and configured default target of a topic name given in a request: a mapped
    /// ingestion topic, else the name itself taken as a folder.
    pub fn resolve(&self, topic: &str) -> ArchivedTopic {
        self.topics
            .iter()
            .find(|t| t.topic == topic)
            .cloned()
            .unwrap_or_else(|| ArchivedTopic {
                topic: topic.to_owned(),
                folder: topic.to_owned(),
                default_target: None,
            })
    }
}

/// Auth settings (validated configuration).
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Checks are off.
    pub disabled: bool,
    /// Keys file.
    pub api_keys_file: Option<String>,
    /// HS256 shared secret file.
    pub hs256_secret_file: Option<String>,
    /// RS256 public key (PEM) file.
    pub rs256_public_key_file: Option<String>,
    /// JWKS URL (RS256 keys by `kid`).
    pub jwks_url: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Dotted path of the claim holding role names.
    pub roles_claim: String,
    /// `role=scopes;…`: what each role grants.
    pub role_scopes: Option<String>,
}

/// A topic pattern of a scope: `*` matches any run of characters (`orders.*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty() && !text.contains(char::is_whitespace)).then(|| Self(text.to_owned()))
    }

    pub(crate) fn any() -> Self {
        Self("*".into())
    }

    /// A pattern from configuration (validated there).
    pub fn new(text: &str) -> Self {
        Self(text.trim().to_owned())
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = topic.strip_prefix(first) else {
            return false;
        };
        let pieces: Vec<&str> = parts.collect();
        let Some((last, middle)) = pieces.split_last() else {
            return rest.is_empty(); // No `*`: the whole name.
        };
        for piece in middle {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.ends_with(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_the_storers_application_yaml_and_maps_default_targets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("application.yaml");
        std::fs::write(
            &path,
            "bss:\n  max-bytes-per-file: 8MB\n  topics-config:\n    output-events-topic: e\n    data-topics-mapping:\n      - ingestion: a\n        bucket-folder: fa\n        reingestion: a.re\n      - ingestion: b\n        post-ingestion: [b.post]\n      - ingestion: c\nreloader:\n  max-concurrent-jobs: 2\n  time-lookback: 10m\n",
        )
        .expect("write");
        let env: HashMap<String, String> = [
            ("KAFKA_BROKERS", "k:9092"),
            ("BUCKET_TYPE", "memory"),
            ("HOSTNAME", "pod-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = ReloaderConfig::load(Some(&path), &env).expect("valid");
        assert_eq!(config.resolve("a").folder, "fa");
        assert_eq!(config.resolve("a").default_target.as_deref(), Some("a.re"));
        assert_eq!(
            config.resolve("b").default_target.as_deref(),
            Some("b.post")
        );
        assert_eq!(config.resolve("c").default_target, None);
        assert_eq!(config.resolve("elsewhere").folder, "elsewhere");
        assert_eq!(config.max_concurrent_jobs, 2);
        assert_eq!(config.replica_id, "pod-1");
        assert_eq!(config.kafka.get("client.id"), Some("ingestion-reloader"));
    }

    #[test]
    fn unset_settings_take_their_documented_defaults() {
        let env: HashMap<String, String> = [("KAFKA_BROKERS", "k:9092"), ("BUCKET_TYPE", "memory")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let config = ReloaderConfig::load(None, &env).expect("valid");
        assert_eq!(config.max_concurrent_jobs, 4);
        assert_eq!(
            config.job_retention,
            std::time::Duration::from_secs(30 * 86_400)
        );
        assert_eq!(config.jobs_prefix, ".bss-jobs");
        assert_eq!(config.exactly_once, None);
        assert_eq!(config.max_object_bytes, 4 << 30);
        assert_eq!(config.memory.budget_bytes, 384 << 20);
        assert_eq!(config.memory.producer_queue_kbytes, 96 * 1024);
        assert_eq!(config.memory.replay_bytes, 288 << 20);
        assert_eq!(
            config.kafka.get("queue.buffering.max.kbytes"),
            Some("98304")
        );
        assert!(!config.lineage_headers);
        assert_eq!(config.auth.roles_claim, "roles");
        assert!(!config.auth.disabled);
        assert_eq!((config.http_port, config.metrics_port), (3000, None));
        assert_eq!(config.log_level, "info");
    }

    #[test]
    fn the_configuration_reference_lists_every_setting_with_its_default() {
        let doc = include_str!("../../docs/configuration.md");
        let table = reference_table();
        assert!(
            doc.contains(&table),
            "docs/configuration.md must contain this table:\n{table}"
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let env: HashMap<String, String> = [
            ("KAFKA_BROKERS", "k:9092"),
            ("BUCKET_TYPE", "memory"),
            ("RELOADER_MAX_CONCURRENT_JOBS", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let error = ReloaderConfig::load(None, &env)
            .expect_err("invalid")
            .to_string();
        assert!(error.contains("RELOADER_MAX_CONCURRENT_JOBS"), "{error}");
    }
}
