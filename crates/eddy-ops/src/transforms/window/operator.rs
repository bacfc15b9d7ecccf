//! The window operator: evaluates keys and aggregate inputs, routes events
//! to the state of its window kind, and emits results.

use eddy_core::metrics::Counter;
use eddy_core::output::Output as OutputId;
use eddy_core::state::{GroupRange, Spill, StateError, StateTable, TableSnapshot};
use eddy_core::time::{now_ms, MAX_TIMESTAMP, MIN_TIMESTAMP};
use eddy_core::{
    Batch, Collector, Event, Expression, NamedTable, Operator, OperatorContext, Timestamp, Value,
};

use super::aligned::{Aligned, Top};
use super::common::{Ctx, Outcome};
use super::config::{Emit, Order, TimeDomain, WindowConfig, WindowKind};
use super::global::{Global, Options, Trigger};
use super::output::Output;
use super::session::Sessions;
use super::snapshot::{self, Reader, SnapshotError};
use super::spill::Spiller;
use crate::aggregate::{Accumulator, AggregateSpec, Observation};
use eddy_core::config::Spanned;

enum State {
    Aligned(Box<Aligned>),
    Sessions(Sessions),
    Global(Global),
}

/// The window's state table: open windows, keys and accumulators of one of
/// the three kinds. The runtime snapshots it at barriers (copy-on-write)
/// and restores it before the operator's first call.
struct WindowTable {
    state: State,
    /// Fresh accumulators of the specs: what decoding needs to know.
    like: Vec<Accumulator>,
    /// Number of key expressions.
    key_len: usize,
}

impl WindowTable {
    fn header(&self) -> snapshot::Header {
        let kind = match &self.state {
            State::Aligned(a) if a.sliced() => snapshot::KIND_SLICED,
            State::Aligned(_) => snapshot::KIND_ALIGNED,
            State::Sessions(_) => snapshot::KIND_SESSIONS,
            State::Global(_) => snapshot::KIND_GLOBAL,
        };
        snapshot::Header { kind }
    }

    fn decode(&mut self, bytes: &[u8], groups: &GroupRange) -> Result<usize, SnapshotError> {
        let header = self.header();
        let mut dec = snapshot::open(bytes, header.kind)?;
        let r = Reader {
            like: &self.like,
            key_len: self.key_len,
        };
        let keep = |g| groups.contains(g);
        let restored = match &mut self.state {
            State::Aligned(a) => a.decode(&mut dec, &r, groups)?,
            State::Sessions(s) => {
                s.decode(&mut dec, &r)?;
                s.retain_groups(keep);
                s.stored()
            }
            State::Global(g) => {
                g.decode(&mut dec, &r)?;
                g.retain_groups(keep);
                g.stored()
            }
        };
        dec.finish()?;
        Ok(restored)
    }
}

impl StateTable for WindowTable {
    fn snapshot(&self) -> Box<dyn TableSnapshot> {
        let header = self.header();
        match &self.state {
            State::Aligned(a) => a.snapshot(header),
            State::Sessions(s) => s.snapshot(header),
            State::Global(g) => g.snapshot(header),
        }
    }

    fn restore(&mut self, bytes: &[u8], groups: &GroupRange) -> Result<usize, StateError> {
        self.decode(bytes, groups)
            .map_err(|e| StateError::Corrupt(format!("window state: {e}")))
    }

    fn clear(&mut self, groups: &GroupRange) {
        let drop = |g| !groups.contains(g);
        match &mut self.state {
            State::Aligned(a) => a.clear(groups),
            State::Sessions(s) => s.retain_groups(drop),
            State::Global(g) => g.retain_groups(drop),
        }
    }

    fn stored(&self) -> usize {
        match &self.state {
            State::Aligned(a) => a.stored(),
            State::Sessions(s) => s.stored(),
            State::Global(g) => g.stored(),
        }
    }
}

/// A running window transform (one instance per worker).
pub struct WindowOperator {
    name: String,
    keys: Vec<Expression>,
    specs: Vec<AggregateSpec>,
    output: Output,
    /// Where events later than their window's allowed lateness go.
    late: OutputId,
    time: TimeDomain,
    table: WindowTable,
    /// Processing time: the highest tick time seen, as `now - 1` (event
    /// time uses the context's watermark, which the runtime checkpoints).
    clock_mark: Timestamp,
    /// Largest `origin_ns` of batches processed since the last emission.
    pending_origin: u64,
    clock: fn() -> Timestamp,
    scratch: Scratch,
}

