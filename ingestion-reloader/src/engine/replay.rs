//! Running a reingestion: select the objects (from the catalog, or listing and sidecars),
//! then re-publish their records partition by partition in offset order, waiting for every
//! acknowledgement before counting an object done.

use std::sync::atomic::Ordering;

use bss_format::Record;
use bss_kafka::Producer as FutureProducer;
use futures::StreamExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use serde::Deserialize;

use super::budget::MemoryBudget;
use super::progress::ReplayProgress;
use super::rate::{Limiter, RateLimit};
use super::transactions::Transactions;
use crate::metrics::Metrics;
use bss_archive::{Archive, ArchiveError, ArchivedObject, Selection};

/// Source partitions replayed at once (each one strictly in offset order).
const PARTITIONS_IN_PARALLEL: usize = 8;

/// A safe replacement for Mia-Platform's Kotlin selectors: keep records whose JSON payload has
/// `equals` at JSON Pointer `pointer` (RFC 6901), e.g. `{"pointer": "/status", "equals": "PAID"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayloadFilter {
    /// JSON Pointer into the payload.
    pub pointer: String,
    /// Value the pointed field must equal (any JSON value).
    #[schema(value_type = Value)]
    pub equals: serde_json::Value,
}

impl PayloadFilter {
    /// Refuses a pointer that is not an RFC 6901 JSON Pointer (empty, or starting with `/`): it
    /// would match nothing, and the job would silently publish nothing.
    pub fn validate(&self) -> Result<(), super::error::EngineError> {
        if self.pointer.is_empty() || self.pointer.starts_with('/') {
            return Ok(());
        }
        Err(super::error::EngineError::invalid(
            "invalid_body",
            format!(
                "filter.pointer: {:?} is not a JSON Pointer (RFC 6901): it must be empty or start with `/`, e.g. \"/status\"",
                self.pointer
            ),
        ))
    }

    fn matches(&self, payload: Option<&[u8]>) -> bool {
        payload
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .is_some_and(|v| v.pointer(&self.pointer) == Some(&self.equals))
    }
}

/// Where a replay's objects come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A folder's objects, selected from its catalog (or listing and sidecars).
    Folder(String),
    /// These objects, pruned by their sidecars.
    Objects(Vec<ArchivedObject>),
}

/// Which records, from where, to where.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    /// Where the objects come from.
    pub source: Source,
    /// Which of their records (a shared job's part narrows it to its partition).
    pub selection: Selection,
    /// Only the latest record (by timestamp, then offset) of the selection's key.
    pub latest_only: bool,
    /// Payload predicate.
    pub filter: Option<PayloadFilter>,
    /// Target topic.
    pub target: String,
    /// Target partitions (for `keep_partition`).
    pub target_partitions: i32,
    /// Produce to the source partition number (when the target has it) instead of by key.
    pub keep_partition: bool,
    /// Records/s and bytes/s for the whole job.
    pub rate: RateLimit,
    /// How many parts share the job's rate limit (1 unless shared).
    pub rate_shares: u32,
    /// Add lineage headers.
    pub lineage_headers: bool,
    /// Job id (lineage header).
    pub job_id: String,
    /// Per source partition, where a resumed run starts (records before are published already).
    pub resume_from: std::collections::BTreeMap<i32, i64>,
}

impl ReplaySpec {
    /// Whether a record passes the selection and the filter.
    pub fn selects(&self, record: &Record) -> bool {
        self.selection.selects(record)
            && self
                .filter
                .as_ref()
                .is_none_or(|f| f.matches(record.payload.as_deref()))
    }
}

/// How a replay ended.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Stopped on request.
    #[error("stopped on request")]
    Stopped,
    /// Reading the archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The job's request cannot be planned again (a part of a shared job).
    #[error("cannot plan the replay: {0}")]
    Plan(#[from] super::error::EngineError),
    /// Kafka refused a record.
    #[error("cannot publish to {topic}: {source}")]
    Publish {
        /// Target topic.
        topic: String,
        /// Cause.
        source: KafkaError,
    },
}

/// The objects a replay reads, by source partition, each in offset order: from the folder (catalog
/// or listing) or among the given objects, by the selection.
pub async fn select_objects(
    archive: &Archive,
    spec: &ReplaySpec,
) -> Result<std::collections::BTreeMap<i32, Vec<ArchivedObject>>, ArchiveError> {
    match &spec.source {
        Source::Folder(folder) => archive.select(folder, &spec.selection).await,
        Source::Objects(objects) => archive.prune(objects, &spec.selection).await,
    }
}

