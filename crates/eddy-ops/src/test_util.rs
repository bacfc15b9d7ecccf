//! Helpers shared by the operators' unit tests.

use eddy_core::json::JsonDecoder;
use eddy_core::operator_state::OperatorState;
use eddy_core::state::{GroupRange, StateError};
use eddy_core::{Batch, Collector, Event, Operator, OperatorContext, Timestamp};

/// Decodes JSON lines into events whose event time is their index.
pub(crate) fn events(lines: &[&str]) -> Vec<Event> {
    let mut dec = JsonDecoder::new();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| Event::new(i as i64, dec.decode(l.as_bytes()).unwrap()))
        .collect()
}

/// An operator driven as the runtime drives it: one context of its own,
/// watermarks that only advance, timers fired after them, `finish` after
/// a final watermark of +infinity.
pub(crate) struct Driven {
    pub(crate) op: Box<dyn Operator>,
    pub(crate) cx: OperatorContext,
}

/// Drives `op` owning every key group.
pub(crate) fn driven(op: impl Operator + 'static) -> Driven {
    driven_box(Box::new(op))
}

/// Drives a built operator owning every key group.
pub(crate) fn driven_box(op: Box<dyn Operator>) -> Driven {
    Driven {
        op,
        cx: eddy_state::context(GroupRange::all()),
    }
}

impl Driven {
    pub(crate) fn process(&mut self, input: usize, batch: Batch, out: &mut Collector) {
        self.op.process(input, batch, &mut self.cx, out);
    }

    pub(crate) fn on_watermark(&mut self, watermark: Timestamp, out: &mut Collector) {
        self.cx.advance(&mut *self.op, watermark, out);
    }

    pub(crate) fn on_tick(&mut self, now: Timestamp, out: &mut Collector) {
        self.cx.tick(&mut *self.op, now, out);
    }

    pub(crate) fn finish(&mut self, out: &mut Collector) {
        self.cx.end(&mut *self.op, out);
    }

    /// The state as a checkpoint stores it (empty without state).
    pub(crate) fn snapshot(&mut self) -> Vec<u8> {
        OperatorState::take(&mut *self.op, &mut self.cx)
            .map(|state| state.encode())
            .unwrap_or_default()
    }

    /// Restores what [`Driven::snapshot`] returned.
    pub(crate) fn restore(&mut self, bytes: &[u8]) -> Result<usize, StateError> {
        OperatorState::restore(bytes, &GroupRange::all(), &mut *self.op, &mut self.cx)
    }
}
