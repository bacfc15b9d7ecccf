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
    /// Events received (for sources: events read), per worker.
    events_in: Box<[AtomicU64]>,
    /// The node's outputs; `events_out` is indexed by their ids.
    pub outputs: Outputs,
    /// Events emitted per output (indexed by [`Output::index`]), per worker.
    events_out: Box<[Box<[AtomicU64]>]>,
    /// Errors (source reads, sink writes) seen.
    pub errors: AtomicU64,
    /// Latest watermark seen by any instance (ms).
    pub watermark: AtomicI64,
    /// Instances that ended (for sources: finished reading).
    pub ended: AtomicU64,
    /// The component's own series (lag, bytes, retries, circuit state).
    pub component: Arc<ComponentMetrics>,
    /// Time upstream instances spent blocked because this node's input
    /// channel was full, in µs: where backpressure comes from.
    pub backpressure_us: AtomicU64,
    /// Sinks: from the source read of each event's batch to its write.
    pub latency: LiveHistogram,
    /// Sinks: from each event's event time to its write (wall clock).
    pub event_lag: LiveHistogram,
}

impl NodeMetrics {
    fn new(name: &str, kind: &str, role: Role, outputs: Outputs, workers: usize) -> NodeMetrics {
        let counters = || (0..workers.max(1)).map(|_| AtomicU64::new(0)).collect();
        NodeMetrics {
            name: name.to_string(),
            kind: kind.to_string(),
            role,
            events_in: counters(),
            events_out: (0..outputs.len()).map(|_| counters()).collect(),
            outputs,
            errors: AtomicU64::new(0),
            watermark: AtomicI64::new(MIN_TIMESTAMP),
            ended: AtomicU64::new(0),
            component: Arc::default(),
            backpressure_us: AtomicU64::new(0),
            latency: LiveHistogram::new(LATENCY_BOUNDS_US),
            event_lag: LiveHistogram::new(EVENT_LAG_BOUNDS_US),
        }
    }

    /// Events emitted on the output called `name` (`main`,
    /// `dead_letters`, `late`, …); 0 for an output the node lacks.
    pub fn out(&self, name: &str) -> u64 {
        self.outputs.get(name).map_or(0, |id| self.out_id(id))
    }

    /// Events emitted on output `id`, by every worker.
    pub fn out_id(&self, id: Output) -> u64 {
        self.events_out.get(id.index()).map_or(0, |w| sum(w))
    }

    /// Events emitted on output `id` by `worker`.
    pub fn out_by(&self, id: Output, worker: usize) -> u64 {
        self.events_out
            .get(id.index())
            .and_then(|w| w.get(worker))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Events emitted on every output, by every worker.
    pub fn out_total(&self) -> u64 {
        self.events_out.iter().map(|w| sum(w)).sum()
    }

    /// Counts `n` events emitted on output `index` by `worker`; `false`
    /// when the node declared no such output.
    pub(crate) fn add_out(&self, index: usize, worker: usize, n: u64) -> bool {
        match self.events_out.get(index).and_then(|w| w.get(worker)) {
            Some(c) => {
                c.fetch_add(n, Relaxed);
                true
            }
            None => false,
        }
    }

    /// Events received, by every worker.
    pub fn received(&self) -> u64 {
        sum(&self.events_in)
    }

    /// Events received by `worker`.
    pub fn received_by(&self, worker: usize) -> u64 {
        self.events_in.get(worker).map_or(0, |c| c.load(Relaxed))
    }

    /// Counts `n` events received by `worker`.
    pub(crate) fn add_in(&self, worker: usize, n: u64) {
        if let Some(c) = self.events_in.get(worker) {
            c.fetch_add(n, Relaxed);
        }
    }

    /// The workers counted apart.
    pub fn workers(&self) -> usize {
        self.events_in.len()
    }
}

/// Bucket bounds of [`NodeMetrics::latency`], in µs: 100 µs to 1 min.
pub const LATENCY_BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 60_000_000,
];

