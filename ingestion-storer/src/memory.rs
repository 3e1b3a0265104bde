//! The memory budget: bytes of records held by the storer, from consumption until written.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// Counts buffered bytes, and among them those of batches still open; the consume loop seals
/// batches when the open ones fill the budget's seal mark, pauses above the high-water mark and
/// resumes below the low-water mark.
#[derive(Default)]
pub struct MemoryGauge {
    used: AtomicU64,
    /// Bytes of open batches (the rest of `used` is sealed and on its way to the bucket). Only the
    /// consume loop changes it; atomic so the gauge stays one shared type.
    open: AtomicU64,
    released: Notify,
}

impl MemoryGauge {
    /// Adds bytes taken from Kafka into an open batch.
    pub fn take(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::SeqCst);
        self.open.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Moves an open batch's bytes to the sealed ones (still used until written).
    pub fn seal(&self, bytes: u64) {
        self.open.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Gives back the bytes of an open batch that is dropped (its partition was revoked).
    pub fn release_open(&self, bytes: u64) {
        self.seal(bytes);
        self.release(bytes);
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

    /// Bytes in open batches.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}
