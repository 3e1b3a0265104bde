//! Ingestion Reloader: a REST service that re-publishes archived records from the bucket to Kafka —
//! one file, a topic (optionally a time window), one key — as jobs that any replica can follow and stop.
//! Routes: `docs/reloader-api.md`.

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

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use bss_telemetry::Health;
use object_store::ObjectStore;
use rdkafka::producer::{FutureProducer, Producer as _};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::api::{Options, Plan};
use crate::config::ReloaderConfig;
use crate::error::ApiError;
use crate::jobs::{new_job_id, Job, JobState, JobStore, HEARTBEAT, STALE_AFTER, STOP_POLL};
use crate::metrics::Metrics;
use crate::replay::{ReplayError, ReplayProgress, ReplaySpec};
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
    slots: Arc<Semaphore>,
    local: Mutex<HashMap<String, Arc<ReplayProgress>>>,
    shutdown: CancellationToken,
    /// The running jobs' tasks, drained at shutdown.
    tasks: tokio_util::task::TaskTracker,
}

/// How often a replica looks for jobs to take over.
const TAKEOVER_POLL: Duration = Duration::from_secs(3);

/// How long a stopping replica waits for its jobs to hand themselves back (within the chart's
/// termination grace period).
const JOB_DRAIN: Duration = Duration::from_secs(20);

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
        ArchiveError::Corrupt { path, reason } => ApiError::Internal(format!("{path}: {reason}")),
        e @ ArchiveError::NoCatalog(_) => {
            ApiError::bad_request("catalog_incomplete", e.to_string())
        }
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
            archive: Archive::new(Arc::clone(&store), Arc::new(metrics.clone())),
            jobs: JobStore::new(store, &config.jobs_prefix),
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
        }
    }

    /// A job by id, 404 when unknown.
    pub async fn job(&self, id: &str) -> Result<Job, ApiError> {
        if !jobs::is_job_id(id) {
            return Err(ApiError::not_found(
                "job_not_found",
                format!("job {id:?} does not exist"),
            ));
        }
        bucket_answer(self.jobs.get(id))
            .await?
            .ok_or_else(|| ApiError::not_found("job_not_found", format!("job {id} does not exist")))
    }

    /// Requests a stop (seen by the owning replica within [`STOP_POLL`]); immediate when local.
    pub async fn stop(&self, id: &str) -> Result<(), ApiError> {
        if let Some(progress) = self.local.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            progress.stop.store(true, Ordering::SeqCst);
        }
        bucket_answer(self.jobs.request_stop(id)).await?;
        Ok(())
    }

    /// Records and starts a job; answers 202 with its id (or `200` and a preview for a dry run).
    pub async fn start(self: &Arc<Self>, plan: Plan) -> Result<axum::response::Response, ApiError> {
        if plan.dry_run {
            return Ok(Json(preview::preview(&self.archive, &plan.spec).await?).into_response());
        }
        let permit = self.slot()?;
        let job = Job::start(
            new_job_id(),
            plan.kind,
            plan.topic.clone(),
            plan.request,
            self.config.replica_id.clone(),
        );
        bucket_answer(self.jobs.create(&job)).await?;
        tracing::info!(job = %job.id, kind = ?plan.kind, topic = %plan.topic, target = %plan.spec.target, "reingestion started");
        let id = job.id.clone();
        self.launch(job, plan.spec, permit);
        Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "requestId": id, "message": "Reingestion started" })),
        )
            .into_response())
    }

    /// Resumes an interrupted, failed or stopped job from its checkpoints, on this replica.
    pub async fn resume(
        self: &Arc<Self>,
        mut job: Job,
        plan: Plan,
    ) -> Result<axum::response::Response, ApiError> {
        if !job.resumable() {
            return Err(ApiError::conflict(
                "not_resumable",
                format!("job {} is {:?}", job.id, job.state).to_lowercase(),
            ));
        }
        let permit = self.slot()?;
        if !bucket_answer(self.jobs.claim_run(&job.id, job.run + 1)).await? {
            return Err(ApiError::conflict(
                "not_resumable",
                format!("job {} is being resumed by another request", job.id),
            ));
        }
        job.run += 1;
        job.state = JobState::Running;
        job.replica = self.config.replica_id.clone();
        job.error = None;
        job.ended_at = None;
        bucket_answer(self.jobs.save(&mut job)).await?;
        bucket_answer(self.jobs.reopen(&job.id, &job.topic)).await?;
        tracing::info!(job = %job.id, run = job.run, checkpoints = ?job.checkpoints, "reingestion resumed");
        let id = job.id.clone();
        let mut spec = plan.spec;
        spec.resume_from = job.checkpoints.clone();
        self.launch(job, spec, permit);
        Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "requestId": id, "message": "Reingestion resumed" })),
        )
            .into_response())
    }

    /// A job slot of this replica, or 429; 503 while it shuts down.
    fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        if self.shutdown.is_cancelled() {
            return Err(ApiError::Unavailable(
                "this replica is shutting down; retry on another".into(),
            ));
        }
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            ApiError::TooManyJobs(format!(
                "{} reingestions already run on this replica; retry later",
                self.config.max_concurrent_jobs
            ))
        })
    }

    /// Runs a recorded job in the background until it ends, then saves its final record.
    fn launch(
        self: &Arc<Self>,
        mut job: Job,
        mut spec: ReplaySpec,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let progress = Arc::new(ReplayProgress::default());
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id.clone(), Arc::clone(&progress));
        self.metrics.job_started();
        spec.job_id = job.id.clone();
        let state = Arc::clone(self);
        self.tasks.spawn(async move {
            let outcome = state.execute(&mut job, spec, &progress).await;
            let (end_state, error) = match outcome {
                Ok(()) => (JobState::Completed, None),
                Err(ReplayError::Stopped) if progress.interrupted.load(Ordering::SeqCst) => {
                    (JobState::Interrupted, None)
                }
                Err(ReplayError::Stopped) => (JobState::Stopped, None),
                Err(e) => (JobState::Failed, Some(e.to_string())),
            };
            job.record_progress(&progress);
            job.end(end_state, error.clone());
            // The record belongs to the replica that took the job over.
            let attempts = if progress.superseded.load(Ordering::SeqCst) { 0 } else { 10 };
            for attempt in 0..attempts {
                match state.jobs.save(&mut job).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(job = %job.id, attempt, error = %e, "cannot save the final job record");
                        tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                    }
                }
            }
            state
                .local
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&job.id);
            state
                .metrics
                .job_ended(&format!("{end_state:?}").to_lowercase());
            tracing::info!(job = %job.id, state = ?end_state, messages = job.messages_published, objects = job.objects_done, error = ?error, "reingestion ended");
            drop(permit);
        });
    }

    async fn execute(
        &self,
        job: &mut Job,
        spec: ReplaySpec,
        progress: &ReplayProgress,
    ) -> Result<(), ReplayError> {
        let replay = replay::run(
            &self.archive,
            &self.producer,
            &spec,
            progress,
            &self.metrics,
        );
        tokio::pin!(replay);
        let mut stop_poll = tokio::time::interval(STOP_POLL);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut last_saved = Instant::now();
        loop {
            tokio::select! {
                outcome = &mut replay => return outcome,
                _ = self.shutdown.cancelled(), if !progress.stop.load(Ordering::SeqCst) => {
                    // A planned shutdown hands the job back at an object boundary.
                    progress.interrupted.store(true, Ordering::SeqCst);
                    progress.stop.store(true, Ordering::SeqCst);
                }
                _ = stop_poll.tick() => {
                    if self.jobs.stop_requested(&job.id).await.unwrap_or(false) {
                        progress.stop.store(true, Ordering::SeqCst);
                    }
                }
                _ = heartbeat.tick() => {
                    // Taken over meanwhile (this replica looked dead): stop, and write nothing more.
                    if self.jobs.superseded(&job.id, job.run).await.unwrap_or(false) {
                        tracing::warn!(job = %job.id, run = job.run, "another replica took this job over; stopping here");
                        progress.superseded.store(true, Ordering::SeqCst);
                        progress.stop.store(true, Ordering::SeqCst);
                        continue;
                    }
                    job.record_progress(progress);
                    match self.jobs.save(job).await {
                        Ok(()) => last_saved = Instant::now(),
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "cannot save job progress"),
                    }
                    // Unable to heartbeat for long, it will be taken over: hand it back first.
                    if last_saved.elapsed() > STALE_AFTER / 2 {
                        progress.interrupted.store(true, Ordering::SeqCst);
                        progress.stop.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
    }
}

/// The whole HTTP surface: the REST API behind access control, plus the open operational routes, with a
/// request body limit.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let operational =
        bss_telemetry::operational_router(state.health.clone(), state.metrics.registry.clone());
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
    api::routes(state)
        .layer(guard)
        .layer(axum::middleware::from_fn(time_limit))
        .merge(document)
        .merge(operational)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
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
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(bucket = config.bucket.name(), topics = ?config.topics, kafka = ?config.kafka, replica = %config.replica_id, "starting ingestion reloader");
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
    let pruner = tokio::spawn(prune_jobs_forever(Arc::clone(&state)));
    let takeover = tokio::spawn(take_over_forever(Arc::clone(&state)));
    health.mark_started();
    let served = bss_telemetry::serve(
        app(Arc::clone(&state)),
        port,
        shutdown.clone().cancelled_owned(),
    )
    .await;
    // Running jobs stop at their next record, keep what is acknowledged as checkpoints and save
    // their record as interrupted.
    state.tasks.close();
    if tokio::time::timeout(JOB_DRAIN, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "jobs did not save their final record within {JOB_DRAIN:?}; they show as failed once their heartbeat is stale"
        );
    }
    prober.abort();
    pruner.abort();
    takeover.abort();
    served.map_err(|e| anyhow::anyhow!("cannot serve on port {port}: {e}"))
}

