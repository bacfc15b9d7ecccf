//! Running a plan: worker threads, channels, watermarks and shutdown.
//!
//! Every group of fused nodes (see [`topology`]) runs as `workers` threads,
//! instance `w` owning worker `w`'s source splits and key groups. Batches,
//! watermarks, idleness and end-of-input travel between groups over bounded
//! channels; a full channel blocks the sender (backpressure up to the
//! sources). When a bounded source ends, or the run is stopped, end-of-input
//! flows down the graph and every operator flushes what it holds.

mod channel;
mod checkpoint;
mod emissions;
mod errors;
mod instance;
mod persist;
mod recovery;
mod topology;
mod tracker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eddy_core::component::{BuildContext, NodeContext, Prepared};
use eddy_core::config::check_workers;
use eddy_core::{Batch, Event, Timestamp};
use hdrhistogram::Histogram;

use crate::metrics::{Metrics, Role};
use crate::plan::Plan;
use crate::registry::Factory;
use channel::{bounded, Rx, Tx};

pub use checkpoint::{CompletedCheckpoint, Coordinator, InstanceState};
pub use errors::{ErrorLog, Failure, ReportedError, RunError};
pub use persist::{CheckpointMeta, InstanceMeta, NodeMeta};
pub use recovery::Restore;
pub use topology::{Route, Topology};
pub use tracker::InputTracker;

/// Receives every batch a node emits, for live streaming (WebSocket hub).
pub trait Publisher: Send + Sync {
    /// Which nodes to publish (checked once at start).
    fn wants(&self, node: &str) -> bool;
    /// Called once per emitted batch of a wanted node, with the name of the
    /// output it left by (`main`, `dead_letters`, `late`, …).
    fn publish(&self, node: &str, output: &str, events: &[Event]);
}

/// How to run a plan.
#[derive(Clone)]
pub struct RunOptions {
    /// Worker threads per group.
    pub workers: usize,
    /// Stop after this long (unbounded sources otherwise run until stopped).
    pub duration: Option<Duration>,
    /// Set to stop the run: sources end and operators flush.
    pub stop: Arc<AtomicBool>,
    /// Live output hook.
    pub publisher: Option<Arc<dyn Publisher>>,
    /// Processing-time tick for timers.
    pub tick: Duration,
    /// Batches buffered per channel before senders wait.
    pub channel_capacity: usize,
    /// Seed for generators.
    pub seed: u64,
    /// Which checkpoint to resume from (with `[checkpoint]`).
    pub restore: Restore,
    /// Resume even if some checkpointed state no longer fits the pipeline
    /// (that state is dropped).
    pub allow_non_restored_state: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            duration: None,
            stop: Arc::new(AtomicBool::new(false)),
            publisher: None,
            tick: Duration::from_millis(100),
            channel_capacity: 64,
            seed: 0,
            restore: Restore::Latest,
            allow_non_restored_state: false,
        }
    }
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunReport {
    /// Wall-clock time from start until the last worker finished.
    pub elapsed: Duration,
    /// Final counters.
    pub metrics: Arc<Metrics>,
    /// Per sink node name: latency from source read to sink write, in µs.
    pub latency_us: Vec<(String, Histogram<u64>)>,
    /// Errors seen, e.g. unreadable files or failed writes: all counted,
    /// the first [`ErrorLog::KEPT`] kept, each with its domain and retry hint.
    pub errors: ErrorLog,
}

/// A message on a channel between groups.
pub(crate) enum Msg {
    Data(Batch),
    Watermark(Timestamp),
    Idle,
    /// Checkpoint barrier: everything the sender sent before it belongs to
    /// the checkpoint, everything after to the next.
    Barrier(u64),
    End,
}

/// A message with its input slot and sending instance.
pub(crate) struct Envelope {
    pub slot: usize,
    pub sender: usize,
    pub msg: Msg,
}

/// How far the run has drained after its sources ended: sources commit
/// their final positions only once every downstream instance has flushed.
#[derive(Default)]
pub(crate) struct Drain {
    /// Instances that are not fed by a source of their own and still run.
    pub downstream_live: std::sync::atomic::AtomicUsize,
    /// A sink failed its final flush: positions must not be committed.
    pub flush_failed: AtomicBool,
}

