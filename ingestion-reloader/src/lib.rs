//! Ingestion Reloader: a REST service that re-publishes archived records from the bucket to Kafka —
//! one file, a topic (optionally a time window), one key — as jobs that any replica can follow and stop.
//! Routes: `docs/reloader-api.md`.

pub mod access;
pub mod api;
pub mod auth;
pub mod config;
pub mod erasures;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod preview;
pub mod rate;
pub mod reads;
pub mod replay;
mod runner;
pub mod transactions;
pub mod work;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use bss_kafka::Producer as FutureProducer;
use bss_telemetry::Health;
use object_store::ObjectStore;
use rdkafka::producer::Producer as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::api::Options;
use crate::config::ReloaderConfig;
use crate::error::ApiError;
use crate::jobs::JobStore;
use crate::metrics::Metrics;
use crate::replay::{ReplayProgress, ReplaySpec};
use bss_archive::{Archive, ArchiveError};

/// Shared by every request handler and job.
pub struct AppState {
    /// Configuration.
    pub config: ReloaderConfig,
    /// The archive.
    pub archive: Archive,
    /// Job records.
    pub jobs: JobStore,
    /// Idempotent producer shared by all jobs.
    pub producer: FutureProducer,
    /// Metrics.
    pub metrics: Metrics,
    /// Readiness.
    pub health: Health,
    /// Access control.
    pub auth: Arc<auth::Authenticator>,
    /// With `RELOADER_WORK_TOPIC`: the group that shares large jobs.
    pub work: Option<work::WorkGroup>,
    slots: Arc<Semaphore>,
    /// Live progress of the jobs (by id) and parts (`<id>/<partition>`) running here.
    local: Mutex<HashMap<String, Arc<ReplayProgress>>>,
    shutdown: CancellationToken,
    /// The running jobs' tasks, drained at shutdown.
    tasks: tokio_util::task::TaskTracker,
}

/// How long a request handler waits for the bucket before answering 503. The bucket client retries
/// for minutes (right for jobs, which should ride out a blip); an HTTP caller should hear at once.
const BUCKET_ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// Runs a request handler's bucket call within [`BUCKET_ANSWER_DEADLINE`].
pub async fn bucket_answer<T, E: Into<ApiError>>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(BUCKET_ANSWER_DEADLINE, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ApiError::Unavailable(format!(
            "the bucket did not answer within {BUCKET_ANSWER_DEADLINE:?}"
        ))),
    }
}

/// Maps archive failures onto API errors.
pub fn archive_error(error: ArchiveError) -> ApiError {
    match error {
        ArchiveError::NotFound(path) => {
            ApiError::not_found("file_not_found", format!("object {path} does not exist"))
        }
        ArchiveError::Bucket(e) => ApiError::from(e),
        ArchiveError::Corrupt { path, reason } => {
            ApiError::CorruptObject(format!("object {path} cannot be read: {reason}"))
        }
        e @ ArchiveError::NoCatalog(_) => ApiError::conflict("catalog_incomplete", e.to_string()),
        ArchiveError::Catalog(bss_catalog::CatalogError::Bucket(e)) => ApiError::from(e),
        ArchiveError::Catalog(e) => ApiError::Internal(e.to_string()),
    }
}

impl AppState {
    /// Builds the state; `shutdown` stops running jobs.
    pub fn new(
        config: ReloaderConfig,
        auth: auth::Authenticator,
        store: Arc<dyn ObjectStore>,
        producer: FutureProducer,
        metrics: Metrics,
        health: Health,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            auth: Arc::new(auth),
            slots: Arc::new(Semaphore::new(config.max_concurrent_jobs)),
            archive: Archive::new(Arc::clone(&store), Arc::new(metrics.clone()))
                .with_max_object_bytes(config.max_object_bytes),
            jobs: JobStore::new(store, &config.jobs_prefix),
            work: config
                .work_topic
                .clone()
                .map(|topic| work::WorkGroup { topic }),
            config,
            producer,
            metrics,
            health,
            local: Mutex::new(HashMap::new()),
            shutdown,
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// The target topic: the request's, else the configured default; it must exist.
    pub async fn target(
        &self,
        requested: Option<&str>,
        default: Option<&str>,
    ) -> Result<(String, i32), ApiError> {
        let target = requested.filter(|t| !t.trim().is_empty()).or(default).ok_or_else(|| {
            ApiError::bad_request(
                "missing_target",
                "reIngestionTopic: required (no default reingestion topic is configured for this topic)",
            )
        })?;
        if let Some(pattern) = self
            .config
            .protected_topics
            .iter()
            .find(|p| auth::Pattern::new(p).matches(target))
        {
            return Err(ApiError::Forbidden(format!(
                "reIngestionTopic: {target:?} is protected ({pattern}): the storer's events topic, an ingestion topic or RELOADER_PROTECTED_TOPICS"
            )));
        }
        let producer = self.producer.clone();
        let name = target.to_owned();
        let partitions = tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&name), Duration::from_secs(5));
            metadata.map(|m| {
                m.topics()
                    .first()
                    .filter(|t| t.error().is_none())
                    .map(|t| t.partitions().len() as i32)
            })
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(format!("Kafka does not answer: {e}")))?;
        match partitions {
            Some(count) if count > 0 => Ok((target.to_owned(), count)),
            _ => Err(ApiError::not_found(
                "target_not_found",
                format!("reIngestionTopic: topic {target:?} does not exist"),
            )),
        }
    }

    /// 404 when a folder holds no archive object (reads one listing page at most).
    pub async fn ensure_folder_has_objects(&self, folder: &str) -> Result<(), ApiError> {
        let found = bucket_answer(async {
            self.archive
                .has_objects(folder)
                .await
                .map_err(archive_error)
        })
        .await?;
        if found {
            Ok(())
        } else {
            Err(ApiError::not_found(
                "topic_not_found",
                format!("topic: nothing is archived in folder {folder:?}"),
            ))
        }
    }

    /// A replay spec with this replica's settings.
    pub fn spec(
        &self,
        (target, target_partitions): (String, i32),
        options: Options<'_>,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        key: Option<Vec<u8>>,
        latest_only: bool,
    ) -> ReplaySpec {
        ReplaySpec {
            folder: None,
            objects: Vec::new(),
            target,
            from_ms,
            to_ms,
            key,
            latest_only,
            filter: options.filter.cloned(),
            keep_partition: options.keep_partition,
            target_partitions,
            rate: options.rate,
            lineage_headers: self.config.lineage_headers,
            job_id: String::new(),
            resume_from: Default::default(),
            partition: None,
            rate_shares: 1,
        }
    }
}

