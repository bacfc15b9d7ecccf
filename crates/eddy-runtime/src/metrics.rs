//! Runtime counters, shared by all workers and read live by the CLI (and
//! later by the `/metrics` endpoint). Updated once per batch, never per event.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use eddy_core::metrics::ComponentMetrics;
use eddy_core::output::{Output, Outputs};
use eddy_core::time::MIN_TIMESTAMP;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A source.
    Source,
    /// A transform.
    Transform,
    /// A sink.
    Sink,
}

/// Counters of one pipeline node, summed over its instances.
#[derive(Debug)]
pub struct NodeMetrics {
    /// Node name.
    pub name: String,
    /// Node type.
    pub kind: String,
    /// Source, transform or sink.
    pub role: Role,
    /// Events received (for sources: events read).
    pub events_in: AtomicU64,
    /// The node's outputs; `events_out` is indexed by their ids.
    pub outputs: Outputs,
    /// Events emitted per output, indexed by [`Output::index`].
    pub events_out: Box<[AtomicU64]>,
    /// Errors (source reads, sink writes) seen.
    pub errors: AtomicU64,
    /// Latest watermark seen by any instance (ms).
    pub watermark: AtomicI64,
    /// Instances that ended (for sources: finished reading).
    pub ended: AtomicU64,
    /// The component's own series (lag, bytes, retries, circuit state).
    pub component: Arc<ComponentMetrics>,
}

impl NodeMetrics {
    fn new(name: &str, kind: &str, role: Role, outputs: Outputs) -> NodeMetrics {
        NodeMetrics {
            name: name.to_string(),
            kind: kind.to_string(),
            role,
            events_in: AtomicU64::new(0),
            events_out: (0..outputs.len()).map(|_| AtomicU64::new(0)).collect(),
            outputs,
            errors: AtomicU64::new(0),
            watermark: AtomicI64::new(MIN_TIMESTAMP),
            ended: AtomicU64::new(0),
            component: Arc::default(),
        }
    }

    /// Events emitted on the output called `name` (`main`,
    /// `dead_letters`, `late`, …); 0 for an output the node lacks.
    pub fn out(&self, name: &str) -> u64 {
        self.outputs.get(name).map_or(0, |id| self.out_id(id))
    }

    /// Events emitted on output `id`.
    pub fn out_id(&self, id: Output) -> u64 {
        self.events_out
            .get(id.index())
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Events received.
    pub fn received(&self) -> u64 {
        self.events_in.load(Relaxed)
    }
}

/// All counters of a running pipeline.
#[derive(Debug)]
pub struct Metrics {
    /// Per node, in plan order.
    pub nodes: Vec<NodeMetrics>,
    /// Times a worker found a shuffle channel full and had to wait.
    pub backpressure_waits: AtomicU64,
    /// When the run started.
    pub started: Instant,
    /// Durable checkpoints: progress, sizes, failures and the restore.
    pub checkpoints: Arc<CheckpointMetrics>,
}

/// Checkpoint counters of a run (all zero without `[checkpoint]`).
#[derive(Debug, Default)]
pub struct CheckpointMetrics {
    /// Id of the last checkpoint stored (0: none yet).
    pub last_id: AtomicU64,
    /// When it was stored, in ms since the run started.
    pub last_at_ms: AtomicU64,
    /// From its request to stored, in ms.
    pub last_duration_ms: AtomicU64,
    /// Its size in bytes (state and positions).
    pub last_bytes: AtomicU64,
    /// Longest time one instance waited for barrier alignment, in µs, over
    /// the run.
    pub max_alignment_us: AtomicU64,
    /// Longest time one operator spent taking its snapshot at a barrier,
    /// in µs: how long the pipeline stalls for a checkpoint.
    pub max_stall_us: AtomicU64,
    /// Checkpoints stored in this run.
    pub stored: AtomicU64,
    /// Checkpoints that could not be stored.
    pub failures: AtomicU64,
    /// The checkpoint this run resumed from (0: none).
    pub restored_id: AtomicU64,
    /// How long reading and restoring it took, in ms.
    pub restore_ms: AtomicU64,
    started: std::sync::OnceLock<Instant>,
}

impl CheckpointMetrics {
    /// Records checkpoint `id` as stored after `took`, `bytes` long.
    pub fn completed(&self, id: u64, took: std::time::Duration, bytes: u64) {
        let since = self.started.get_or_init(Instant::now).elapsed();
        self.last_id.store(id, Relaxed);
        self.last_at_ms.store(since.as_millis() as u64, Relaxed);
        self.last_duration_ms
            .store(took.as_millis() as u64, Relaxed);
        self.last_bytes.store(bytes, Relaxed);
        self.stored.fetch_add(1, Relaxed);
    }

    /// Marks the start of the run (for `last_at_ms`).
    pub(crate) fn start(&self) {
        let _ = self.started.set(Instant::now());
    }
}

impl Metrics {
    pub(crate) fn new(nodes: impl Iterator<Item = (String, String, Role, Outputs)>) -> Metrics {
        Metrics {
            nodes: nodes
                .map(|(n, k, r, o)| NodeMetrics::new(&n, &k, r, o))
                .collect(),
            backpressure_waits: AtomicU64::new(0),
            started: Instant::now(),
            checkpoints: Arc::default(),
        }
    }

    /// Events read by all sources so far.
    pub fn source_events(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Source)
            .map(NodeMetrics::received)
            .sum()
    }

    /// The counters of the node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeMetrics> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
