//! Per-partition progress shared by the consume loop, the partition writers and the rebalance callback.
//!
//! Offsets here are Kafka's "next to read" convention: `durable_next = last stored offset + 1`, which is
//! exactly what gets committed. A partition's writer handles its batches one at a time, in order, so the
//! durable prefix of a partition is simply the end of its last finished batch.
//!
//! Every assignment gets a fresh *generation*. A writer works on a batch only while its generation is
//! current; a revoke bumps nothing but removes the entry, so work queued before the revoke is dropped
//! and the new owner re-reads it from the committed offset.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A topic-partition.
pub type TopicPartition = (String, i32);

#[derive(Debug)]
struct PartitionProgress {
    generation: u64,
    busy: bool,
    durable_next: Option<i64>,
    committed: Option<i64>,
}

/// See the module documentation.
#[derive(Default)]
pub struct Progress {
    state: Mutex<State>,
    idle: Condvar,
}

#[derive(Default)]
struct State {
    next_generation: u64,
    partitions: HashMap<TopicPartition, PartitionProgress>,
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a newly assigned partition and returns its generation.
    pub fn assign(&self, tp: TopicPartition) -> u64 {
        let mut state = self.lock();
        state.next_generation += 1;
        let generation = state.next_generation;
        state.partitions.insert(
            tp,
            PartitionProgress {
                generation,
                busy: false,
                durable_next: None,
                committed: None,
            },
        );
        generation
    }

    /// The current generation of an assigned partition.
    pub fn generation(&self, tp: &TopicPartition) -> Option<u64> {
        self.lock().partitions.get(tp).map(|p| p.generation)
    }

    /// Claims the partition for one batch; false when `generation` is no longer current.
    pub fn begin(&self, tp: &TopicPartition, generation: u64) -> bool {
        match self.lock().partitions.get_mut(tp) {
            Some(p) if p.generation == generation => {
                p.busy = true;
                true
            }
            _ => false,
        }
    }

    /// Ends a batch; `durable_next` is set when the batch is fully stored, announced and forwarded.
    pub fn finish(&self, tp: &TopicPartition, generation: u64, durable_next: Option<i64>) {
        let mut state = self.lock();
        if let Some(p) = state.partitions.get_mut(tp) {
            if p.generation == generation {
                p.busy = false;
                if durable_next.is_some() {
                    p.durable_next = durable_next;
                }
            }
        }
        drop(state);
        self.idle.notify_all();
    }

    /// Moves the durable offset of `tp` from `consumed_next` to `position` when everything consumed is
    /// durable and no batch is in hand: the offsets in between were never delivered (markers, aborted
    /// or compacted records), so nothing is skipped.
    pub fn step_over(&self, tp: &TopicPartition, consumed_next: i64, position: i64) {
        if let Some(p) = self.lock().partitions.get_mut(tp) {
            if !p.busy && p.durable_next == Some(consumed_next) && position > consumed_next {
                p.durable_next = Some(position);
            }
        }
    }

    /// Whether `generation` is still current for `tp`.
    pub fn is_current(&self, tp: &TopicPartition, generation: u64) -> bool {
        self.generation(tp) == Some(generation)
    }

    /// Offsets that became durable since the last commit; they are marked committed optimistically,
    /// and [`Progress::commit_failed`] undoes that.
    pub fn take_commit_candidates(&self) -> Vec<(TopicPartition, i64)> {
        let mut state = self.lock();
        let mut due = Vec::new();
        for (tp, p) in state.partitions.iter_mut() {
            if let Some(next) = p.durable_next {
                if p.committed != Some(next) {
                    p.committed = Some(next);
                    due.push((tp.clone(), next));
                }
            }
        }
        due
    }

    /// A commit failed: the partitions will be committed again at the next opportunity.
    pub fn commit_failed(&self, tps: &[TopicPartition]) {
        let mut state = self.lock();
        for tp in tps {
            if let Some(p) = state.partitions.get_mut(tp) {
                p.committed = None;
            }
        }
    }

    /// Revokes partitions: waits (up to `drain_timeout`) for their writers to finish the batch in
    /// hand, forgets them, and returns their durable offsets for a final commit.
    pub fn revoke(
        &self,
        tps: &[TopicPartition],
        drain_timeout: Duration,
    ) -> Vec<(TopicPartition, i64)> {
        let deadline = Instant::now() + drain_timeout;
        let mut state = self.lock();
        loop {
            let busy = tps
                .iter()
                .any(|tp| state.partitions.get(tp).is_some_and(|p| p.busy));
            let now = Instant::now();
            if !busy || now >= deadline {
                if busy {
                    tracing::warn!(
                        "revoke drain deadline reached with a batch still being written"
                    );
                }
                break;
            }
            state = self
                .idle
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        tps.iter()
            .filter_map(|tp| {
                let p = state.partitions.remove(tp)?;
                Some((tp.clone(), p.durable_next?))
            })
            .collect()
    }

    #[cfg(test)]
    fn assigned(&self) -> Vec<TopicPartition> {
        self.lock().partitions.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".into(), p)
    }

    #[test]
    fn commits_each_durable_offset_once_and_again_after_a_failure() {
        let progress = Progress::default();
        let generation = progress.assign(tp(0));
        assert!(progress.begin(&tp(0), generation));
        progress.finish(&tp(0), generation, Some(10));
        assert_eq!(progress.take_commit_candidates(), vec![(tp(0), 10)]);
        assert!(progress.take_commit_candidates().is_empty());
        progress.commit_failed(&[tp(0)]);
        assert_eq!(progress.take_commit_candidates(), vec![(tp(0), 10)]);
    }

    #[test]
    fn stale_generations_cannot_work_or_advance_offsets() {
        let progress = Progress::default();
        let old = progress.assign(tp(0));
        progress.revoke(&[tp(0)], Duration::ZERO);
        let new = progress.assign(tp(0));
        assert!(!progress.begin(&tp(0), old));
        progress.finish(&tp(0), old, Some(99));
        assert!(progress.take_commit_candidates().is_empty());
        assert!(progress.begin(&tp(0), new));
    }

    #[test]
    fn revoke_waits_for_the_batch_in_hand_and_returns_its_offset() {
        let progress = Arc::new(Progress::default());
        let generation = progress.assign(tp(1));
        assert!(progress.begin(&tp(1), generation));
        let writer = {
            let progress = Arc::clone(&progress);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                progress.finish(&tp(1), generation, Some(7));
            })
        };
        let started = Instant::now();
        let offsets = progress.revoke(&[tp(1)], Duration::from_secs(10));
        assert!(started.elapsed() >= Duration::from_millis(90));
        assert_eq!(offsets, vec![(tp(1), 7)]);
        assert!(progress.assigned().is_empty());
        writer.join().expect("writer thread");
    }
}
