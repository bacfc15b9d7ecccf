//! The operator interface: what every transform implements.
//!
//! The runtime calls an operator with batches, watermarks, timers and
//! processing-time ticks, passing the instance's [`OperatorContext`]
//! (watermark, timers, key groups); the operator writes its results into a
//! [`Collector`] by
//! [`Output`] id (`main`, `dead_letters`, and the outputs its factory
//! declared, see [`crate::output`]). The runtime then routes each output's
//! events to the nodes that named it as an input (`NAME` for the main
//! output, `NAME.late`, …).

use crate::event::{Batch, Event, Fields, Value};
use crate::output::Output;
use crate::state::{GroupRange, StateTable, TimeDomain, Timer, Timers};
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

    /// Events held over all outputs.
    pub fn len(&self) -> usize {
        self.outputs.iter().map(Vec::len).sum()
    }
}

/// About how many events an operator emits in one piece when its output
/// is large (see [`Operator::resume`]). About a source batch: each piece
/// reaches the sinks and is freed before the next is built, so a firing of
/// many keys reuses the same memory, warm in cache, instead of touching
/// fresh pages (the first piece of a 65,000-key firing took 31–44 ms at
/// 16,384, 0.5–4.9 ms at 1,024).
pub const PIECE: usize = 1_024;

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

/// What the runtime keeps for one operator instance and passes to every
/// call: the instance's watermark, its per-key timers on both clocks, and
/// the key groups it owns. The runtime checkpoints the timers and the
/// watermark with the operator's tables and restores them before the first
/// call.
pub struct OperatorContext {
    watermark: Timestamp,
    event_timers: Box<dyn Timers>,
    processing_timers: Box<dyn Timers>,
    groups: GroupRange,
    /// The caller passes output on piece by piece through
    /// [`OperatorContext::resume`] (the runtime does); otherwise `advance`,
    /// `tick` and `end` collect all of it in their collector (tests).
    pub piecewise: bool,
}

impl OperatorContext {
    /// A context owning `groups`, with empty timer tables on event and
    /// processing time (the runtime makes them; `eddy_state::context`
    /// makes one for tests).
    pub fn new(
        groups: GroupRange,
        event_timers: Box<dyn Timers>,
        processing_timers: Box<dyn Timers>,
    ) -> OperatorContext {
        OperatorContext {
            watermark: crate::time::MIN_TIMESTAMP,
            event_timers,
            processing_timers,
            groups,
            piecewise: false,
        }
    }

    /// The instance's event-time watermark: every event at or before it
    /// has arrived (`MIN_TIMESTAMP` until the first watermark). During
    /// [`Operator::on_watermark`] it is still the previous watermark.
    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    /// Sets the watermark (the runtime, after `on_watermark` and on restore).
    pub fn set_watermark(&mut self, watermark: Timestamp) {
        self.watermark = watermark;
    }

    /// The key groups this instance owns: every key routed to it is in one.
    pub fn groups(&self) -> &GroupRange {
        &self.groups
    }

    /// The timers on `domain`'s clock. Event-time timers fire through
    /// [`Operator::on_timer`] when the watermark reaches them (and all at
    /// the end of input), processing-time timers within a few milliseconds
    /// of their time, in (time, key, group) order either way.
    pub fn timers(&mut self, domain: TimeDomain) -> &mut dyn Timers {
        match domain {
            TimeDomain::EventTime => &mut *self.event_timers,
            TimeDomain::ProcessingTime => &mut *self.processing_timers,
        }
    }
}

/// Driving an operator as the runtime does (tests drive it the same way).
impl OperatorContext {
    /// Moves the watermark to `watermark` if it advances: calls
    /// [`Operator::on_watermark`], then fires the event-time timers due by
    /// then. Returns whether it advanced.
    pub fn advance(
        &mut self,
        op: &mut dyn Operator,
        watermark: Timestamp,
        out: &mut Collector,
    ) -> bool {
        if watermark <= self.watermark {
            return false;
        }
        op.on_watermark(watermark, self, out);
        self.watermark = watermark;
        self.fire(op, TimeDomain::EventTime, watermark, out);
        self.collect_rest(op, out);
        true
    }

    /// A processing-time tick at `now`: fires the processing-time timers
    /// due by then, then calls [`Operator::on_tick`].
    pub fn tick(&mut self, op: &mut dyn Operator, now: Timestamp, out: &mut Collector) {
        self.fire(op, TimeDomain::ProcessingTime, now, out);
        op.on_tick(now, self, out);
        self.collect_rest(op, out);
    }

    /// Fires the processing-time timers due at `now`, between ticks (the
    /// runtime looks every few milliseconds, so they fire about on time);
    /// returns whether any fired (nothing else is done when none did).
    pub fn fire_due(&mut self, op: &mut dyn Operator, now: Timestamp, out: &mut Collector) -> bool {
        let fired = self.fire(op, TimeDomain::ProcessingTime, now, out);
        if fired {
            self.collect_rest(op, out);
        }
        fired
    }

