//! One writer task per assigned partition: turns sealed batches into objects, one at a time and in
//! offset order, then announces and forwards them, then marks them durable for the commit.
//!
//! Per batch: encode → write-once put → event → forward → `durable_next`. A failed step is retried with
//! backoff, forever, without moving on: nothing after a failed batch is ever committed. If the put
//! finds its object already there (written before a crash, or by the previous owner of the partition),
//! the writer reads that object, adopts it (event and forwarding again, at least once), and drops the
//! records it covers from this and the following batches. That is what keeps every offset in exactly
//! one object. See `docs/storer-protocol.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bss_catalog::{Catalog, CompactionPolicy};
use bss_format::{Compression, FileSummary, Record};
use bss_layout::catalog::CatalogEntry;
use bss_layout::ObjectName;
use bss_telemetry::Health;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, SealReason};
use crate::memory::MemoryGauge;
use crate::metrics::Metrics;
use crate::progress::{Progress, TopicPartition};
use crate::publisher::{Publisher, WrittenObject};
use crate::uploader::{self, PutOutcome};
use bss_failpoint as failpoint;

/// A batch on its way to the bucket.
pub struct SealedBatch {
    /// Records and their weight.
    pub batch: Batch,
    /// Why it was sealed.
    pub reason: SealReason,
}

/// What every writer shares.
pub struct WriterShared {
    /// The bucket.
    pub store: Arc<dyn ObjectStore>,
    /// Events and forwarding.
    pub publisher: Arc<Publisher>,
    /// Durable offsets and generations.
    pub progress: Arc<Progress>,
    /// Memory budget accounting.
    pub memory: Arc<MemoryGauge>,
    /// Metrics.
    pub metrics: Metrics,
    /// Readiness.
    pub health: Health,
    /// File compression.
    pub compression: Compression,
    /// Multipart above this size.
    pub multipart_threshold_bytes: u64,
    /// Bounds concurrent encode+upload across partitions.
    pub upload_slots: Semaphore,
    /// Fired when the shutdown deadline passes: stop retrying.
    pub abort: CancellationToken,
    /// The bucket's catalog.
    pub catalog: Catalog,
    /// When the writers compact their partition's catalog segments.
    pub compaction: CompactionPolicy,
}

/// A writer checks its partition's catalog for due merges after this many objects or this long.
const COMPACTION_CHECK_OBJECTS: usize = 64;
const COMPACTION_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// One partition's writer.
pub struct PartitionWriter {
    shared: Arc<WriterShared>,
    tp: TopicPartition,
    generation: u64,
    folder: String,
    forward_to: Vec<String>,
    /// Highest offset known to be in an existing object; records up to it are never written again.
    stored_through: i64,
    /// Objects recorded in the catalog since the last compaction check, and when that was.
    recorded_since_check: usize,
    last_check: Instant,
    compaction: Option<tokio::task::JoinHandle<()>>,
}

/// Delay before the `attempt`-th retry: 100 ms doubling up to 10 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(7)).min(10_000))
}

impl PartitionWriter {
    /// Starts the writer task; it ends when the sender is dropped and its queue is drained.
    pub fn spawn(
        shared: Arc<WriterShared>,
        tp: TopicPartition,
        generation: u64,
        folder: String,
        forward_to: Vec<String>,
    ) -> (
        mpsc::UnboundedSender<SealedBatch>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Self {
            shared,
            tp,
            generation,
            folder,
            forward_to,
            stored_through: -1,
            recorded_since_check: 0,
            last_check: Instant::now(),
            compaction: None,
        };
        // Every log line of the writer carries its topic and partition.
        let span = tracing::info_span!("partition_writer", topic = %writer.tp.0, partition = writer.tp.1, generation);
        (
            tx,
            tokio::spawn(tracing::Instrument::instrument(writer.run(rx), span)),
        )
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SealedBatch>) {
        while let Some(sealed) = rx.recv().await {
            let weight = sealed.batch.bytes;
            if self.shared.progress.begin(&self.tp, self.generation) {
                let durable_next = self.write(sealed).await;
                self.shared
                    .progress
                    .finish(&self.tp, self.generation, durable_next);
                self.compact_if_due();
            }
            // Written or dropped (partition revoked): either way it no longer weighs on memory.
            self.shared.memory.release(weight);
        }
    }

