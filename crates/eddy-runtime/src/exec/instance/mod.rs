//! One worker's instance of a group: its thread loop, routing and
//! watermark propagation.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;

use super::channel::{RecvError, Rx, Tx};
use eddy_core::component::WatermarkSpec;
use eddy_core::operator_state::OperatorState;
use eddy_core::source::{PartitionId, SourcePosition, WatermarkGenerator};
use eddy_core::state::{key_group, owner_of, GroupRange};
use eddy_core::time::{now_ms, now_ns, MAX_TIMESTAMP, MIN_TIMESTAMP};
use eddy_core::{
    Batch, Collector, Event, Operator, OperatorContext, Output, Sink, Source, SourcePoll,
    Timestamp, Value,
};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;

use super::checkpoint::{Coordinator, Final, InstanceState};
use super::errors::{ErrorLog, Failure, ReportedError};
use super::persist::groups_of;
use super::topology::Route;
use super::tracker::InputTracker;
use super::{Drain, Envelope, Msg, Publisher, RunContext, RunError};
use crate::metrics::Metrics;
use crate::registry::Factory;

/// What a finished instance hands back.
pub(crate) struct InstanceResult {
    pub finished: Instant,
    pub errors: ErrorLog,
    pub latency_us: Vec<(String, Histogram<u64>)>,
}

/// How many errors one instance keeps for the run report (all are counted).
const INSTANCE_ERRORS_KEPT: usize = 20;

/// How often processing-time timers are looked at between ticks: they
/// fire this late at most (a notification's `group_wait` of 0 is sent
/// within it, not at the next 100 ms tick).
const TIMER_CHECK: Duration = Duration::from_millis(5);

/// How long a source waits for downstream to flush before giving up on
/// committing its final positions.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(120);

struct Partition {
    generator: WatermarkGenerator,
    last_data: Instant,
    idle: bool,
}

struct SourceRt {
    source: Box<dyn Source>,
    spec: WatermarkSpec,
    partitions: FxHashMap<PartitionId, Partition>,
    started: Instant,
    idle: bool,
    backoff: Duration,
}

enum Runner {
    Source(Box<SourceRt>),
    Op(Box<OpRt>),
    Sink(Box<dyn Sink>, Histogram<u64>),
}

/// An operator instance and the context the runtime keeps for it.
struct OpRt {
    op: Box<dyn Operator>,
    cx: OperatorContext,
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
    /// Consumers per output, indexed by [`Output::index`].
    routes: Vec<Vec<Target>>,
    /// Reused for every call into the operator, so emitting allocates no
    /// per-call buffers.
    out: Collector,
    publish: bool,
    ended: bool,
}

pub(crate) struct Instance {
    worker: usize,
    workers: usize,
    nodes: Vec<LocalNode>,
    senders: Vec<Vec<Tx<Envelope>>>,
    /// Per node, per input slot: how a channel edge picks the receiver.
    routes: Vec<Vec<Route>>,
    rx: Option<Rx<Envelope>>,
    tracker: Option<InputTracker>,
    metrics: Arc<Metrics>,
    publisher: Option<Arc<dyn Publisher>>,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    tick: Duration,
    batch_size: usize,
    last_origin: u64,
    errors: ErrorLog,
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
    /// The barrier being aligned, if any, and since when.
    aligning: Option<u64>,
    aligning_since: Option<Instant>,
    /// The latest barrier that passed this instance (or the checkpoint the
    /// run resumed from): a sink's output after it belongs to the next.
    last_barrier: u64,
    /// Checkpoints are durable: sinks run the exactly-once protocol and the
    /// run ends with a final checkpoint.
    exactly_once: bool,
    /// Sources stop reading once they injected this barrier (a savepoint).
    pause_after: Arc<std::sync::atomic::AtomicU64>,
    /// Leave at once, without flushing (after a savepoint completed).
    halt: Arc<AtomicBool>,
    drain: Arc<Drain>,
    /// Firings being passed on (sources wait for them; see
    /// `exec::emissions`), when threads outnumber cores.
    emissions: Option<Arc<super::emissions::Emissions>>,
}