/// Per-event buffers, reused so evaluating an event does not allocate.
#[derive(Default)]
struct Scratch {
    key: Vec<Value>,
    obs: Vec<Observation>,
}

/// Evaluates the key and aggregate inputs of `event` into `scratch`; on
/// failure returns the reason for the dead letter.
fn evaluate(
    scratch: &mut Scratch,
    keys: &[Expression],
    specs: &[AggregateSpec],
    event: &Event,
    time: Timestamp,
) -> Result<(), String> {
    scratch.key.clear();
    for k in keys {
        let v = k.eval(event).map_err(|e| {
            format!(
                "key `{}`: {}",
                eddy_core::expr::excerpt(k.source()),
                e.message
            )
        })?;
        scratch.key.push(v);
    }
    scratch.obs.clear();
    for spec in specs {
        let mut o = spec.observe(event).map_err(|e| e.to_string())?;
        o.time = time;
        scratch.obs.push(o);
    }
    Ok(())
}

impl WindowOperator {
    /// An operator for `config`, named `name` in dead letters, keeping at
    /// most `max_keys` keys in a global window without `ttl` and sending
    /// late events to `late`.
    pub fn new(config: &WindowConfig, name: &str, max_keys: u64, late: OutputId) -> WindowOperator {
        let lateness = config.allowed_lateness.ms();
        let global = |trigger| {
            State::Global(Global::new(Options {
                trigger,
                ttl: config.ttl.map(|d| d.ms()),
                lateness,
                emit_all: config.emit == Some(Emit::All),
                max_keys,
            }))
        };
        let specs = config.specs().to_vec();
        let top = config.top.as_ref().map(Spanned::get_ref).and_then(|t| {
            Some(Top {
                n: usize::try_from(t.n).ok()?,
                by: specs.iter().position(|s| s.name == t.by)?,
                descending: t.order == Order::Desc,
            })
        });
        let state = match *config.window.get_ref() {
            WindowKind::Tumbling { size } => {
                State::Aligned(Box::new(Aligned::new(size.ms(), size.ms(), lateness, top)))
            }
            WindowKind::Sliding { size, every } => {
                State::Aligned(Box::new(Aligned::new(size.ms(), every.ms(), lateness, top)))
            }
            WindowKind::Session { gap } => State::Sessions(Sessions::new(gap.ms(), lateness)),
            WindowKind::GlobalCount { count } => global(Trigger::Count(count)),
            WindowKind::GlobalEvery { every } => global(Trigger::Every(every.ms().max(1))),
        };
        WindowOperator {
            name: name.to_string(),
            output: Output::new(&config.key.0, &specs),
            late,
            keys: config.key.0.clone(),
            table: WindowTable {
                state,
                like: Accumulator::for_specs(&specs),
                key_len: config.key.0.len(),
            },
            specs,
            time: config.time,
            clock_mark: MIN_TIMESTAMP,
            pending_origin: 0,
            clock: now_ms,
            scratch: Scratch::default(),
        }
    }

    /// Keeps tumbling and sliding window state beyond `spill`'s budget in
    /// its store (session and global windows keep theirs in memory).
    pub fn spill_to(
        mut self,
        spill: &Spill,
        instance: &str,
        spilled: Counter,
    ) -> Result<WindowOperator, StateError> {
        if let State::Aligned(a) = &mut self.table.state {
            let shape = (
                self.table.key_len,
                self.table.like.clone(),
                Aligned::SLOT_BYTES,
            );
            a.spill_to(Spiller::open(spill, instance, shape, spilled)?);
        }
        Ok(self)
    }

    /// Replaces the processing-time clock (tests).
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> WindowOperator {
        self.clock = clock;
        self
    }

    /// The watermark lateness is judged against and windows fired to.
    fn mark(&self, cx: &OperatorContext) -> Timestamp {
        match self.time {
            TimeDomain::Event => cx.watermark(),
            TimeDomain::Processing => self.clock_mark,
        }
    }

