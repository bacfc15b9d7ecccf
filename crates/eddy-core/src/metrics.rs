//! Counters and gauges that a component registers for itself (consumer lag,
//! bytes written, retries, circuit state). The runtime gives every node one
//! [`ComponentMetrics`], shared by its instances; the CLI and the `/metrics`
//! endpoint read them live.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// Whether a series only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
}

/// One labelled series.
#[derive(Debug)]
struct Series {
    name: &'static str,
    labels: Vec<(String, String)>,
    kind: MetricKind,
    value: Arc<AtomicI64>,
}

/// A point-in-time reading of one series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Metric name, e.g. `records_out`.
    pub name: &'static str,
    /// Label pairs, e.g. `[("partition", "3")]`.
    pub labels: Vec<(String, String)>,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// The value.
    pub value: i64,
}

/// The series one pipeline node registered.
#[derive(Debug, Default)]
pub struct ComponentMetrics {
    series: Mutex<Vec<Series>>,
}

/// A handle to a counter; cheap to clone and to bump from any thread.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicI64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n as i64, Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// A handle to a gauge. Instances of a node share it, so instance-level
/// state is reported with [`Gauge::add`] deltas (the sum over instances).
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value (for series one instance owns, such as a partition's lag).
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

impl ComponentMetrics {
    fn series(
        &self,
        name: &'static str,
        labels: &[(&str, &str)],
        kind: MetricKind,
    ) -> Arc<AtomicI64> {
        let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let found = all.iter().find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        });
        if let Some(s) = found {
            return s.value.clone();
        }
        let value = Arc::new(AtomicI64::new(0));
        all.push(Series {
            name,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kind,
            value: value.clone(),
        });
        value
    }

    /// The counter `name` with `labels`, created at zero on first use.
    pub fn counter(&self, name: &'static str, labels: &[(&str, &str)]) -> Counter {
        Counter(self.series(name, labels, MetricKind::Counter))
    }

    /// The gauge `name` with `labels`, created at zero on first use.
    pub fn gauge(&self, name: &'static str, labels: &[(&str, &str)]) -> Gauge {
        Gauge(self.series(name, labels, MetricKind::Gauge))
    }

    /// Every series' current value, in registration order.
    pub fn read(&self) -> Vec<Reading> {
        let all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .map(|s| Reading {
                name: s.name,
                labels: s.labels.clone(),
                kind: s.kind,
                value: s.value.load(Relaxed),
            })
            .collect()
    }

    /// The sum of every series called `name`, whatever its labels.
    pub fn total(&self, name: &str) -> i64 {
        let all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .filter(|s| s.name == name)
            .map(|s| s.value.load(Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_share_series_by_name_and_labels() {
        let m = ComponentMetrics::default();
        m.counter("records_out", &[]).add(3);
        m.counter("records_out", &[]).inc();
        m.gauge("lag", &[("partition", "0")]).set(7);
        m.gauge("lag", &[("partition", "1")]).set(5);
        assert_eq!(m.total("records_out"), 4);
        assert_eq!(m.total("lag"), 12);
        let r = m.read();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1].labels,
            vec![("partition".to_string(), "0".to_string())]
        );
        assert_eq!(r[1].kind, MetricKind::Gauge);
    }
}
