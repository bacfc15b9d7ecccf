//! One worker's instance of a group: its thread loop, routing and
//! watermark propagation.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use eddy_core::component::{BuildContext, WatermarkSpec};
use eddy_core::source::{SourcePosition, WatermarkGenerator};
use eddy_core::state::{key_group, owner_of};
use eddy_core::time::{now_ms, now_ns, MAX_TIMESTAMP, MIN_TIMESTAMP};
use eddy_core::{
    Batch, Collector, Event, Operator, Port, Sink, Source, SourcePoll, Timestamp, Value,
};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;

use super::checkpoint::{Coordinator, InstanceState};
use super::topology::{Route, Topology};
use super::tracker::InputTracker;
use super::{Envelope, Msg, Publisher, RunError, RunOptions};
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::registry::Factory;

/// What a finished instance hands back.
pub(crate) struct InstanceResult {
    pub finished: Instant,
    pub errors: Vec<String>,
    pub latency_us: Vec<(String, Histogram<u64>)>,
}

struct Partition {
    generator: WatermarkGenerator,
    last_data: Instant,
    idle: bool,
}

struct SourceRt {
    source: Box<dyn Source>,
    spec: WatermarkSpec,
    partitions: FxHashMap<u32, Partition>,
    started: Instant,
    idle: bool,
    backoff: Duration,
}

enum Runner {
    Source(Box<SourceRt>),
    Op(Box<dyn Operator>),
    Sink(Box<dyn Sink>, Histogram<u64>),
}

#[derive(Clone, Copy)]
enum Target {
    /// A fused node of this instance.
    Local { node: usize, slot: usize },
    /// The head of another group, through its channels.
    Channel { head: usize, slot: usize },
}

struct LocalNode {
    global: usize,
    runner: Runner,
    routes: [Vec<Target>; 4],
    publish: bool,
    ended: bool,
}

pub(crate) struct Instance {
    worker: usize,
    workers: usize,
    nodes: Vec<LocalNode>,
    names: Arc<Vec<String>>,
    senders: Vec<Vec<Sender<Envelope>>>,
    routes: Vec<Route>,
    rx: Option<Receiver<Envelope>>,
    tracker: Option<InputTracker>,
    metrics: Arc<Metrics>,
    publisher: Option<Arc<dyn Publisher>>,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    tick: Duration,
    batch_size: usize,
    last_origin: u64,
    errors: Vec<String>,
    checkpoints: Arc<Coordinator>,
    /// Latest barrier a source head injected.
    injected: u64,
    /// Latest completed checkpoint this instance committed.
    committed: u64,
    /// Source positions reported per pending checkpoint, committed to the
    /// source once the checkpoint completes.
    reported_positions: BTreeMap<u64, Vec<SourcePosition>>,
    /// Per (slot, sender) of the head's channel: a barrier arrived and the
    /// sender's later messages wait in `held` until all senders delivered it.
    blocked: Vec<bool>,
    held: VecDeque<Envelope>,
    /// The barrier being aligned, if any.
    aligning: Option<u64>,
}

