//! Types shared by the window state machines.

use std::cell::Cell;
use std::sync::Arc;

use eddy_core::{Collector, Port, Timestamp, Value};

use super::output::Output;
use crate::aggregate::{Accumulator, AggregateSpec, Observation};

/// A grouping key: the values of the key expressions (empty when unkeyed).
/// Lookups borrow the operator's scratch `[Value]`, so only a new key
/// allocates.
pub(crate) type Key = Arc<[Value]>;

/// What happened to an event offered to a window state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It updated at least one window.
    Accepted,
    /// Every window it belongs to is past its allowed lateness.
    Late,
}

/// Why an event cannot be placed in a window.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlaceError {
    /// Window bounds would leave the timestamp range.
    #[error("event time {0} is too close to the end of the timestamp range to place in a window")]
    OutOfRange(Timestamp),
}

/// What the state machines need from the operator.
pub(crate) struct Ctx<'a> {
    specs: &'a [AggregateSpec],
    output: &'a Output,
    /// Results emitted through this context.
    emitted: Cell<usize>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(specs: &'a [AggregateSpec], output: &'a Output) -> Ctx<'a> {
        Ctx {
            specs,
            output,
            emitted: Cell::new(0),
        }
    }

    pub(crate) fn emitted(&self) -> usize {
        self.emitted.get()
    }

    pub(crate) fn fresh(&self) -> Vec<Accumulator> {
        Accumulator::for_specs(self.specs)
    }

    pub(crate) fn emit(
        &self,
        out: &mut Collector,
        start: Timestamp,
        end: Timestamp,
        key: &[Value],
        accs: &[Accumulator],
    ) {
        self.emitted.set(self.emitted.get() + 1);
        out.push(Port::Main, self.output.event(start, end, key, accs));
    }
}

/// Folds one event's observations into a window's accumulators.
#[inline]
pub(crate) fn fold(accs: &mut [Accumulator], obs: &[Observation]) {
    for (acc, o) in accs.iter_mut().zip(obs) {
        acc.update(o);
    }
}

/// Merges accumulators of the same specs (sessions joining).
pub(crate) fn merge_all(into: &mut [Accumulator], from: &[Accumulator]) {
    for (a, b) in into.iter_mut().zip(from) {
        // Both sides come from the same specs, so the variants match.
        let _ = a.merge(b);
    }
}

/// The last instant a window ending at `end` covers; it fires when the
/// watermark reaches it.
#[inline]
pub(crate) fn fire_time(end: Timestamp) -> Timestamp {
    end.saturating_sub(1)
}

/// When a window ending at `end` is dropped: `lateness` after it fired.
#[inline]
pub(crate) fn cleanup_time(end: Timestamp, lateness: i64) -> Timestamp {
    fire_time(end).saturating_add(lateness)
}