/// Takes over, while this replica has free job slots, the jobs handed back by a stopping replica
/// or left by one that died; a write-once claim per run makes sure only one replica resumes each.
async fn take_over_forever(state: Arc<AppState>) {
    let mut every = tokio::time::interval(TAKEOVER_POLL);
    loop {
        every.tick().await;
        if state.shutdown.is_cancelled() {
            return;
        }
        let orphans = match state.jobs.orphans().await {
            Ok(orphans) => orphans,
            Err(error) => {
                tracing::warn!(error = %error, "cannot look for jobs to take over");
                continue;
            }
        };
        for job in orphans {
            if state.slots.available_permits() == 0 {
                break;
            }
            let id = job.id.clone();
            let resumed = match api::plan_of(&state, &job).await {
                Ok(plan) => state.resume(job, plan).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match resumed {
                Ok(()) => tracing::info!(job = %id, "job taken over"),
                Err(ApiError::Conflict { .. }) => {} // Another replica was faster.
                Err(error) => {
                    tracing::warn!(job = %id, error = %error, "cannot take this job over")
                }
            }
        }
    }
}

/// Deletes finished job records older than the retention, at start and then hourly.
async fn prune_jobs_forever(state: Arc<AppState>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match state.jobs.prune(state.config.job_retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "old job records pruned"),
            Err(error) => {
                tracing::warn!(error = %error, "cannot prune old job records; retried in an hour")
            }
        }
    }
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
