//! What every command shares: the storer's validated configuration and the clients built from it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bss_archive::{Archive, NoObserver};
use bss_config::storer::StorerConfig;
use bss_kafka::Producer as FutureProducer;
use rdkafka::consumer::BaseConsumer;

/// The storer's configuration, read from the same file and environment variables as the service.
pub struct Context {
    /// The validated configuration.
    pub config: StorerConfig,
}

impl Context {
    /// Loads the configuration from `file` (or the default path when it exists) and the environment.
    pub fn load(file: Option<PathBuf>) -> anyhow::Result<Self> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let path = bss_config::config_path(file);
        let config = StorerConfig::load(path.as_deref(), &env).with_context(|| match &path {
            Some(path) => format!("reading the storer configuration {}", path.display()),
            None => "reading the storer configuration from the environment".to_owned(),
        })?;
        bss_kafka::check_settings(&config.kafka)?;
        Ok(Self { config })
    }

    /// A reader of the archive; its `store()` is the bucket for anything else.
    pub fn archive(&self) -> anyhow::Result<Archive> {
        let bucket = bss_bucket::build(&self.config.bucket)?;
        Ok(Archive::new(bucket.store, Arc::new(NoObserver)))
    }

    /// The archive folder of a topic: its configured `bucket-folder`, else the name itself (so a
    /// folder name is accepted too).
    pub fn folder(&self, topic: &str) -> String {
        self.config
            .mapping(topic)
            .map_or_else(|| topic.to_owned(), |m| m.folder.clone())
    }

    /// The ingestion topics the storer archives.
    pub fn ingestion_topics(&self) -> Vec<String> {
        self.config
            .topics
            .iter()
            .map(|m| m.ingestion.clone())
            .collect()
    }

    /// A consumer that joins nothing: metadata, watermarks and offset commits for `group`.
    pub fn consumer(&self, group: &str) -> anyhow::Result<BaseConsumer<bss_kafka::ErrorCapture>> {
        bss_kafka::tool_consumer(&self.config.kafka, group, false)
            .context("creating the Kafka client")
    }

    /// A producer with the services' settings (idempotent, Java's key partitioner).
    pub fn producer(&self) -> anyhow::Result<FutureProducer> {
        bss_kafka::create_producer(&self.config.kafka).context("creating the Kafka producer")
    }

    /// The storer's consumer group.
    pub fn group(&self) -> &str {
        self.config.kafka.get("group.id").unwrap_or_default()
    }
}
