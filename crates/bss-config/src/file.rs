//! The one schema of `application.yaml`, shared by the storer, the reloader and `bss`: Mia-Platform's
//! `bss` section (bucket, topics mapping, and the storer's batching keys), `kafka`, the ports and the
//! log level, plus the reloader's own section. Unknown keys are refused everywhere; each service then
//! validates the parts it reads.

use serde::Deserialize;

use crate::{BucketSection, KafkaSection, NumberOrText};

/// The whole file; `S` is the reloader's section as the reading service sees it (the storer accepts
/// it without reading it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApplicationFile<S> {
    /// `bss`.
    #[serde(default)]
    pub bss: BssSection,
    /// `kafka`: librdkafka properties.
    #[serde(default)]
    pub kafka: KafkaSection,
    /// `http-port`.
    pub http_port: Option<u16>,
    /// `metrics-port`.
    pub metrics_port: Option<u16>,
    /// `log-level`.
    pub log_level: Option<String>,
    /// `reloader`: the reloader's own section.
    #[serde(default)]
    pub reloader: S,
}

/// `bss`: the bucket and the mapping (both services), and the storer's batching and upload keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BssSection {
    /// `bss.bucket`.
    #[serde(default)]
    pub bucket: BucketSection,
    /// `bss.topics-config`.
    #[serde(default)]
    pub topics_config: TopicsSection,
    pub(crate) enable_post_ingestion: Option<bool>,
    pub(crate) max_bytes_per_file: Option<NumberOrText>,
    pub(crate) max_records_per_file: Option<u64>,
    pub(crate) flush_interval: Option<NumberOrText>,
    /// Mia-Platform's name of `flush-interval`; `flush-interval` wins when both are set.
    pub(crate) cache_upload_timeout: Option<NumberOrText>,
    pub(crate) memory_budget: Option<NumberOrText>,
    /// Mia-Platform's per-partition cache size: accepted for compatibility, superseded by `memory-budget`.
    pub(crate) max_cache_size: Option<NumberOrText>,
    pub(crate) compression: Option<String>,
    pub(crate) multipart_threshold: Option<NumberOrText>,
    pub(crate) upload_concurrency: Option<usize>,
    pub(crate) shutdown_timeout: Option<NumberOrText>,
}

/// `bss.topics-config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TopicsSection {
    /// The storer's events topic.
    pub output_events_topic: Option<String>,
    /// One entry per ingestion topic.
    #[serde(default)]
    pub data_topics_mapping: Vec<MappingEntry>,
}

/// One entry of `bss.topics-config.data-topics-mapping`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MappingEntry {
    /// The ingestion topic.
    pub ingestion: String,
    /// Its folder in the bucket (default: the topic name).
    pub bucket_folder: Option<String>,
    /// Where the storer forwards its records once stored.
    #[serde(default)]
    pub post_ingestion: Vec<String>,
    /// The reloader's default target for this topic.
    #[serde(default)]
    pub reingestion: Option<String>,
}
