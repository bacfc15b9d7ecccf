//! Aligned checkpoints: barriers injected at the sources flow with the data,
//! every instance reports what it holds when the barrier passes, and the
//! checkpoint completes once every live instance has reported.
//!
//! An instance that ended (its input is exhausted) reports its final state
//! once; every later checkpoint carries that final state for it, so a
//! checkpoint taken while some parts of the pipeline have finished still
//! restores all of it. When every instance has ended, one last checkpoint
//! of final states is taken: transactional sinks commit their last output
//! with it.
//!
//! With durable checkpoints (`[checkpoint]`), a checkpoint every instance
//! reported for is handed to the writer ([`super::persist`]) and counts as
//! completed (sinks commit, sources acknowledge) only once it is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use eddy_core::operator_state::OperatorState;
use eddy_core::source::{PartitionId, SourcePosition};
use eddy_core::Timestamp;

/// What one instance (a node on one worker) stored for a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct InstanceState {
    /// Node index in the plan.
    pub node: usize,
    /// Worker index.
    pub worker: usize,
    /// Operator state, if the operator keeps any.
    pub state: Option<OperatorState>,
    /// Source positions to resume from (sources only).
    pub positions: Vec<SourcePosition>,
    /// Per source partition, the largest event time seen (sources only):
    /// the watermark resumes where it was.
    pub watermarks: Vec<(PartitionId, Timestamp)>,
}

/// A checkpoint every live instance has reported for.
#[derive(Clone, Debug, Default)]
pub struct CompletedCheckpoint {
    /// Its id (1, 2, ...).
    pub id: u64,
    /// What each instance reported, ordered by (node, worker).
    pub instances: Vec<InstanceState>,
    /// Taken after every instance ended at the end of its input: the whole
    /// input was processed (a run stopped early resumes from its last
    /// checkpoint instead).
    pub finished: bool,
}

#[derive(Default)]
struct Pending {
    instances: Vec<InstanceState>,
    started: Option<Instant>,
}

/// Where the final checkpoint of a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Final {
    /// Stored; sinks may commit it.
    Completed(u64),
    /// It cannot complete (declined or not stored).
    Failed,
    /// Not yet: some instance still runs, or it is being stored.
    Pending,
}

/// Tracks requested, pending and completed checkpoints of one run.
pub struct Coordinator {
    instances: usize,
    requested: AtomicU64,
    completed: AtomicU64,
    inner: Mutex<Inner>,
    /// Signalled whenever `completed` or the finished set changes.
    changed: Condvar,
    /// A source was stopped before the end of its input: the final
    /// checkpoint is one to resume from, not a finished run.
    input_left: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Inner {
    pending: BTreeMap<u64, Pending>,
    /// Instances that ended, with their final state.
    finished: BTreeMap<(usize, usize), InstanceState>,
    /// Checkpoints an instance could not take part in (a sink failed to
    /// pre-commit), that timed out, or that could not be stored; they
    /// never complete.
    declined: BTreeSet<u64>,
    latest: Option<CompletedCheckpoint>,
    /// Where complete checkpoints go to be stored (durable runs only).
    persist: Option<Sender<(CompletedCheckpoint, Instant)>>,
    /// The id of the final checkpoint, once every instance ended.
    final_id: Option<u64>,
    /// The final checkpoint could not be completed.
    final_failed: bool,
    last_completed_at: Option<Instant>,
}

impl Coordinator {
    /// A coordinator for a run with `instances` (node, worker) instances
    /// whose checkpoint ids continue after `last_id` (0 on a first run).
    pub fn new(instances: usize, last_id: u64) -> Coordinator {
        Coordinator {
            instances,
            requested: AtomicU64::new(last_id),
            completed: AtomicU64::new(last_id),
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            input_left: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Stores complete checkpoints through `persist` before they count.
    pub(crate) fn persist_to(&self, persist: Sender<(CompletedCheckpoint, Instant)>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.persist = Some(persist);
        }
    }

    /// The run is over: no checkpoint completes any more, so the writer
    /// may end once it stored what it was given.
    pub(crate) fn close_persist(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.persist = None;
        }
    }

    /// Requests a new checkpoint; returns its id. Once every instance
    /// ended there is nothing more to checkpoint: the final one's id.
    pub fn request(&self) -> u64 {
        let Ok(mut inner) = self.inner.lock() else {
            return self.requested();
        };
        if let Some(last) = inner.final_id {
            return last;
        }
        let id = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        inner.pending.entry(id).or_default().started = Some(Instant::now());
        id
    }

