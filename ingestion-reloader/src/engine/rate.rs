//! A job's rate limit, in records/s and bytes/s, shared by all its partitions: the generic cell
//! rate algorithm (GCRA). Each record takes a slot of `max(1 / records per s, bytes / bytes per s)`
//! after the previous one's. A record that comes up to [`LATENESS_TOLERANCE`] after its slot (a late
//! timer wake-up, a busy CPU) keeps the schedule, so those small delays are made up and the long-run
//! rate holds; after a longer stall the schedule restarts from now, so at most that tolerance's
//! worth of records goes at once and nothing more "owed" is paid in a burst.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How late a record may come and still keep the schedule (GCRA's burst tolerance). A part of a
/// job stalls between objects (checkpoint, deliveries) for a few hundred milliseconds on a busy
/// node: those stalls are made up, so the rate holds; longer ones are not.
const LATENESS_TOLERANCE: Duration = Duration::from_secs(1);

/// Waits shorter than this are not slept (a timer cannot be more precise); the schedule still
/// advances, so they are made up by the next sleep and the long-run rate stays exact.
const SLEEP_GRANULARITY: Duration = Duration::from_millis(1);

/// The limits of one job; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Records per second.
    pub records_per_second: u32,
    /// Bytes (key + value + headers) per second.
    pub bytes_per_second: u64,
}

impl RateLimit {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.records_per_second > 0 || self.bytes_per_second > 0
    }
}

/// Paces the records of one job.
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    /// The limit is split evenly among this many limiters.
    shares: u32,
    /// When the next record may go (the "theoretical arrival time").
    next: Mutex<Instant>,
}

impl Limiter {
    /// A limiter whose first record may go at once.
    pub fn new(limit: RateLimit) -> Self {
        Self::shared(limit, 1)
    }

    /// A limiter that allows `1 / shares` of `limit` (the parts of a shared job run on several
    /// replicas at once).
    pub fn shared(limit: RateLimit, shares: u32) -> Self {
        Self {
            limit,
            shares: shares.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits until a record of `bytes` bytes may go, or `cancel` is cancelled.
    pub async fn admit(&self, bytes: usize, cancel: &tokio_util::sync::CancellationToken) {
        if !self.limit.is_limited() {
            return;
        }
        let mut cost = Duration::ZERO;
        if self.limit.records_per_second > 0 {
            cost = Duration::from_secs_f64(1.0 / f64::from(self.limit.records_per_second));
        }
        if self.limit.bytes_per_second > 0 {
            cost = cost.max(Duration::from_secs_f64(
                bytes as f64 / self.limit.bytes_per_second as f64,
            ));
        }
        cost *= self.shares;
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now.checked_sub(LATENESS_TOLERANCE).unwrap_or(now));
            *next = slot + cost;
            slot
        };
        let wait = slot.saturating_duration_since(Instant::now());
        if wait >= SLEEP_GRANULARITY {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn elapsed_for(limiter: &Limiter, records: usize, bytes: usize) -> Duration {
        let started = Instant::now();
        let running = tokio_util::sync::CancellationToken::new();
        for _ in 0..records {
            limiter.admit(bytes, &running).await;
        }
        started.elapsed()
    }

    fn close(actual: Duration, expected: Duration) -> bool {
        actual.abs_diff(expected) <= Duration::from_millis(5)
    }

    #[tokio::test(start_paused = true)]
    async fn records_per_second_hold_and_a_stall_is_not_paid_back_in_a_burst() {
        let limiter = Limiter::new(RateLimit {
            records_per_second: 50,
            bytes_per_second: 0,
        });
        // The first goes at once, the 100th 99 slots later.
        let took = elapsed_for(&limiter, 100, 10).await;
        assert!(close(took, Duration::from_millis(1980)), "{took:?}");
        tokio::time::sleep(Duration::from_secs(10)).await;
        // After a stall, at most the lateness tolerance's worth goes at once (one second at 50/s:
        // 51 records, the first one on time and 50 owed), then the rate again.
        let took = elapsed_for(&limiter, 51, 10).await;
        assert!(close(took, Duration::ZERO), "{took:?}");
        let took = elapsed_for(&limiter, 50, 10).await;
        assert!(close(took, Duration::from_millis(1000)), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_tighter_of_the_two_limits_applies() {
        let limiter = Limiter::new(RateLimit {
            records_per_second: 1000,
            bytes_per_second: 2000,
        });
        // 1000-byte records: 0.5 s each by bytes, 1 ms by count.
        let took = elapsed_for(&limiter, 10, 1000).await;
        assert!(close(took, Duration::from_millis(4500)), "{took:?}");
        let unlimited = Limiter::new(RateLimit::default());
        assert_eq!(elapsed_for(&unlimited, 1000, 1000).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn partitions_share_one_schedule() {
        let limiter = std::sync::Arc::new(Limiter::new(RateLimit {
            records_per_second: 20,
            bytes_per_second: 0,
        }));
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { elapsed_for(&limiter, 20, 1).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        // 160 records at 20/s across 8 partitions: 159 slots, not 8 × 20/s.
        assert!(
            close(started.elapsed(), Duration::from_millis(7950)),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_paces_at_its_fraction_and_a_stop_ends_the_wait() {
        let limit = RateLimit {
            records_per_second: 40,
            bytes_per_second: 0,
        };
        // One part of four: 10 records/s.
        let took = elapsed_for(&Limiter::shared(limit, 4), 11, 1).await;
        assert!(close(took, Duration::from_secs(1)), "{took:?}");
        let slow = Limiter::new(RateLimit {
            records_per_second: 1,
            bytes_per_second: 0,
        });
        let cancel = tokio_util::sync::CancellationToken::new();
        slow.admit(1, &cancel).await;
        let started = Instant::now();
        cancel.cancel();
        slow.admit(1, &cancel).await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a stopped job does not wait"
        );
    }
}
