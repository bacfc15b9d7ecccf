//! The server's read-only view of a run: the pipeline's shape, its live
//! counters, the rates sampled from them each second, and whether the run
//! is still going.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use eddy_alerts::notify::AlertControl;
use eddy_alerts::rule::RuleControl;
use eddy_core::ingest::IngestQueue;
use eddy_core::metrics::MetricKind;
use eddy_core::time::{format_rfc3339, MIN_TIMESTAMP};
use eddy_runtime::metrics::{Metrics, Role};
use eddy_runtime::Plan;
use serde_json::{json, Value as Json};

/// One node of the pipeline graph.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its `type`.
    pub kind: String,
    /// `source`, `transform` or `sink`.
    pub role: &'static str,
    /// What it reads: `NODE` or `NODE.OUTPUT`.
    pub inputs: Vec<String>,
}

/// Events per second over the last sample, per node, and the share of
/// that time upstream instances were blocked on the node's full input.
#[derive(Clone, Copy, Debug, Default)]
struct Rate {
    events_in: f64,
    events_out: f64,
    backpressure: f64,
}

/// Totals per node at a sample: events in, events out, µs upstream was
/// blocked on its input.
type Totals = (u64, u64, u64);

/// The last sample of the counters: when, the totals per node, and the
/// rates since the sample before.
struct Sample {
    at: Instant,
    totals: Vec<Totals>,
    rates: Vec<Rate>,
    /// The checkpoints stored lately, newest first (see [`CHECKPOINTS_KEPT`]).
    checkpoints: std::collections::VecDeque<Json>,
}

/// Stored checkpoints the dashboard lists.
const CHECKPOINTS_KEPT: usize = 20;

/// What the server knows of the run it serves.
pub struct Status {
    pipeline: String,
    nodes: Vec<NodeInfo>,
    metrics: Arc<Metrics>,
    finished: Arc<AtomicBool>,
    sample: Mutex<Sample>,
    /// The `http` sources' queues, by source name.
    ingest: Vec<(String, Arc<IngestQueue>)>,
    alert_controls: Vec<(String, Arc<AlertControl>)>,
    rule_controls: Vec<(String, Arc<RuleControl>)>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Source => "source",
        Role::Transform => "transform",
        Role::Sink => "sink",
    }
}

impl Status {
    /// The view of a run of `plan` whose counters are `metrics`; the run
    /// sets `finished` when it is over.
    pub fn new(plan: &Plan, metrics: Arc<Metrics>, finished: Arc<AtomicBool>) -> Status {
        let nodes: Vec<NodeInfo> = plan
            .nodes
            .iter()
            .zip(&metrics.nodes)
            .map(|(n, m)| NodeInfo {
                name: n.name.clone(),
                kind: n.kind.clone(),
                role: role_name(m.role),
                inputs: n
                    .inputs
                    .iter()
                    .map(|i| {
                        let from = &plan.nodes[i.node];
                        match from.outputs.name(i.output) {
                            Some("main") | None => from.name.clone(),
                            Some(o) => format!("{}.{o}", from.name),
                        }
                    })
                    .collect(),
            })
            .collect();
        let totals = vec![(0, 0, 0); nodes.len()];
        let rates = vec![Rate::default(); nodes.len()];
        Status {
            pipeline: plan.name.clone(),
            nodes,
            metrics,
            finished,
            sample: Mutex::new(Sample {
                at: Instant::now(),
                totals,
                rates,
                checkpoints: Default::default(),
            }),
            ingest: Vec::new(),
            alert_controls: Vec::new(),
            rule_controls: Vec::new(),
        }
    }

    /// This view with the acknowledgements and silences of the run's
    /// `notify` nodes, by name.
    pub fn with_alert_controls(mut self, controls: Vec<(String, Arc<AlertControl>)>) -> Status {
        self.alert_controls = controls;
        self
    }

    /// The `notify` nodes' controls, by name.
    pub fn alert_controls(&self) -> &[(String, Arc<AlertControl>)] {
        &self.alert_controls
    }

    /// This view with the run's alert rules' controls (resolving by
    /// hand), by rule name.
    pub fn with_rule_controls(mut self, controls: Vec<(String, Arc<RuleControl>)>) -> Status {
        self.rule_controls = controls;
        self
    }