/// What every instance of a run is built from.
pub(crate) struct RunContext<'a> {
    pub plan: &'a Plan,
    pub topo: &'a Topology,
    /// Per channel head, one sender per worker.
    pub(crate) senders: &'a [Vec<Tx<Envelope>>],
    pub metrics: &'a Arc<Metrics>,
    pub opts: &'a RunOptions,
    pub deadline: Option<Instant>,
    pub checkpoints: &'a Arc<Coordinator>,
    pub workers: usize,
    pub batch_size: usize,
    pub data_dir: std::path::PathBuf,
    pub drain: &'a Arc<Drain>,
    /// Per node, what its factory's `prepare` made for this run.
    pub prepared: &'a [Option<Prepared>],
    /// The checkpoint the run resumes from.
    pub restored: Option<&'a recovery::Restored>,
    /// Checkpoints are durable and sinks exactly-once.
    pub exactly_once: bool,
    /// Sources stop reading after injecting this barrier (savepoints).
    pub pause_after: Arc<AtomicU64>,
    /// Instances leave at once, without flushing.
    pub halt: Arc<AtomicBool>,
    /// Spilling of state beyond `[pipeline] state_memory`.
    pub spill: Option<eddy_core::state::Spill>,
    /// Firings being passed on, which sources wait for, when the
    /// instance threads outnumber the cores (see [`emissions`]).
    pub emissions: Option<Arc<emissions::Emissions>>,
}

impl RunContext<'_> {
    /// What a factory's `prepare` gets for node `node`.
    pub fn node_context(&self, node: usize) -> NodeContext {
        let metrics = &self.metrics.nodes[node];
        NodeContext {
            name: metrics.name.clone(),
            metrics: metrics.component.clone(),
            workers: self.workers,
            batch_size: self.batch_size,
            data_dir: self.data_dir.clone(),
            seed: self.opts.seed,
            limits: self.plan.settings.limits.clone(),
            outputs: self.plan.nodes[node].outputs.clone(),
            pipeline: self
                .plan
                .settings
                .name
                .clone()
                .unwrap_or_else(|| "pipeline".into()),
            exactly_once: self.exactly_once,
            spill: self.spill.clone(),
            // With a live feed every node's output is shown whole.
            projection: match (&self.plan.nodes[node].factory, &self.opts.publisher) {
                (crate::registry::Factory::Source(_), None) => {
                    self.plan.projection(node).map(Arc::from)
                }
                _ => None,
            },
        }
    }

    /// What a factory gets when building the instance of `node` on `worker`.
    pub fn build_context(&self, node: usize, worker: usize) -> BuildContext {
        let prepared = self.prepared.get(node).cloned().flatten();
        BuildContext::new(&self.node_context(node), worker, prepared)
    }
}

/// A running pipeline.
pub struct Running {
    handles: Vec<JoinHandle<instance::InstanceResult>>,
    /// The checkpoint writer: the run is over only once it stored the
    /// final checkpoint.
    writer: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    checkpoints: Arc<Coordinator>,
    stop: Arc<AtomicBool>,
    /// Set when the run is over, to end the checkpoint trigger.
    ticker: Arc<AtomicBool>,
    started: Instant,
    /// Per node name, what its factory prepared for this run.
    prepared: Vec<(String, Option<Prepared>)>,
    pause_after: Arc<AtomicU64>,
    halt: Arc<AtomicBool>,
    /// Where durable checkpoints are stored (with `[checkpoint]`).
    store_dir: Option<PathBuf>,
    restored_from: Option<PathBuf>,
    /// The spill stores, deleted when the run is dropped.
    _spill: Option<Arc<eddy_state::spill::FjallSpace>>,
}