/// The whole HTTP surface: the REST API behind access control, plus the open operational routes, with a
/// request body limit.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let operational = bss_telemetry::operational_router(
        state.health.clone(),
        state.metrics.registry.clone(),
        state.config.metrics_port,
    );
    let guard = axum::middleware::from_fn_with_state(Arc::clone(&state.auth), auth::require);
    let document = axum::Router::new().route(
        "/openapi.json",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                openapi::document(),
            )
        }),
    );
    let access = axum::middleware::from_fn_with_state(Arc::clone(&state), access::record);
    api::routes(state)
        .layer(guard)
        .layer(axum::middleware::from_fn(time_limit))
        .layer(access)
        .merge(document)
        .merge(operational)
        .layer(axum::extract::DefaultBodyLimit::max(access::BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::json_rejections))
        .layer(axum::middleware::from_fn(access::security_headers))
}

/// How long an API request may take (starting a job returns at once; synchronous reads are bounded).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn time_limit(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the request took longer than {REQUEST_TIMEOUT:?}; narrow it (limit, from/to) or retry"
        ))
        .into_response(),
    }
}

/// Runs the service until `shutdown`.
pub async fn run(
    config: ReloaderConfig,
    auth: auth::Authenticator,
    tls: Option<bss_telemetry::Tls>,
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(bucket = config.bucket.name(), topics = ?config.topics, kafka = ?config.kafka, replica = %config.replica_id,
        version = bss_telemetry::VERSION, revision = bss_telemetry::GIT_REVISION, "starting ingestion reloader");
    if auth.is_disabled() {
        tracing::warn!("RELOADER_AUTH=none: the API accepts every request without credentials; use only locally or behind an authenticating gateway");
    }
    let bucket = bss_bucket::build(&config.bucket)?;
    let producer = bss_kafka::create_producer(&config.kafka)?;
    let port = config.http_port;
    let state = Arc::new(AppState::new(
        config,
        auth,
        Arc::clone(&bucket.store),
        producer.clone(),
        metrics,
        health.clone(),
        shutdown.clone(),
    ));
    let prober = tokio::spawn(probe_forever(
        bucket.store,
        producer,
        health.clone(),
        shutdown.clone(),
    ));
    let pruner = tokio::spawn(runner::prune_jobs_forever(Arc::clone(&state)));
    let takeover = tokio::spawn(runner::take_over_forever(Arc::clone(&state)));
    let worker = match &state.config.work_topic {
        Some(topic) => Some(
            work::join(Arc::clone(&state), topic.clone())
                .map_err(|e| anyhow::anyhow!("cannot join the work group of {topic}: {e}"))?,
        ),
        None => None,
    };
    let metrics_server = state.config.metrics_port.map(|metrics_port| {
        bss_telemetry::spawn_metrics_server(
            state.metrics.registry.clone(),
            metrics_port,
            shutdown.clone().cancelled_owned(),
        )
    });
    health.mark_started();
    tracing::info!(
        port,
        metrics_port = state.config.metrics_port,
        https = tls.is_some(),
        "serving the API"
    );
    let served = bss_telemetry::serve(
        app(Arc::clone(&state)),
        port,
        tls,
        shutdown.clone().cancelled_owned(),
    )
    .await;
    state.drain_jobs().await;
    if let Some(worker) = worker {
        // It leaves the group once its parts have handed themselves back.
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
    prober.abort();
    pruner.abort();
    takeover.abort();
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    served.map_err(|e| anyhow::anyhow!("cannot serve on port {port}: {e}"))
}

async fn probe_forever(
    store: Arc<dyn ObjectStore>,
    producer: FutureProducer,
    health: Health,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        health.set(
            "bucket",
            bss_bucket::probe_within(store.as_ref(), Duration::from_secs(5)).await,
        );
        let producer = producer.clone();
        let kafka = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(4))
                .map(|_| ())
                .map_err(|e| format!("cannot reach Kafka: {e}"))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        health.set("kafka", kafka);
    }
}
