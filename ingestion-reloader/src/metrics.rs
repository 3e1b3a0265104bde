//! The reloader's Prometheus metrics.

use bss_telemetry::register;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

/// Every metric of the reloader.
#[derive(Clone)]
pub struct Metrics {
    /// Served on `/-/metrics`.
    pub registry: Registry,
    downloads: IntCounterVec,
    gets: IntCounterVec,
    bytes_read: IntCounterVec,
    lists: IntCounterVec,
    selections: IntCounterVec,
    published: IntCounter,
    jobs_running: IntGauge,
    jobs_finished: IntCounterVec,
    /// Work partitions (of shared jobs) assigned to this replica.
    pub work_partitions: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        // With the Kafka client metrics, under Mia-Platform's (Micrometer's) names.
        let registry = bss_kafka::client_metrics::registry();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            bss_telemetry::counter_vec(&registry, name, help, labels)
        };
        Self {
            downloads: counter_vec(
                "fd_hd_bucket_download_request_total",
                "Object downloads by outcome (OK, KO), as Mia-Platform's reloader",
                &["status"],
            ),
            gets: counter_vec(
                "bss_reloader_bucket_get_requests_total",
                "Bucket GETs by what was read (object, index, catalog)",
                &["kind"],
            ),
            bytes_read: counter_vec(
                "bss_reloader_bucket_bytes_read_total",
                "Bytes read from the bucket by kind",
                &["kind"],
            ),
            lists: counter_vec(
                "bss_reloader_bucket_list_requests_total",
                "Bucket LIST pages by what was listed (catalog; objects when a folder has no complete catalog)",
                &["kind"],
            ),
            selections: counter_vec(
                "bss_reloader_selections_total",
                "Object selections by source: catalog, or listing (a folder without a complete catalog; run `bss catalog rebuild`)",
                &["source"],
            ),
            published: register(
                &registry,
                IntCounter::new(
                    "bss_reloader_messages_published_total",
                    "Messages acknowledged on target topics",
                )
                .expect("valid metric"),
            ),
            jobs_running: register(
                &registry,
                IntGauge::new("bss_reloader_jobs_running", "Jobs running on this replica")
                    .expect("valid metric"),
            ),
            jobs_finished: counter_vec(
                "bss_reloader_jobs_finished_total",
                "Jobs ended on this replica, by state",
                &["state"],
            ),
            work_partitions: register(
                &registry,
                IntGauge::new(
                    "bss_reloader_work_partitions",
                    "Partitions of the work topic (jobs shared by replicas) assigned to this replica",
                )
                .expect("valid metric"),
            ),
            registry,
        }
    }
}

impl bss_archive::ReadObserver for Metrics {
    fn object_read(&self, ok: bool, bytes: u64) {
        self.downloads
            .with_label_values(&[if ok { "OK" } else { "KO" }])
            .inc();
        self.gets.with_label_values(&["object"]).inc();
        self.bytes_read.with_label_values(&["object"]).inc_by(bytes);
    }

    fn index_read(&self, bytes: u64) {
        self.gets.with_label_values(&["index"]).inc();
        self.bytes_read.with_label_values(&["index"]).inc_by(bytes);
    }

    fn catalog_read(&self, cost: &bss_catalog::ReadCost) {
        self.selections.with_label_values(&["catalog"]).inc();
        self.lists
            .with_label_values(&["catalog"])
            .inc_by(cost.lists);
        self.gets.with_label_values(&["catalog"]).inc_by(cost.gets);
        self.bytes_read
            .with_label_values(&["catalog"])
            .inc_by(cost.bytes);
    }

    fn listing_fallback(&self, _folder: &str) {
        self.selections.with_label_values(&["listing"]).inc();
        self.lists.with_label_values(&["objects"]).inc();
    }
}

impl Metrics {
    /// Messages acknowledged.
    pub fn published(&self, messages: u64) {
        self.published.inc_by(messages);
    }

    /// A job started on this replica.
    pub fn job_started(&self) {
        self.jobs_running.inc();
    }

    /// A job ended on this replica (`shared`: its partitions went to the work group).
    pub fn job_ended(&self, state: &str) {
        self.jobs_running.dec();
        self.job_finished(state);
    }

    /// A shared job ended (its last part ran on this replica).
    pub fn job_finished(&self, state: &str) {
        self.jobs_finished.with_label_values(&[state]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
