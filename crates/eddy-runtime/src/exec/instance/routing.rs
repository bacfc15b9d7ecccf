//! Moving batches, watermarks and control messages from a node to its
//! consumers: fused calls inside the instance, channels to other groups.

use eddy_core::Expression;

use super::*;

impl Instance {
    /// Sends `events` emitted on `output` of node `local` to its consumers.
    pub(super) fn dispatch(
        &mut self,
        local: usize,
        output: Output,
        mut events: Vec<Event>,
        origin: u64,
        stamp: Timestamp,
    ) {
        if events.is_empty() {
            return;
        }
        let global = self.nodes[local].global;
        let index = output.index();
        let metrics = Arc::clone(&self.metrics);
        let metrics = &metrics.nodes[global];
        if !metrics.add_out(index, self.worker, events.len() as u64) {
            // Only the operator's own bug gets here: it wrote to an output
            // its factory did not declare. Counted and reported, not lost
            // silently and not a panic.
            let declared: Vec<&str> = metrics.outputs.iter().map(|(_, n)| n).collect();
            let message = format!(
                "wrote {} events to undeclared {output}; declared: {}",
                events.len(),
                declared.join(", ")
            );
            self.error(local, Failure::Internal(message));
            return;
        }
        if self.nodes[local].publish {
            if let Some(p) = &self.publisher {
                let name = metrics.outputs.name(output).unwrap_or_default();
                p.publish(&metrics.name, name, &events);
            }
        }
        let n = self.nodes[local].routes[index].len();
        for k in 0..n {
            let target = self.nodes[local].routes[index][k];
            let batch = if k + 1 == n {
                Batch::new(std::mem::take(&mut events), origin)
            } else {
                Batch::new(events.clone(), origin)
            }
            .stamped(stamp);
            match target {
                Target::Local { node, slot } => self.deliver(node, slot, batch),
                Target::Channel { head, slot } => self.send_data(head, slot, batch),
            }
        }
    }

    /// Feeds a batch into node `local` on input `slot`.
    pub(super) fn deliver(&mut self, local: usize, slot: usize, batch: Batch) {
        let global = self.nodes[local].global;
        self.metrics.nodes[global].add_in(self.worker, batch.len() as u64);
        let node = &mut self.nodes[local];
        match &mut node.runner {
            Runner::Op(rt) => {
                let mut out = std::mem::take(&mut node.out);
                out.origin_ns = batch.origin_ns;
                out.stamp = batch.stamp;
                rt.op.process(slot, batch, &mut rt.cx, &mut out);
                self.flush_out(local, out);
            }
            Runner::Sink(sink, hist) => {
                let result = sink.write(&batch.events);
                let now = now_ns();
                let live = &self.metrics.nodes[global];
                if batch.origin_ns > 0 && now >= batch.origin_ns {
                    let us = ((now - batch.origin_ns) / 1_000).max(1);
                    let _ = hist.record_n(us.min(60_000_000), batch.len() as u64);
                    live.latency.observe_n(us, batch.len() as u64);
                }
                let now_us = (now / 1_000) as i64;
                live.event_lag.observe_all(
                    batch
                        .events
                        .iter()
                        .map(|e| now_us.saturating_sub(e.time.saturating_mul(1_000)).max(0) as u64),
                );
                self.sink_done(local, result);
            }
            Runner::Source(_) => {}
        }
    }

    /// Routes what node `local` emitted into `out`, then keeps `out` for
    /// the node's next call.
    pub(super) fn flush_out(&mut self, local: usize, mut out: Collector) {
        if !out.is_empty() {
            let origin = if out.origin_ns == 0 {
                self.last_origin
            } else {
                out.origin_ns
            };
            for index in 0..out.width() {
                let output = Output::from_index(index);
                let events = out.take(output);
                self.dispatch(local, output, events, origin, out.stamp);
            }
        }
        out.origin_ns = 0;
        out.stamp = MIN_TIMESTAMP;
        self.nodes[local].out = out;
    }

    /// Passes on, piece by piece, the output node `local`'s operator still
    /// owes from its last call (see `Operator::resume`), so a huge firing
    /// never sits in memory at once. A `firing`'s worker takes the core a
    /// source paused for it leaves, when no other worker has (see
    /// `exec::emissions`).
    pub(super) fn take_pieces(&mut self, local: usize, firing: bool) {
        let mut claim = firing && self.emissions.is_some();
        loop {
            if claim {
                claim = !self.emissions.as_ref().is_some_and(|e| e.claim_free_core());
            }
            let node = &mut self.nodes[local];
            let Runner::Op(rt) = &mut node.runner else {
                return;
            };
            let mut out = std::mem::take(&mut node.out);
            out.origin_ns = self.last_origin;
            let more = rt.cx.resume(&mut *rt.op, &mut out);
            self.flush_out(local, out);
            if !more {
                return;
            }
        }
    }

