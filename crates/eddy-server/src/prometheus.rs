//! `/metrics`: the run's counters in the Prometheus text format (0.0.4).
//!
//! Names have the `eddy_` prefix and base units; counters end in
//! `_total`; every per-node series has a `node` label, the events in and
//! out also a `worker` label (the instance). A component's own
//! series (consumer lag, retries, circuit state, spilled entries) appear as
//! `eddy_<name>` with their labels plus `node`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use eddy_core::metrics::MetricKind;
use eddy_core::time::MIN_TIMESTAMP;
use eddy_runtime::metrics::{HistogramReading, Role};

use crate::status::Status;
use crate::Hub;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One sample: name suffix (empty but for a histogram's `_bucket`, `_sum`
/// and `_count`), labels and value.
type Sample = (&'static str, Vec<(String, String)>, f64);

/// One metric family: its type, help and samples.
struct Family {
    kind: &'static str,
    help: String,
    samples: Vec<Sample>,
}

/// Families by name, written in name order.
#[derive(Default)]
struct Families(BTreeMap<String, Family>);

impl Families {
    fn add(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &str,
        labels: Vec<(String, String)>,
        value: f64,
    ) {
        self.family(name, kind, help).push(("", labels, value));
    }

    fn family(&mut self, name: &str, kind: &'static str, help: &str) -> &mut Vec<Sample> {
        &mut self
            .0
            .entry(name.to_string())
            .or_insert_with(|| Family {
                kind,
                help: help.to_string(),
                samples: Vec::new(),
            })
            .samples
    }

    /// A histogram in seconds from a reading in µs.
    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: Vec<(String, String)>,
        h: &HistogramReading,
    ) {
        let samples = self.family(name, "histogram", help);
        let le = |bound: String| {
            let mut l = labels.clone();
            l.push(("le".to_string(), bound));
            l
        };
        for (bound, count) in &h.buckets {
            let bound = format!("{}", *bound as f64 / 1e6);
            samples.push(("_bucket", le(bound), *count as f64));
        }
        samples.push(("_bucket", le("+Inf".into()), h.count as f64));
        samples.push(("_sum", labels.clone(), h.sum_us as f64 / 1e6));
        samples.push(("_count", labels, h.count as f64));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.0 {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (suffix, labels, value) in &f.samples {
                out.push_str(name);
                out.push_str(suffix);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{}=\"{}\"", sanitize(k), escape(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out
    }
}

/// A metric or label name: letters, digits and `_` only.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn node(name: &str) -> Vec<(String, String)> {
    vec![("node".to_string(), name.to_string())]
}

/// The run's metrics, and the live feed's.
pub fn render(status: &Status, hub: &Hub) -> String {
    let mut f = Families::default();
    let m = status.metrics();
    let now_ms = eddy_core::time::now_ms();
    for n in &m.nodes {
        for w in 0..n.workers() {
            let worker = || {
                let mut labels = node(&n.name);
                labels.push(("worker".into(), w.to_string()));
                labels
            };
            f.add(
                "eddy_node_events_in_total",
                "counter",
                "Events a node's instance received (sources: read).",
                worker(),
                n.received_by(w) as f64,
            );
            for (id, output) in n.outputs.iter() {
                let mut labels = worker();
                labels.push(("output".into(), output.to_string()));
                f.add(
                    "eddy_node_events_out_total",
                    "counter",
                    "Events a node's instance emitted, per output (main, late, dead_letters, ...).",
                    labels,
                    n.out_by(id, w) as f64,
                );
            }
        }
        f.add(
            "eddy_node_errors_total",
            "counter",
            "Errors a node reported.",
            node(&n.name),
            n.errors.load(Relaxed) as f64,
        );
        let wm = n.watermark.load(Relaxed);
        if wm > MIN_TIMESTAMP {
            f.add(
                "eddy_node_watermark_seconds",
                "gauge",
                "The node's event-time watermark, in seconds since the Unix epoch.",
                node(&n.name),
                wm as f64 / 1000.0,
            );
            f.add(
                "eddy_node_watermark_lag_seconds",
                "gauge",
                "How far the node's watermark is behind the wall clock.",
                node(&n.name),
                (now_ms - wm) as f64 / 1000.0,
            );
        }
        f.add(
            "eddy_node_backpressure_seconds_total",
            "counter",
            "Time upstream workers were blocked because the node's input channel was full.",
            node(&n.name),
            n.backpressure_us.load(Relaxed) as f64 / 1e6,
        );
        if n.role == Role::Sink {
            f.histogram(
                "eddy_sink_latency_seconds",
                "From the source read of an event's batch to the sink's write of it.",
                node(&n.name),
                &n.latency.read(),
            );
            f.histogram(
                "eddy_sink_event_time_lag_seconds",
                "From an event's event time to the sink's write of it (wall clock).",
                node(&n.name),
                &n.event_lag.read(),
            );
        }
        for r in n.component.read() {
            let (name, kind) = match r.kind {
                MetricKind::Counter if r.name.ends_with("_total") => {
                    (format!("eddy_{}", sanitize(r.name)), "counter")
                }
                MetricKind::Counter => (format!("eddy_{}_total", sanitize(r.name)), "counter"),
                MetricKind::Gauge => (format!("eddy_{}", sanitize(r.name)), "gauge"),
            };
            let mut labels = node(&n.name);
            labels.extend(r.labels);
            f.add(
                &name,
                kind,
                "A series the node's component keeps.",
                labels,
                r.value as f64,
            );
        }
    }
    // Run-wide series: (name, kind, help, value).
    let c = &m.checkpoints;
    let ms = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64 / 1000.0;
    let us = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64 / 1e6;
    let count = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64;
    let run: [(&str, &'static str, &str, f64); 12] = [
        (
            "eddy_backpressure_waits_total",
            "counter",
            "Times a worker found a channel full and waited.",
            count(&m.backpressure_waits),
        ),
        (
            "eddy_checkpoint_last_id",
            "gauge",
            "Id of the last checkpoint stored.",
            count(&c.last_id),
        ),
        (
            "eddy_checkpoint_last_duration_seconds",
            "gauge",
            "From the last stored checkpoint's request to stored.",
            ms(&c.last_duration_ms),
        ),
        (
            "eddy_checkpoint_last_size_bytes",
            "gauge",
            "Size of the last stored checkpoint.",
            count(&c.last_bytes),
        ),
        (
            "eddy_checkpoint_max_alignment_seconds",
            "gauge",
            "Longest barrier alignment of one instance in this run.",
            us(&c.max_alignment_us),
        ),
        (
            "eddy_checkpoint_max_stall_seconds",
            "gauge",
            "Longest snapshot at a barrier in this run.",
            us(&c.max_stall_us),
        ),
        (
            "eddy_checkpoint_restore_seconds",
            "gauge",
            "Time taken to restore the checkpoint the run resumed from.",
            ms(&c.restore_ms),
        ),
        (
            "eddy_checkpoints_stored_total",
            "counter",
            "Checkpoints stored in this run.",
            count(&c.stored),
        ),
        (
            "eddy_checkpoints_failed_total",
            "counter",
            "Checkpoints that could not be stored.",
            count(&c.failures),
        ),
        (
            "eddy_websocket_connections",
            "gauge",
            "Open WebSocket connections.",
            hub.connections() as f64,
        ),
        (
            "eddy_websocket_dropped_slow_total",
            "counter",
            "WebSocket clients disconnected for falling behind.",
            hub.dropped_slow() as f64,
        ),
        (
            "eddy_websocket_events_skipped_total",
            "counter",
            "Events left out of the live feed to keep each channel within its rate.",
            hub.skipped() as f64,
        ),
    ];
    for (name, kind, help, value) in run {
        f.add(name, kind, help, vec![], value);
    }
    f.add(
        "eddy_uptime_seconds",
        "gauge",
        "Seconds since the run started.",
        vec![],
        m.started.elapsed().as_secs_f64(),
    );
    f.render()
}
