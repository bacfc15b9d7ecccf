//! The `health` source: Eddy's own health as a stream, so alert rules can
//! watch the pipeline that runs them (error rate, consumer lag, stalls).
//!
//! ```toml
//! [sources.eddy_health]
//! type = "health"
//! interval = "10s"
//!
//! [alerts.eddy_error_rate]
//! inputs = ["eddy_health"]
//! condition = "error_rate > 0.05"
//! for = "2m"
//! severity = "high"
//! ```
//!
//! Every `interval` worker 0 emits one reading, stamped with the wall
//! clock, of what happened since the previous one (see [`Reading`]). The
//! source finishes after its last reading once every other source has
//! finished, so a bounded pipeline still ends; with no other source it
//! runs until stopped. Readings follow the wall clock and the machine, so
//! unlike every other source they differ from run to run.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use eddy_core::component::{
    BuildContext, BuildError, NodeContext, Prepared, SourceFactory, WatermarkSpec,
};
use eddy_core::config::Duration;
use eddy_core::time::now_ms;
use eddy_core::{Event, Fields, Source, SourceBatch, SourceError, SourcePoll, Sym, Value};
use serde::Deserialize;

use crate::metrics::{Metrics, Role};

/// The node type, which its readings leave out of their own counts.
pub const KIND: &str = "health";

/// How often a reading is emitted when `interval` is not set.
const DEFAULT_INTERVAL_MS: i64 = 10_000;

/// `type = "health"`: readings of the run's own counters.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between readings (default 10 s).
    #[serde(default)]
    pub interval: Option<Duration>,
}

/// What the runtime hands the source once the run's counters exist.
#[derive(Debug, Default)]
pub struct HealthFeed {
    metrics: OnceLock<Arc<Metrics>>,
}

impl HealthFeed {
    /// Lets the source read `metrics` (the runtime calls this before any
    /// instance runs).
    pub(crate) fn attach(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }
}

impl SourceFactory for HealthConfig {
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(Some(Prepared::new(HealthFeed::default())))
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let feed = cx.prepared::<HealthFeed>()?;
        let interval = self.interval.map_or(DEFAULT_INTERVAL_MS, |d| d.ms()).max(1);
        Ok(Box::new(HealthSource {
            feed,
            pipeline: cx.pipeline.clone(),
            workers: cx.workers,
            interval,
            next_at: now_ms().saturating_add(interval),
            last: None,
            done: cx.worker != 0,
        }))
    }

    fn watermarks(&self) -> WatermarkSpec {
        WatermarkSpec::default()
    }
}

/// Counters summed over the run's nodes at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Events read by the other sources.
    pub events_in: u64,
    /// Dead letters emitted by any node.
    pub dead_letters: u64,
    /// Errors any node met (source reads, sink writes).
    pub errors: u64,
    /// Unread records behind every Kafka consumer.
    pub consumer_lag: i64,
    /// Times a worker waited on a full channel.
    pub backpressure_waits: u64,
    /// Checkpoints that could not be stored.
    pub checkpoint_failures: u64,
}

impl Totals {
    /// Reads the counters of `metrics`, leaving out `health` nodes.
    pub fn of(metrics: &Metrics) -> Totals {
        let mut t = Totals {
            backpressure_waits: metrics.backpressure_waits.load(Relaxed),
            checkpoint_failures: metrics.checkpoints.failures.load(Relaxed),
            ..Totals::default()
        };
        for node in metrics.nodes.iter().filter(|n| n.kind != KIND) {
            if node.role == Role::Source {
                t.events_in += node.received();
            }
            t.dead_letters += node.out("dead_letters");
            t.errors += node.errors.load(Relaxed);
            t.consumer_lag += node.component.total("consumer_lag");
        }
        t
    }
}

