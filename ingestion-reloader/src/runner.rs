//! The job lifecycle of a replica: start, resume and take over jobs, run each under the
//! replica's task tracker with a heartbeat, stop requests and shutdown, and save its final record.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use crate::api::{self, Plan};
use crate::error::ApiError;
use crate::jobs::{
    self, new_job_id, Job, JobKind, JobState, Part, HEARTBEAT, STALE_AFTER, STOP_POLL,
};
use crate::replay::{self, ReplayError, ReplayProgress, ReplaySpec};
use crate::transactions::{committed_checkpoints, Transactions};
use crate::{bucket_answer, preview, AppState};

/// How often a replica looks for jobs to take over.
const TAKEOVER_POLL: Duration = Duration::from_secs(3);

/// How long a stopping replica waits for its jobs to hand themselves back (within the chart's
/// termination grace period).
const JOB_DRAIN: Duration = Duration::from_secs(20);

impl AppState {
    /// At shutdown: running jobs stop at their next record, keep what is acknowledged as
    /// checkpoints and save their record as interrupted; waits for them at most [`JOB_DRAIN`].
    pub(crate) async fn drain_jobs(&self) {
        self.tasks.close();
        if tokio::time::timeout(JOB_DRAIN, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "jobs did not save their final record within {JOB_DRAIN:?}; they show as failed once their heartbeat is stale"
            );
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
        // The job, or the parts of it that run here (`<id>/<partition>`).
        for (key, progress) in self.local.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if key.split('/').next() == Some(id) {
                progress.stop();
            }
        }
        bucket_answer(self.jobs.request_stop(id)).await?;
        Ok(())
    }

    /// Stops a job waiting to be taken over (interrupted, or left by a dead replica) at once: it
    /// claims the job's next run, so no replica resumes it. `false` when a replica resumed it first
    /// (it runs again: ask it to stop with [`Self::stop`]).
    pub async fn stop_orphan(&self, mut job: Job) -> Result<bool, ApiError> {
        if !bucket_answer(self.jobs.claim_run(&job.id, job.run + 1)).await? {
            return Ok(false);
        }
        job.run += 1;
        job.end(JobState::Stopped, None);
        bucket_answer(self.jobs.save(&mut job)).await?;
        tracing::info!(job = %job.id, "reingestion stopped while waiting to be taken over");
        Ok(true)
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
        let mut response = (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "requestId": id, "message": "Reingestion started" })),
        )
            .into_response();
        response.extensions_mut().insert(crate::access::JobRef(id));
        Ok(response)
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
        // A shared job is dispatched again; until then it is this replica's (and stale if it dies).
        job.parts = None;
        job.part_progress.clear();
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

    /// Drops a job's (or part's) live progress.
    pub(crate) fn forget(&self, key: &str) {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
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
            if let Ok(Execution::Shared) = outcome {
                state.forget(&job.id);
                state.metrics.job_ended("shared");
                tracing::info!(job = %job.id, parts = ?job.parts, "reingestion shared with the work group");
                drop(permit);
                return;
            }
            let (end_state, error) = match outcome {
                Ok(_) => (JobState::Completed, None),
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
            state.forget(&job.id);
            state
                .metrics
                .job_ended(&format!("{end_state:?}").to_lowercase());
            tracing::info!(job = %job.id, state = ?end_state, messages = job.messages_published, objects = job.objects_done, error = ?error, "reingestion ended");
            drop(permit);
        });
    }

    /// Runs a job here, or, when it is shared, hands its partitions to the work group.
    async fn execute(
        &self,
        job: &mut Job,
        mut spec: ReplaySpec,
        progress: &ReplayProgress,
    ) -> Result<Execution, ReplayError> {
        if let Some(work) = &self.work {
            if job.kind != JobKind::File && !spec.latest_only {
                let partitions = replay::select_objects(&self.archive, &spec).await?;
                if partitions.len() > 1 {
                    job.objects_total = partitions.values().map(|o| o.len() as u64).sum();
                    let parts: Vec<i32> = partitions.into_keys().collect();
                    work.dispatch(&self.producer, &job.id, job.run, &parts)
                        .await
                        .map_err(|source| ReplayError::Publish {
                            topic: work.topic.clone(),
                            source,
                        })?;
                    // Until this record says so, the job is this replica's: if it dies first,
                    // another takes the job over and dispatches a new run (the items of this one
                    // are then obsolete).
                    job.parts = Some(parts);
                    job.part_progress.clear();
                    self.jobs
                        .save(job)
                        .await
                        .map_err(|e| ReplayError::Archive(e.into()))?;
                    return Ok(Execution::Shared);
                }
            }
        }
        let transactions = self.transactions(&job.id, &mut spec, progress).await?;
        let replay = replay::run(
            &self.archive,
            &self.producer,
            transactions.as_ref(),
            &spec,
            progress,
            &self.metrics,
        );
        self.supervise(Owner::Job(job), replay, progress)
            .await
            .map(|()| Execution::Done)
    }

    /// With exactly-once publication: the transactional producer of `unit` (a job, or a part of a
    /// shared job), and the committed checkpoints it resumes from.
    pub(crate) async fn transactions(
        &self,
        unit: &str,
        spec: &mut ReplaySpec,
        progress: &ReplayProgress,
    ) -> Result<Option<Transactions>, ReplayError> {
        let Some(checkpoint_topic) = &self.config.exactly_once else {
            return Ok(None);
        };
        let setup = async {
            let transactions =
                Transactions::start(&self.config.kafka, checkpoint_topic, unit).await?;
            // Only what a committed transaction published is done: its checkpoints are the ones
            // that count (the record's may lag behind them).
            let committed =
                committed_checkpoints(&self.config.kafka, checkpoint_topic, unit).await?;
            Ok::<_, rdkafka::error::KafkaError>((transactions, committed))
        };
        let (transactions, committed) = setup.await.map_err(|source| ReplayError::Publish {
            topic: checkpoint_topic.clone(),
            source,
        })?;
        spec.resume_from = committed.clone();
        progress
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(committed);
        Ok(Some(transactions))
    }

    /// Drives a replay to its end: stops it on a stop request or at shutdown (handing it back),
    /// and saves its owner's record with progress every [`HEARTBEAT`].
    pub(crate) async fn supervise(
        &self,
        mut owner: Owner<'_>,
        replay: impl std::future::Future<Output = Result<(), ReplayError>>,
        progress: &ReplayProgress,
    ) -> Result<(), ReplayError> {
        tokio::pin!(replay);
        let mut stop_poll = tokio::time::interval(STOP_POLL);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut last_saved = Instant::now();
        loop {
            tokio::select! {
                outcome = &mut replay => return outcome,
                _ = self.shutdown.cancelled(), if !progress.is_stopping() => {
                    // A planned shutdown hands the job back at an object boundary.
                    progress.hand_back();
                }
                _ = stop_poll.tick() => {
                    if self.jobs.stop_requested(owner.job_id()).await.unwrap_or(false) {
                        progress.stop();
                    }
                }
                _ = heartbeat.tick() => match &mut owner {
                    Owner::Job(job) => {
                        // Taken over meanwhile (this replica looked dead): stop, and write nothing
                        // more.
                        if self.jobs.superseded(&job.id, job.run).await.unwrap_or(false) {
                            tracing::warn!(job = %job.id, run = job.run, "another replica took this job over; stopping here");
                            progress.superseded.store(true, Ordering::SeqCst);
                            progress.stop();
                            continue;
                        }
                        job.record_progress(progress);
                        match self.jobs.save(job).await {
                            Ok(()) => last_saved = Instant::now(),
                            Err(e) => tracing::warn!(job = %job.id, error = %e, "cannot save job progress"),
                        }
                        // Unable to heartbeat for long, it will be taken over: hand it back first.
                        if last_saved.elapsed() > STALE_AFTER / 2 {
                            progress.hand_back();
                        }
                    }
                    // The work group, not the heartbeat, decides who runs a part.
                    Owner::Part { job_id, part } => {
                        part.record_progress(progress);
                        if let Err(e) = self.jobs.save_part(job_id, part).await {
                            tracing::warn!(job = %job_id, partition = part.partition, error = %e, "cannot save part progress");
                        }
                    }
                }
            }
        }
    }
}

/// Whose record a running replay keeps up to date.
pub(crate) enum Owner<'a> {
    /// A job run by this replica.
    Job(&'a mut Job),
    /// A part of a shared job.
    Part {
        /// Its job.
        job_id: &'a str,
        /// Its record.
        part: &'a mut Part,
    },
}

impl Owner<'_> {
    fn job_id(&self) -> &str {
        match self {
            Self::Job(job) => &job.id,
            Self::Part { job_id, .. } => job_id,
        }
    }
}

/// What became of a job started here.
enum Execution {
    /// It ran to its end here.
    Done,
    /// Its partitions went to the work group.
    Shared,
}

/// Takes over, while this replica has free job slots, the jobs handed back by a stopping replica
/// or left by one that died; a write-once claim per run makes sure only one replica resumes each.
pub(crate) async fn take_over_forever(state: Arc<AppState>) {
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
pub(crate) async fn prune_jobs_forever(state: Arc<AppState>) {
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
