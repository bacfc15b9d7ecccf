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
}

impl Metrics {
    pub(crate) fn new(nodes: impl Iterator<Item = (String, String, Role, Outputs)>) -> Metrics {
        Metrics {
            nodes: nodes
                .map(|(n, k, r, o)| NodeMetrics::new(&n, &k, r, o))
                .collect(),
            backpressure_waits: AtomicU64::new(0),
            started: Instant::now(),
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
