//! The operator interface: what every transform implements.
//!
//! The runtime calls an operator with batches, watermarks and processing-time
//! ticks; the operator writes its results into a [`Collector`] by output
//! [`Port`]. The runtime then routes each port's events to the nodes that
//! named it as an input (`NAME` for the main output, `NAME.late`, …).

use crate::event::{Batch, Event, Fields, Value};
use crate::state::{StateError, StateSnapshot};
use crate::symbol::Sym;
use crate::time::Timestamp;

/// An operator output. `Main` is addressed by the node name alone, the others
/// as `NAME.<suffix>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    /// The main output.
    Main = 0,
    /// Events that arrived after their window closed (`NAME.late`).
    Late = 1,
    /// Events the operator could not process, with a reason (`NAME.dead_letters`).
    DeadLetters = 2,
    /// Partial matches that timed out (`NAME.timeout`), for patterns and joins.
    Timeout = 3,
}

impl Port {
    /// Every port, in index order.
    pub const ALL: [Port; 4] = [Port::Main, Port::Late, Port::DeadLetters, Port::Timeout];

    /// The suffix that addresses this port in `inputs` (`None` for `Main`).
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Port::Main => None,
            Port::Late => Some("late"),
            Port::DeadLetters => Some("dead_letters"),
            Port::Timeout => Some("timeout"),
        }
    }

    /// Parses a suffix as written after the dot in `NAME.suffix`.
    pub fn from_suffix(s: &str) -> Option<Port> {
        Port::ALL.into_iter().find(|p| p.suffix() == Some(s))
    }
}

/// Output buffers an operator writes to, one per [`Port`].
#[derive(Default, Debug)]
pub struct Collector {
    ports: [Vec<Event>; 4],
    /// Largest origin time (ns) of the inputs that produced the current output.
    pub origin_ns: u64,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Collector {
        Collector::default()
    }

    /// Emits one event on `port`.
    #[inline]
    pub fn push(&mut self, port: Port, event: Event) {
        self.ports[port as usize].push(event);
    }

    /// Emits many events on `port`; moves the vector when the port is empty.
    pub fn extend(&mut self, port: Port, events: Vec<Event>) {
        let buf = &mut self.ports[port as usize];
        if buf.is_empty() {
            *buf = events;
        } else {
            buf.extend(events);
        }
    }

    /// Emits a batch on the main port and records its origin time.
    pub fn emit_batch(&mut self, batch: Batch) {
        self.origin_ns = self.origin_ns.max(batch.origin_ns);
        self.extend(Port::Main, batch.events);
    }

    /// Emits a dead letter for `event` on `DeadLetters`, see [`dead_letter`].
    pub fn dead_letter(&mut self, operator: &str, reason: String, event: &Event) {
        self.push(
            Port::DeadLetters,
            dead_letter(
                operator,
                reason,
                Value::Map(std::sync::Arc::new(event.fields.clone())),
                event.time,
            ),
        );
    }

    /// Takes the events buffered on `port`.
    pub fn take(&mut self, port: Port) -> Vec<Event> {
        std::mem::take(&mut self.ports[port as usize])
    }

    /// Whether any port holds events.
    pub fn is_empty(&self) -> bool {
        self.ports.iter().all(Vec::is_empty)
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
    /// keep the default.
    fn snapshot(&mut self) -> Result<Option<StateSnapshot>, StateError> {
        Ok(None)
    }

    /// Restores state written by [`Operator::snapshot`].
    fn restore(&mut self, _snapshot: StateSnapshot) -> Result<(), StateError> {
        Ok(())
    }
}