/// One reading: what changed between `before` and `now` over `secs`.
///
/// | field | what |
/// | --- | --- |
/// | `pipeline` | the pipeline's name |
/// | `interval_s` | seconds the reading covers |
/// | `events_in`, `events_per_s` | events the other sources read |
/// | `dead_letters`, `errors` | dead letters and errors meanwhile |
/// | `error_rate` | (dead letters + errors) / events read; 1 when nothing was read but something failed |
/// | `consumer_lag` | unread Kafka records now, summed over partitions |
/// | `backpressure_waits` | waits on full channels meanwhile |
/// | `checkpoint_failures` | checkpoints that failed, over the run |
pub fn reading(pipeline: &str, before: &Totals, now: &Totals, time: i64, secs: f64) -> Event {
    let events = now.events_in.saturating_sub(before.events_in);
    let dead = now.dead_letters.saturating_sub(before.dead_letters);
    let errors = now.errors.saturating_sub(before.errors);
    let failed = dead + errors;
    let rate = match (events, failed) {
        (0, 0) => 0.0,
        (0, _) => 1.0,
        (n, f) => f as f64 / n as f64,
    };
    let mut f = Fields::with_capacity(10);
    let mut put = |name: &str, v: Value| f.push(Sym::intern(name), v);
    put("pipeline", Value::str(pipeline));
    put("interval_s", Value::Float(secs));
    put("events_in", Value::Int(events as i64));
    put("events_per_s", Value::Float(events as f64 / secs.max(1e-3)));
    put("dead_letters", Value::Int(dead as i64));
    put("errors", Value::Int(errors as i64));
    put("error_rate", Value::Float(rate));
    put("consumer_lag", Value::Int(now.consumer_lag));
    put(
        "backpressure_waits",
        Value::Int(
            now.backpressure_waits
                .saturating_sub(before.backpressure_waits) as i64,
        ),
    );
    put(
        "checkpoint_failures",
        Value::Int(now.checkpoint_failures as i64),
    );
    Event::new(time, f)
}

/// One instance; only worker 0's emits.
struct HealthSource {
    feed: Arc<HealthFeed>,
    pipeline: String,
    workers: usize,
    interval: i64,
    next_at: i64,
    /// The previous reading's totals and time.
    last: Option<(Totals, i64)>,
    done: bool,
}

impl HealthSource {
    /// Whether there are other sources and every instance of them ended.
    fn others_ended(&self, metrics: &Metrics) -> bool {
        let mut others = metrics
            .nodes
            .iter()
            .filter(|n| n.role == Role::Source && n.kind != KIND)
            .peekable();
        others.peek().is_some() && others.all(|n| n.ended.load(Relaxed) >= self.workers as u64)
    }
}

impl Source for HealthSource {
    fn poll(&mut self, _max: usize) -> Result<SourcePoll, SourceError> {
        if self.done {
            return Ok(SourcePoll::Finished);
        }
        let Some(metrics) = self.feed.metrics.get() else {
            return Ok(SourcePoll::Pending);
        };
        let ending = self.others_ended(metrics);
        let now = now_ms();
        let (before, since) = *self
            .last
            .get_or_insert((Totals::default(), now - self.interval));
        if now < self.next_at && !ending {
            return Ok(SourcePoll::Pending);
        }
        let totals = Totals::of(metrics);
        let secs = (now - since).max(1) as f64 / 1000.0;
        let event = reading(&self.pipeline, &before, &totals, now, secs);
        self.last = Some((totals, now));
        self.next_at = now.saturating_add(self.interval);
        self.done = ending;
        Ok(SourcePoll::Ready(SourceBatch {
            events: vec![event],
            ..SourceBatch::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: &Event, name: &str) -> Value {
        e.get(Sym::intern(name)).cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn a_reading_is_the_change_between_two_totals() {
        let before = Totals {
            events_in: 1_000,
            dead_letters: 10,
            errors: 1,
            consumer_lag: 50,
            backpressure_waits: 3,
            checkpoint_failures: 0,
        };
        let now = Totals {
            events_in: 3_000,
            dead_letters: 110,
            errors: 1,
            consumer_lag: 12_000,
            backpressure_waits: 7,
            checkpoint_failures: 2,
        };
        let e = reading("p", &before, &now, 42, 10.0);
        assert_eq!(e.time, 42);
        assert_eq!(field(&e, "events_in"), Value::Int(2_000));
        assert_eq!(field(&e, "events_per_s"), Value::Float(200.0));
        assert_eq!(field(&e, "dead_letters"), Value::Int(100));
        assert_eq!(field(&e, "error_rate"), Value::Float(0.05));
        assert_eq!(field(&e, "consumer_lag"), Value::Int(12_000));
        assert_eq!(field(&e, "backpressure_waits"), Value::Int(4));
        assert_eq!(field(&e, "checkpoint_failures"), Value::Int(2));
    }

    #[test]
    fn failures_with_nothing_read_are_all_errors_and_quiet_is_none() {
        let quiet = reading("p", &Totals::default(), &Totals::default(), 0, 1.0);
        assert_eq!(field(&quiet, "error_rate"), Value::Float(0.0));
        let failing = Totals {
            errors: 3,
            ..Totals::default()
        };
        let e = reading("p", &Totals::default(), &failing, 0, 1.0);
        assert_eq!(field(&e, "error_rate"), Value::Float(1.0));
    }
}