    /// The watermark moved from `prev` to `wm`: fire and drop windows.
    fn advance(&mut self, prev: Timestamp, wm: Timestamp, out: &mut Collector) {
        if wm <= prev {
            return;
        }
        let cx = Ctx::new(&self.specs, &self.output);
        match &mut self.table.state {
            State::Aligned(a) => a.advance(prev, wm, &cx, out),
            State::Sessions(s) => s.advance(wm, &cx, out),
            State::Global(g) => g.advance(wm, &cx, out),
        }
        stamp(&mut self.pending_origin, out, cx.emitted());
    }
}

/// Puts the origin time of the batches that contributed since the last
/// emission on the collector, when results were emitted.
fn stamp(pending: &mut u64, out: &mut Collector, emitted: usize) {
    if emitted > 0 {
        out.origin_ns = out.origin_ns.max(*pending);
        *pending = 0;
    }
}

impl Operator for WindowOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        ocx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        self.pending_origin = self.pending_origin.max(batch.origin_ns);
        let processing = self.time == TimeDomain::Processing;
        let mark = self.mark(ocx);
        let now = if processing {
            // Never place an event in a window the clock already closed.
            (self.clock)().max(mark.saturating_add(1))
        } else {
            0
        };
        let cx = Ctx::new(&self.specs, &self.output);
        // Lateness is judged against the watermark the event's own source
        // partition had reached before it (the batch's stamp), which
        // depends only on the input, and against this operator's, which
        // bounds what state is still here.
        let judge = mark.max(batch.stamp);
        let events = batch.events.len();
        for event in batch.events {
            let time = if processing { now } else { event.time };
            if let Err(reason) = evaluate(&mut self.scratch, &self.keys, &self.specs, &event, time)
            {
                out.dead_letter(&self.name, reason, &event);
                continue;
            }
            let placed = match &mut self.table.state {
                State::Aligned(a) => a.add(time, &self.scratch.key, &self.scratch.obs, judge, &cx),
                State::Sessions(s) => s.add(time, &self.scratch.key, &self.scratch.obs, judge, &cx),
                State::Global(g) => {
                    g.add(time, &self.scratch.key, &self.scratch.obs, judge, &cx, out)
                }
            };
            match placed {
                Ok(Outcome::Accepted) => {}
                Ok(Outcome::Late) => out.push(self.late, event),
                Err(e) => {
                    out.dead_letter(&self.name, format!("window `{}`: {e}", self.name), &event)
                }
            }
        }
        match &mut self.table.state {
            State::Aligned(a) => {
                a.flush(&cx, out);
                a.shed();
                a.merge_ahead(mark, cx.width(), events);
            }
            State::Sessions(s) => s.flush(&cx, out),
            State::Global(g) => g.flush(&cx, out),
        }
        stamp(&mut self.pending_origin, out, cx.emitted());
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        if self.time == TimeDomain::Event {
            self.advance(cx.watermark(), watermark, out);
        }
    }

    fn on_tick(&mut self, now: Timestamp, _cx: &mut OperatorContext, out: &mut Collector) {
        if self.time == TimeDomain::Processing {
            // At wall time `now`, everything before `now` is complete.
            let wm = now.saturating_sub(1);
            let prev = self.clock_mark;
            self.clock_mark = prev.max(wm);
            self.advance(prev, wm, out);
        }
    }

    fn finish(&mut self, cx: &mut OperatorContext, out: &mut Collector) {
        // As a final watermark of +infinity (the runtime has usually sent
        // it already); global windows then emit what is open.
        let prev = self.mark(cx);
        self.clock_mark = MAX_TIMESTAMP;
        self.advance(prev, MAX_TIMESTAMP, out);
        if let State::Global(g) = &mut self.table.state {
            let cx = Ctx::new(&self.specs, &self.output);
            g.finish(&cx, out);
            stamp(&mut self.pending_origin, out, cx.emitted());
        }
    }

    /// Tumbling and sliding windows fire in pieces (a key group at a time),
    /// so millions of results never sit in memory at once.
    fn resume(&mut self, _cx: &mut OperatorContext, out: &mut Collector) -> bool {
        let State::Aligned(a) = &mut self.table.state else {
            return false;
        };
        let cx = Ctx::new(&self.specs, &self.output);
        let more = a.fire_pending(&cx, out);
        stamp(&mut self.pending_origin, out, cx.emitted());
        more
    }

    fn tables(&mut self) -> Vec<NamedTable<'_>> {
        vec![("windows", &mut self.table)]
    }
}