/// Bucket bounds of [`NodeMetrics::event_lag`], in µs: 1 ms to 1 day.
pub const EVENT_LAG_BOUNDS_US: &[u64] = &[
    1_000,
    10_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    900_000_000,
    3_600_000_000,
    86_400_000_000,
];

/// A histogram the workers fill and `/metrics` reads while the run goes
/// on, in the Prometheus shape: counts per bucket (not cumulative here),
/// their sum and total. Values are in µs.
#[derive(Debug)]
pub struct LiveHistogram {
    /// Upper bounds (inclusive) of every bucket but the last (+Inf).
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

/// A reading of a [`LiveHistogram`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramReading {
    /// Per bound, how many values were at most that bound (cumulative).
    pub buckets: Vec<(u64, u64)>,
    /// All values counted (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in µs.
    pub sum_us: u64,
}

impl LiveHistogram {
    /// An empty histogram with buckets up to each of `bounds` (ascending)
    /// and one above.
    pub fn new(bounds: &'static [u64]) -> LiveHistogram {
        LiveHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    fn bucket(&self, us: u64) -> usize {
        self.bounds.partition_point(|&b| b < us)
    }

    /// Counts `n` values of `us`.
    pub fn observe_n(&self, us: u64, n: u64) {
        self.counts[self.bucket(us)].fetch_add(n, Relaxed);
        self.sum_us.fetch_add(us.saturating_mul(n), Relaxed);
    }

    /// Counts every value of `values`, touching each bucket once: when
    /// the smallest and largest fall in one bucket (the usual batch) the
    /// values are not looked at one by one.
    pub fn observe_all(&self, values: impl Iterator<Item = u64> + Clone) {
        let (mut lo, mut hi, mut n, mut sum) = (u64::MAX, 0, 0u64, 0u64);
        for v in values.clone() {
            lo = lo.min(v);
            hi = hi.max(v);
            n += 1;
            sum = sum.saturating_add(v);
        }
        if n == 0 {
            return;
        }
        self.sum_us.fetch_add(sum, Relaxed);
        let first = self.bucket(lo);
        if first == self.bucket(hi) {
            self.counts[first].fetch_add(n, Relaxed);
            return;
        }
        let mut local = vec![0u64; self.counts.len()];
        for v in values {
            local[self.bucket(v)] += 1;
        }
        for (c, n) in self.counts.iter().zip(local) {
            if n > 0 {
                c.fetch_add(n, Relaxed);
            }
        }
    }

    /// The counts so far.
    pub fn read(&self) -> HistogramReading {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, c) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += c.load(Relaxed);
            buckets.push((*bound, cumulative));
        }
        let last = self.counts.last().map_or(0, |c| c.load(Relaxed));
        HistogramReading {
            buckets,
            count: cumulative + last,
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// The sum of some counters.
fn sum(counters: &[AtomicU64]) -> u64 {
    counters.iter().map(|c| c.load(Relaxed)).sum()
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
    pub(crate) fn new(
        nodes: impl Iterator<Item = (String, String, Role, Outputs)>,
        workers: usize,
    ) -> Metrics {
        Metrics {
            nodes: nodes
                .map(|(n, k, r, o)| NodeMetrics::new(&n, &k, r, o, workers))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        static BOUNDS: &[u64] = &[10, 100];
        let h = LiveHistogram::new(BOUNDS);
        h.observe_n(10, 2);
        h.observe_n(11, 1);
        h.observe_all([5, 500, 100].into_iter());
        // One bucket only: counted without the per-value pass.
        h.observe_all([1000, 2000].into_iter());
        h.observe_all(std::iter::empty());
        let r = h.read();
        assert_eq!(r.buckets, vec![(10, 3), (100, 5)]);
        assert_eq!(r.count, 8);
        assert_eq!(r.sum_us, 20 + 11 + 605 + 3000);
    }
}