    /// The control of the alert rule called `name`.
    pub fn rule_control(&self, name: &str) -> Option<&Arc<RuleControl>> {
        self.rule_controls
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// This view with the queues of the run's `http` sources, by name.
    pub fn with_ingest(mut self, queues: Vec<(String, Arc<IngestQueue>)>) -> Status {
        self.ingest = queues;
        self
    }

    /// The queue of the `http` source named `source`.
    pub fn ingest(&self, source: &str) -> Option<&Arc<IngestQueue>> {
        self.ingest
            .iter()
            .find(|(n, _)| n == source)
            .map(|(_, q)| q)
    }

    /// The run's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The pipeline graph.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Whether the run is over.
    pub fn finished(&self) -> bool {
        self.finished.load(Relaxed)
    }

    fn totals(&self) -> Vec<Totals> {
        self.metrics
            .nodes
            .iter()
            .map(|n| (n.received(), n.out_total(), n.backpressure_us.load(Relaxed)))
            .collect()
    }

    /// Takes a sample of the counters: rates are the change since the
    /// previous sample. Notes the last checkpoint if it is new.
    pub fn sample(&self) {
        let totals = self.totals();
        let mut last = self.sample.lock().unwrap_or_else(PoisonError::into_inner);
        let secs = last.at.elapsed().as_secs_f64().max(1e-3);
        last.rates = totals
            .iter()
            .zip(&last.totals)
            .map(|(now, before)| Rate {
                events_in: now.0.saturating_sub(before.0) as f64 / secs,
                events_out: now.1.saturating_sub(before.1) as f64 / secs,
                backpressure: now.2.saturating_sub(before.2) as f64 / 1e6 / secs,
            })
            .collect();
        last.totals = totals;
        last.at = Instant::now();
        let c = &self.metrics.checkpoints;
        let id = c.last_id.load(Relaxed);
        let known = last.checkpoints.front().and_then(|j| j["id"].as_u64());
        if id > 0 && known != Some(id) {
            last.checkpoints.push_front(json!({
                "id": id,
                "at_seconds": c.last_at_ms.load(Relaxed) as f64 / 1000.0,
                "duration_ms": c.last_duration_ms.load(Relaxed),
                "bytes": c.last_bytes.load(Relaxed),
            }));
            last.checkpoints.truncate(CHECKPOINTS_KEPT);
        }
    }

    /// Parts of the run that are not well, each with the reason: the run
    /// is over, a sink's circuit is open, checkpoints are failing.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.finished() {
            problems.push("pipeline: the run is over".to_string());
        }
        for n in &self.metrics.nodes {
            if n.component.total("circuit_open") > 0 {
                problems.push(format!(
                    "{}: the circuit to its destination is open (deliveries are failing)",
                    n.name
                ));
            }
        }
        let c = &self.metrics.checkpoints;
        let (stored, failures) = (c.stored.load(Relaxed), c.failures.load(Relaxed));
        if failures > 0 && failures >= stored {
            problems.push(format!(
                "checkpoints: {failures} failed and {stored} stored in this run"
            ));
        }
        problems
    }

    /// The pipeline and its nodes as JSON (`/api/v1/pipeline`, the
    /// `metrics` channel).
    pub fn snapshot(&self, connections: usize) -> Json {
        let (rates, history) = {
            let sample = self.sample.lock().unwrap_or_else(PoisonError::into_inner);
            (sample.rates.clone(), sample.checkpoints.clone())
        };
        let nodes: Vec<Json> = self
            .nodes
            .iter()
            .zip(&self.metrics.nodes)
            .zip(rates)
            .map(|((info, m), rate)| {
                let outputs: serde_json::Map<String, Json> = m
                    .outputs
                    .iter()
                    .map(|(id, name)| (name.to_string(), json!(m.out_id(id))))
                    .collect();
                let wm = m.watermark.load(Relaxed);
                let series: Vec<Json> = m
                    .component
                    .read()
                    .into_iter()
                    .map(|r| {
                        json!({
                            "name": r.name,
                            "labels": r.labels.into_iter().map(|(k, v)| (k, Json::String(v)))
                                .collect::<serde_json::Map<_, _>>(),
                            "kind": if r.kind == MetricKind::Counter { "counter" } else { "gauge" },
                            "value": r.value,
                        })
                    })
                    .collect();
                json!({
                    "name": info.name,
                    "kind": info.kind,
                    "role": info.role,
                    "inputs": info.inputs,
                    "events_in": m.received(),
                    "events_out": outputs,
                    "in_per_second": round(rate.events_in),
                    "out_per_second": round(rate.events_out),
                    "backpressure": (rate.backpressure * 1000.0).round() / 1000.0,
                    "errors": m.errors.load(Relaxed),
                    "dead_letters": m.out("dead_letters"),
                    "watermark": (wm > MIN_TIMESTAMP).then(|| format_rfc3339(wm)),
                    "series": series,
                })
            })
            .collect();
        let c = &self.metrics.checkpoints;
        json!({
            "pipeline": self.pipeline,
            "status": if self.finished() { "finished" } else { "running" },
            "uptime_seconds": round(self.metrics.started.elapsed().as_secs_f64()),
            "nodes": nodes,
            "backpressure_waits": self.metrics.backpressure_waits.load(Relaxed),
            "checkpoints": {
                "last_id": c.last_id.load(Relaxed),
                "last_at_seconds": c.last_at_ms.load(Relaxed) as f64 / 1000.0,
                "last_duration_ms": c.last_duration_ms.load(Relaxed),
                "last_bytes": c.last_bytes.load(Relaxed),
                "stored": c.stored.load(Relaxed),
                "failures": c.failures.load(Relaxed),
                "max_alignment_us": c.max_alignment_us.load(Relaxed),
                "max_stall_us": c.max_stall_us.load(Relaxed),
                "restored_id": c.restored_id.load(Relaxed),
                "restore_ms": c.restore_ms.load(Relaxed),
                "history": history,
            },
            "websocket_connections": connections,
        })
    }
}

/// A rate to one decimal.
fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