impl Running {
    /// Live counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What node `name`'s factory prepared for this run (the simulator's
    /// `ScenarioControl`, for run-time switches), if anything.
    pub fn prepared(&self, name: &str) -> Option<Prepared> {
        self.prepared
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, p)| p.clone())
    }

    /// Starts a checkpoint: sources inject a barrier, every instance reports
    /// its state as the barrier passes, sinks pre-commit. Returns its id.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoints.request()
    }

    /// The latest checkpoint every live instance has reported for.
    pub fn latest_checkpoint(&self) -> Option<CompletedCheckpoint> {
        self.checkpoints.latest()
    }

    /// Asks the run to stop: sources end, windows flush, sinks flush.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops with a savepoint: sources stop reading after its barrier,
    /// the checkpoint is stored and committed, and every instance leaves
    /// without flushing open windows, so a run resumed from it continues
    /// exactly where this one stopped. Returns the savepoint's directory,
    /// or `None` if checkpoints are not durable or it did not complete
    /// within `timeout` (the run then stops as [`Running::stop`] does).
    pub fn stop_with_savepoint(&self, timeout: Duration) -> Option<PathBuf> {
        let Some(dir) = &self.store_dir else {
            self.stop();
            return None;
        };
        self.ticker.store(true, Ordering::SeqCst);
        self.pause_after
            .store(self.checkpoints.requested() + 1, Ordering::SeqCst);
        let id = self.checkpoints.request();
        if self.checkpoints.wait_completed(id, timeout) {
            self.halt.store(true, Ordering::SeqCst);
            Some(dir.join(format!("chk-{id}")))
        } else {
            self.pause_after.store(u64::MAX, Ordering::SeqCst);
            self.stop();
            None
        }
    }

    /// The checkpoint this run resumed from, if any.
    pub fn restored_from(&self) -> Option<&PathBuf> {
        self.restored_from.as_ref()
    }

    /// Where this run stores its checkpoints (with `[checkpoint]`).
    pub fn checkpoint_dir(&self) -> Option<&PathBuf> {
        self.store_dir.as_ref()
    }

    /// Whether every worker has finished.
    pub fn is_finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Waits for every worker and returns the report.
    pub fn wait(self) -> RunReport {
        let mut latency: Vec<(String, Histogram<u64>)> = Vec::new();
        let mut errors = ErrorLog::default();
        let mut finished = self.started;
        for h in self.handles {
            match h.join() {
                Ok(r) => {
                    finished = finished.max(r.finished);
                    errors.merge(r.errors);
                    for (name, hist) in r.latency_us {
                        match latency.iter_mut().find(|(n, _)| *n == name) {
                            Some((_, total)) => {
                                let _ = total.add(&hist);
                            }
                            None => latency.push((name, hist)),
                        }
                    }
                }
                Err(_) => errors.push(ReportedError {
                    at: None,
                    failure: Failure::Panicked,
                }),
            }
        }
        self.ticker.store(true, Ordering::Relaxed);
        // Every instance ended or halted: wait for the writer to store what
        // completed (the final checkpoint of a finished run among it).
        self.checkpoints.close_persist();
        if let Some(writer) = self.writer {
            let _ = writer.join();
        }
        RunReport {
            elapsed: self.started.elapsed(),
            metrics: self.metrics,
            latency_us: latency,
            errors,
        }
    }
}