mod barriers;
mod routing;
mod source;

use barriers::restore;
use source::source_progress;

impl Instance {
    /// Builds worker `worker`'s instance of the group headed by `head`;
    /// `rx` receives the head's channel input (none for a source head).
    pub(crate) fn build(
        run: &RunContext<'_>,
        head: usize,
        worker: usize,
        rx: Option<Rx<Envelope>>,
    ) -> Result<Instance, RunError> {
        let RunContext {
            plan,
            topo,
            opts,
            workers,
            ..
        } = *run;
        let members = topo.members(head);
        let local_of = |g: usize| members.iter().position(|&m| m == g);
        let mut nodes = Vec::with_capacity(members.len());
        for &g in &members {
            let node = &plan.nodes[g];
            let fail = |error: eddy_core::component::BuildError| RunError::Build {
                node: node.name.clone(),
                error,
            };
            let cx = run.build_context(g, worker);
            let mut runner = match &node.factory {
                Factory::Source(f) => Runner::Source(Box::new(SourceRt {
                    source: f.build(&cx).map_err(fail)?,
                    spec: f.watermarks(),
                    partitions: FxHashMap::default(),
                    started: Instant::now(),
                    idle: false,
                    backoff: Duration::from_millis(10),
                })),
                Factory::Transform(f) => Runner::Op(Box::new(OpRt {
                    op: f.build(&cx).map_err(fail)?,
                    cx: {
                        let mut cx =
                            eddy_state::context(GroupRange::new(groups_of(worker, workers)));
                        cx.piecewise = true;
                        cx
                    },
                })),
                Factory::Sink(f) => Runner::Sink(
                    f.build(&cx).map_err(fail)?,
                    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| {
                        fail(eddy_core::component::BuildError::Internal(format!(
                            "latency histogram: {e}"
                        )))
                    })?,
                ),
            };
            restore(run, g, worker, &mut runner)?;
            let mut routes: Vec<Vec<Target>> = vec![Vec::new(); node.outputs.len()];
            for (j, slot, output) in plan.consumers(g) {
                let target = if topo.fused[j] {
                    match local_of(j) {
                        Some(node) => Target::Local { node, slot },
                        None => continue,
                    }
                } else {
                    Target::Channel { head: j, slot }
                };
                if let Some(r) = routes.get_mut(output.index()) {
                    r.push(target);
                }
            }
            let publish = opts.publisher.as_ref().is_some_and(|p| p.wants(&node.name));
            nodes.push(LocalNode {
                global: g,
                runner,
                routes,
                out: Collector::new(),
                publish,
                ended: false,
            });
        }
        let tracker = rx.as_ref().map(|_| {
            let routes = &topo.route[head];
            InputTracker::new(plan.nodes[head].inputs.len(), workers, |slot, sender| {
                // A forward input is fed by the same worker only.
                !routes.get(slot).is_some_and(Route::is_forward) || sender == worker
            })
        });
        // Keep only the senders this instance uses, so a channel whose
        // senders all stopped (ended or failed) disconnects.
        let mut used = vec![false; run.senders.len()];
        for n in &nodes {
            for t in n.routes.iter().flatten() {
                if let Target::Channel { head, .. } = t {
                    used[*head] = true;
                }
            }
        }
        let senders = run
            .senders
            .iter()
            .zip(used)
            .map(|(s, used)| if used { s.clone() } else { Vec::new() })
            .collect();
        let blocked = vec![false; tracker.as_ref().map_or(0, InputTracker::pairs)];
        Ok(Instance {
            worker,
            workers,
            nodes,
            senders,
            routes: topo.route.clone(),
            rx,
            tracker,
            metrics: Arc::clone(run.metrics),
            publisher: opts.publisher.clone(),
            stop: opts.stop.clone(),
            deadline: run.deadline,
            tick: opts.tick,
            batch_size: run.batch_size,
            last_origin: 0,
            errors: ErrorLog::with_capacity(INSTANCE_ERRORS_KEPT),
            checkpoints: Arc::clone(run.checkpoints),
            injected: run.checkpoints.requested(),
            committed: 0,
            reported_positions: BTreeMap::new(),
            blocked,
            held: VecDeque::new(),
            aligning: None,
            aligning_since: None,
            last_barrier: run.checkpoints.requested(),
            exactly_once: run.exactly_once,
            pause_after: Arc::clone(&run.pause_after),
            halt: Arc::clone(&run.halt),
            drain: Arc::clone(run.drain),
            emissions: run.emissions.clone(),
        })
    }

    pub(crate) fn run(mut self) -> InstanceResult {
        let mut next_tick = Instant::now() + self.tick;
        let mut next_timers = Instant::now() + TIMER_CHECK;
        let is_source = matches!(self.nodes[0].runner, Runner::Source(_));
        let mut halted = false;
        while !self.nodes[0].ended {
            if self.halt.load(Relaxed) {
                halted = true;
                break;
            }
            let mut idle_source = false;
            if is_source {
                let stopping =
                    self.stop.load(Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d);
                if stopping {
                    self.checkpoints.input_left();
                    self.end(0);
                    break;
                }
                let paused = self.injected >= self.pause_after.load(Relaxed);
                idle_source = paused || !self.poll_source();
                while !self.nodes[0].ended && self.injected < self.checkpoints.requested() {
                    self.injected += 1;
                    self.inject_barrier(self.injected);
                }
            } else {
                // A channel head ends when all its senders did; stopping
                // reaches it from the sources.
                let wait = next_tick
                    .min(next_timers)
                    .saturating_duration_since(Instant::now());
                self.drain_channel(wait.min(Duration::from_millis(20)));
            }
            if self.checkpoints.completed() > self.committed {
                self.commit(self.checkpoints.completed());
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick_all();
                next_tick = now + self.tick;
                next_timers = now + TIMER_CHECK;
            } else if now >= next_timers {
                self.fire_due_timers();
                next_timers = now + TIMER_CHECK;
            }
            if idle_source {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if halted {
            // A savepoint completed: commit it, leave the rest staged.
            if self.checkpoints.completed() > self.committed {
                self.commit(self.checkpoints.completed());
            }
        } else if self.exactly_once {
            self.commit_final_checkpoint();
        } else if is_source {
            self.commit_final_positions();
        }
        if !is_source {
            self.drain.downstream_live.fetch_sub(1, Relaxed);
        }
        let mut latency_us = Vec::new();
        for n in self.nodes {
            if let Runner::Sink(_, hist) = n.runner {
                latency_us.push((self.metrics.nodes[n.global].name.clone(), hist));
            }
        }
        InstanceResult {
            finished: Instant::now(),
            errors: self.errors,
            latency_us,
        }
    }

    /// Handles messages waiting on the head's channel, waiting up to `wait`
    /// for the first.
    fn drain_channel(&mut self, wait: Duration) {
        let Some(rx) = self.rx.take() else {
            return;
        };
        self.drain(&rx, wait);
        self.rx = Some(rx);
    }

    fn drain(&mut self, rx: &Rx<Envelope>, wait: Duration) {
        let first = match rx.recv_timeout(wait) {
            Ok(env) => env,
            Err(RecvError::Timeout) => return,
            Err(RecvError::Disconnected) => {
                // Every sender is gone (they ended or failed).
                self.end(0);
                return;
            }
        };
        // At most 256 in a row, so ticks and checkpoints are not starved;
        // a message is taken off the channel only when it will be handled.
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(env) = next.take() {
            self.handle(env);
            handled += 1;
            if self.nodes[0].ended || handled == 256 {
                break;
            }
            next = rx.try_recv();
        }
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
                self.aligning_since.get_or_insert_with(Instant::now);
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

    /// Counts an error at node `local` and logs it for the run report
    /// with the node's type and name.
    fn error(&mut self, local: usize, failure: Failure) {
        let node = &self.metrics.nodes[self.nodes[local].global];
        node.errors.fetch_add(1, Relaxed);
        self.errors.push(ReportedError {
            at: Some((node.kind.clone(), node.name.clone())),
            failure,
        });
    }

    /// After a sink call: counts its error and sends the events it gave up
    /// on to `NAME.dead_letters`.
    pub(super) fn sink_done(&mut self, local: usize, result: Result<(), eddy_core::SinkError>) {
        if let Err(e) = result {
            self.error(local, Failure::Sink(e));
        }
        if let Runner::Sink(sink, _) = &mut self.nodes[local].runner {
            let dead = sink.take_dead_letters();
            let origin = self.last_origin;
            self.dispatch(local, Output::DEAD_LETTERS, dead, origin, MIN_TIMESTAMP);
        }
    }

    /// All of node `local`'s inputs ended: flush it and end its consumers.
    fn end(&mut self, local: usize) {
        if self.nodes[local].ended {
            return;
        }
        self.nodes[local].ended = true;
        let global = self.nodes[local].global;
        self.metrics.nodes[global].ended.fetch_add(1, Relaxed);
        let mut last = InstanceState {
            node: global,
            worker: self.worker,
            ..InstanceState::default()
        };
        let node = &mut self.nodes[local];
        match &mut node.runner {
            Runner::Op(_) => {
                // As `OperatorContext::end`, passing output on piece by piece.
                self.advance_op(local, MAX_TIMESTAMP);
                let node = &mut self.nodes[local];
                if let Runner::Op(rt) = &mut node.runner {
                    let mut out = std::mem::take(&mut node.out);
                    out.origin_ns = self.last_origin;
                    rt.cx.finish(&mut *rt.op, &mut out);
                    self.flush_out(local, out);
                }
                self.take_pieces(local, false);
                match &mut self.nodes[local].runner {
                    Runner::Op(rt) if self.exactly_once => {
                        last.state = OperatorState::take(&mut *rt.op, &mut rt.cx);
                    }
                    _ => {}
                }
            }
            Runner::Sink(sink, _) => {
                let mut result = sink.flush();
                if result.is_ok() && self.exactly_once {
                    // What came after the last barrier belongs to the next
                    // checkpoint, which will carry this instance as ended.
                    result = sink.pre_commit(self.last_barrier + 1);
                }
                if result.is_err() {
                    self.drain.flush_failed.store(true, Relaxed);
                }
                self.sink_done(local, result);
            }
            Runner::Source(src) => {
                last.positions = src.source.positions();
                last.watermarks = source_progress(src);
            }
        }
        // Everything this node emitted is delivered or queued ahead of its
        // end: a checkpoint may now stand in its final state for it.
        self.checkpoints.finished(last);
        self.propagate(local, &mut |s, node| s.end(node), || Msg::End);
    }

    /// Fires the processing-time timers due by now, between ticks.
    fn fire_due_timers(&mut self) {
        let now = now_ms();
        for local in 0..self.nodes.len() {
            let node = &mut self.nodes[local];
            let Runner::Op(rt) = &mut node.runner else {
                continue;
            };
            if node.ended {
                continue;
            }
            let mut out = std::mem::take(&mut node.out);
            out.origin_ns = self.last_origin;
            let fired = rt.cx.fire_due(&mut *rt.op, now, &mut out);
            if fired {
                self.flush_out(local, out);
                self.take_pieces(local, false);
            } else {
                // Nothing fired: the (empty) collector goes back as it was.
                self.nodes[local].out = out;
            }
        }
    }

    fn tick_all(&mut self) {
        let now = now_ms();
        for local in 0..self.nodes.len() {
            if self.nodes[local].ended {
                continue;
            }
            let node = &mut self.nodes[local];
            match &mut node.runner {
                Runner::Op(rt) => {
                    let mut out = std::mem::take(&mut node.out);
                    out.origin_ns = self.last_origin;
                    rt.cx.tick(&mut *rt.op, now, &mut out);
                    self.flush_out(local, out);
                    self.take_pieces(local, false);
                }
                Runner::Sink(sink, _) => {
                    let result = sink.on_tick();
                    self.sink_done(local, result);
                }
                Runner::Source(_) => {}
            }
        }
    }
}
