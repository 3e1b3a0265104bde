//! The consume loop: reads records, batches them per partition, hands sealed batches to the partition
//! writers, pauses under memory pressure, and commits what the writers made durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bss_format::{encode_line_ref, RecordRef, TimestampType};
use bss_telemetry::Health;
use futures::{FutureExt as _, StreamExt as _};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::Timestamp;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::batch::{record_weight, Batch, SealReason};
use crate::config::StorerConfig;
use crate::context::{offsets_list, StorerContext};
use crate::memory::MemoryGauge;
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::publisher::Publisher;
use crate::writer::{PartitionWriter, SealedBatch, WriterShared};
use bss_failpoint as failpoint;

type Consumer_ = StreamConsumer<StorerContext>;

struct PartitionState {
    open: Option<Batch>,
    writer_tx: mpsc::UnboundedSender<SealedBatch>,
    /// The offset after the last record consumed in this assignment.
    consumed_next: Option<i64>,
    /// When a batch of this partition was last sealed full (by size or count).
    last_full_seal: Option<Instant>,
}

/// Everything the consume loop owns.
pub struct ConsumeLoop {
    config: StorerConfig,
    consumer: Arc<Consumer_>,
    shared: Arc<WriterShared>,
    progress: Arc<Progress>,
    memory: Arc<MemoryGauge>,
    metrics: Metrics,
    health: Health,
    /// topic → partition → state; nested so a lookup by `&str` needs no allocation.
    partitions: HashMap<String, HashMap<i32, PartitionState>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    paused: bool,
    /// Last state reported for the "kafka-consumer" check (reported on change only).
    consumer_healthy: bool,
    /// The line of the record being accepted, reused so that encoding allocates nothing.
    line: Vec<u8>,
}

/// Messages taken in one go when librdkafka has them ready.
const BURST_MESSAGES: usize = 1024;

