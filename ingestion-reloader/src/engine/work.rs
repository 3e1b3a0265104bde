//! Jobs shared by replicas (`RELOADER_WORK_TOPIC`), coordinated by Kafka itself.
//!
//! The replica that accepts a job over several source partitions publishes one work item per
//! partition (`{"job", "run", "partition"}`) to the work topic, spread over its partitions, then
//! records the list in the job. Every replica is a member of the consumer group `<topic>-workers`
//! (cooperative-sticky): for each work partition it is assigned, it runs that partition's items one
//! after the other, each a replay of one source partition from the part's checkpoint, and commits an
//! item only once its part has ended (completed, stopped or failed). So:
//! - a replica that joins takes some work partitions over; one that leaves (SIGTERM) stops its
//!   parts at an object boundary, saves their checkpoints and gives them back at once; one that dies
//!   loses them after the group's session timeout. Either way, the next owner re-reads the items
//!   that were not committed and resumes each part from its checkpoint;
//! - no lock of our own decides who runs what: the group's assignment does, and with exactly-once
//!   publication each part's transactional id fences a replica that lost its assignment;
//! - the part that ends last ends the job (any failed part: failed; any stopped: stopped).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bss_kafka::Producer as FutureProducer;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::jobs::{Job, JobState, Part};
use super::plan::ReplayRequest;
use super::progress::ReplayProgress;
use super::replay::ReplayError;
use super::replica::Engine;
use super::supervisor::Owner;

/// How long a replica giving work partitions back waits for their parts to stop and checkpoint.
const REVOKE_DRAIN: Duration = Duration::from_secs(20);
/// How long the consume loop waits for an item before looking at its running parts again.
const POLL: Duration = Duration::from_millis(100);
/// How long a part waits before reading the bucket again after a failure.
const RETRY: Duration = Duration::from_secs(2);

/// One source partition of a job run, to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Job id.
    pub job: String,
    /// Job run (items of an earlier run are obsolete).
    pub run: u32,
    /// Source partition.
    pub partition: i32,
    /// How many parts the run has (they share the job's rate limit).
    pub parts: u32,
}

/// This replica's side of the work group.
pub struct WorkGroup {
    /// The work topic.
    pub topic: String,
}

impl WorkGroup {
    /// Publishes a job run's items, spread over the work partitions from a place that depends on
    /// the job (so small jobs do not all queue on the first partitions).
    pub async fn dispatch(
        &self,
        producer: &FutureProducer,
        job_id: &str,
        run: u32,
        partitions: &[i32],
    ) -> Result<(), KafkaError> {
        let work_partitions =
            bss_kafka::topic_partitions(producer, &self.topic, Duration::from_secs(10))
                .await?
                .ok_or(KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
                ))?;
        let seed = job_id
            .get(8..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        let mut deliveries = Vec::with_capacity(partitions.len());
        for (n, partition) in partitions.iter().enumerate() {
            let item = WorkItem {
                job: job_id.to_owned(),
                run,
                partition: *partition,
                parts: partitions.len() as u32,
            };
            let value = serde_json::to_vec(&item).expect("item serializes");
            let to = ((seed + n as u64) % work_partitions as u64) as i32;
            let delivery = producer
                .send_result(
                    FutureRecord::to(&self.topic)
                        .key(job_id.as_bytes())
                        .payload(&value)
                        .partition(to),
                )
                .map_err(|(e, _)| e)?;
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            delivery
                .await
                .map_err(|_| KafkaError::Canceled)?
                .map_err(|(e, _)| e)?;
        }
        Ok(())
    }
}

/// An item being run on a work partition, and the ones fetched behind it.
#[derive(Default)]
struct Lane {
    running: Option<Running>,
    waiting: VecDeque<(i64, WorkItem)>,
}

struct Running {
    offset: i64,
    item: WorkItem,
    progress: Arc<ReplayProgress>,
    /// Receives whether the item is done with (commit it) once its part task ends.
    ended: mpsc::Receiver<bool>,
}