    /// Requests a checkpoint if fewer than `max_concurrent` are in flight
    /// and `min_pause` has passed since the last completed; abandons those
    /// older than `timeout`. Returns the new id, if one was requested.
    pub(crate) fn request_paced(
        &self,
        max_concurrent: usize,
        min_pause: Duration,
        timeout: Duration,
    ) -> Option<u64> {
        {
            let mut inner = self.inner.lock().ok()?;
            if inner.final_id.is_some() {
                return None;
            }
            let expired: Vec<u64> = inner
                .pending
                .iter()
                .filter(|(_, p)| p.started.is_some_and(|s| s.elapsed() >= timeout))
                .map(|(&id, _)| id)
                .collect();
            for id in expired {
                tracing::warn!(
                    checkpoint = id,
                    "checkpoint {id} timed out and is abandoned"
                );
                inner.pending.remove(&id);
                inner.declined.insert(id);
            }
            self.complete_ready(&mut inner);
            if inner.pending.len() >= max_concurrent
                || inner
                    .last_completed_at
                    .is_some_and(|t| t.elapsed() < min_pause)
            {
                return None;
            }
        }
        Some(self.request())
    }

    /// The id of the latest requested checkpoint (0: none).
    pub fn requested(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// The id of the latest completed checkpoint (0: none).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// The latest completed checkpoint.
    pub fn latest(&self) -> Option<CompletedCheckpoint> {
        self.inner.lock().ok()?.latest.clone()
    }

    /// An instance reports for checkpoint `id`.
    pub fn report(&self, id: u64, state: InstanceState) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if id <= self.completed() || inner.declined.contains(&id) {
            return;
        }
        inner.pending.entry(id).or_default().instances.push(state);
        self.complete_ready(&mut inner);
    }

    /// An instance cannot take part in checkpoint `id` (a sink failed to
    /// pre-commit): it will never complete, so nothing it covers is
    /// committed. Later checkpoints are unaffected.
    pub fn decline(&self, id: u64) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.pending.remove(&id);
        inner.declined.insert(id);
        if inner.final_id == Some(id) {
            inner.final_failed = true;
        }
        self.complete_ready(&mut inner);
        self.changed.notify_all();
    }