impl ConsumeLoop {
    /// Wires the loop; the consumer must already be subscribed.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: StorerConfig,
        consumer: Arc<Consumer_>,
        publisher: Arc<Publisher>,
        store: Arc<dyn object_store::ObjectStore>,
        progress: Arc<Progress>,
        metrics: Metrics,
        health: Health,
        abort: CancellationToken,
    ) -> Self {
        let memory = Arc::new(MemoryGauge::default());
        let shared = Arc::new(WriterShared {
            catalog: bss_catalog::Catalog::new(Arc::clone(&store)),
            store,
            publisher,
            progress: Arc::clone(&progress),
            memory: Arc::clone(&memory),
            metrics: metrics.clone(),
            health: health.clone(),
            compression: config.compression,
            multipart_threshold_bytes: config.multipart_threshold_bytes,
            upload_slots: Semaphore::new(config.upload_concurrency),
            abort,
            compaction: bss_catalog::CompactionPolicy::default(),
        });
        Self {
            config,
            consumer,
            shared,
            progress,
            memory,
            metrics,
            health,
            partitions: HashMap::new(),
            writers: Vec::new(),
            paused: false,
            consumer_healthy: false,
            line: Vec::new(),
        }
    }

    /// Runs until `shutdown` fires, then drains within the configured deadline.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(self.config.limits.quiet_after());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = Arc::clone(&self.consumer);
        let memory = Arc::clone(&self.memory);
        // One stream for the whole run: `recv()` would register and drop a waker slot (two locks)
        // per message.
        let mut messages = consumer.stream();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // Resume as soon as the writers free memory, not at the next tick.
                _ = memory.released(), if self.paused => self.relieve_memory(),
                Some(message) = messages.next() => {
                    self.receive(message);
                    // Then take what librdkafka has already fetched without a turn of the select;
                    // bounded so that ticks and shutdown are still seen under a constant flow.
                    for _ in 0..BURST_MESSAGES {
                        match messages.next().now_or_never() {
                            Some(Some(message)) => self.receive(message),
                            _ => break,
                        }
                    }
                }
                _ = tick.tick() => {
                    self.drop_revoked();
                    self.seal_aged();
                    self.step_over_undelivered_offsets();
                    self.commit_durable();
                    self.relieve_memory();
                    self.writers.retain(|w| !w.is_finished());
                }
            }
        }
        drop(messages);
        self.drain().await
    }

    fn receive(&mut self, message: KafkaResult<BorrowedMessage<'_>>) {
        self.drop_revoked();
        match message {
            Ok(message) => self.accept(&message),
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                self.consumer_healthy = false;
                self.health.set("kafka-consumer", Err(e.to_string()));
            }
        }
    }

    fn accept(&mut self, message: &BorrowedMessage<'_>) {
        if !self.consumer_healthy {
            self.consumer_healthy = true;
            self.health.up("kafka-consumer");
        }
        let topic = message.topic();
        let partition = message.partition();
        if !self
            .partitions
            .get(topic)
            .is_some_and(|p| p.contains_key(&partition))
            && !self.open_partition(topic, partition)
        {
            return;
        }
        let Some(state) = self
            .partitions
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
        else {
            return;
        };
        let (timestamp_ms, timestamp_type) = match message.timestamp() {
            Timestamp::NotAvailable => (None, TimestampType::CreateTime),
            Timestamp::CreateTime(ms) => (Some(ms), TimestampType::CreateTime),
            Timestamp::LogAppendTime(ms) => (Some(ms), TimestampType::LogAppendTime),
        };
        let offset = message.offset();
        let key = message.key();
        let line = &mut self.line;
        line.clear();
        encode_line_ref(
            RecordRef {
                topic,
                partition,
                offset,
                timestamp_ms,
                timestamp_type,
                key,
                payload: message.payload(),
                // Header keys are bytes on the wire; rdkafka's typed accessor panics on non-UTF-8 ones.
                headers: bss_kafka::headers::header_slices(message),
            },
            line,
        );
        state.consumed_next = Some(offset + 1);
        let limits = self.config.limits;
        let now = Instant::now();
        if let Some(open) = &state.open {
            if !open.fits(line.len(), &limits) {
                let reason = if open.len() as u64 >= limits.max_records {
                    SealReason::Count
                } else {
                    SealReason::Size
                };
                seal(state, reason, &self.metrics, &self.memory);
            }
        }
        self.memory.take(record_weight(line.len()));
        let open = state.open.get_or_insert_with(|| {
            let mut batch = Batch::new(now);
            batch.follows_full_batch = state
                .last_full_seal
                .is_some_and(|at| now.duration_since(at) < limits.flush_interval);
            batch
        });
        open.push(line, offset, timestamp_ms, key, now);
        if let Some(reason @ (SealReason::Size | SealReason::Count)) =
            open.should_seal(&limits, now)
        {
            seal(state, reason, &self.metrics, &self.memory);
        }
        if self.memory.used() >= self.config.memory.high_water_bytes
            || self.memory.open() >= self.config.memory.low_water_bytes
        {
            self.relieve_memory();
        }
    }

    /// Creates the state of a partition seen for the first time since its assignment.
    fn open_partition(&mut self, topic: &str, partition: i32) -> bool {
        let tp = (topic.to_owned(), partition);
        let Some(generation) = self.progress.generation(&tp) else {
            // A record of a partition we no longer own, delivered before the revoke was seen.
            return false;
        };
        let Some(mapping) = self.config.mapping(topic) else {
            tracing::error!(topic, "record from a topic outside the mapping; ignored");
            return false;
        };
        let (writer_tx, handle) = PartitionWriter::spawn(
            Arc::clone(&self.shared),
            tp,
            generation,
            mapping.folder.clone(),
            mapping.post_ingestion.clone(),
        );
        self.writers.push(handle);
        self.partitions.entry(topic.to_owned()).or_default().insert(
            partition,
            PartitionState {
                open: None,
                writer_tx,
                consumed_next: None,
                last_full_seal: None,
            },
        );
        true
    }

    fn drop_revoked(&mut self) {
        for (topic, partition) in self.consumer.context().take_revoked() {
            let Some(state) = self
                .partitions
                .get_mut(&topic)
                .and_then(|p| p.remove(&partition))
            else {
                continue;
            };
            if let Some(open) = state.open {
                self.memory.release_open(open.bytes);
            }
            self.metrics.forget_lag(&topic, partition);
            // Dropping `writer_tx` ends the writer once it has dropped its (now stale) queue.
        }
    }

    fn seal_aged(&mut self) {
        let now = Instant::now();
        let limits = self.config.limits;
        for state in self.partitions.values_mut().flat_map(HashMap::values_mut) {
            if let Some(reason) = state
                .open
                .as_ref()
                .and_then(|b| b.should_seal(&limits, now))
            {
                seal(state, reason, &self.metrics, &self.memory);
            }
        }
    }

    /// Open batches at the low-water mark, or everything at the high-water mark: seal the largest
    /// open batch, so that the writers can free it. Above the high-water mark, also pause fetching
    /// until below the low-water mark.
    ///
    /// Sealing before the high-water mark keeps the pauses (each costs a refetch and a latency
    /// spike) for writers slower than the topic: when many partitions fill their files at the same
    /// pace, the budget is met before any file is full; the early seals stagger the batches and
    /// the writers free them while consumption goes on.
    fn relieve_memory(&mut self) {
        let used = self.memory.used();
        self.metrics.set_buffered_bytes(used);
        if used >= self.config.memory.high_water_bytes
            || self.memory.open() >= self.config.memory.low_water_bytes
        {
            let largest = self
                .partitions
                .values_mut()
                .flat_map(HashMap::values_mut)
                .filter(|s| s.open.is_some())
                .max_by_key(|s| s.open.as_ref().map_or(0, |b| b.bytes));
            if let Some(state) = largest {
                seal(state, SealReason::Memory, &self.metrics, &self.memory);
            }
            if used >= self.config.memory.high_water_bytes && !self.paused {
                self.set_paused(true);
            }
        } else if self.paused && used < self.config.memory.low_water_bytes {
            self.set_paused(false);
        }
    }

    fn set_paused(&mut self, paused: bool) {
        let result = self.consumer.assignment().and_then(|assignment| {
            if paused {
                self.consumer.pause(&assignment)
            } else {
                self.consumer.resume(&assignment)
            }
        });
        match result {
            Ok(()) => {
                self.paused = paused;
                tracing::info!(
                    paused,
                    buffered_bytes = self.memory.used(),
                    budget_bytes = self.config.memory_budget_bytes,
                    "memory budget: consumption {}",
                    if paused { "paused" } else { "resumed" }
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot pause or resume consumption"),
        }
    }

    fn commit_durable(&mut self) {
        let offsets = self.progress.take_commit_candidates();
        if offsets.is_empty() {
            return;
        }
        if let Err(e) = self
            .consumer
            .commit(&offsets_list(&offsets), CommitMode::Async)
        {
            tracing::warn!(error = %e, "cannot start offset commit; will retry");
            let partitions: Vec<_> = offsets.into_iter().map(|(tp, _)| tp).collect();
            self.progress.commit_failed(&partitions);
            return;
        }
        tracing::debug!(?offsets, "commit requested");
        failpoint::reached("after-commit");
    }

    /// Transaction markers, records of aborted transactions (under `read_committed`) and offsets removed
    /// by compaction are never delivered, so after the last record of a transaction the durable offset
    /// stays below the log end and the lag never clears. librdkafka's position steps over them; when
    /// everything consumed from a partition is durable and nothing is buffered, that position is what
    /// the next owner must start from and is safe to commit.
    fn step_over_undelivered_offsets(&mut self) {
        let idle: Vec<(String, i32, i64)> = self
            .partitions
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions.iter().filter_map(move |(partition, state)| {
                    let next = state.consumed_next?;
                    state
                        .open
                        .is_none()
                        .then(|| (topic.clone(), *partition, next))
                })
            })
            .collect();
        if idle.is_empty() {
            return;
        }
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for (topic, partition, consumed_next) in idle {
            if let Some(rdkafka::Offset::Offset(position)) = positions
                .find_partition(&topic, partition)
                .map(|p| p.offset())
            {
                if position > consumed_next {
                    self.progress
                        .step_over(&(topic, partition), consumed_next, position);
                }
            }
        }
    }

    /// Stop: seal every open batch, let the writers finish within the deadline, commit, leave.
    async fn drain(mut self) -> anyhow::Result<()> {
        self.health.mark_stopping();
        let deadline = self.config.shutdown_timeout;
        tracing::info!(
            deadline_ms = deadline.as_millis() as u64,
            "stopping: writing open batches"
        );
        let states: Vec<PartitionState> = self
            .partitions
            .drain()
            .flat_map(|(_, p)| p.into_values())
            .collect();
        for mut state in states {
            seal(
                &mut state,
                SealReason::Shutdown,
                &self.metrics,
                &self.memory,
            );
            // `state.writer_tx` drops here: each writer ends after its queue.
        }
        let writers = std::mem::take(&mut self.writers);
        let finished = tokio::time::timeout(deadline, futures::future::join_all(writers)).await;
        let outcome = if finished.is_err() {
            self.shared.abort.cancel();
            Err(anyhow::anyhow!(
                "shutdown deadline of {deadline:?} passed with batches not yet durable; they were not committed and will be re-read"
            ))
        } else {
            Ok(())
        };
        let offsets = self.progress.take_commit_candidates();
        if !offsets.is_empty() {
            let consumer = Arc::clone(&self.consumer);
            let list = offsets_list(&offsets);
            let committed =
                tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
                    .await
                    .context("commit task")?;
            match committed {
                Ok(()) => tracing::info!(?offsets, "final offsets committed"),
                // A rebalance under way (the group moved on without us): the objects are durable and
                // the next owner re-reads from the last commit and adopts them, so nothing is lost and
                // this is a clean stop. Only a passed deadline is an error.
                Err(e) if is_group_moved_on(&e) => tracing::warn!(
                    error = %e, ?offsets,
                    "final commit refused by a rebalance; the next owner re-reads and adopts"
                ),
                Err(e) => return Err(e).context("final offset commit"),
            }
        }
        outcome
    }
}

/// Commit errors meaning our generation of the group is over (a rebalance took the partitions away).
fn is_group_moved_on(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::IllegalGeneration
                | Code::UnknownMemberId
                | Code::RebalanceInProgress
                | Code::FencedInstanceId
                | Code::AssignmentLost
                | Code::NoOffset
        )
    )
}

fn seal(state: &mut PartitionState, reason: SealReason, metrics: &Metrics, memory: &MemoryGauge) {
    if let Some(batch) = state.open.take() {
        memory.seal(batch.bytes);
        if matches!(reason, SealReason::Size | SealReason::Count) {
            state.last_full_seal = Some(Instant::now());
        }
        metrics.batch_sealed(reason);
        // The writer only goes away after its sender (owned by `state`) is dropped.
        let _ = state.writer_tx.send(SealedBatch { batch, reason });
    }
}
