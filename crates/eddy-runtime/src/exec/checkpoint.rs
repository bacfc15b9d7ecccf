//! Aligned checkpoints: barriers injected at the sources flow with the data,
//! every instance reports what it holds when the barrier passes, and the
//! checkpoint completes once every live instance has reported.
//!
//! What an instance reports is kept in memory here; storing it durably and
//! restoring it after a crash builds on this (the recovery work), as do
//! transactional sinks, which commit in [`eddy_core::Sink::commit`] once the
//! checkpoint they pre-committed for is complete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use eddy_core::source::SourcePosition;
use eddy_core::state::StateSnapshot;

/// What one instance (a node on one worker) stored for a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceState {
    /// Node index in the plan.
    pub node: usize,
    /// Worker index.
    pub worker: usize,
    /// Operator state, if the operator keeps any.
    pub state: Option<StateSnapshot>,
    /// Source positions to resume from (sources only).
    pub positions: Vec<SourcePosition>,
}

/// A checkpoint every live instance has reported for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompletedCheckpoint {
    /// Its id (1, 2, ...).
    pub id: u64,
    /// What each instance reported.
    pub instances: Vec<InstanceState>,
}

#[derive(Default)]
struct Pending {
    instances: Vec<InstanceState>,
}

/// Tracks requested, pending and completed checkpoints of one run.
pub struct Coordinator {
    instances: usize,
    requested: AtomicU64,
    completed: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: BTreeMap<u64, Pending>,
    finished: Vec<(usize, usize)>,
    /// Checkpoints an instance could not take part in (a sink failed to
    /// pre-commit); they never complete.
    declined: BTreeSet<u64>,
    latest: Option<CompletedCheckpoint>,
}

impl Coordinator {
    /// A coordinator for a run with `instances` (node, worker) instances.
    pub fn new(instances: usize) -> Coordinator {
        Coordinator {
            instances,
            requested: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Requests a new checkpoint; returns its id.
    pub fn request(&self) -> u64 {
        self.requested.fetch_add(1, Ordering::SeqCst) + 1
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
        self.complete_ready(&mut inner);
    }

    /// An instance ended: it reports nothing more, and checkpoints no
    /// longer wait for it.
    pub fn finished(&self, node: usize, worker: usize) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.finished.push((node, worker));
        self.complete_ready(&mut inner);
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
            let finished_silent = inner
                .finished
                .iter()
                .filter(|(n, w)| !reported(*n, *w))
                .count();
            let missing = self
                .instances
                .saturating_sub(pending.instances.len() + finished_silent);
            if missing > 0 {
                return;
            }
            let Some(done) = inner.pending.remove(&id) else {
                return;
            };
            let mut instances = done.instances;
            instances.sort_by_key(|s| (s.node, s.worker));
            inner.latest = Some(CompletedCheckpoint { id, instances });
            self.completed.store(id, Ordering::Release);
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

    #[test]
    fn completes_when_every_live_instance_reported() {
        let c = Coordinator::new(3);
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
        let c = Coordinator::new(2);
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
        let c = Coordinator::new(2);
        let id = c.request();
        c.report(id, state(1, 0));
        assert_eq!(c.completed(), 0);
        c.finished(0, 0);
        assert_eq!(c.completed(), id);
        // A later checkpoint needs only the live instance.
        let next = c.request();
        c.report(next, state(1, 0));
        assert_eq!(c.completed(), next);
    }
}