/// Builds every instance and starts the worker threads.
pub fn start(plan: &Plan, opts: RunOptions) -> Result<Running, RunError> {
    let started = Instant::now();
    if let Some(problem) = check_workers(opts.workers, &plan.settings.limits) {
        return Err(RunError::Limit(problem));
    }
    let workers = opts.workers;
    let topo = Topology::new(plan, workers);
    let metrics = Arc::new(Metrics::new(
        plan.nodes.iter().map(|n| {
            let role = match n.factory {
                Factory::Source(_) => Role::Source,
                Factory::Transform(_) => Role::Transform,
                Factory::Sink(_) => Role::Sink,
            };
            (n.name.clone(), n.kind.clone(), role, n.outputs.clone())
        }),
        workers,
    ));
    let batch_size = plan.settings.batch_size.unwrap_or(1024).max(1);
    let data_dir = std::path::PathBuf::from(
        plan.settings
            .data_dir
            .clone()
            .unwrap_or_else(|| "data".into()),
    );

    // One channel per (channel head, worker).
    let mut senders: Vec<Vec<Tx<Envelope>>> = vec![Vec::new(); plan.nodes.len()];
    let mut receivers: Vec<Vec<Option<Rx<Envelope>>>> =
        (0..plan.nodes.len()).map(|_| Vec::new()).collect();
    for &h in &topo.heads {
        if matches!(plan.nodes[h].factory, Factory::Source(_)) {
            continue;
        }
        let capacity = plan.nodes[h].buffer().unwrap_or(opts.channel_capacity);
        for _ in 0..workers {
            let (tx, rx) = bounded(capacity.max(1));
            senders[h].push(tx);
            receivers[h].push(Some(rx));
        }
    }

    // Durable checkpoints: find what to resume from, store what completes.
    let store_dir = persist::store_dir(plan);
    let restore_started = Instant::now();
    let (store, start) = match &store_dir {
        Some(dir) => {
            let store = eddy_state::checkpoint::CheckpointStore::open(dir).map_err(|e| {
                RunError::Restore {
                    path: dir.clone(),
                    reason: e.to_string(),
                }
            })?;
            let start = recovery::find(
                plan,
                &store,
                &opts.restore,
                workers,
                opts.allow_non_restored_state,
            )?;
            (Some(store), Some(start))
        }
        None => (None, None),
    };
    let last_id = start.as_ref().map_or(0, |s| s.last_id);
    let restored = start.and_then(|s| s.restored);
    let coordinator = Arc::new(Coordinator::new(plan.nodes.len() * workers, last_id));
    metrics.checkpoints.start();
    if let Some(r) = &restored {
        metrics
            .checkpoints
            .restored_id
            .store(r.id, Ordering::Relaxed);
    }

    let spill_space = match plan.settings.state_memory {
        Some(_) => {
            // The directory is emptied: never let a name (`..`, `a/b`)
            // point it elsewhere.
            let safe: String = plan
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let dir = data_dir.join("spill").join(format!("p-{safe}"));
            let space = eddy_state::spill::FjallSpace::create(&dir)
                .map_err(|e| RunError::Spill { dir, source: e })?;
            Some(Arc::new(space))
        }
        None => None,
    };
    let spill = plan
        .settings
        .state_memory
        .zip(spill_space.clone())
        .map(|(budget, space)| eddy_core::state::Spill {
            budget: budget.bytes(),
            space,
        });
    let pause_after = Arc::new(AtomicU64::new(u64::MAX));
    let halt = Arc::new(AtomicBool::new(false));
    let mut run = RunContext {
        plan,
        topo: &topo,
        senders: &senders,
        metrics: &metrics,
        opts: &opts,
        deadline: opts.duration.map(|d| Instant::now() + d),
        checkpoints: &coordinator,
        workers,
        batch_size,
        data_dir,
        drain: &Arc::new(Drain::default()),
        prepared: &[],
        restored: restored.as_ref(),
        exactly_once: store.is_some(),
        pause_after: pause_after.clone(),
        halt: halt.clone(),
        spill,
        emissions: oversubscribed(topo.heads.len() * workers)
            .then(|| Arc::new(emissions::Emissions::default())),
    };
    // Per-run objects, once per node, before any instance is built.
    let mut prepared = Vec::with_capacity(plan.nodes.len());
    for (i, node) in plan.nodes.iter().enumerate() {
        let cx = run.node_context(i);
        let made = match &node.factory {
            Factory::Source(f) => f.prepare(&cx),
            Factory::Transform(f) => f.prepare(&cx),
            Factory::Sink(f) => f.prepare(&cx),
        };
        prepared.push(made.map_err(|error| RunError::Build {
            node: node.name.clone(),
            error,
        })?);
    }
    for feed in prepared.iter().flatten() {
        if let Some(feed) = feed.get::<crate::health::HealthFeed>() {
            feed.attach(metrics.clone());
        }
    }
    run.prepared = &prepared;
    let downstream = topo
        .heads
        .iter()
        .filter(|&&h| !matches!(plan.nodes[h].factory, Factory::Source(_)))
        .count();
    run.drain
        .downstream_live
        .store(downstream * workers, Ordering::SeqCst);
    // The writer is attached before any instance runs: a checkpoint that
    // completed before it would count as completed without being stored
    // (a short run's final checkpoint did, and its sinks committed it).
    let checkpoints = run.checkpoints.clone();
    let pacing = Pacing::of(plan);
    let mut writer = None;
    if let Some(store) = store {
        let (tx, rx) = crossbeam_channel::unbounded();
        checkpoints.persist_to(tx);
        let (plan, coordinator, stats) = (
            Arc::new(plan.clone()),
            checkpoints.clone(),
            metrics.checkpoints.clone(),
        );
        let retain = plan.checkpoint.as_ref().map_or(3, |c| c.retain);
        writer = Some(
            std::thread::Builder::new()
                .name("eddy-checkpoint-writer".into())
                .spawn(move || {
                    persist::write_checkpoints(rx, store, plan, workers, retain, coordinator, stats)
                })
                .map_err(RunError::Thread)?,
        );
    }
    let mut handles = Vec::new();
    for &head in &topo.heads {
        for worker in 0..workers {
            let rx = receivers[head].get_mut(worker).and_then(Option::take);
            let inst = instance::Instance::build(&run, head, worker, rx)?;
            let name = format!("eddy-{}-{worker}", plan.nodes[head].name);
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || inst.run())
                .map_err(RunError::Thread)?;
            handles.push(handle);
        }
    }
    metrics.checkpoints.restore_ms.store(
        restore_started.elapsed().as_millis() as u64,
        Ordering::Relaxed,
    );
    let ticker = Arc::new(AtomicBool::new(false));
    {
        let (checkpoints, done) = (checkpoints.clone(), ticker.clone());
        std::thread::Builder::new()
            .name("eddy-checkpoints".into())
            .spawn(move || trigger_checkpoints(&checkpoints, &done, pacing))
            .map_err(RunError::Thread)?;
    }
    Ok(Running {
        handles,
        writer,
        metrics,
        checkpoints,
        stop: opts.stop.clone(),
        ticker,
        started,
        prepared: plan
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .zip(prepared.iter().cloned())
            .collect(),
        pause_after,
        halt,
        store_dir,
        restored_from: restored.as_ref().map(|r| r.path.clone()),
        _spill: spill_space,
    })
}

