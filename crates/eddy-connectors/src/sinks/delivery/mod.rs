//! Reliable delivery to an external system, shared by the network sinks
//! (Kafka, PostgreSQL, Redis, HTTP).
//!
//! [`Delivery`] wraps a [`Deliver`] implementation (which only knows how to
//! send one batch) and adds what every such sink needs: batching by size and
//! time, retries with exponential backoff on transient errors, a circuit
//! breaker, dead letters for records the system rejects or batches that
//! exhaust their attempts, and per-sink metrics. Network sinks also return
//! [`SinkFactory::buffer`](eddy_core::component::SinkFactory::buffer), so the
//! runtime runs them on their own threads behind a bounded channel: blocking
//! here (backoff, an open circuit) holds up only this sink until its buffer
//! is full, and then backpressure reaches the sources; nothing is dropped.
//!
//! Delivery guarantee: at-least-once. `flush` and `pre_commit` return only
//! once every buffered event was delivered or dead-lettered, so a completed
//! checkpoint never covers an event still in flight. A sink whose receiver
//! drops repeated batch keys can be [`Delivery::staged`] instead: with
//! checkpoints on, output then waits for its checkpoint and is sent under
//! keys that are the same if it must be sent again (see [`staged`]).

mod circuit;
mod retry;
pub mod staged;

use std::time::{Duration, Instant};

use eddy_core::config::Duration as ConfigDuration;
use eddy_core::metrics::{ComponentMetrics, Counter, Gauge};
use eddy_core::operator::dead_letter;
use eddy_core::time::{format_rfc3339, now_ms};
use eddy_core::{Event, Sink, SinkError, Sym, Value};

pub use circuit::{CircuitBreaker, CircuitConfig, CircuitState};
pub use retry::RetryConfig;
pub use staged::Staging;

/// What a successful send reports.
#[derive(Debug, Default, PartialEq)]
pub struct Delivered {
    /// Bytes put on the wire (payload size, for metrics).
    pub bytes: u64,
    /// Records the system refused for good, by index in the batch, with
    /// the reason; they become dead letters.
    pub rejected: Vec<(usize, String)>,
}

/// Why a send failed as a whole.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeliveryError {
    /// An outage or overload: retrying the same batch may succeed.
    #[error("{0}")]
    Transient(String),
    /// The batch can never be accepted as it is (schema mismatch, bad
    /// request): it goes to dead letters without retrying.
    #[error("{0}")]
    Permanent(String),
}

/// Sends one batch to an external system. Implementations are synchronous:
/// they run on the sink's own thread.
pub trait Deliver: Send {
    /// Sends `events`, all or nothing except for `Delivered::rejected`.
    /// `key` is set when the batch was staged for exactly-once output: the
    /// same batch always carries the same key, and a writer of a
    /// [`Delivery::staged`] sink must make the receiver apply a key once.
    fn deliver(&mut self, events: &[Event], key: Option<&str>) -> Result<Delivered, DeliveryError>;
}

/// Batching, retry and circuit-breaker settings, common to network sinks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeliveryOptions {
    /// Events per request.
    pub batch_size: usize,
    /// How long a partial batch may wait before it is sent.
    pub linger: Duration,
    /// Retry policy for transient failures.
    pub retry: RetryConfig,
    /// When to stop sending for a while.
    pub circuit: CircuitConfig,
}

impl DeliveryOptions {
    /// Options from a sink's `batch_size`, `linger`, `retry` and
    /// `circuit_breaker` settings, with the given defaults.
    pub fn new(
        batch_size: Option<usize>,
        linger: Option<ConfigDuration>,
        retry: RetryConfig,
        circuit: CircuitConfig,
        defaults: (usize, Duration),
    ) -> DeliveryOptions {
        DeliveryOptions {
            batch_size: batch_size.unwrap_or(defaults.0).max(1),
            linger: linger.map_or(defaults.1, |d| Duration::from_millis(d.ms().max(0) as u64)),
            retry,
            circuit,
        }
    }
}