    /// The end of input: the watermark moves to +infinity (firing every
    /// event-time timer), then [`Operator::finish`]. (Taking output piece
    /// by piece, the runtime calls `advance`, takes the pieces, then
    /// `finish`.)
    pub fn end(&mut self, op: &mut dyn Operator, out: &mut Collector) {
        self.advance(op, crate::time::MAX_TIMESTAMP, out);
        self.finish(op, out);
    }

    /// Calls [`Operator::finish`], once all output owed before was taken.
    pub fn finish(&mut self, op: &mut dyn Operator, out: &mut Collector) {
        op.finish(self, out);
        self.collect_rest(op, out);
    }

    /// The next piece of output the operator owes (see
    /// [`Operator::resume`]); returns whether more remains.
    pub fn resume(&mut self, op: &mut dyn Operator, out: &mut Collector) -> bool {
        op.resume(self, out)
    }

    /// Unless the caller takes output piece by piece: all of it, now.
    fn collect_rest(&mut self, op: &mut dyn Operator, out: &mut Collector) {
        if !self.piecewise {
            while op.resume(self, out) {}
        }
    }

    /// Fires `domain`'s timers due at `now` in order, including those
    /// registered at or before `now` while firing; returns whether any did.
    fn fire(
        &mut self,
        op: &mut dyn Operator,
        domain: TimeDomain,
        now: Timestamp,
        out: &mut Collector,
    ) -> bool {
        let mut fired = false;
        loop {
            let due = self.timers(domain).due(now);
            if due.is_empty() {
                return fired;
            }
            fired = true;
            for timer in due {
                op.on_timer(domain, timer, self, out);
            }
        }
    }
}

impl std::fmt::Debug for OperatorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorContext")
            .field("watermark", &self.watermark)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// A state table an operator keeps, named for checkpoints (names are
/// unique per operator and stable across versions: a checkpoint's table
/// is restored into the table of the same name).
pub type NamedTable<'a> = (&'static str, &'a mut dyn StateTable);

/// A processing step in a pipeline. One instance runs per worker; instances
/// never share mutable state.
///
/// State lives in tables (`eddy_state::{ValueTable, ListTable, MapTable}`
/// or a kind of the operator's own that implements [`StateTable`]) that the
/// operator lists in [`Operator::tables`], and in the context's timers: the
/// runtime snapshots both at every checkpoint barrier, between calls, and
/// restores them before [`Operator::open`]. An operator never serialises
/// itself.
pub trait Operator: Send {
    /// Called once after state was restored (or found empty), before any
    /// other call.
    fn open(&mut self, _cx: &mut OperatorContext) {}

    /// Processes a batch that arrived on input `input` (the index in the
    /// node's `inputs`).
    fn process(
        &mut self,
        input: usize,
        batch: Batch,
        cx: &mut OperatorContext,
        out: &mut Collector,
    );

    /// The combined watermark of all inputs advanced to `watermark`
    /// (`cx.watermark()` is still the previous one): close windows,
    /// expire patterns. Event-time timers due by then fire right after.
    fn on_watermark(
        &mut self,
        _watermark: Timestamp,
        _cx: &mut OperatorContext,
        _out: &mut Collector,
    ) {
    }

    /// A timer registered through the context fired.
    fn on_timer(
        &mut self,
        _domain: TimeDomain,
        _timer: Timer,
        _cx: &mut OperatorContext,
        _out: &mut Collector,
    ) {
    }

    /// Called periodically with the processing time, for processing-time
    /// windows, timeouts and escalations (due processing-time timers fire
    /// first).
    fn on_tick(&mut self, _now: Timestamp, _cx: &mut OperatorContext, _out: &mut Collector) {}

    /// All inputs ended (every event-time timer has fired): emit whatever
    /// is still open. State left afterwards is checkpointed as the
    /// instance's final state, so it must not make a restored operator's
    /// `finish` repeat output.
    fn finish(&mut self, _cx: &mut OperatorContext, _out: &mut Collector) {}

    /// Emits more of the output that the last `on_watermark`, `on_tick` or
    /// `finish` left owing; returns whether some still remains. An operator
    /// whose output at one watermark can be huge (millions of window
    /// results) stops once `out` holds about [`PIECE`] events and emits
    /// the rest here, so it never sits in memory at once: the runtime
    /// passes each piece on before asking for the next, and all of them
    /// before the watermark moves downstream or anything else reaches the
    /// operator.
    fn resume(&mut self, _cx: &mut OperatorContext, _out: &mut Collector) -> bool {
        false
    }

    /// The operator's state tables, by name, for the runtime to snapshot,
    /// expire and restore. Stateless operators keep the default.
    fn tables(&mut self) -> Vec<NamedTable<'_>> {
        Vec::new()
    }
}
