//! The memory budget: bytes of records held by the storer, from consumption until written.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// Counts buffered bytes; the consume loop pauses above the high-water mark and resumes below the
/// low-water mark.
#[derive(Default)]
pub struct MemoryGauge {
    used: AtomicU64,
    released: Notify,
}

impl MemoryGauge {
    /// Adds bytes taken from Kafka.
    pub fn take(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::SeqCst);
    }

    /// Gives back bytes of a written or dropped batch.
    pub fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::SeqCst);
        self.released.notify_one();
    }

    /// Completes after the next release (or at once if one happened since the last wait).
    pub async fn released(&self) {
        self.released.notified().await;
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }
}
