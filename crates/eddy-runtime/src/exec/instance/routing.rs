//! Moving batches, watermarks and control messages from a node to its
//! consumers: fused calls inside the instance, channels to other groups.

use super::*;

impl Instance {
    /// Sends `events` emitted on `port` of node `local` to its consumers.
    pub(super) fn dispatch(
        &mut self,
        local: usize,
        port: Port,
        mut events: Vec<Event>,
        origin: u64,
    ) {
        if events.is_empty() {
            return;
        }
        let global = self.nodes[local].global;
        self.metrics.nodes[global].events_out[port as usize]
            .fetch_add(events.len() as u64, Relaxed);
        if self.nodes[local].publish {
            if let Some(p) = &self.publisher {
                p.publish(&self.names[global], port, &events);
            }
        }
        let n = self.nodes[local].routes[port as usize].len();
        for k in 0..n {
            let target = self.nodes[local].routes[port as usize][k];
            let batch = if k + 1 == n {
                Batch::new(std::mem::take(&mut events), origin)
            } else {
                Batch::new(events.clone(), origin)
            };
            match target {
                Target::Local { node, slot } => self.deliver(node, slot, batch),
                Target::Channel { head, slot } => self.send_data(head, slot, batch),
            }
        }
    }

    /// Feeds a batch into node `local` on input `slot`.
    pub(super) fn deliver(&mut self, local: usize, slot: usize, batch: Batch) {
        let global = self.nodes[local].global;
        self.metrics.nodes[global]
            .events_in
            .fetch_add(batch.len() as u64, Relaxed);
        match &mut self.nodes[local].runner {
            Runner::Op(op) => {
                let mut out = Collector::new();
                out.origin_ns = batch.origin_ns;
                op.process(slot, batch, &mut out);
                self.flush_out(local, out);
            }
            Runner::Sink(sink, hist) => {
                let result = sink.write(&batch.events);
                let now = now_ns();
                if batch.origin_ns > 0 && now >= batch.origin_ns {
                    let us = ((now - batch.origin_ns) / 1_000).max(1);
                    let _ = hist.record_n(us.min(60_000_000), batch.len() as u64);
                }
                if let Err(e) = result {
                    let name = self.names[global].clone();
                    self.error(local, format!("sink `{name}`: {e}"));
                }
            }
            Runner::Source(_) => {}
        }
    }

    pub(super) fn flush_out(&mut self, local: usize, mut out: Collector) {
        if out.is_empty() {
            return;
        }
        let origin = if out.origin_ns == 0 {
            self.last_origin
        } else {
            out.origin_ns
        };
        for port in Port::ALL {
            let events = out.take(port);
            self.dispatch(local, port, events, origin);
        }
    }

    /// Node `local`'s input watermark advanced to `wm`.
    pub(super) fn advance(&mut self, local: usize, wm: Timestamp) {
        let global = self.nodes[local].global;
        self.metrics.nodes[global].watermark.fetch_max(wm, Relaxed);
        if let Runner::Op(op) = &mut self.nodes[local].runner {
            let mut out = Collector::new();
            out.origin_ns = self.last_origin;
            op.on_watermark(wm, &mut out);
            self.flush_out(local, out);
        }
        for port in 0..4 {
            for k in 0..self.nodes[local].routes[port].len() {
                match self.nodes[local].routes[port][k] {
                    Target::Local { node, .. } => self.advance(node, wm),
                    Target::Channel { head, slot } => {
                        self.send_control(head, slot, || Msg::Watermark(wm))
                    }
                }
            }
        }
    }

    /// Sends a control message (end, idle) to every consumer of `local`;
    /// fused consumers of an ended node end too.
    pub(super) fn broadcast(&mut self, local: usize, msg: Msg) {
        for port in 0..4 {
            for k in 0..self.nodes[local].routes[port].len() {
                match (self.nodes[local].routes[port][k], &msg) {
                    (Target::Local { node, .. }, Msg::End) => self.end(node),
                    (Target::Local { .. }, _) => {}
                    (Target::Channel { head, slot }, Msg::End) => {
                        self.send_control(head, slot, || Msg::End)
                    }
                    (Target::Channel { head, slot }, _) => {
                        self.send_control(head, slot, || Msg::Idle)
                    }
                }
            }
        }
    }

    pub(super) fn send_data(&mut self, head: usize, slot: usize, batch: Batch) {
        match &self.routes[head] {
            Route::Forward => self.send(head, self.worker, slot, Msg::Data(batch)),
            Route::Single => self.send(head, 0, slot, Msg::Data(batch)),
            Route::Hash(keys) => {
                let keys = keys.clone();
                let mut parts: Vec<Vec<Event>> = (0..self.workers).map(|_| Vec::new()).collect();
                for e in batch.events {
                    let group = match keys.as_slice() {
                        [one] => key_group(&one.eval(&e).unwrap_or(Value::Null)),
                        many => key_group(
                            &many
                                .iter()
                                .map(|k| k.eval(&e).unwrap_or(Value::Null))
                                .collect::<Vec<_>>(),
                        ),
                    };
                    parts[owner_of(group, self.workers)].push(e);
                }
                for (w, events) in parts.into_iter().enumerate() {
                    if !events.is_empty() {
                        self.send(
                            head,
                            w,
                            slot,
                            Msg::Data(Batch::new(events, batch.origin_ns)),
                        );
                    }
                }
            }
        }
    }

    pub(super) fn send_control(&mut self, head: usize, slot: usize, msg: impl Fn() -> Msg) {
        if matches!(self.routes[head], Route::Forward) {
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
                tx.send(env).map_err(|_| ())
            }
            Err(TrySendError::Disconnected(_)) => Err(()),
        };
        if result.is_err() {
            let name = self.names[head].clone();
            if !self.errors.iter().any(|e| e.contains(&name)) {
                self.errors
                    .push(format!("`{name}` worker {worker} stopped receiving"));
            }
        }
    }
}