/// What a replay runs with: the archive, the producer (a job's transactional one, with exactly-once
/// publication), the memory it shares with the replica's other replays, and the metrics.
pub struct Replayer<'a> {
    /// The archive.
    pub archive: &'a Archive,
    /// The replica's producer.
    pub producer: &'a FutureProducer,
    /// With exactly-once publication: the job's (or part's) transactions.
    pub transactions: Option<&'a Transactions>,
    /// The replica's memory budget for replays.
    pub memory: &'a MemoryBudget,
    /// Metrics.
    pub metrics: &'a Metrics,
}

/// Replays the pruned objects. Returns when every published record is acknowledged.
pub async fn run(
    replayer: Replayer<'_>,
    spec: &ReplaySpec,
    progress: &ReplayProgress,
) -> Result<(), ReplayError> {
    let Replayer {
        archive,
        producer,
        transactions,
        memory,
        metrics,
    } = replayer;
    // With transactions, every record goes through the job's transactional producer.
    let producer = transactions.map_or(producer, |t| &t.producer);
    let partitions = select_objects(archive, spec).await?;
    progress.objects_total.store(
        partitions.values().map(|v| v.len() as u64).sum(),
        Ordering::SeqCst,
    );
    let _ = progress.publishing_since.set(super::jobs::now_ms());
    // One schedule for all the job's partitions (of this replica: a shared job's parts each keep
    // their share).
    let limiter = Limiter::shared(spec.rate, spec.rate_shares);
    if spec.latest_only {
        let mut latest: Option<Record> = None;
        for object in partitions.values().flatten() {
            let _room = memory.reserve(object.size).await;
            let mut chunks = archive.read(object).await?;
            while let Some(chunk) = chunks.recv().await {
                for record in chunk? {
                    if spec.selects(&record)
                        && latest.as_ref().is_none_or(|l| {
                            (record.timestamp_ms, record.offset) >= (l.timestamp_ms, l.offset)
                        })
                    {
                        latest = Some(record);
                    }
                }
            }
            progress.objects_done.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(record) = latest {
            let mut deliveries = Vec::with_capacity(1);
            let transaction = Transaction::open(transactions, spec).await?;
            enqueue(
                producer,
                spec,
                std::slice::from_ref(&record),
                progress,
                &limiter,
                &mut deliveries,
            )
            .await?;
            transaction.commit(progress, None).await?;
            acknowledge(spec, deliveries, progress, metrics).await?;
            if progress.is_stopping() {
                return Err(ReplayError::Stopped);
            }
        }
        return Ok(());
    }
    let outcomes = futures::stream::iter(partitions)
        .map(|(partition, objects)| {
            let limiter = &limiter;
            // A resumed run skips what its checkpoint says is published: whole objects when the next
            // one starts at or before it, and the records before it.
            let resume = spec
                .resume_from
                .get(&partition)
                .copied()
                .unwrap_or(i64::MIN);
            let starts: Vec<i64> = objects.iter().map(|o| o.name.first_offset).collect();
            let mut todo = Vec::with_capacity(objects.len());
            for (n, object) in objects.into_iter().enumerate() {
                if starts.get(n + 1).is_some_and(|next| *next <= resume) {
                    progress.objects_done.fetch_add(1, Ordering::SeqCst);
                } else {
                    todo.push(object);
                }
            }
            let replay = async move {
                // The next object is fetched while this one is published, so a slow bucket does not
                // stall the partition between objects (two objects in memory at most).
                let mut reads = futures::stream::iter(todo)
                    .map(|object| async move {
                        // Room first: a prefetch waits for it rather than outgrow the budget.
                        let room = memory.reserve(object.size).await;
                        archive.read(&object).await.map(|chunks| (chunks, room))
                    })
                    .buffered(2);
                // Without transactions, an object's acknowledgements are awaited once the next one
                // is enqueued: the producer never drains between objects, and the checkpoint still
                // moves only past objects acknowledged in full, in order.
                let mut unacknowledged: Option<Enqueued> = None;
                while let Some(read) = reads.next().await {
                    let (mut chunks, room) = read?;
                    // With transactions: one object per transaction, partitions taking turns.
                    let transaction = Transaction::open(transactions, spec).await?;
                    let mut deliveries = Vec::new();
                    let mut last_offset = None;
                    // The offset of the last record enqueued (or passed over by the selection)
                    // before a stop: where the checkpoint of an object cut short goes.
                    let mut reached = None;
                    while let Some(chunk) = chunks.recv().await {
                        let chunk = chunk?;
                        last_offset = chunk.last().map(|r| r.offset).or(last_offset);
                        let records: Vec<Record> = chunk
                            .into_iter()
                            .filter(|r| r.offset >= resume && spec.selects(r))
                            .collect();
                        let sent =
                            enqueue(producer, spec, &records, progress, limiter, &mut deliveries)
                                .await?;
                        if progress.is_stopping() {
                            reached = records[..sent].last().map(|r| r.offset).or(reached);
                            // Dropping `chunks` stops the object's decoder.
                            break;
                        }
                        reached = last_offset;
                    }
                    // Its records are with the producer (counted in its queue's share): the
                    // stored bytes and decoded chunks are gone.
                    drop((chunks, room));
                    // A stop cuts the object short: the records enqueued so far are published and
                    // the checkpoint goes just past the last of them, so a handover republishes
                    // nothing (with transactions the object is aborted and published whole again).
                    let complete = !progress.is_stopping();
                    let enqueued = Enqueued {
                        deliveries,
                        complete,
                        last_offset: if complete { last_offset } else { reached },
                    };
                    transaction
                        .commit(progress, last_offset.map(|last| (partition, last + 1)))
                        .await?;
                    if let Some(previous) = unacknowledged.take() {
                        previous
                            .acknowledged(spec, partition, progress, metrics)
                            .await?;
                    }
                    if transactions.is_some() {
                        enqueued
                            .acknowledged(spec, partition, progress, metrics)
                            .await?;
                    } else {
                        unacknowledged = Some(enqueued);
                    }
                    if progress.is_stopping() {
                        break;
                    }
                }
                if let Some(last) = unacknowledged {
                    last.acknowledged(spec, partition, progress, metrics)
                        .await?;
                }
                if progress.is_stopping() {
                    return Err(ReplayError::Stopped);
                }
                Ok::<(), ReplayError>(())
            };
            async move {
                let outcome = replay.await;
                // A failed partition stops the others at their next record, so that each still
                // acknowledges and checkpoints what it enqueued.
                if matches!(&outcome, Err(e) if !matches!(e, ReplayError::Stopped)) {
                    progress.stop();
                }
                outcome
            }
        })
        .buffer_unordered(PARTITIONS_IN_PARALLEL)
        // Every partition runs to its end (none is dropped mid-object when another stops first).
        .collect::<Vec<Result<(), ReplayError>>>()
        .await;
    let mut stopped = false;
    for outcome in outcomes {
        match outcome {
            Ok(()) => {}
            Err(ReplayError::Stopped) => stopped = true,
            Err(error) => return Err(error),
        }
    }
    if stopped {
        return Err(ReplayError::Stopped);
    }
    Ok(())
}

/// One object's records, enqueued.
struct Enqueued {
    deliveries: Vec<DeliveryFuture>,
    /// Whether every record was enqueued (a stop did not cut it short).
    complete: bool,
    /// Its last offset, or for an object cut short the last offset enqueued (`None` when there is
    /// none).
    last_offset: Option<i64>,
}

impl Enqueued {
    /// Awaits the acknowledgements, then moves the partition's checkpoint past what was enqueued:
    /// the whole object, or the part of it a stop let through.
    async fn acknowledged(
        self,
        spec: &ReplaySpec,
        partition: i32,
        progress: &ReplayProgress,
        metrics: &Metrics,
    ) -> Result<(), ReplayError> {
        acknowledge(spec, self.deliveries, progress, metrics).await?;
        if let Some(last) = self.last_offset {
            let mut checkpoints = progress
                .checkpoints
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let checkpoint = checkpoints.entry(partition).or_insert(last + 1);
            *checkpoint = (*checkpoint).max(last + 1);
        }
        if self.complete {
            progress.objects_done.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Enqueues records in order until a stop; returns how many were enqueued. Their acknowledgements are
/// awaited by [`acknowledge`], per object, so the producer keeps batching across chunks instead of
/// draining after each.
async fn enqueue(
    producer: &FutureProducer,
    spec: &ReplaySpec,
    records: &[Record],
    progress: &ReplayProgress,
    limiter: &Limiter,
    deliveries: &mut Vec<DeliveryFuture>,
) -> Result<usize, ReplayError> {
    let fail = |source| ReplayError::Publish {
        topic: spec.target.clone(),
        source,
    };
    for (sent, record) in records.iter().enumerate() {
        if progress.is_stopping() {
            return Ok(sent);
        }
        limiter.admit(record.byte_size(), &progress.cancel).await;
        if progress.is_stopping() {
            // Woken from the rate limit's wait by the stop: this record is not sent.
            return Ok(sent);
        }
        let (partition_text, offset_text) =
            (record.partition.to_string(), record.offset.to_string());
        let lineage: [(&str, &[u8]); 4] = [
            ("bss-source-topic", record.topic.as_bytes()),
            ("bss-source-partition", partition_text.as_bytes()),
            ("bss-source-offset", offset_text.as_bytes()),
            ("bss-job-id", spec.job_id.as_bytes()),
        ];
        let extra: &[(&str, &[u8])] = if spec.lineage_headers { &lineage } else { &[] };
        let partition = (spec.keep_partition && record.partition < spec.target_partitions)
            .then_some(record.partition);
        let delivery = bss_kafka::enqueue(producer, &spec.target, record, partition, extra)
            .await
            .map_err(fail)?;
        deliveries.push(delivery);
    }
    Ok(records.len())
}

/// The open transaction of one object (nothing when the job runs without transactions).
struct Transaction<'a> {
    open: Option<(&'a Transactions, tokio::sync::MutexGuard<'a, ()>)>,
    target: &'a str,
}

impl<'a> Transaction<'a> {
    async fn open(
        transactions: Option<&'a Transactions>,
        spec: &'a ReplaySpec,
    ) -> Result<Self, ReplayError> {
        let Some(transactions) = transactions else {
            return Ok(Self {
                open: None,
                target: &spec.target,
            });
        };
        let turn = transactions.turn.lock().await;
        transactions
            .begin()
            .map_err(|source| ReplayError::Publish {
                topic: spec.target.clone(),
                source,
            })?;
        Ok(Self {
            open: Some((transactions, turn)),
            target: &spec.target,
        })
    }

    /// Commits with the job's checkpoints moved to `advance`; a stopped job's object is aborted
    /// instead, so it is published by the next run, whole.
    async fn commit(
        self,
        progress: &ReplayProgress,
        advance: Option<(i32, i64)>,
    ) -> Result<(), ReplayError> {
        let Some((transactions, _turn)) = self.open else {
            return Ok(());
        };
        if progress.is_stopping() {
            transactions.abort().await;
            return Err(ReplayError::Stopped);
        }
        let mut checkpoints = progress
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        checkpoints.extend(advance);
        if let Err(source) = transactions.commit(&checkpoints).await {
            transactions.abort().await;
            return Err(ReplayError::Publish {
                topic: self.target.to_owned(),
                source,
            });
        }
        Ok(())
    }
}

/// Waits for every enqueued record's acknowledgement (a stopping job's too: they count).
async fn acknowledge(
    spec: &ReplaySpec,
    deliveries: Vec<DeliveryFuture>,
    progress: &ReplayProgress,
    metrics: &Metrics,
) -> Result<(), ReplayError> {
    let fail = |source| ReplayError::Publish {
        topic: spec.target.clone(),
        source,
    };
    let mut acknowledged = 0;
    let mut failure = None;
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => acknowledged += 1,
            Ok(Err((e, _))) => {
                failure.get_or_insert(e);
            }
            Err(_) => {
                failure.get_or_insert(KafkaError::Canceled);
            }
        }
    }
    progress.published.fetch_add(acknowledged, Ordering::SeqCst);
    metrics.published(acknowledged);
    match failure {
        Some(e) => Err(fail(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_json_pointer_and_inclusive_window() {
        let filter: PayloadFilter =
            serde_json::from_str(r#"{"pointer":"/order/status","equals":"PAID"}"#).expect("filter");
        assert!(filter.matches(Some(br#"{"order":{"status":"PAID"}}"#)));
        assert!(!filter.matches(Some(br#"{"order":{"status":"NEW"}}"#)));
        assert!(!filter.matches(Some(b"not json")));
        assert!(!filter.matches(None));
        assert!(serde_json::from_str::<PayloadFilter>(
            r#"{"pointer":"/a","equals":1,"script":"x"}"#
        )
        .is_err());

        let mut record = Record {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            timestamp_ms: Some(100),
            timestamp_type: Default::default(),
            key: None,
            payload: None,
            headers: vec![],
        };
        let window = |from, to| Selection::window(from, to).selects(&record);
        assert!(window(Some(100), Some(100)));
        assert!(!window(Some(101), None));
        assert!(!window(None, Some(99)));
        record.timestamp_ms = None;
        let window = |from, to| Selection::window(from, to).selects(&record);
        assert!(window(None, None));
        assert!(!window(Some(0), None));
    }
}