/// The series every delivering sink reports.
struct DeliveryMetrics {
    records_out: Counter,
    bytes_out: Counter,
    batches: Counter,
    retries: Counter,
    failures: Counter,
    dead_letters: Counter,
    circuit_open: Gauge,
    buffered: Gauge,
}

impl DeliveryMetrics {
    fn new(m: &ComponentMetrics) -> DeliveryMetrics {
        DeliveryMetrics {
            records_out: m.counter("records_out", &[]),
            bytes_out: m.counter("bytes_out", &[]),
            batches: m.counter("batches", &[]),
            retries: m.counter("retries", &[]),
            failures: m.counter("failures", &[]),
            dead_letters: m.counter("dead_letters", &[]),
            circuit_open: m.gauge("circuit_open", &[]),
            buffered: m.gauge("buffered", &[]),
        }
    }
}

/// A [`Sink`] that delivers batches through `W` reliably.
pub struct Delivery<W: Deliver> {
    writer: W,
    name: String,
    opts: DeliveryOptions,
    breaker: CircuitBreaker,
    pending: Vec<Event>,
    pending_since: Option<Instant>,
    dead: Vec<Event>,
    metrics: DeliveryMetrics,
    /// Exactly-once: output held until its checkpoint completes.
    staging: Option<Staging>,
}

impl<W: Deliver> Delivery<W> {
    /// Wraps `writer` for the sink called `name`.
    pub fn new(
        writer: W,
        name: &str,
        opts: DeliveryOptions,
        metrics: &ComponentMetrics,
    ) -> Delivery<W> {
        Delivery {
            writer,
            name: name.to_string(),
            breaker: CircuitBreaker::new(opts.circuit),
            opts,
            pending: Vec::new(),
            pending_since: None,
            dead: Vec::new(),
            metrics: DeliveryMetrics::new(metrics),
            staging: None,
        }
    }

    /// Holds output until its checkpoint completes and sends it under
    /// deterministic keys, when `staging` is given (the run keeps
    /// checkpoints); otherwise at-least-once as before.
    pub fn staged(mut self, staging: Option<Staging>) -> Delivery<W> {
        self.staging = staging;
        self
    }

    /// The wrapped writer (tests inspect it).
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// The wrapped writer, for sinks that drive it between batches
    /// (exactly-once commits).
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    /// The breaker's state.
    pub fn circuit(&self) -> CircuitState {
        self.breaker.state()
    }