    /// Moves node `local`'s operator (if it is one) to watermark `wm` and
    /// passes on what it emits.
    pub(super) fn advance_op(&mut self, local: usize, wm: Timestamp) {
        let node = &mut self.nodes[local];
        if let Runner::Op(rt) = &mut node.runner {
            let mut out = std::mem::take(&mut node.out);
            out.origin_ns = self.last_origin;
            rt.cx.advance(&mut *rt.op, wm, &mut out);
            // A firing: sources wait until its last piece has gone.
            let firing = !out.is_empty();
            self.flush_out(local, out);
            if let Some(e) = self.emissions.as_ref().filter(|_| firing) {
                e.start();
            }
            self.take_pieces(local, firing);
            if let Some(e) = self.emissions.as_ref().filter(|_| firing) {
                e.end();
            }
        }
    }

    /// Node `local`'s input watermark advanced to `wm`.
    pub(super) fn advance(&mut self, local: usize, wm: Timestamp) {
        let global = self.nodes[local].global;
        self.metrics.nodes[global].watermark.fetch_max(wm, Relaxed);
        self.advance_op(local, wm);
        self.propagate(local, &mut |s, node| s.advance(node, wm), || {
            Msg::Watermark(wm)
        });
    }

    /// Passes a control message on to every consumer of `local`: fused
    /// consumers through `on_local`, the others through their channels.
    pub(super) fn propagate(
        &mut self,
        local: usize,
        on_local: &mut dyn FnMut(&mut Self, usize),
        msg: impl Fn() -> Msg,
    ) {
        for output in 0..self.nodes[local].routes.len() {
            for k in 0..self.nodes[local].routes[output].len() {
                match self.nodes[local].routes[output][k] {
                    Target::Local { node, .. } => on_local(self, node),
                    Target::Channel { head, slot } => self.send_control(head, slot, &msg),
                }
            }
        }
    }

    pub(super) fn send_data(&mut self, head: usize, slot: usize, batch: Batch) {
        let parts = match self.routes[head].get(slot) {
            None | Some(Route::Forward) => vec![(self.worker, batch)],
            Some(Route::Single) => vec![(0, batch)],
            Some(Route::Hash(keys)) => partition_by_key(keys, batch, self.workers),
        };
        for (worker, batch) in parts {
            self.send(head, worker, slot, Msg::Data(batch));
        }
    }

    pub(super) fn send_control(&mut self, head: usize, slot: usize, msg: impl Fn() -> Msg) {
        if self.routes[head].get(slot).is_none_or(Route::is_forward) {
            self.send(head, self.worker, slot, msg());
        } else {
            for w in 0..self.workers {
                self.send(head, w, slot, msg());
            }
        }
    }

    pub(super) fn send(&mut self, head: usize, worker: usize, slot: usize, msg: Msg) {
        let Some(tx) = self.senders[head].get(worker) else {
            return;
        };
        let env = Envelope {
            slot,
            sender: self.worker,
            msg,
        };
        let result = match tx.try_send(env) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(env)) => {
                self.metrics.backpressure_waits.fetch_add(1, Relaxed);
                let blocked = std::time::Instant::now();
                let sent = tx.send(env).map_err(|_| ());
                self.metrics.nodes[head]
                    .backpressure_us
                    .fetch_add(blocked.elapsed().as_micros() as u64, Relaxed);
                sent
            }
            Err(TrySendError::Disconnected(_)) => Err(()),
        };
        if result.is_err() {
            let node = &self.metrics.nodes[head].name;
            let known = self.errors.iter().any(|e| {
                matches!(&e.failure, Failure::Disconnected { node: n, worker: w } if n == node && *w == worker)
            });
            if !known {
                self.errors.push(ReportedError {
                    at: None,
                    failure: Failure::Disconnected {
                        node: node.clone(),
                        worker,
                    },
                });
            }
        }
    }
}

/// Splits a batch by the worker owning each event's key group.
fn partition_by_key(keys: &[Expression], batch: Batch, workers: usize) -> Vec<(usize, Batch)> {
    let mut parts: Vec<Vec<Event>> = (0..workers).map(|_| Vec::new()).collect();
    for e in batch.events {
        let group = match keys {
            [one] => key_group(&one.eval(&e).unwrap_or(Value::Null)),
            many => key_group(
                &many
                    .iter()
                    .map(|k| k.eval(&e).unwrap_or(Value::Null))
                    .collect::<Vec<_>>(),
            ),
        };
        parts[owner_of(group, workers)].push(e);
    }
    parts
        .into_iter()
        .enumerate()
        .filter(|(_, events)| !events.is_empty())
        .map(|(w, events)| (w, Batch::new(events, batch.origin_ns).stamped(batch.stamp)))
        .collect()
}