/// The work partitions this replica is assigned, by partition.
type Lanes = Arc<Mutex<HashMap<i32, Lane>>>;

/// The work consumer's callbacks: when work partitions are revoked, their parts stop at an object
/// boundary and checkpoint before the group hands them to another replica.
struct WorkContext {
    lanes: Lanes,
    topic: String,
    assigned: prometheus::IntGauge,
}

impl ClientContext for WorkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka client error (work group)");
    }
}

impl ConsumerContext for WorkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<(i32, Lane)> = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            list.elements()
                .iter()
                .filter_map(|e| Some((e.partition(), lanes.remove(&e.partition())?)))
                .collect()
        };
        for (partition, lane) in revoked {
            let Some(running) = lane.running else {
                continue;
            };
            running.progress.hand_back();
            match running.ended.recv_timeout(REVOKE_DRAIN) {
                Ok(true) if !consumer.assignment_lost() => {
                    commit(consumer, &self.topic, partition, running.offset)
                }
                Ok(_) => {}
                Err(_) => tracing::warn!(
                    partition,
                    "a part did not stop within {REVOKE_DRAIN:?}; the next owner resumes it from its last checkpoint"
                ),
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        self.assigned.set(assigned as i64);
        tracing::info!(work_partitions = assigned, "work group assignment changed");
    }
}

fn commit(consumer: &BaseConsumer<WorkContext>, topic: &str, partition: i32, offset: i64) {
    let mut list = TopicPartitionList::new();
    if list
        .add_partition_offset(topic, partition, Offset::Offset(offset + 1))
        .is_ok()
    {
        if let Err(error) = consumer.commit(&list, CommitMode::Sync) {
            // The item is read again by the next owner, which finds its part ended.
            tracing::warn!(partition, error = %error, "cannot commit a work item");
        }
    }
}