    /// Starts a background compaction of this partition's catalog segments when one may be due and
    /// none is running. Compaction failures are logged and retried later: they never hold archiving.
    fn compact_if_due(&mut self) {
        let due = self.recorded_since_check >= COMPACTION_CHECK_OBJECTS
            || (self.recorded_since_check > 0
                && self.last_check.elapsed() >= COMPACTION_CHECK_INTERVAL);
        if !due || self.compaction.as_ref().is_some_and(|c| !c.is_finished()) {
            return;
        }
        self.recorded_since_check = 0;
        self.last_check = Instant::now();
        let shared = Arc::clone(&self.shared);
        let (folder, (topic, partition)) = (self.folder.clone(), self.tp.clone());
        self.compaction = Some(tokio::spawn(async move {
            match shared
                .catalog
                .compact_partition(&folder, &topic, partition, &shared.compaction)
                .await
            {
                Ok(done) => tracing::debug!(
                    topic,
                    partition,
                    merged = done.merged,
                    deleted = done.deleted,
                    "catalog compaction pass"
                ),
                Err(error) => {
                    tracing::warn!(topic, partition, error = %error, "catalog compaction failed; retried later")
                }
            }
        }));
    }

    fn still_owner(&self) -> bool {
        !self.shared.abort.is_cancelled()
            && self.shared.progress.is_current(&self.tp, self.generation)
    }

    /// Writes one batch; returns the next offset to commit, or `None` if it gave up (revoked/aborted).
    async fn write(&mut self, sealed: SealedBatch) -> Option<i64> {
        let SealedBatch { mut batch, reason } = sealed;
        let next_offset = batch.last_offset() + 1;
        let mut foreign_attempt = 0;
        tracing::debug!(
            topic = %self.tp.0, partition = self.tp.1, first_offset = batch.first_offset(),
            last_offset = batch.last_offset(), records = batch.len(), reason = reason.as_str(),
            "batch sealed"
        );
        loop {
            // Records already stored in an existing object are only forwarded.
            if let Some(covered) = batch.split_off_through(self.stored_through) {
                self.forward(&covered).await?;
            }
            if batch.is_empty() {
                return Some(next_offset);
            }
            failpoint::reached("before-upload");
            match self.upload(&mut batch).await? {
                Uploaded::Written => {
                    failpoint::reached("after-forward");
                    return Some(next_offset);
                }
                // The loop goes round: the adopted object's records are split off above.
                Uploaded::Adopted { last_offset } => {
                    foreign_attempt = 0;
                    self.stored_through = last_offset;
                }
                // Not ours to adopt nor to overwrite: the partition waits (not ready, the object
                // named) until an operator moves it away, and nothing after it is committed.
                Uploaded::Foreign => {
                    self.pause(foreign_attempt).await?;
                    foreign_attempt += 1;
                }
            }
        }
    }

