//! Checkpoint barriers inside an instance: injection at source heads,
//! alignment at channel heads, reports to the coordinator, and commits.

use super::*;

impl Instance {
    /// Once every live sender delivered the barrier being aligned: pass it
    /// through the group, unblock the senders and replay what they sent
    /// after it.
    pub(super) fn try_align(&mut self) {
        let Some(id) = self.aligning else { return };
        let Some(tracker) = self.tracker.as_ref() else {
            return;
        };
        let aligned = (0..self.blocked.len())
            .all(|i| self.blocked[i] || tracker.is_ended(i / self.workers, i % self.workers));
        if !aligned {
            return;
        }
        self.aligning = None;
        if let Some(since) = self.aligning_since.take() {
            let waited = since.elapsed().as_micros() as u64;
            self.metrics
                .checkpoints
                .max_alignment_us
                .fetch_max(waited, Relaxed);
        }
        self.barrier(0, id);
        self.blocked.iter_mut().for_each(|b| *b = false);
        for env in std::mem::take(&mut self.held) {
            self.handle(env);
        }
    }

    /// A source head starts checkpoint `id`: reports its positions and sends
    /// the barrier after everything it emitted so far.
    pub(super) fn inject_barrier(&mut self, id: u64) {
        let Runner::Source(src) = &self.nodes[0].runner else {
            return;
        };
        let positions = src.source.positions();
        let watermarks = source_progress(src);
        self.reported_positions.insert(id, positions.clone());
        let node = self.nodes[0].global;
        self.checkpoints.report(
            id,
            InstanceState {
                node,
                worker: self.worker,
                state: None,
                positions,
                watermarks,
            },
        );
        self.last_barrier = self.last_barrier.max(id);
        self.forward_barrier(0, id);
    }

    /// Barrier `id` reached node `local`: snapshot or pre-commit, report,
    /// and pass it on.
    pub(super) fn barrier(&mut self, local: usize, id: u64) {
        self.last_barrier = self.last_barrier.max(id);
        let global = self.nodes[local].global;
        let result = match &mut self.nodes[local].runner {
            Runner::Op(op) => {
                let started = Instant::now();
                let state = op.snapshot().map_err(Failure::State);
                let stall = started.elapsed().as_micros() as u64;
                self.metrics
                    .checkpoints
                    .max_stall_us
                    .fetch_max(stall, Relaxed);
                state
            }
            Runner::Sink(sink, _) => sink.pre_commit(id).map(|()| None).map_err(Failure::Sink),
            Runner::Source(_) => Ok(None),
        };
        let state = match result {
            Ok(state) => state,
            Err(e) => {
                let cause = Box::new(e);
                self.error(local, Failure::Declined { id, cause });
                self.checkpoints.decline(id);
                None
            }
        };
        if matches!(self.nodes[local].runner, Runner::Sink(..)) {
            // Dead letters from the pre-commit belong before the barrier.
            self.sink_done(local, Ok(()));
        }
        self.checkpoints.report(
            id,
            InstanceState {
                node: global,
                worker: self.worker,
                state,
                ..InstanceState::default()
            },
        );
        self.forward_barrier(local, id);
    }

    pub(super) fn forward_barrier(&mut self, local: usize, id: u64) {
        self.propagate(local, &mut |s, node| s.barrier(node, id), || {
            Msg::Barrier(id)
        });
    }

    /// Checkpoint `id` completed: sinks commit what they pre-committed,
    /// sources acknowledge the positions they reported.
    pub(super) fn commit(&mut self, id: u64) {
        self.committed = id;
        for local in 0..self.nodes.len() {
            let result = match &mut self.nodes[local].runner {
                Runner::Sink(sink, _) => sink.commit(id).map_err(Failure::Sink),
                Runner::Source(src) => {
                    let positions = self.reported_positions.remove(&id);
                    self.reported_positions.retain(|k, _| *k > id);
                    match positions {
                        Some(p) => src.source.commit(&p).map_err(Failure::Source),
                        None => Ok(()),
                    }
                }
                Runner::Op(_) => Ok(()),
            };
            if let Err(e) = result {
                let cause = Box::new(e);
                self.error(local, Failure::Commit { id, cause });
            }
        }
    }
}
