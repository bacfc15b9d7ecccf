//! Live progress lines and the end-of-run summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_runtime::metrics::Role;
use eddy_runtime::{Metrics, RunReport};

/// Component gauges that signal an outage while non-zero.
const HEALTH_GAUGES: &[&str] = &["broker_down", "circuit_open"];

/// Prints one progress line per second from the runtime's counters.
pub struct Progress {
    metrics: Arc<Metrics>,
    last: Instant,
    last_in: u64,
}

impl Progress {
    /// A meter over `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Progress {
        Progress {
            metrics,
            last: Instant::now(),
            last_in: 0,
        }
    }

    fn sources_in(&self) -> u64 {
        self.metrics.source_events()
    }

    /// Prints a line if a second has passed.
    pub fn maybe_print(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last);
        if dt < Duration::from_secs(1) {
            return;
        }
        let total = self.sources_in();
        let rate = (total - self.last_in) as f64 / dt.as_secs_f64();
        self.last = now;
        self.last_in = total;
        let elapsed = self.metrics.started.elapsed().as_secs();
        eprintln!(
            "[{elapsed:>4}s] {} events/s · {} events · {}",
            human(rate as u64),
            human(total),
            self.outputs()
        );
    }

    fn outputs(&self) -> String {
        let mut parts = Vec::new();
        for n in &self.metrics.nodes {
            if n.kind == "window" {
                parts.push(format!("{} results from {}", human(n.out("main")), n.name));
            } else if n.role == Role::Sink {
                parts.push(format!("{} → {}", human(n.received()), n.name));
            }
            let dead = n.out("dead_letters");
            if dead > 0 {
                parts.push(format!("{} dead letters from {}", human(dead), n.name));
            }
            let late = n.out("late");
            if late > 0 {
                parts.push(format!("{} late at {}", human(late), n.name));
            }
            // Outages, so an operator watching the run sees them at once.
            for r in n.component.read() {
                if HEALTH_GAUGES.contains(&r.name) && r.value > 0 {
                    parts.push(format!("{}: {}={}", n.name, r.name, r.value));
                }
            }
        }
        if let Some(chk) = self.checkpoint() {
            parts.push(chk);
        }
        parts.join(" · ")
    }

    /// `checkpoint 12 at 30.2 s (140 ms, 4,096 bytes, alignment ≤ 310 µs)`,
    /// once one is stored;
    /// failures and the restore when there were any.
    fn checkpoint(&self) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.metrics.checkpoints;
        let mut parts = Vec::new();
        let restored = c.restored_id.load(Relaxed);
        if restored > 0 {
            parts.push(format!(
                "resumed from {restored} in {} ms",
                c.restore_ms.load(Relaxed)
            ));
        }
        let id = c.last_id.load(Relaxed);
        if id > 0 {
            parts.push(format!(
                "checkpoint {id} at {:.1} s ({} ms, {} bytes, alignment ≤ {} µs)",
                c.last_at_ms.load(Relaxed) as f64 / 1000.0,
                c.last_duration_ms.load(Relaxed),
                human(c.last_bytes.load(Relaxed)),
                human(c.max_alignment_us.load(Relaxed))
            ));
        }
        let failures = c.failures.load(Relaxed);
        if failures > 0 {
            parts.push(format!("{failures} checkpoints failed"));
        }
        (!parts.is_empty()).then(|| parts.join(" · "))
    }

    /// The final summary line(s).
    pub fn summary(&self, report: &RunReport) -> String {
        let secs = report.elapsed.as_secs_f64().max(1e-9);
        let total = self.sources_in();
        let mut s = format!(
            "done in {:.1}s: {} events ({}/s) · {}",
            secs,
            human(total),
            human((total as f64 / secs) as u64),
            self.outputs()
        );
        for n in &self.metrics.nodes {
            let spilled = n.component.total("spilled_entries");
            if spilled > 0 {
                s.push_str(&format!(
                    "\n{}: {} state entries spilled to disk (state beyond `state_memory`)",
                    n.name,
                    human(spilled as u64)
                ));
            }
        }
        for (sink, hist) in &report.latency_us {
            if !hist.is_empty() {
                s.push_str(&format!(
                    "\nlatency to {sink}: p50 {:.2} ms, p99 {:.2} ms",
                    hist.value_at_quantile(0.5) as f64 / 1000.0,
                    hist.value_at_quantile(0.99) as f64 / 1000.0
                ));
            }
        }
        s
    }
}

/// `1234567` → `1,234,567`.
pub fn human(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