/// Joins the work group and runs the parts this replica is assigned until shutdown; runs on a
/// thread of its own (the consumer's callbacks wait for parts to stop).
pub(super) fn join(
    state: Arc<Engine>,
    topic: String,
) -> Result<std::thread::JoinHandle<()>, KafkaError> {
    let lanes: Lanes = Arc::default();
    let context = WorkContext {
        lanes: Arc::clone(&lanes),
        topic: topic.clone(),
        assigned: state.metrics.work_partitions.clone(),
    };
    let mut config = bss_kafka::client_config(&state.config.kafka);
    config
        .set("group.id", format!("{topic}-workers"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky");
    // A dead replica's parts move after the session timeout: shorter than librdkafka's 45 s
    // default unless configured. Items are few and small: fetch them at once.
    if config.get("session.timeout.ms").is_none() {
        config
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000");
    }
    if config.get("fetch.wait.max.ms").is_none() {
        config.set("fetch.wait.max.ms", "100");
    }
    let consumer: BaseConsumer<WorkContext> = config.create_with_context(context)?;
    consumer.subscribe(&[&topic])?;
    let runtime = tokio::runtime::Handle::current();
    Ok(std::thread::spawn(move || {
        while !state.shutdown.is_cancelled() {
            reap(&consumer, &topic, &lanes, &state, &runtime);
            match consumer.poll(POLL) {
                None => {}
                Some(Err(error)) => {
                    tracing::warn!(error = %error, topic = %topic, "cannot read the work topic");
                    std::thread::sleep(RETRY);
                }
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    match message
                        .payload()
                        .and_then(|p| serde_json::from_slice::<WorkItem>(p).ok())
                    {
                        Some(item) => lanes
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(partition)
                            .or_default()
                            .waiting
                            .push_back((offset, item)),
                        None => {
                            tracing::warn!(partition, offset, topic = %topic, "not a work item; skipped");
                            commit(&consumer, &topic, partition, offset);
                        }
                    }
                }
            }
        }
        // Shutdown: the parts hand themselves back (interrupted, not committed); those that ended
        // meanwhile are committed. Dropping the consumer then leaves the group.
        let running: Vec<(i32, Running)> = lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .filter_map(|(partition, lane)| Some((partition, lane.running?)))
            .collect();
        for (partition, running) in running {
            if let Ok(true) = running.ended.recv_timeout(REVOKE_DRAIN) {
                commit(&consumer, &topic, partition, running.offset);
            }
        }
    }))
}

/// Commits the items whose parts ended and starts the next item of each idle work partition.
fn reap(
    consumer: &BaseConsumer<WorkContext>,
    topic: &str,
    lanes: &Lanes,
    state: &Arc<Engine>,
    runtime: &tokio::runtime::Handle,
) {
    let mut lanes = lanes.lock().unwrap_or_else(|p| p.into_inner());
    for (partition, lane) in lanes.iter_mut() {
        if let Some(running) = &lane.running {
            let done = match running.ended.try_recv() {
                Ok(done) => done,
                Err(mpsc::TryRecvError::Empty) => continue,
                Err(mpsc::TryRecvError::Disconnected) => false,
            };
            let running = lane.running.take().expect("checked above");
            if done {
                commit(consumer, topic, *partition, running.offset);
            } else if !state.shutdown.is_cancelled() {
                // Its end could not be recorded: run it again (from its checkpoint) before the
                // items behind it, whose commits would otherwise cover it.
                lane.waiting.push_front((running.offset, running.item));
            }
        }
        // An item that is not done with (a part handed back at shutdown) stays uncommitted: the
        // next owner of the partition reads it again.
        if state.shutdown.is_cancelled() {
            continue;
        }
        if let Some((offset, item)) = lane.waiting.pop_front() {
            let progress = Arc::new(ReplayProgress::default());
            let (done, ended) = mpsc::channel();
            let key = format!("{}/{}", item.job, item.partition);
            let retained = item.clone();
            state
                .local
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), Arc::clone(&progress));
            let (owner, task_progress) = (Arc::clone(state), Arc::clone(&progress));
            // Every log line of the part carries its job, run and partition.
            let span = tracing::info_span!("job_part", job = %item.job, run = item.run, partition = item.partition);
            state.tasks.spawn_on(
                tracing::Instrument::instrument(
                    async move {
                        let commit = run_part(&owner, &item, &task_progress).await;
                        owner.forget(&key);
                        let _ = done.send(commit);
                    },
                    span,
                ),
                runtime,
            );
            lane.running = Some(Running {
                offset,
                item: retained,
                progress,
                ended,
            });
        }
    }
}