    async fn upload(&mut self, batch: &mut Batch) -> Option<Uploaded> {
        let name = ObjectName::for_batch(
            &self.folder,
            &self.tp.0,
            self.tp.1,
            batch.first_offset(),
            batch.summary().first_timestamp_ms,
            self.shared.compression,
        );
        let path = Path::from(name.path());
        // The same batch stored under another compression's extension (written before a restart or
        // a rolling update that changed `compression`) is this batch's object: adopt it rather than
        // store its offsets twice.
        if let Some(sibling) = self.find_sibling(&name).await? {
            self.shared.metrics.object_recovered();
            return self.adopt(&Path::from(sibling.path()), &sibling).await;
        }
        let permit = self.shared.upload_slots.acquire().await.ok()?;
        // CPU-bound; `block_in_place` lets other tasks move to another worker meanwhile, without
        // copying the batch as a `spawn_blocking` closure would.
        let encoded =
            tokio::task::block_in_place(|| uploader::encode(batch, self.shared.compression));
        drop(permit);
        let mut attempt = 0;
        loop {
            if !self.still_owner() {
                return None;
            }
            let permit = self.shared.upload_slots.acquire().await.ok()?;
            let started = Instant::now();
            let put = uploader::put_once(
                &self.shared.store,
                &path,
                encoded.stored.clone(),
                self.shared.multipart_threshold_bytes,
            )
            .await;
            drop(permit);
            match put {
                Ok(PutOutcome::Written) => {
                    self.shared.health.up("bucket-writes");
                    self.shared.metrics.object_written(
                        encoded.summary.records,
                        encoded.stored.len() as u64,
                        started.elapsed(),
                    );
                    tracing::info!(
                        path = %path, records = encoded.summary.records, bytes = encoded.stored.len(),
                        first_offset = encoded.summary.first_offset, last_offset = encoded.summary.last_offset,
                        elapsed_ms = started.elapsed().as_millis() as u64, "object written"
                    );
                    failpoint::reached("after-upload");
                    let catalog_segment = self
                        .write_metadata(
                            &path,
                            encoded.index.clone(),
                            &encoded.summary,
                            encoded.stored.len() as u64,
                            &encoded.checksum,
                            &encoded.key_hashes,
                        )
                        .await?;
                    let object = WrittenObject {
                        path: path.as_ref(),
                        topic: &self.tp.0,
                        partition: self.tp.1,
                        summary: &encoded.summary,
                        stored_bytes: encoded.stored.len() as u64,
                        uncompressed_bytes: encoded.uncompressed_bytes,
                        checksum: &encoded.checksum,
                        compression: self.shared.compression,
                        catalog_segment: &catalog_segment,
                    };
                    self.announce(&object).await?;
                    failpoint::reached("after-event");
                    if !self.forward_to.is_empty() {
                        self.forward(&batch.records()).await?;
                    }
                    return Some(Uploaded::Written);
                }
                Ok(PutOutcome::AlreadyExists) => {
                    self.shared.metrics.object_recovered();
                    return self.adopt(&path, &name).await;
                }
                Err(error) => {
                    self.shared.metrics.upload_failed();
                    self.shared
                        .health
                        .set("bucket-writes", Err(format!("upload failed: {error}")));
                    tracing::warn!(path = %path, attempt, error = %error, "upload failed, retrying");
                    self.pause(attempt).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// An existing object named like `name` with another compression's extension.
    async fn find_sibling(&self, name: &ObjectName) -> Option<Option<ObjectName>> {
        for compression in Compression::ALL {
            if compression == name.compression {
                continue;
            }
            let sibling = ObjectName {
                compression,
                ..name.clone()
            };
            let path = Path::from(sibling.path());
            let mut attempt = 0;
            loop {
                if !self.still_owner() {
                    return None;
                }
                match self.shared.store.head(&path).await {
                    Ok(_) => return Some(Some(sibling)),
                    Err(object_store::Error::NotFound { .. }) => break,
                    Err(error) => {
                        self.shared.health.set(
                            "bucket-writes",
                            Err(format!("cannot check {path}: {error}")),
                        );
                        tracing::warn!(path = %path, attempt, error = %error, "existence check failed, retrying");
                        self.pause(attempt).await?;
                        attempt += 1;
                    }
                }
            }
        }
        Some(None)
    }

    /// Adopts an object that already exists at our batch's name.
    async fn adopt(&mut self, path: &Path, name: &ObjectName) -> Option<Uploaded> {
        let mut attempt = 0;
        loop {
            if !self.still_owner() {
                return None;
            }
            match uploader::read_existing(&self.shared.store, path, name).await {
                Ok(existing) if !existing.continues(name, self.tp.1) => {
                    let reason = format!(
                        "{path} is at the name of the batch starting at offset {} of partition {} but does not hold it (it holds {}); move it away to let the partition go on",
                        name.first_offset,
                        self.tp.1,
                        existing.describe()
                    );
                    tracing::error!(path = %path, "{reason}");
                    self.shared.health.set("bucket-writes", Err(reason));
                    return Some(Uploaded::Foreign);
                }
                Ok(existing) => {
                    // The crash may have come between the object and its sidecar or catalog entry.
                    let catalog_segment = self
                        .write_metadata(
                            path,
                            existing.index.clone(),
                            &existing.summary,
                            existing.stored_bytes,
                            &existing.checksum,
                            &existing.key_hashes,
                        )
                        .await?;
                    tracing::info!(
                        path = %path, first_offset = existing.summary.first_offset,
                        last_offset = existing.summary.last_offset,
                        "object already written before a restart or rebalance: adopting it"
                    );
                    let object = WrittenObject {
                        path: path.as_ref(),
                        topic: &self.tp.0,
                        partition: self.tp.1,
                        summary: &existing.summary,
                        stored_bytes: existing.stored_bytes,
                        uncompressed_bytes: existing.uncompressed_bytes,
                        checksum: &existing.checksum,
                        compression: name.compression,
                        catalog_segment: &catalog_segment,
                    };
                    self.announce(&object).await?;
                    return Some(Uploaded::Adopted {
                        last_offset: existing.summary.last_offset,
                    });
                }
                Err(error) => {
                    // A corrupt object cannot be fixed by waiting, but an operator can remove it;
                    // never skip it silently.
                    tracing::error!(path = %path, attempt, error = %error, "cannot read back existing object");
                    self.shared
                        .health
                        .set("bucket-writes", Err(error.to_string()));
                    self.pause(attempt).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// Writes (or rewrites: their content depends only on the object's) the object's key-index
    /// sidecar, then its catalog entry; returns the catalog segment's path. Both come before the event
    /// and the commit, so a committed offset is always in a cataloged object.
    async fn write_metadata(
        &mut self,
        object_path: &Path,
        index: bytes::Bytes,
        summary: &FileSummary,
        stored_bytes: u64,
        checksum: &str,
        key_hashes: &[u64],
    ) -> Option<String> {
        let index_path = bss_layout::index::index_path(object_path.as_ref());
        let sidecar = Path::from(index_path.as_str());
        self.retry("index upload", || {
            self.shared.store.put(&sidecar, index.clone().into())
        })
        .await?;
        let entry = CatalogEntry {
            path: object_path.to_string(),
            topic: self.tp.0.clone(),
            partition: self.tp.1,
            first_offset: summary.first_offset,
            last_offset: summary.last_offset,
            records: summary.records,
            min_timestamp: summary.min_timestamp_ms,
            max_timestamp: summary.max_timestamp_ms,
            bytes: stored_bytes,
            checksum: checksum.to_owned(),
            index_path: Some(index_path),
        };
        let segment = self
            .retry("catalog entry upload", || {
                self.shared
                    .catalog
                    .record(&self.folder, &entry, key_hashes.to_vec())
            })
            .await?;
        self.recorded_since_check += 1;
        Some(segment)
    }

    /// Runs a bucket write until it succeeds (not ready meanwhile) or the partition is lost.
    async fn retry<T, F, Fut>(&self, what: &str, mut write: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, object_store::Error>>,
    {
        let mut attempt = 0;
        loop {
            if !self.still_owner() {
                return None;
            }
            match write().await {
                Ok(value) => return Some(value),
                Err(error) => {
                    self.shared
                        .health
                        .set("bucket-writes", Err(format!("{what} failed: {error}")));
                    tracing::warn!(attempt, error = %error, "{what} failed, retrying");
                    self.pause(attempt).await?;
                    attempt += 1;
                }
            }
        }
    }

    async fn announce(&self, object: &WrittenObject<'_>) -> Option<()> {
        let mut attempt = 0;
        loop {
            if !self.still_owner() {
                return None;
            }
            match self.shared.publisher.announce(object).await {
                Ok(()) => {
                    self.shared.metrics.event_produced();
                    self.shared.health.up("events");
                    return Some(());
                }
                Err(error) => {
                    self.shared
                        .health
                        .set("events", Err(format!("cannot produce event: {error}")));
                    tracing::warn!(path = object.path, attempt, error = %error, "event not acknowledged, retrying");
                    self.pause(attempt).await?;
                    attempt += 1;
                }
            }
        }
    }

    async fn forward(&self, records: &[Record]) -> Option<()> {
        for topic in &self.forward_to {
            let mut from = 0;
            let mut attempt = 0;
            while from < records.len() {
                if !self.still_owner() {
                    return None;
                }
                match self.shared.publisher.forward(&records[from..], topic).await {
                    Ok(()) => {
                        self.shared.metrics.forwarded((records.len() - from) as u64);
                        self.shared.health.up("forward");
                        from = records.len();
                    }
                    Err((acknowledged, error)) => {
                        self.shared.metrics.forwarded(acknowledged as u64);
                        from += acknowledged;
                        self.shared.health.set(
                            "forward",
                            Err(format!("cannot forward to {topic}: {error}")),
                        );
                        tracing::warn!(topic, attempt, error = %error, "forwarding failed, retrying");
                        self.pause(attempt).await?;
                        attempt += 1;
                    }
                }
            }
        }
        Some(())
    }

    /// Waits before a retry; `None` when the service is aborting.
    async fn pause(&self, attempt: u32) -> Option<()> {
        tokio::select! {
            _ = self.shared.abort.cancelled() => None,
            _ = tokio::time::sleep(backoff(attempt)) => Some(()),
        }
    }
}

enum Uploaded {
    Written,
    Adopted { last_offset: i64 },
    Foreign,
}
