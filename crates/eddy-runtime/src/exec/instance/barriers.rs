//! Checkpoints inside an instance: restoring from one at start, barrier
//! injection at source heads, alignment at channel heads, reports to the
//! coordinator, commits, and the commits at the end of a run.

use super::*;

impl Instance {
    /// The source ended: once everything downstream has flushed, acknowledge
    /// the positions reached (Kafka commits offsets), so a restart resumes
    /// after the last event that was fully processed.
    pub(super) fn commit_final_positions(&mut self) {
        let Runner::Source(src) = &self.nodes[0].runner else {
            return;
        };
        let positions = src.source.positions();
        if positions.is_empty() {
            return;
        }
        let give_up = Instant::now() + FINAL_COMMIT_WAIT;
        while self.drain.downstream_live.load(Relaxed) > 0 {
            if Instant::now() >= give_up {
                // Other sources keep the run going: leave the positions of
                // the last completed checkpoint in place (at-least-once).
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.drain.flush_failed.load(Relaxed) {
            self.error(0, Failure::FinalFlush);
            return;
        }
        let Runner::Source(src) = &mut self.nodes[0].runner else {
            return;
        };
        if let Err(e) = src.source.commit(&positions) {
            self.error(0, Failure::FinalCommit(e));
        }
    }

    /// Exactly-once end of a run: wait for the final checkpoint (taken once
    /// every instance ended), then sinks publish their last output and
    /// sources acknowledge their final positions.
    pub(super) fn commit_final_checkpoint(&mut self) {
        // Checked in slices: a savepoint may halt the run meanwhile, and
        // then there is no final checkpoint to wait for.
        let give_up = Instant::now() + FINAL_COMMIT_WAIT;
        let mut state = Final::Pending;
        while state == Final::Pending && Instant::now() < give_up && !self.halt.load(Relaxed) {
            state = self.checkpoints.wait_final(Duration::from_millis(100));
        }
        if self.halt.load(Relaxed) {
            return;
        }
        match state {
            Final::Completed(id) => {
                for local in 0..self.nodes.len() {
                    let result = match &mut self.nodes[local].runner {
                        Runner::Sink(sink, _) => sink.commit(id).map_err(Failure::Sink),
                        Runner::Source(src) => {
                            let positions = src.source.positions();
                            src.source.commit(&positions).map_err(Failure::Source)
                        }
                        Runner::Op(_) => Ok(()),
                    };
                    if let Err(e) = result {
                        let cause = Box::new(e);
                        self.error(local, Failure::Commit { id, cause });
                    }
                }
            }
            Final::Failed | Final::Pending => self.error(0, Failure::FinalCheckpoint),
        }
    }

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
            // Without durable checkpoints nothing reads operator state, and
            // a snapshot held until the next barrier would make every
            // write in between copy what it touches.
            Runner::Op(_) if !self.exactly_once => Ok(None),
            Runner::Op(rt) => {
                let started = Instant::now();
                let state = OperatorState::take(&mut *rt.op, &mut rt.cx);
                let stall = started.elapsed().as_micros() as u64;
                self.metrics
                    .checkpoints
                    .max_stall_us
                    .fetch_max(stall, Relaxed);
                Ok(state)
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
            if matches!(self.nodes[local].runner, Runner::Sink(..)) {
                // A staged sink sends at commit: what it gave up on then
                // goes to its dead letters like any other.
                self.sink_done(local, Ok(()));
            }
        }
    }
}

/// Restores node `global`'s instance on `worker` from the checkpoint the
/// run resumes from: a source seeks and resumes its watermark, an operator
/// reads its state, a sink in an exactly-once run recovers to the
/// checkpoint (publishing what it pre-committed, discarding the rest).
pub(super) fn restore(
    run: &RunContext<'_>,
    global: usize,
    worker: usize,
    runner: &mut Runner,
) -> Result<(), RunError> {
    let restored = run.restored;
    let found = restored.and_then(|r| r.instances.get(&(global, worker)));
    let name = &run.plan.nodes[global].name;
    let fail = |what: String| RunError::Restore {
        path: restored.map(|r| r.path.clone()).unwrap_or_default(),
        reason: format!("`{name}` (worker {worker}): {what}"),
    };
    match runner {
        Runner::Source(src) => {
            let Some(found) = found else { return Ok(()) };
            if !found.positions.is_empty() {
                src.source
                    .seek(&found.positions)
                    .map_err(|e| fail(format!("cannot seek: {e}")))?;
            }
            let now = Instant::now();
            for &(id, max_seen) in &found.watermarks {
                let mut generator = WatermarkGenerator::new(src.spec.max_out_of_orderness);
                generator.observe(max_seen);
                src.partitions.insert(
                    id,
                    Partition {
                        generator,
                        last_data: now,
                        idle: false,
                    },
                );
            }
        }
        Runner::Op(rt) => {
            if let Some(bytes) = found.and_then(|f| f.state.as_deref()) {
                // The file is this worker's own (worker counts must match),
                // so it holds exactly the keys routed here.
                OperatorState::restore(bytes, &GroupRange::all(), &mut *rt.op, &mut rt.cx)
                    .map_err(|e| fail(e.to_string()))?;
            }
            rt.op.open(&mut rt.cx);
        }
        Runner::Sink(sink, _) => {
            if run.exactly_once {
                sink.recover(restored.map(|r| r.id))
                    .map_err(|e| fail(format!("cannot recover its output: {e}")))?;
            }
        }
    }
    Ok(())
}
