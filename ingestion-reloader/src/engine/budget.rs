//! The memory a replica's replays may hold at once (`RELOADER_MEMORY_BUDGET`, less the producer
//! queue). Every object a replay reads ahead, decodes and publishes reserves its stored size plus a
//! few decoded chunks before it is fetched, and gives it back once all its records are handed to the
//! producer (whose queue has its own share of the budget): a job waits for room instead of growing
//! with its partitions and object sizes, and all running jobs of the replica share the room. Room is
//! never held while waiting for acknowledgements, so jobs cannot wait on each other.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Decoded records held per object besides its stored bytes: the chunks in the decoder's channel,
/// the one being published and the one being decoded.
const DECODED_BYTES: u64 = 4 * bss_archive::CHUNK_BYTES as u64;

/// The shared room, counted in KiB.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    room: Arc<Semaphore>,
    kib: u32,
}

/// Room held by one object until its records are handed to the producer (dropped: given back).
#[derive(Debug)]
pub struct Reservation {
    _room: Option<OwnedSemaphorePermit>,
}

impl MemoryBudget {
    /// `bytes` of room (at most 4 TiB).
    pub fn new(bytes: u64) -> Self {
        let kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        Self {
            room: Arc::new(Semaphore::new(kib as usize)),
            kib,
        }
    }

    /// Waits until an object of `stored` bytes fits; an object larger than the whole budget takes
    /// all of it (it then replays alone).
    pub async fn reserve(&self, stored: u64) -> Reservation {
        let wanted = u32::try_from((stored + DECODED_BYTES).div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.kib);
        // The semaphore is never closed, so the acquisition only ends with room.
        Reservation {
            _room: Arc::clone(&self.room).acquire_many_owned(wanted).await.ok(),
        }
    }

    /// Bytes reserved now.
    #[cfg(test)]
    fn reserved_bytes(&self) -> u64 {
        u64::from(self.kib - self.room.available_permits() as u32) * 1024
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn objects_wait_for_room_and_a_huge_one_takes_it_all() {
        let budget = MemoryBudget::new(64 << 20);
        let first = budget.reserve(40 << 20).await;
        assert_eq!(budget.reserved_bytes(), 44 << 20);
        // 40 MiB more does not fit until the first is given back.
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.reserve(40 << 20));
        assert!(waiting.await.is_err());
        drop(first);
        let second = budget.reserve(40 << 20).await;
        drop(second);
        // Larger than the budget: it takes the whole budget instead of waiting forever.
        let huge = budget.reserve(1 << 30).await;
        assert_eq!(budget.reserved_bytes(), 64 << 20);
        drop(huge);
        assert_eq!(budget.reserved_bytes(), 0);
    }
}
