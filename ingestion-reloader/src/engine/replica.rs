//! One replica's engine: its configuration, archive, job records, producer and running jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bss_archive::Archive;
use bss_kafka::Producer as FutureProducer;
use object_store::ObjectStore;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::budget::MemoryBudget;
use super::error::{promptly, EngineError};
use super::jobs::JobStore;
use super::progress::ReplayProgress;
use crate::config::{Pattern, ReloaderConfig};
use crate::metrics::Metrics;

/// A job id: 24 hex digits, time-ordered.
pub type JobId = String;

/// One replica's engine: its archive, job records, producer and running jobs.
pub struct Engine {
    pub(super) config: ReloaderConfig,
    pub(super) archive: Archive,
    pub(super) jobs: JobStore,
    pub(super) producer: FutureProducer,
    pub(super) metrics: Metrics,
    pub(super) slots: Arc<Semaphore>,
    /// The memory the replays of this replica share.
    pub(super) memory: MemoryBudget,
    /// Live progress of the jobs (by id) and parts (`<id>/<partition>`) running here.
    pub(super) local: Mutex<HashMap<String, Arc<ReplayProgress>>>,
    pub(super) shutdown: CancellationToken,
    /// The running jobs' tasks, drained at shutdown.
    pub(super) tasks: tokio_util::task::TaskTracker,
}

impl Engine {
    /// An engine over `store`; `shutdown` stops its running jobs.
    pub fn new(
        config: ReloaderConfig,
        store: Arc<dyn ObjectStore>,
        producer: FutureProducer,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(config.max_concurrent_jobs)),
            memory: MemoryBudget::new(config.memory.replay_bytes),
            archive: Archive::new(Arc::clone(&store), Arc::new(metrics.clone()))
                .with_max_object_bytes(config.max_object_bytes),
            jobs: JobStore::new(store, &config.jobs_prefix),
            config,
            producer,
            metrics,
            local: Mutex::new(HashMap::new()),
            shutdown,
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ReloaderConfig {
        &self.config
    }

    /// The archive it reads.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The job records.
    pub fn jobs(&self) -> &JobStore {
        &self.jobs
    }

    /// The producer shared by jobs (and audit records).
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// The configured default target of a source topic.
    pub fn default_target(&self, source: &str) -> Option<String> {
        self.config.resolve(source).default_target
    }

    /// The target topic and its partition count: the request's, else the configured default; it
    /// must exist and not be protected.
    pub async fn target(
        &self,
        requested: Option<&str>,
        default: Option<&str>,
    ) -> Result<(String, i32), EngineError> {
        let target = requested.filter(|t| !t.trim().is_empty()).or(default).ok_or_else(|| {
            EngineError::invalid(
                "missing_target",
                "reIngestionTopic: required (no default reingestion topic is configured for this topic)",
            )
        })?;
        if let Some(pattern) = self
            .config
            .protected_topics
            .iter()
            .find(|p| Pattern::new(p).matches(target))
        {
            return Err(EngineError::Protected(format!(
                "reIngestionTopic: {target:?} is protected ({pattern}): the storer's events topic, an ingestion topic or RELOADER_PROTECTED_TOPICS"
            )));
        }
        match bss_kafka::topic_partitions(&self.producer, target, Duration::from_secs(5))
            .await
            .map_err(EngineError::Kafka)?
        {
            Some(count) => Ok((target.to_owned(), count)),
            None => Err(EngineError::not_found(
                "target_not_found",
                format!("reIngestionTopic: topic {target:?} does not exist"),
            )),
        }
    }

    /// Refuses a folder that holds no archive object (reads one listing page at most).
    pub async fn ensure_folder_has_objects(&self, folder: &str) -> Result<(), EngineError> {
        if promptly(self.archive.has_objects(folder)).await? {
            Ok(())
        } else {
            Err(EngineError::not_found(
                "topic_not_found",
                format!("topic: nothing is archived in folder {folder:?}"),
            ))
        }
    }
}
