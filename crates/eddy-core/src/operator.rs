//! The operator interface: what every transform implements.
//!
//! The runtime calls an operator with batches, watermarks and processing-time
//! ticks; the operator writes its results into a [`Collector`] by
//! [`Output`] id (`main`, `dead_letters`, and the outputs its factory
//! declared, see [`crate::output`]). The runtime then routes each output's
//! events to the nodes that named it as an input (`NAME` for the main
//! output, `NAME.late`, …).

use crate::event::{Batch, Event, Fields, Value};
use crate::output::Output;
use crate::state::{StateError, StateSnapshot};
use crate::symbol::Sym;
use crate::time::Timestamp;

/// Output buffers an operator writes to, one per [`Output`] id.
///
/// Buffers are created on first use, so an operator that only writes
/// `main` costs one vector; the runtime keeps one collector per node and
/// reuses it, so steady-state emission allocates nothing here.
#[derive(Debug)]
pub struct Collector {
    outputs: Vec<Vec<Event>>,
    /// Largest origin time (ns) of the inputs that produced the current output.
    pub origin_ns: u64,
    /// The stamp of the batch being processed, carried by what the operator
    /// emits from it (see [`Batch::stamp`]); the runtime sets it.
    pub stamp: Timestamp,
}

impl Default for Collector {
    fn default() -> Self {
        Collector::new()
    }
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Collector {
        Collector {
            outputs: Vec::new(),
            origin_ns: 0,
            stamp: crate::time::MIN_TIMESTAMP,
        }
    }

    #[inline]
    fn buffer(&mut self, output: Output) -> &mut Vec<Event> {
        let i = output.index();
        if i >= self.outputs.len() {
            self.outputs.resize_with(i + 1, Vec::new);
        }
        &mut self.outputs[i]
    }

    /// Emits one event on `output`.
    #[inline]
    pub fn push(&mut self, output: Output, event: Event) {
        self.buffer(output).push(event);
    }

    /// Emits many events on `output`; moves the vector when the output is empty.
    pub fn extend(&mut self, output: Output, events: Vec<Event>) {
        let buf = self.buffer(output);
        if buf.is_empty() {
            *buf = events;
        } else {
            buf.extend(events);
        }
    }

    /// Emits a batch on the main output and records its origin time.
    pub fn emit_batch(&mut self, batch: Batch) {
        self.stamp = self.stamp.max(batch.stamp);
        self.origin_ns = self.origin_ns.max(batch.origin_ns);
        self.extend(Output::MAIN, batch.events);
    }

    /// Emits a dead letter for `event` on `dead_letters`, see [`dead_letter`].
    pub fn dead_letter(&mut self, operator: &str, reason: String, event: &Event) {
        self.push(
            Output::DEAD_LETTERS,
            dead_letter(
                operator,
                reason,
                Value::Map(std::sync::Arc::new(event.fields.clone())),
                event.time,
            ),
        );
    }

    /// Takes the events buffered on `output`.
    pub fn take(&mut self, output: Output) -> Vec<Event> {
        self.outputs
            .get_mut(output.index())
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// One more than the largest output id written to since the collector
    /// was made (the runtime checks it against what the node declared).
    pub fn width(&self) -> usize {
        self.outputs.len()
    }

    /// Whether any output holds events.
    pub fn is_empty(&self) -> bool {
        self.outputs.iter().all(Vec::is_empty)
    }
}

/// Builds a dead-letter record: `{reason, stage, event, time}`. `event` is the
/// original event (a map) or the raw text that could not be decoded.
pub fn dead_letter(stage: &str, reason: String, event: Value, time: Timestamp) -> Event {
    let mut f = Fields::with_capacity(4);
    f.push(crate::sym!("reason"), Value::str(&reason));
    f.push(crate::sym!("stage"), Value::str(stage));
    f.push(crate::sym!("event"), event);
    Event::new(time, f)
}

/// Adds `source` and `position` fields to a dead letter made by a source.
pub fn with_position(mut dl: Event, source: &str, position: String) -> Event {
    dl.fields.push(Sym::intern("source"), Value::str(source));
    dl.fields
        .push(Sym::intern("position"), Value::str(&position));
    dl
}

/// A processing step in a pipeline. One instance runs per worker; instances
/// never share mutable state.
pub trait Operator: Send {
    /// Processes a batch that arrived on input `input` (the index in the
    /// node's `inputs`).
    fn process(&mut self, input: usize, batch: Batch, out: &mut Collector);

    /// The combined watermark of all inputs advanced to `watermark`: fire
    /// event-time timers (close windows, expire patterns).
    fn on_watermark(&mut self, _watermark: Timestamp, _out: &mut Collector) {}

    /// Called periodically with the processing time, for processing-time
    /// windows, timeouts and escalations.
    fn on_tick(&mut self, _now: Timestamp, _out: &mut Collector) {}

    /// All inputs ended: emit whatever is still open.
    fn finish(&mut self, _out: &mut Collector) {}

    /// Serialises the operator's state for a checkpoint. Stateless operators
    /// keep the default. Called between calls, never during one; a snapshot
    /// taken after [`Operator::finish`] restores to an operator whose
    /// `finish` emits nothing more (a run restored from its final
    /// checkpoint must not repeat output).
    fn snapshot(&mut self) -> Result<Option<StateSnapshot>, StateError> {
        Ok(None)
    }

    /// Restores state written by [`Operator::snapshot`] by an instance of
    /// the same node and worker index, before any other call. Bytes that
    /// do not decode are a [`StateError::Corrupt`], never a panic.
    fn restore(&mut self, _snapshot: StateSnapshot) -> Result<(), StateError> {
        Ok(())
    }
}