    /// Sends everything pending, in batches of `batch_size`.
    fn send_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.pending_since = None;
        self.metrics.buffered.add(-(pending.len() as i64));
        for chunk in pending.chunks(self.opts.batch_size) {
            self.send(chunk, None);
        }
    }

    /// Sends staged checkpoints in batches, each under its key.
    fn send_staged(&mut self, checkpoints: Vec<(u64, Vec<Event>)>) -> Result<(), SinkError> {
        for (id, events) in checkpoints {
            self.metrics.buffered.add(-(events.len() as i64));
            for (i, chunk) in events.chunks(self.opts.batch_size).enumerate() {
                let key = self.staging.as_ref().map(|s| s.key(id, i));
                self.send(chunk, key.as_deref());
            }
            if let Some(s) = &self.staging {
                s.sent(id)?;
            }
        }
        Ok(())
    }

    /// Delivers one batch: retries transient failures with backoff, waits
    /// while the circuit is open, dead-letters what cannot be delivered.
    fn send(&mut self, batch: &[Event], key: Option<&str>) {
        let span = tracing::info_span!(
            "sink.deliver",
            sink = %self.name,
            events = batch.len() as i64,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let _delivering = span.enter();
        let (attempts, outcome) = self.attempt(batch, key);
        span.record("attempts", i64::from(attempts));
        span.record("outcome", outcome);
    }

    /// [`Delivery::send`]'s attempts: how many were made and how the
    /// batch ended (`delivered`, `refused` or `gave_up`).
    fn attempt(&mut self, batch: &[Event], key: Option<&str>) -> (u32, &'static str) {
        let mut attempt = 0u32;
        let mut first_failure: Option<i64> = None;
        loop {
            if let Err(wait) = self.breaker.allow(Instant::now()) {
                std::thread::sleep(wait);
                continue;
            }
            attempt += 1;
            match self.writer.deliver(batch, key) {
                Ok(done) => {
                    self.closed_if_open();
                    self.metrics.batches.inc();
                    self.metrics.bytes_out.add(done.bytes);
                    let rejected = done.rejected.len();
                    self.metrics
                        .records_out
                        .add((batch.len().saturating_sub(rejected)) as u64);
                    for (i, reason) in done.rejected {
                        if let Some(e) = batch.get(i) {
                            self.dead_letter(e, reason, attempt, first_failure);
                        }
                    }
                    return (attempt, "delivered");
                }
                Err(DeliveryError::Permanent(reason)) => {
                    // The system answered, so it is up.
                    self.closed_if_open();
                    tracing::warn!(sink = %self.name, %reason, events = batch.len() as i64, "batch refused, dead-lettered");
                    for e in batch {
                        self.dead_letter(e, reason.clone(), attempt, first_failure);
                    }
                    return (attempt, "refused");
                }
                Err(DeliveryError::Transient(reason)) => {
                    let now = Instant::now();
                    first_failure.get_or_insert_with(now_ms);
                    self.metrics.failures.inc();
                    if self.breaker.failure(now) {
                        self.metrics.circuit_open.add(1);
                        tracing::warn!(sink = %self.name, %reason, "circuit open");
                    }
                    if !self.opts.retry.may_retry(attempt) {
                        let reason = format!("gave up after {attempt} attempts: {reason}");
                        tracing::warn!(sink = %self.name, %reason, events = batch.len() as i64, "batch dead-lettered");
                        for e in batch {
                            self.dead_letter(e, reason.clone(), attempt, first_failure);
                        }
                        return (attempt, "gave_up");
                    }
                    self.metrics.retries.inc();
                    std::thread::sleep(self.opts.retry.backoff(attempt));
                }
            }
        }
    }

    fn closed_if_open(&mut self) {
        if self.breaker.success() {
            self.metrics.circuit_open.add(-1);
            tracing::info!(sink = %self.name, "circuit closed, delivering again");
        }
    }

    fn dead_letter(&mut self, e: &Event, reason: String, attempts: u32, first: Option<i64>) {
        self.metrics.dead_letters.inc();
        let mut dl = dead_letter(
            &self.name,
            reason,
            Value::Map(std::sync::Arc::new(e.fields.clone())),
            e.time,
        );
        dl.fields
            .push(Sym::intern("attempts"), Value::Int(i64::from(attempts)));
        if let Some(first) = first {
            dl.fields.push(
                Sym::intern("first_failure"),
                Value::str(&format_rfc3339(first)),
            );
        }
        self.dead.push(dl);
    }
}

impl<W: Deliver> Sink for Delivery<W> {
    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        if let Some(s) = &mut self.staging {
            s.stage(events);
            self.metrics.buffered.add(events.len() as i64);
            return Ok(());
        }
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.pending.extend_from_slice(events);
        self.metrics.buffered.add(events.len() as i64);
        if self.pending.len() >= self.opts.batch_size {
            self.send_pending();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.send_pending();
        Ok(())
    }

    fn on_tick(&mut self) -> Result<(), SinkError> {
        if self
            .pending_since
            .is_some_and(|t| t.elapsed() >= self.opts.linger)
        {
            self.send_pending();
        }
        Ok(())
    }

