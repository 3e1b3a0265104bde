//! The live counters of a running replay, shared by the replay, its supervisor (heartbeat, stop
//! requests) and the job record.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Live counters of a running job, read by its heartbeat.
#[derive(Default)]
pub struct ReplayProgress {
    /// Objects selected.
    pub objects_total: AtomicU64,
    /// Objects done.
    pub objects_done: AtomicU64,
    /// Messages acknowledged.
    pub published: AtomicU64,
    /// The job's cancellation: cancelled to stop it between records (also waking it from a rate
    /// limit's wait).
    pub cancel: tokio_util::sync::CancellationToken,
    /// Set before cancelling when the stop is this replica shutting down (the job is handed back).
    pub interrupted: AtomicBool,
    /// Set before cancelling when another replica took the job over.
    pub superseded: AtomicBool,
    /// When the objects were selected and publishing began (epoch ms).
    pub publishing_since: std::sync::OnceLock<i64>,
    /// Per source partition, the offset after the last fully acknowledged object.
    pub checkpoints: std::sync::Mutex<std::collections::BTreeMap<i32, i64>>,
}

impl ReplayProgress {
    /// Stops the replay between records.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Stops the replay and hands the job back (a planned shutdown, a revoked work partition).
    pub fn hand_back(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// Whether the replay is asked to stop.
    pub fn is_stopping(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