    /// An instance ended with `last` as its final state: it reports
    /// nothing more, and checkpoints use `last` for it instead of waiting.
    pub fn finished(&self, last: InstanceState) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.finished.insert((last.node, last.worker), last);
        self.complete_ready(&mut inner);
        if inner.finished.len() >= self.instances && inner.final_id.is_none() {
            // Everything ended: a last checkpoint of final states.
            let id = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
            inner.final_id = Some(id);
            inner.pending.insert(
                id,
                Pending {
                    instances: Vec::new(),
                    started: Some(Instant::now()),
                },
            );
            self.complete_ready(&mut inner);
        }
        self.changed.notify_all();
    }

    /// A source stops before the end of its input (a stop or `--duration`).
    pub(crate) fn input_left(&self) {
        self.input_left.store(true, Ordering::SeqCst);
    }

    /// Waits up to `timeout` for the final checkpoint (taken once every
    /// instance ended) to complete or fail.
    pub(crate) fn wait_final(&self, timeout: Duration) -> Final {
        let deadline = Instant::now() + timeout;
        let Ok(mut inner) = self.inner.lock() else {
            return Final::Failed;
        };
        loop {
            if let Some(id) = inner.final_id {
                if self.completed() >= id {
                    return Final::Completed(id);
                }
                if inner.final_failed {
                    return Final::Failed;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Final::Pending;
            }
            match self.changed.wait_timeout(inner, left) {
                Ok((guard, _)) => inner = guard,
                Err(_) => return Final::Failed,
            }
        }
    }

    /// Waits until checkpoint `id` completed or can no longer complete
    /// (declined, or `timeout` passed); returns whether it completed.
    pub(crate) fn wait_completed(&self, id: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        loop {
            if self.completed() >= id {
                return true;
            }
            if inner.declined.contains(&id) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.changed.wait_timeout(inner, left) {
                Ok((guard, _)) => inner = guard,
                Err(_) => return false,
            }
        }
    }

    /// The writer stored checkpoint `id` (or failed to: `stored` false).
    pub(crate) fn stored(&self, checkpoint: CompletedCheckpoint, stored: bool) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let id = checkpoint.id;
        if stored {
            self.mark_completed(&mut inner, checkpoint);
        } else {
            inner.declined.insert(id);
            if inner.final_id == Some(id) {
                inner.final_failed = true;
            }
        }
        self.changed.notify_all();
    }

    fn mark_completed(&self, inner: &mut Inner, checkpoint: CompletedCheckpoint) {
        if checkpoint.id <= self.completed() {
            return;
        }
        self.completed.store(checkpoint.id, Ordering::Release);
        inner.last_completed_at = Some(Instant::now());
        inner.latest = Some(checkpoint);
    }

    fn complete_ready(&self, inner: &mut Inner) {
        loop {
            let Some((&id, pending)) = inner.pending.iter().next() else {
                return;
            };
            let reported = |n: usize, w: usize| {
                pending
                    .instances
                    .iter()
                    .any(|s| s.node == n && s.worker == w)
            };
            let finished_silent: Vec<InstanceState> = inner
                .finished
                .iter()
                .filter(|((n, w), _)| !reported(*n, *w))
                .map(|(_, s)| s.clone())
                .collect();
            let missing = self
                .instances
                .saturating_sub(pending.instances.len() + finished_silent.len());
            if missing > 0 {
                return;
            }
            let Some(done) = inner.pending.remove(&id) else {
                return;
            };
            let mut instances = done.instances;
            instances.extend(finished_silent);
            instances.sort_by_key(|s| (s.node, s.worker));
            let checkpoint = CompletedCheckpoint {
                id,
                instances,
                finished: inner.final_id == Some(id) && !self.input_left.load(Ordering::SeqCst),
            };
            let started = done.started.unwrap_or_else(Instant::now);
            match &inner.persist {
                Some(persist) => {
                    if persist.send((checkpoint, started)).is_err() {
                        inner.declined.insert(id);
                    }
                }
                None => self.mark_completed(inner, checkpoint),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(node: usize, worker: usize) -> InstanceState {
        InstanceState {
            node,
            worker,
            ..InstanceState::default()
        }
    }

    fn finished(c: &Coordinator, node: usize, worker: usize) {
        c.finished(state(node, worker));
    }

    #[test]
    fn completes_when_every_live_instance_reported() {
        let c = Coordinator::new(3, 0);
        let id = c.request();
        c.report(id, state(0, 0));
        c.report(id, state(1, 0));
        assert_eq!(c.completed(), 0);
        c.report(id, state(2, 0));
        assert_eq!(c.completed(), id);
        assert_eq!(c.latest().map(|l| l.instances.len()), Some(3));
    }

    #[test]
    fn a_declined_checkpoint_never_completes_but_the_next_does() {
        let c = Coordinator::new(2, 0);
        let first = c.request();
        let second = c.request();
        c.report(first, state(0, 0));
        c.decline(first);
        c.report(first, state(1, 0));
        assert_eq!(c.completed(), 0);
        c.report(second, state(0, 0));
        c.report(second, state(1, 0));
        assert_eq!(c.completed(), second);
    }

    #[test]
    fn finished_instances_are_not_waited_for() {
        let c = Coordinator::new(2, 0);
        let id = c.request();
        c.report(id, state(1, 0));
        assert_eq!(c.completed(), 0);
        finished(&c, 0, 0);
        assert_eq!(c.completed(), id);
        // A later checkpoint needs only the live instance.
        let next = c.request();
        c.report(next, state(1, 0));
        assert_eq!(c.completed(), next);
    }
}

#[cfg(test)]
mod final_tests {
    use super::*;

    #[test]
    fn ids_continue_after_a_restored_checkpoint() {
        let c = Coordinator::new(1, 41);
        assert_eq!(c.completed(), 41);
        assert_eq!(c.request(), 42);
    }

    #[test]
    fn a_final_checkpoint_follows_the_last_instance_ending_with_final_states() {
        let c = Coordinator::new(2, 0);
        let first = c.request();
        c.finished(InstanceState {
            node: 0,
            worker: 0,
            positions: vec![SourcePosition {
                partition: 0,
                offset: 99,
            }],
            ..InstanceState::default()
        });
        // The ended source's final positions stand in for its report.
        c.report(
            first,
            InstanceState {
                node: 1,
                worker: 0,
                ..InstanceState::default()
            },
        );
        assert_eq!(c.completed(), first);
        let latest = c.latest().unwrap();
        assert_eq!(latest.instances[0].positions[0].offset, 99);
        assert!(!latest.finished);
        c.finished(InstanceState {
            node: 1,
            worker: 0,
            ..InstanceState::default()
        });
        assert_eq!(
            c.wait_final(Duration::from_secs(1)),
            Final::Completed(first + 1)
        );
        assert!(c.latest().unwrap().finished);
    }
}
