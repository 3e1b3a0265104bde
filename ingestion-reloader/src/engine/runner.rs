//! The job lifecycle of a replica: start, resume and take over jobs, run each under the
//! replica's task tracker with a heartbeat, stop requests and shutdown, and save its final record.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::error::{promptly, EngineError};
use super::jobs::{self, new_job_id, Job, JobKind, JobState};
use super::plan::{Plan, ReplayRequest};
use super::progress::ReplayProgress;
use super::replay::{self, ReplayError, ReplaySpec};
use super::replica::{Engine, JobId};
use super::supervisor::Owner;
use super::work;

/// How often a replica looks for jobs to take over.
const TAKEOVER_POLL: Duration = Duration::from_secs(3);

/// How long a stopping replica waits for its jobs to hand themselves back (within the chart's
/// termination grace period).
const JOB_DRAIN: Duration = Duration::from_secs(20);

impl Engine {
    /// At shutdown: running jobs stop at their next record, keep what is acknowledged as
    /// checkpoints and save their record as interrupted; waits for them at most [`JOB_DRAIN`].
    pub async fn drain_jobs(&self) {
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

    /// A job by id.
    pub async fn job(&self, id: &str) -> Result<Job, EngineError> {
        if !jobs::is_job_id(id) {
            return Err(EngineError::not_found(
                "job_not_found",
                format!("job {id:?} does not exist"),
            ));
        }
        promptly(self.jobs.get(id)).await?.ok_or_else(|| {
            EngineError::not_found("job_not_found", format!("job {id} does not exist"))
        })
    }

    /// Requests a stop (seen by the owning replica within [`STOP_POLL`]); immediate when local.
    pub async fn stop(&self, id: &str) -> Result<(), EngineError> {
        // The job, or the parts of it that run here (`<id>/<partition>`).
        for (key, progress) in self.local.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if key.split('/').next() == Some(id) {
                progress.stop();
            }
        }
        promptly(self.jobs.request_stop(id)).await?;
        Ok(())
    }

    /// Stops a job waiting to be taken over (interrupted, or left by a dead replica) at once: it
    /// claims the job's next run, so no replica resumes it. `false` when a replica resumed it first
    /// (it runs again: ask it to stop with [`Self::stop`]).
    pub async fn stop_orphan(&self, mut job: Job) -> Result<bool, EngineError> {
        if !promptly(self.jobs.claim_run(&job.id, job.run + 1)).await? {
            return Ok(false);
        }
        job.run += 1;
        job.end(JobState::Stopped, None);
        promptly(self.jobs.save(&mut job)).await?;
        tracing::info!(job = %job.id, "reingestion stopped while waiting to be taken over");
        Ok(true)
    }

    /// Records and starts a planned job; returns its id.
    pub async fn start(self: &Arc<Self>, plan: Plan) -> Result<JobId, EngineError> {
        let permit = self.slot()?;
        let job = Job::start(
            new_job_id(),
            plan.kind,
            plan.topic.clone(),
            plan.request,
            self.config.replica_id.clone(),
        );
        promptly(self.jobs.create(&job)).await?;
        tracing::info!(job = %job.id, kind = ?plan.kind, topic = %plan.topic, target = %plan.spec.target, "reingestion started");
        let id = job.id.clone();
        self.launch(job, plan.spec, permit);
        Ok(id)
    }