/// How often checkpoints are taken unless `[pipeline] checkpoint_interval`
/// says otherwise.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// When checkpoints are taken: `[checkpoint]`, else `[pipeline]
/// checkpoint_interval` with one at a time and no timeout.
struct Pacing {
    interval: Duration,
    min_pause: Duration,
    max_concurrent: usize,
    timeout: Duration,
}

impl Pacing {
    fn of(plan: &Plan) -> Pacing {
        let ms = |d: eddy_core::config::Duration| Duration::from_millis(d.ms().max(0) as u64);
        match &plan.checkpoint {
            Some(c) => Pacing {
                interval: ms(c.interval).max(Duration::from_millis(1)),
                min_pause: ms(c.min_pause),
                max_concurrent: c.max_concurrent.max(1),
                timeout: ms(c.timeout).max(Duration::from_millis(1)),
            },
            None => Pacing {
                interval: plan
                    .settings
                    .checkpoint_interval
                    .map_or(DEFAULT_CHECKPOINT_INTERVAL, |d| {
                        ms(d).max(Duration::from_millis(1))
                    }),
                min_pause: Duration::ZERO,
                max_concurrent: usize::MAX,
                timeout: Duration::MAX,
            },
        }
    }
}

/// Requests a checkpoint every `interval` (as pacing allows) until `done`.
fn trigger_checkpoints(checkpoints: &Coordinator, done: &AtomicBool, pacing: Pacing) {
    let mut next = Instant::now() + pacing.interval;
    while !done.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next
            && checkpoints
                .request_paced(pacing.max_concurrent, pacing.min_pause, pacing.timeout)
                .is_some()
        {
            next = now + pacing.interval;
        }
        std::thread::sleep(
            next.saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(50)),
        );
    }
}

/// Runs a plan to completion (bounded sources, duration or stop flag).
pub fn run(plan: &Plan, opts: RunOptions) -> Result<RunReport, RunError> {
    Ok(start(plan, opts)?.wait())
}

/// Whether `threads` busy threads are more than the cores this process may
/// use.
fn oversubscribed(threads: usize) -> bool {
    std::thread::available_parallelism().is_ok_and(|cores| threads > cores.get())
}