/// Runs one item; `true` when it is done with (its part ended, or the item is obsolete), `false`
/// when the part was handed back and the item must be read again by the next owner.
async fn run_part(state: &Arc<Engine>, item: &WorkItem, progress: &ReplayProgress) -> bool {
    // The bucket is retried until it answers or the part is handed back.
    let job = loop {
        match state.jobs.get(&item.job).await {
            Ok(job) => break job,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the job record; retrying")
            }
        }
        if progress.is_stopping() {
            return false;
        }
        tokio::time::sleep(RETRY).await;
    };
    let Some(job) = job else {
        tracing::warn!("work item of an unknown job; skipped");
        return true;
    };
    if job.run != item.run || job.state != JobState::Running {
        return true; // Obsolete: the job ended, or a later run dispatched its own items.
    }
    let earlier = loop {
        match state.jobs.get_part(&job.id, item.partition).await {
            Ok(part) => break part,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the part record; retrying")
            }
        }
        if progress.is_stopping() {
            return false;
        }
        tokio::time::sleep(RETRY).await;
    };
    if earlier
        .as_ref()
        .is_some_and(|p| p.run == item.run && p.state.is_final())
    {
        // Ended by an earlier owner that could not commit the item.
        finish_job(state, &job.id).await;
        return true;
    }
    let mut part = Part::queued(item.partition, item.run);
    part.state = JobState::Running;
    part.replica = state.config.replica_id.clone();
    // Where this part got to, in this run or an earlier one.
    part.checkpoint = earlier.and_then(|p| p.checkpoint);
    let (end_state, error) = match replay_part(state, &job, item, &mut part, progress).await {
        Ok(()) => (JobState::Completed, None),
        Err(ReplayError::Stopped) if progress.interrupted.load(Ordering::SeqCst) => {
            (JobState::Interrupted, None)
        }
        Err(ReplayError::Stopped) => (JobState::Stopped, None),
        Err(error) => (JobState::Failed, Some(error.to_string())),
    };
    part.record_progress(progress);
    part.end(end_state, error.clone());
    let mut saved = false;
    for attempt in 0..10 {
        match state.jobs.save_part(&job.id, &mut part).await {
            Ok(()) => {
                saved = true;
                break;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "cannot save the part's final record");
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
            }
        }
    }
    tracing::info!(state = ?end_state, messages = part.messages_published, error = ?error, "part ended");
    if !saved || end_state == JobState::Interrupted {
        return false;
    }
    finish_job(state, &job.id).await;
    true
}

async fn replay_part(
    state: &Arc<Engine>,
    job: &Job,
    item: &WorkItem,
    part: &mut Part,
    progress: &ReplayProgress,
) -> Result<(), ReplayError> {
    if state.jobs.stop_requested(&job.id).await.unwrap_or(false) {
        return Err(ReplayError::Stopped);
    }
    let plan = state.plan(ReplayRequest::of_job(job)?).await?;
    let mut spec = plan.spec;
    spec.job_id = job.id.clone();
    spec.selection.partition = Some(part.partition);
    spec.rate_shares = item.parts;
    spec.resume_from = part
        .checkpoint
        .map(|at| (part.partition, at))
        .into_iter()
        .collect();
    let unit = format!("{}-p{}", job.id, part.partition);
    let transactions = state.transactions(&unit, &mut spec, progress).await?;
    if let Err(error) = state.jobs.save_part(&job.id, part).await {
        tracing::warn!(error = %error, "cannot save the part record; its heartbeat retries");
    }
    let replay = super::replay::run(state.replayer(transactions.as_ref()), &spec, progress);
    let owner = Owner::Part {
        job_id: &job.id,
        part,
    };
    state.supervise(owner, replay, progress).await
}

/// Ends a shared job once every part of its run has ended; any replica may do it, more than once
/// does no harm (the same record is written). Runs inside the ending part's span (job, partition).
async fn finish_job(state: &Arc<Engine>, id: &str) {
    let mut job = match state.jobs.get(id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(error = %error, "cannot read the job to end it; the next part to end does");
            return;
        }
    };
    if job.state != JobState::Running
        || job.part_progress.is_empty()
        || !job.part_progress.iter().all(|p| p.state.is_final())
    {
        return;
    }
    let failed = job
        .part_progress
        .iter()
        .find(|p| p.state == JobState::Failed);
    let (end_state, error) = if let Some(part) = failed {
        (
            JobState::Failed,
            Some(format!(
                "partition {}: {}",
                part.partition,
                part.error.as_deref().unwrap_or("failed")
            )),
        )
    } else if job
        .part_progress
        .iter()
        .any(|p| p.state == JobState::Stopped)
    {
        (JobState::Stopped, None)
    } else {
        (JobState::Completed, None)
    };
    job.end(end_state, error);
    match state.jobs.save(&mut job).await {
        Ok(()) => {
            state
                .metrics
                .job_finished(&format!("{end_state:?}").to_lowercase());
            tracing::info!(state = ?end_state, messages = job.messages_published, "shared reingestion ended");
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot save the job's final record")
        }
    }
}
