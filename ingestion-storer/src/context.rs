//! The consumer's callbacks. librdkafka calls them synchronously from inside `recv()`, on the consume
//! loop's own thread, so they must not wait for the consume loop; they only touch shared state.
//!
//! Revoke protocol ("drop and re-read"): the revoked partitions' writers finish the batch in hand (at
//! most the drain timeout), their durable offsets are committed synchronously, and everything still
//! buffered for them is dropped. The next owner re-reads from the committed offset; if it re-creates
//! an object that was written but not committed, the write-once put finds it and adopts it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics::Metrics;
use crate::progress::{Progress, TopicPartition};

/// The storer's consumer context.
pub struct StorerContext {
    progress: Arc<Progress>,
    metrics: Metrics,
    drain_timeout: Duration,
    revoked: Mutex<Vec<TopicPartition>>,
    /// Set with `revoked`: the consume loop checks it for every message without taking the lock.
    any_revoked: AtomicBool,
}

impl StorerContext {
    /// `drain_timeout` must stay below the group's session timeout.
    pub fn new(progress: Arc<Progress>, metrics: Metrics, drain_timeout: Duration) -> Self {
        Self {
            progress,
            metrics,
            drain_timeout,
            revoked: Mutex::new(Vec::new()),
            any_revoked: AtomicBool::new(false),
        }
    }

    /// Partitions revoked since the last call; the consume loop drops their buffers.
    pub fn take_revoked(&self) -> Vec<TopicPartition> {
        if !self.any_revoked.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Builds a commit list from `(partition, next offset)` pairs.
pub fn offsets_list(offsets: &[(TopicPartition, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(offsets.len());
    for ((topic, partition), next) in offsets {
        // Only fails for invalid offsets; ours are non-negative.
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    list
}

impl ClientContext for StorerContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka client error");
    }

    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        bss_kafka::client_metrics::record(&statistics);
    }
}

impl ConsumerContext for StorerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let partitions = partitions_of(list);
        let offsets = self.progress.revoke(&partitions, self.drain_timeout);
        if !offsets.is_empty() && !consumer.assignment_lost() {
            let result = consumer.commit(&offsets_list(&offsets), CommitMode::Sync);
            self.metrics.committed(result.is_ok());
            match result {
                Ok(()) => tracing::info!(?offsets, "committed revoked partitions"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot commit revoked partitions; the next owner re-reads and adopts")
                }
            }
        }
        tracing::info!(?partitions, "partitions revoked");
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(partitions);
        self.any_revoked.store(true, Ordering::Release);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions = partitions_of(list);
                for tp in &partitions {
                    self.progress.assign(tp.clone());
                }
                tracing::info!(?partitions, "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        self.metrics.committed(result.is_ok());
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed; will retry");
            self.progress.commit_failed(&partitions_of(offsets));
        }
    }
}
