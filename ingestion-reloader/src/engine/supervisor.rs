//! Driving one replay to its end: exactly-once set-up (the transactional producer and the committed
//! checkpoints), stop requests, the hand-back at shutdown, and the heartbeat that saves its owner's
//! record (a job, or a part of a shared job).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::jobs::{Job, Part, HEARTBEAT, STALE_AFTER, STOP_POLL};
use super::progress::ReplayProgress;
use super::replay::{ReplayError, ReplaySpec, Replayer};
use super::replica::Engine;
use super::transactions::{committed_checkpoints, Transactions};

impl Engine {
    /// What a replay of this replica runs with.
    pub(super) fn replayer<'a>(&'a self, transactions: Option<&'a Transactions>) -> Replayer<'a> {
        Replayer {
            archive: &self.archive,
            producer: &self.producer,
            transactions,
            memory: &self.memory,
            metrics: &self.metrics,
        }
    }

    /// With exactly-once publication: the transactional producer of `unit` (a job, or a part of a
    /// shared job), and the committed checkpoints it resumes from.
    pub(super) async fn transactions(
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
    pub(super) async fn supervise(
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
                            tracing::warn!("another replica took this job over; stopping here");
                            progress.superseded.store(true, Ordering::SeqCst);
                            progress.stop();
                            continue;
                        }
                        job.record_progress(progress);
                        match self.jobs.save(job).await {
                            Ok(()) => last_saved = Instant::now(),
                            Err(e) => tracing::warn!(error = %e, "cannot save job progress"),
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
                            tracing::warn!(error = %e, "cannot save part progress");
                        }
                    }
                }
            }
        }
    }
}

/// Whose record a running replay keeps up to date.
pub(super) enum Owner<'a> {
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