    /// Resumes an interrupted, failed or stopped job from its checkpoints, on this replica.
    pub async fn resume(self: &Arc<Self>, mut job: Job, plan: Plan) -> Result<JobId, EngineError> {
        if !job.resumable() {
            return Err(EngineError::conflict(
                "not_resumable",
                format!("job {} is {:?}", job.id, job.state).to_lowercase(),
            ));
        }
        let permit = self.slot()?;
        if !promptly(self.jobs.claim_run(&job.id, job.run + 1)).await? {
            return Err(EngineError::conflict(
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
        promptly(self.jobs.save(&mut job)).await?;
        promptly(self.jobs.reopen(&job.id, &job.topic)).await?;
        tracing::info!(job = %job.id, run = job.run, checkpoints = ?job.checkpoints, "reingestion resumed");
        let id = job.id.clone();
        let mut spec = plan.spec;
        spec.resume_from = job.checkpoints.clone();
        self.launch(job, spec, permit);
        Ok(id)
    }

    /// Drops a job's (or part's) live progress.
    pub(crate) fn forget(&self, key: &str) {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// A job slot of this replica, or 429; 503 while it shuts down.
    fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, EngineError> {
        if self.shutdown.is_cancelled() {
            return Err(EngineError::Unavailable(
                "this replica is shutting down; retry on another".into(),
            ));
        }
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            EngineError::Busy(format!(
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
        // Every log line of the job carries its id and run.
        let span = tracing::info_span!("job", job = %job.id, run = job.run, kind = ?job.kind, topic = %job.topic);
        self.tasks.spawn(tracing::Instrument::instrument(async move {
            let outcome = state.execute(&mut job, spec, &progress).await;
            if let Ok(Execution::Shared) = outcome {
                state.forget(&job.id);
                state.metrics.job_ended("shared");
                tracing::info!(parts = ?job.parts, "reingestion shared with the work group");
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
                        tracing::warn!(attempt, error = %e, "cannot save the final job record");
                        tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                    }
                }
            }
            state.forget(&job.id);
            state
                .metrics
                .job_ended(&format!("{end_state:?}").to_lowercase());
            tracing::info!(state = ?end_state, messages = job.messages_published, objects = job.objects_done, error = ?error, "reingestion ended");
            drop(permit);
        }, span));
    }

    /// Starts the replica's background duties: taking over orphaned jobs, pruning old records and,
    /// with a work topic, joining the work group (on a thread of its own).
    pub fn start_duties(self: &Arc<Self>) -> Result<Duties, EngineError> {
        let worker = match &self.config.work_topic {
            Some(topic) => {
                Some(work::join(Arc::clone(self), topic.clone()).map_err(EngineError::Kafka)?)
            }
            None => None,
        };
        Ok(Duties {
            pruner: tokio::spawn(prune_jobs_forever(Arc::clone(self))),
            takeover: tokio::spawn(take_over_forever(Arc::clone(self))),
            worker,
        })
    }

    /// Runs a job here, or, when it is shared, hands its partitions to the work group.
    async fn execute(
        &self,
        job: &mut Job,
        mut spec: ReplaySpec,
        progress: &ReplayProgress,
    ) -> Result<Execution, ReplayError> {
        if let Some(topic) = &self.config.work_topic {
            let work = work::WorkGroup {
                topic: topic.clone(),
            };
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
        let replay = replay::run(self.replayer(transactions.as_ref()), &spec, progress);
        self.supervise(Owner::Job(job), replay, progress)
            .await
            .map(|()| Execution::Done)
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
pub(super) async fn take_over_forever(state: Arc<Engine>) {
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
            let resumed = match ReplayRequest::of_job(&job) {
                Ok(request) => match state.plan(request).await {
                    Ok(plan) => state.resume(job, plan).await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match resumed {
                Ok(()) => tracing::info!(job = %id, "job taken over"),
                Err(EngineError::Conflict { .. }) => {} // Another replica was faster.
                Err(error) => {
                    tracing::warn!(job = %id, error = %error, "cannot take this job over")
                }
            }
        }
    }
}

/// Deletes finished job records older than the retention, at start and then hourly.
pub(super) async fn prune_jobs_forever(state: Arc<Engine>) {
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

/// The background duties of a replica, stopped by [`Duties::stop`] after the jobs are drained.
pub struct Duties {
    pruner: tokio::task::JoinHandle<()>,
    takeover: tokio::task::JoinHandle<()>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Duties {
    /// Leaves the work group (once its parts have handed themselves back) and stops the loops.
    pub async fn stop(self) {
        if let Some(worker) = self.worker {
            let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        }
        self.pruner.abort();
        self.takeover.abort();
    }
}