impl Instance {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        plan: &Plan,
        topo: &Topology,
        head: usize,
        worker: usize,
        workers: usize,
        cx: &dyn Fn(&str) -> BuildContext,
        senders: &[Vec<Sender<Envelope>>],
        rx: Option<Receiver<Envelope>>,
        metrics: &Arc<Metrics>,
        opts: &RunOptions,
        deadline: Option<Instant>,
        checkpoints: &Arc<Coordinator>,
    ) -> Result<Instance, RunError> {
        let members = topo.members(head);
        let local_of = |g: usize| members.iter().position(|&m| m == g);
        let mut nodes = Vec::with_capacity(members.len());
        for &g in &members {
            let node = &plan.nodes[g];
            let fail = |message: String| RunError::Build {
                node: node.name.clone(),
                message,
            };
            let cx = cx(&node.name);
            let runner = match &node.factory {
                Factory::Source(f) => Runner::Source(Box::new(SourceRt {
                    source: f.build(&cx).map_err(|e| fail(e.message))?,
                    spec: f.watermarks(),
                    partitions: FxHashMap::default(),
                    started: Instant::now(),
                    idle: false,
                    backoff: Duration::from_millis(10),
                })),
                Factory::Transform(f) => Runner::Op(f.build(&cx).map_err(|e| fail(e.message))?),
                Factory::Sink(f) => Runner::Sink(
                    f.build(&cx).map_err(|e| fail(e.message))?,
                    Histogram::new_with_bounds(1, 60_000_000, 3)
                        .map_err(|e| fail(e.to_string()))?,
                ),
            };
            let mut routes: [Vec<Target>; 4] = Default::default();
            for (j, slot, port) in plan.consumers(g) {
                let target = if topo.fused[j] {
                    match local_of(j) {
                        Some(node) => Target::Local { node, slot },
                        None => continue,
                    }
                } else {
                    Target::Channel { head: j, slot }
                };
                routes[port as usize].push(target);
            }
            let publish = opts.publisher.as_ref().is_some_and(|p| p.wants(&node.name));
            nodes.push(LocalNode {
                global: g,
                runner,
                routes,
                publish,
                ended: false,
            });
        }
        let tracker = rx.as_ref().map(|_| {
            let forward = matches!(topo.route[head], Route::Forward);
            InputTracker::new(plan.nodes[head].inputs.len(), workers, |_, sender| {
                !forward || sender == worker
            })
        });
        // Keep only the senders this instance uses, so a channel whose
        // senders all stopped (ended or failed) disconnects.
        let mut used = vec![false; senders.len()];
        for n in &nodes {
            for t in n.routes.iter().flatten() {
                if let Target::Channel { head, .. } = t {
                    used[*head] = true;
                }
            }
        }
        let senders = senders
            .iter()
            .zip(used)
            .map(|(s, used)| if used { s.clone() } else { Vec::new() })
            .collect();
        let blocked = vec![false; tracker.as_ref().map_or(0, InputTracker::pairs)];
        Ok(Instance {
            worker,
            workers,
            nodes,
            names: Arc::new(plan.nodes.iter().map(|n| n.name.clone()).collect()),
            senders,
            routes: topo.route.clone(),
            rx,
            tracker,
            metrics: metrics.clone(),
            publisher: opts.publisher.clone(),
            stop: opts.stop.clone(),
            deadline,
            tick: opts.tick,
            batch_size: cx("").batch_size,
            last_origin: 0,
            errors: Vec::new(),
            checkpoints: checkpoints.clone(),
            injected: checkpoints.requested(),
            committed: 0,
            reported_positions: BTreeMap::new(),
            blocked,
            held: VecDeque::new(),
            aligning: None,
        })
    }

    pub(crate) fn run(mut self) -> InstanceResult {
        let mut next_tick = Instant::now() + self.tick;
        let is_source = matches!(self.nodes[0].runner, Runner::Source(_));
        while !self.nodes[0].ended {
            let stopping =
                self.stop.load(Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d);
            let mut busy = false;
            if is_source {
                if stopping {
                    self.end(0);
                    break;
                }
                busy |= self.poll_source();
            }
            if self.rx.is_some() {
                busy |= self.drain_channel(if is_source {
                    Duration::ZERO
                } else {
                    next_tick
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(20))
                });
            }
            if is_source && !self.nodes[0].ended {
                while self.injected < self.checkpoints.requested() {
                    self.injected += 1;
                    self.inject_barrier(self.injected);
                }
            }
            if self.checkpoints.completed() > self.committed {
                self.commit(self.checkpoints.completed());
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick_all();
                next_tick = now + self.tick;
            }
            if is_source && !busy {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        // Fused nodes whose inputs ended earlier were ended with them; make sure.
        for i in 0..self.nodes.len() {
            self.end(i);
        }
        let mut latency_us = Vec::new();
        for n in self.nodes {
            if let Runner::Sink(_, hist) = n.runner {
                latency_us.push((self.names[n.global].clone(), hist));
            }
        }
        InstanceResult {
            finished: Instant::now(),
            errors: self.errors,
            latency_us,
        }
    }

    /// Handles messages waiting on the head's channel (waiting up to `wait`
    /// for the first). Returns whether anything was handled.
    fn drain_channel(&mut self, wait: Duration) -> bool {
        let Some(rx) = self.rx.clone() else {
            return false;
        };
        let first = if wait.is_zero() {
            rx.try_recv().map_err(|e| e.is_disconnected())
        } else {
            rx.recv_timeout(wait)
                .map_err(|e| e == RecvTimeoutError::Disconnected)
        };
        let mut env = match first {
            Ok(env) => env,
            Err(disconnected) => {
                if disconnected {
                    // Every sender is gone (they ended or failed).
                    self.end(0);
                }
                return false;
            }
        };
        for _ in 0..256 {
            self.handle(env);
            if self.nodes[0].ended {
                break;
            }
            match rx.try_recv() {
                Ok(next) => env = next,
                Err(_) => break,
            }
        }
        true
    }

    fn handle(&mut self, env: Envelope) {
        let index = env.slot * self.workers + env.sender;
        if self.blocked.get(index).copied().unwrap_or(false) {
            self.held.push_back(env);
            return;
        }
        let Some(tracker) = self.tracker.as_mut() else {
            return;
        };
        let ended = matches!(env.msg, Msg::End);
        let advanced = match env.msg {
            Msg::Data(batch) => {
                tracker.data(env.slot, env.sender);
                self.last_origin = self.last_origin.max(batch.origin_ns);
                self.deliver(0, env.slot, batch);
                None
            }
            Msg::Watermark(wm) => tracker.watermark(env.slot, env.sender, wm),
            Msg::Idle => tracker.idle(env.slot, env.sender),
            Msg::Barrier(id) => {
                if let Some(b) = self.blocked.get_mut(index) {
                    *b = true;
                }
                self.aligning = Some(id);
                self.try_align();
                None
            }
            Msg::End => tracker.end(env.slot, env.sender),
        };
        if ended {
            // The sender that ended may have been the last one a barrier waited for.
            self.try_align();
        }
        let all_ended = self.tracker.as_ref().is_some_and(InputTracker::all_ended);
        if all_ended {
            self.end(0);
        } else if let Some(wm) = advanced {
            self.advance(0, wm);
        }
    }

    /// Once every live sender delivered the barrier being aligned: pass it
    /// through the group, unblock the senders and replay what they sent
    /// after it.
    fn try_align(&mut self) {
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
        self.barrier(0, id);
        self.blocked.iter_mut().for_each(|b| *b = false);
        for env in std::mem::take(&mut self.held) {
            self.handle(env);
        }
    }

    /// A source head starts checkpoint `id`: reports its positions and sends
    /// the barrier after everything it emitted so far.
    fn inject_barrier(&mut self, id: u64) {
        let Runner::Source(src) = &self.nodes[0].runner else {
            return;
        };
        let positions = src.source.positions();
        self.reported_positions.insert(id, positions.clone());
        let node = self.nodes[0].global;
        self.checkpoints.report(
            id,
            InstanceState {
                node,
                worker: self.worker,
                state: None,
                positions,
            },
        );
        self.forward_barrier(0, id);
    }

    /// Barrier `id` reached node `local`: snapshot or pre-commit, report,
    /// and pass it on.
    fn barrier(&mut self, local: usize, id: u64) {
        let global = self.nodes[local].global;
        let result = match &mut self.nodes[local].runner {
            Runner::Op(op) => op.snapshot().map_err(|e| e.to_string()),
            Runner::Sink(sink, _) => sink
                .pre_commit(id)
                .map(|()| None)
                .map_err(|e| e.to_string()),
            Runner::Source(_) => Ok(None),
        };
        let state = match result {
            Ok(state) => state,
            Err(e) => {
                let name = self.names[global].clone();
                self.error(local, format!("checkpoint {id} at `{name}`: {e}"));
                None
            }
        };
        self.checkpoints.report(
            id,
            InstanceState {
                node: global,
                worker: self.worker,
                state,
                positions: Vec::new(),
            },
        );
        self.forward_barrier(local, id);
    }

    fn forward_barrier(&mut self, local: usize, id: u64) {
        for port in 0..4 {
            for k in 0..self.nodes[local].routes[port].len() {
                match self.nodes[local].routes[port][k] {
                    Target::Local { node, .. } => self.barrier(node, id),
                    Target::Channel { head, slot } => {
                        self.send_control(head, slot, || Msg::Barrier(id))
                    }
                }
            }
        }
    }

    /// Checkpoint `id` completed: sinks commit what they pre-committed,
    /// sources acknowledge the positions they reported.
    fn commit(&mut self, id: u64) {
        self.committed = id;
        for local in 0..self.nodes.len() {
            let global = self.nodes[local].global;
            let result = match &mut self.nodes[local].runner {
                Runner::Sink(sink, _) => sink.commit(id).map_err(|e| e.to_string()),
                Runner::Source(src) => {
                    let positions = self.reported_positions.remove(&id);
                    self.reported_positions.retain(|k, _| *k > id);
                    match positions {
                        Some(p) => src.source.commit(&p).map_err(|e| e.to_string()),
                        None => Ok(()),
                    }
                }
                Runner::Op(_) => Ok(()),
            };
            if let Err(e) = result {
                let name = self.names[global].clone();
                self.error(local, format!("commit of checkpoint {id} at `{name}`: {e}"));
            }
        }
    }

    /// Polls the head source once. Returns whether it produced anything.
    fn poll_source(&mut self) -> bool {
        let Runner::Source(src) = &mut self.nodes[0].runner else {
            return false;
        };
        match src.source.poll(self.batch_size) {
            Ok(SourcePoll::Ready(sb)) => {
                let origin = now_ns();
                self.last_origin = origin;
                let now = Instant::now();
                let part = src
                    .partitions
                    .entry(sb.partition)
                    .or_insert_with(|| Partition {
                        generator: WatermarkGenerator::new(src.spec.max_out_of_orderness),
                        last_data: now,
                        idle: false,
                    });
                for e in &sb.events {
                    part.generator.observe(e.time);
                }
                if !sb.events.is_empty() {
                    part.last_data = now;
                    part.idle = false;
                    src.idle = false;
                }
                src.backoff = Duration::from_millis(10);
                let wm = source_watermark(src);
                self.metrics.nodes[self.nodes[0].global]
                    .events_in
                    .fetch_add(sb.events.len() as u64, Relaxed);
                self.dispatch(0, Port::Main, sb.events, origin);
                self.dispatch(0, Port::DeadLetters, sb.dead_letters, origin);
                if let Some(wm) = wm {
                    self.advance(0, wm);
                }
                true
            }
            Ok(SourcePoll::Pending) => {
                let Some(timeout) = src.spec.idle_timeout else {
                    return false;
                };
                let timeout = Duration::from_millis(timeout.max(0) as u64);
                let now = Instant::now();
                let mut changed = false;
                for p in src.partitions.values_mut() {
                    if !p.idle && now.duration_since(p.last_data) >= timeout {
                        p.idle = true;
                        changed = true;
                    }
                }
                let all_idle = src.partitions.values().all(|p| p.idle)
                    && now.duration_since(src.started) >= timeout;
                let went_idle = all_idle && !src.idle;
                src.idle |= all_idle;
                let wm = if changed { source_watermark(src) } else { None };
                if let Some(wm) = wm {
                    self.advance(0, wm);
                }
                if went_idle {
                    self.broadcast(0, Msg::Idle);
                }
                false
            }
            Ok(SourcePoll::Finished) => {
                self.end(0);
                true
            }
            Err(e) => {
                let retry = match &e {
                    eddy_core::SourceError::Other { retryable, .. } => *retryable,
                    eddy_core::SourceError::Io { .. } => false,
                };
                let backoff = src.backoff;
                src.backoff = (src.backoff * 2).min(Duration::from_secs(5));
                let name = self.names[self.nodes[0].global].clone();
                self.error(0, format!("source `{name}`: {e}"));
                if retry {
                    std::thread::sleep(backoff);
                } else {
                    self.end(0);
                }
                true
            }
        }
    }

    fn error(&mut self, local: usize, message: String) {
        self.metrics.nodes[self.nodes[local].global]
            .errors
            .fetch_add(1, Relaxed);
        if self.errors.len() < 20 {
            self.errors.push(message);
        }
    }

    /// Sends `events` emitted on `port` of node `local` to its consumers.
    fn dispatch(&mut self, local: usize, port: Port, mut events: Vec<Event>, origin: u64) {
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
    fn deliver(&mut self, local: usize, slot: usize, batch: Batch) {
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

    fn flush_out(&mut self, local: usize, mut out: Collector) {
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
    fn advance(&mut self, local: usize, wm: Timestamp) {
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

    /// All of node `local`'s inputs ended: flush it and end its consumers.
    fn end(&mut self, local: usize) {
        if self.nodes[local].ended {
            return;
        }
        self.nodes[local].ended = true;
        self.checkpoints
            .finished(self.nodes[local].global, self.worker);
        match &mut self.nodes[local].runner {
            Runner::Op(op) => {
                let mut out = Collector::new();
                out.origin_ns = self.last_origin;
                op.finish(&mut out);
                self.flush_out(local, out);
            }
            Runner::Sink(sink, _) => {
                if let Err(e) = sink.flush() {
                    let name = self.names[self.nodes[local].global].clone();
                    self.error(local, format!("sink `{name}`: {e}"));
                }
            }
            Runner::Source(_) => {}
        }
        self.broadcast(local, Msg::End);
    }

    /// Sends a control message (end, idle) to every consumer of `local`;
    /// fused consumers of an ended node end too.
    fn broadcast(&mut self, local: usize, msg: Msg) {
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

    fn tick_all(&mut self) {
        let now = now_ms();
        for local in 0..self.nodes.len() {
            if self.nodes[local].ended {
                continue;
            }
            if let Runner::Op(op) = &mut self.nodes[local].runner {
                let mut out = Collector::new();
                out.origin_ns = self.last_origin;
                op.on_tick(now, &mut out);
                self.flush_out(local, out);
            }
        }
    }

    fn send_data(&mut self, head: usize, slot: usize, batch: Batch) {
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

    fn send_control(&mut self, head: usize, slot: usize, msg: impl Fn() -> Msg) {
        if matches!(self.routes[head], Route::Forward) {
            self.send(head, self.worker, slot, msg());
        } else {
            for w in 0..self.workers {
                self.send(head, w, slot, msg());
            }
        }
    }

    fn send(&mut self, head: usize, worker: usize, slot: usize, msg: Msg) {
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

/// The source's watermark: the minimum over its active partitions, if any
/// partition has data.
fn source_watermark(src: &SourceRt) -> Option<Timestamp> {
    let wm = src
        .partitions
        .values()
        .filter(|p| !p.idle)
        .map(|p| p.generator.watermark())
        .min();
    match wm {
        Some(w) if w > MIN_TIMESTAMP => Some(w),
        None if !src.partitions.is_empty() => Some(
            src.partitions
                .values()
                .map(|p| p.generator.watermark())
                .max()
                .unwrap_or(MIN_TIMESTAMP),
        ),
        _ => None,
    }
    .filter(|w| *w < MAX_TIMESTAMP)
}