    fn take_dead_letters(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.dead)
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        match &mut self.staging {
            Some(s) => s.seal(checkpoint),
            None => self.flush(),
        }
    }

    fn commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        let Some(s) = &mut self.staging else {
            return Ok(());
        };
        let ready = s.completed(checkpoint);
        self.send_staged(ready)
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<(), SinkError> {
        let Some(s) = &mut self.staging else {
            return Ok(());
        };
        let unsent = s.recover(restored)?;
        let held: usize = unsent.iter().map(|(_, e)| e.len()).sum();
        self.metrics.buffered.add(held as i64);
        self.send_staged(unsent)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use eddy_core::{Fields, Sym};

    use super::*;

    /// Fails according to a script, then accepts; records what it accepted.
    #[derive(Default)]
    struct Scripted {
        script: VecDeque<Result<Vec<(usize, String)>, DeliveryError>>,
        accepted: Vec<i64>,
        calls: usize,
        /// Each accepted batch's key and event times.
        keyed: Vec<(Option<String>, Vec<i64>)>,
    }

    impl Deliver for Scripted {
        fn deliver(
            &mut self,
            events: &[Event],
            key: Option<&str>,
        ) -> Result<Delivered, DeliveryError> {
            self.calls += 1;
            let rejected = match self.script.pop_front() {
                Some(Err(e)) => return Err(e),
                Some(Ok(r)) => r,
                None => Vec::new(),
            };
            for (i, e) in events.iter().enumerate() {
                if !rejected.iter().any(|(r, _)| *r == i) {
                    self.accepted.push(e.time);
                }
            }
            self.keyed.push((
                key.map(str::to_string),
                events.iter().map(|e| e.time).collect(),
            ));
            Ok(Delivered {
                bytes: events.len() as u64,
                rejected,
            })
        }
    }

    fn events(n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut f = Fields::default();
                f.push(Sym::intern("n"), Value::Int(i));
                Event::new(i, f)
            })
            .collect()
    }

    fn opts(batch: usize, attempts: u32, threshold: u32) -> DeliveryOptions {
        DeliveryOptions {
            batch_size: batch,
            linger: Duration::from_millis(0),
            retry: RetryConfig {
                attempts,
                initial_backoff: ConfigDuration::from_ms(1),
                max_backoff: ConfigDuration::from_ms(2),
            },
            circuit: CircuitConfig {
                failure_threshold: threshold,
                reset_timeout: ConfigDuration::from_ms(5),
            },
        }
    }

    fn transient() -> Result<Vec<(usize, String)>, DeliveryError> {
        Err(DeliveryError::Transient("connection refused".into()))
    }

    #[test]
    fn transient_failures_are_retried_until_delivered() {
        let metrics = ComponentMetrics::default();
        let w = Scripted {
            script: [transient(), transient(), transient()].into(),
            ..Scripted::default()
        };
        let mut d = Delivery::new(w, "out", opts(10, 0, 2), &metrics);
        d.write(&events(25)).unwrap();
        d.flush().unwrap();
        assert_eq!(d.writer().accepted, (0..25).collect::<Vec<_>>());
        assert!(d.take_dead_letters().is_empty());
        assert_eq!(metrics.total("retries"), 3);
        assert_eq!(metrics.total("records_out"), 25);
        assert_eq!(metrics.total("batches"), 3);
        assert_eq!(
            metrics.total("circuit_open"),
            0,
            "closed again after success"
        );
        assert_eq!(metrics.total("buffered"), 0);
    }

    #[test]
    fn rejected_records_and_exhausted_batches_become_dead_letters() {
        let metrics = ComponentMetrics::default();
        let w = Scripted {
            script: [
                Ok(vec![(1, "value too long".to_string())]),
                transient(),
                transient(),
                Err(DeliveryError::Permanent("column `x` is integer".into())),
            ]
            .into(),
            ..Scripted::default()
        };
        let mut d = Delivery::new(w, "out", opts(3, 2, 10), &metrics);
        d.write(&events(9)).unwrap();
        d.flush().unwrap();
        // Batch 0..3 lost event 1; batch 3..6 gave up after 2 attempts;
        // batch 6..9 was refused for good.
        assert_eq!(d.writer().accepted, vec![0, 2]);
        let dead = d.take_dead_letters();
        let times: Vec<i64> = dead.iter().map(|e| e.time).collect();
        assert_eq!(times, vec![1, 3, 4, 5, 6, 7, 8]);
        let reason = |i: usize| dead[i].fields.get(Sym::intern("reason")).cloned();
        assert_eq!(reason(0), Some(Value::str("value too long")));
        assert_eq!(
            reason(1),
            Some(Value::str("gave up after 2 attempts: connection refused"))
        );
        assert_eq!(
            dead[1].fields.get(Sym::intern("attempts")),
            Some(&Value::Int(2))
        );
        assert!(dead[1].fields.get(Sym::intern("first_failure")).is_some());
        assert_eq!(
            dead[6].fields.get(Sym::intern("attempts")),
            Some(&Value::Int(1))
        );
        assert_eq!(metrics.total("dead_letters"), 7);
    }

    #[test]
    fn the_circuit_opens_and_holds_requests_back() {
        let metrics = ComponentMetrics::default();
        let w = Scripted {
            script: [transient(), transient(), transient(), transient()].into(),
            ..Scripted::default()
        };
        let mut d = Delivery::new(w, "out", opts(100, 0, 2), &metrics);
        d.write(&events(5)).unwrap();
        let t = Instant::now();
        d.flush().unwrap();
        // Two failures open it for 5 ms each time: at least two waits.
        assert!(t.elapsed() >= Duration::from_millis(10));
        assert_eq!(d.writer().calls, 5);
        assert_eq!(d.writer().accepted.len(), 5);
        assert_eq!(d.circuit(), CircuitState::Closed { failures: 0 });
    }

    #[test]
    fn linger_sends_a_partial_batch_on_tick() {
        let metrics = ComponentMetrics::default();
        let mut d = Delivery::new(Scripted::default(), "out", opts(100, 1, 1), &metrics);
        d.write(&events(3)).unwrap();
        assert!(d.writer().accepted.is_empty());
        d.on_tick().unwrap();
        assert_eq!(d.writer().accepted.len(), 3);
    }

    /// Staged output is sent only when its checkpoint completes, under
    /// keys fixed at the barrier; after a crash before the sending ended,
    /// recovery sends the same batches under the same keys.
    #[test]
    fn staged_output_waits_for_its_checkpoint_and_resends_under_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = ComponentMetrics::default();
        let staged = |metrics: &ComponentMetrics| {
            let mut cx = eddy_core::component::BuildContext::single("hook");
            cx.data_dir = dir.path().to_path_buf();
            cx.pipeline = "p".into();
            Delivery::new(Scripted::default(), "hook", opts(2, 0, 10), metrics)
                .staged(Some(Staging::new(&cx)))
        };
        let mut d = staged(&metrics);
        d.recover(None).unwrap();
        d.write(&events(3)).unwrap();
        d.flush().unwrap();
        d.on_tick().unwrap();
        d.pre_commit(1).unwrap();
        d.write(&events(1)).unwrap();
        assert!(
            d.writer().keyed.is_empty(),
            "nothing sent before the commit"
        );
        assert_eq!(metrics.total("buffered"), 4);
        d.commit(1).unwrap();
        let first = d.writer().keyed.clone();
        assert_eq!(
            first,
            vec![
                (Some("p/hook/0/1/0".to_string()), vec![0, 1]),
                (Some("p/hook/0/1/1".to_string()), vec![2]),
            ]
        );
        d.pre_commit(2).unwrap();
        // The process dies after checkpoint 2 completed, before its commit
        // reached this sink: the run resumes from 2 and sends it; a second
        // restart finds nothing left to send.
        let mut again = staged(&metrics);
        again.recover(Some(2)).unwrap();
        assert_eq!(
            again.writer().keyed,
            vec![(Some("p/hook/0/2/0".to_string()), vec![0])]
        );
        let mut once_more = staged(&metrics);
        once_more.recover(Some(2)).unwrap();
        assert!(once_more.writer().keyed.is_empty(), "sent and removed");
    }

    #[test]
    fn unstaged_batches_carry_no_key() {
        let metrics = ComponentMetrics::default();
        let mut d = Delivery::new(Scripted::default(), "out", opts(10, 0, 10), &metrics);
        d.write(&events(3)).unwrap();
        d.pre_commit(1).unwrap();
        assert_eq!(d.writer().keyed, vec![(None, vec![0, 1, 2])]);
    }
}
