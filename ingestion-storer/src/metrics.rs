//! The storer's Prometheus metrics, with helpers named after the events they count.

use std::time::Duration;

use bss_telemetry::register;
use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::batch::SealReason;

/// Every metric of the storer, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry served on `/-/metrics`.
    pub registry: Registry,
    upload_requests: IntCounterVec,
    messages_written: IntCounter,
    batches_sealed: IntCounterVec,
    batch_records: Histogram,
    batch_bytes: Histogram,
    upload_seconds: Histogram,
    buffered_bytes: IntGauge,
    assigned_partitions: IntGauge,
    consumer_lag: IntGaugeVec,
    events_produced: IntCounter,
    messages_forwarded: IntCounter,
    objects_recovered: IntCounter,
    commits: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        // With the Kafka client metrics, under Mia-Platform's (Micrometer's) names.
        let registry = bss_kafka::client_metrics::registry();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            bss_telemetry::counter_vec(&registry, name, help, labels)
        };
        let counter = |name: &str, help: &str| bss_telemetry::counter(&registry, name, help);
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            register(
                &registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .expect("valid metric"),
            )
        };
        Self {
            upload_requests: counter_vec(
                "bss_bucket_upload_requests_total",
                "Object uploads by outcome (OK, ERROR, EXISTS)",
                &["status"],
            ),
            messages_written: counter(
                "bss_bucket_messages_written_total",
                "Messages written to the bucket",
            ),
            batches_sealed: counter_vec(
                "bss_batches_sealed_total",
                "Batches sealed into files, by trigger",
                &["reason"],
            ),
            batch_records: histogram(
                "bss_batch_records",
                "Records per file",
                exponential_buckets(1.0, 4.0, 12).expect("buckets"),
            ),
            batch_bytes: histogram(
                "bss_batch_bytes",
                "Stored bytes per file",
                exponential_buckets(1024.0, 4.0, 10).expect("buckets"),
            ),
            upload_seconds: histogram(
                "bss_bucket_upload_duration_seconds",
                "Duration of successful uploads",
                exponential_buckets(0.005, 2.0, 14).expect("buckets"),
            ),
            assigned_partitions: register(
                &registry,
                IntGauge::new(
                    "bss_assigned_partitions",
                    "Partitions of the ingestion topics this replica owns (0 for long: a stuck group or more replicas than partitions)",
                )
                .expect("valid metric"),
            ),
            buffered_bytes: register(
                &registry,
                IntGauge::new(
                    "bss_buffered_bytes",
                    "Record bytes held in memory, against the memory budget",
                )
                .expect("valid metric"),
            ),
            consumer_lag: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "bss_consumer_lag",
                        "Messages between the high watermark and the consumer position",
                    ),
                    &["topic", "partition"],
                )
                .expect("valid metric"),
            ),
            events_produced: counter(
                "bss_events_produced_total",
                "File-written events acknowledged by Kafka",
            ),
            messages_forwarded: counter(
                "bss_messages_forwarded_total",
                "Messages acknowledged on post-ingestion topics",
            ),
            objects_recovered: counter(
                "bss_objects_recovered_total",
                "Objects found already written after a restart or rebalance, and adopted",
            ),
            commits: counter_vec(
                "bss_offset_commits_total",
                "Offset commits by outcome",
                &["status"],
            ),
            registry,
        }
    }

    /// A batch was sealed.
    pub fn batch_sealed(&self, reason: SealReason) {
        self.batches_sealed
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// An object was written.
    pub fn object_written(&self, records: u64, stored_bytes: u64, elapsed: Duration) {
        self.upload_requests.with_label_values(&["OK"]).inc();
        self.messages_written.inc_by(records);
        self.batch_records.observe(records as f64);
        self.batch_bytes.observe(stored_bytes as f64);
        self.upload_seconds.observe(elapsed.as_secs_f64());
    }

    /// An upload failed (it will be retried).
    pub fn upload_failed(&self) {
        self.upload_requests.with_label_values(&["ERROR"]).inc();
    }

    /// An upload found its object already written (restart or rebalance recovery).
    pub fn object_recovered(&self) {
        self.upload_requests.with_label_values(&["EXISTS"]).inc();
        self.objects_recovered.inc();
    }

    /// Current buffered bytes.
    pub fn set_buffered_bytes(&self, bytes: u64) {
        self.buffered_bytes.set(bytes as i64);
    }

    /// Partitions this replica owns.
    pub fn set_assigned_partitions(&self, count: usize) {
        self.assigned_partitions.set(count as i64);
    }

    /// Lag of one partition.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// Forgets the lag of a partition no longer assigned.
    pub fn forget_lag(&self, topic: &str, partition: i32) {
        let _ = self
            .consumer_lag
            .remove_label_values(&[topic, &partition.to_string()]);
    }

    /// A file-written event was acknowledged.
    pub fn event_produced(&self) {
        self.events_produced.inc();
    }

    /// Messages were acknowledged on post-ingestion topics.
    pub fn forwarded(&self, messages: u64) {
        self.messages_forwarded.inc_by(messages);
    }

    /// An offset commit finished.
    pub fn committed(&self, ok: bool) {
        self.commits
            .with_label_values(&[if ok { "OK" } else { "ERROR" }])
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
