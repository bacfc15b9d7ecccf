//! The window operator: evaluates keys and aggregate inputs, routes events
//! to the state of its window kind, and emits results.

use eddy_core::codec::Encoder;
use eddy_core::output::Output as OutputId;
use eddy_core::state::{StateError, StateSnapshot};
use eddy_core::time::{now_ms, MAX_TIMESTAMP, MIN_TIMESTAMP};
use eddy_core::{Batch, Collector, Event, Expression, Operator, Timestamp, Value};

use super::aligned::Aligned;
use super::common::{Ctx, Outcome};
use super::config::{Emit, TimeDomain, WindowConfig, WindowKind};
use super::global::{Global, Options, Trigger};
use super::output::Output;
use super::session::Sessions;
use super::snapshot::{self, Reader, SnapshotError};
use crate::aggregate::{Accumulator, AggregateSpec, Observation};

enum State {
    Aligned(Aligned),
    Sessions(Sessions),
    Global(Global),
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
    state: State,
    /// The highest watermark (event time) or tick time (processing time,
    /// as `now - 1`) seen.
    watermark: Timestamp,
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
        let state = match *config.window.get_ref() {
            WindowKind::Tumbling { size } => {
                State::Aligned(Aligned::new(size.ms(), size.ms(), lateness))
            }
            WindowKind::Sliding { size, every } => {
                State::Aligned(Aligned::new(size.ms(), every.ms(), lateness))
            }
            WindowKind::Session { gap } => State::Sessions(Sessions::new(gap.ms(), lateness)),
            WindowKind::GlobalCount { count } => global(Trigger::Count(count)),
            WindowKind::GlobalEvery { every } => global(Trigger::Every(every.ms().max(1))),
        };
        let specs = config.specs().to_vec();
        WindowOperator {
            name: name.to_string(),
            output: Output::new(&config.key.0, &specs),
            late,
            keys: config.key.0.clone(),
            specs,
            time: config.time,
            state,
            watermark: MIN_TIMESTAMP,
            pending_origin: 0,
            clock: now_ms,
            scratch: Scratch::default(),
        }
    }

    /// Replaces the processing-time clock (tests).
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> WindowOperator {
        self.clock = clock;
        self
    }

    /// Moves the watermark to `wm` (ignoring regressions) and fires.
    fn advance(&mut self, wm: Timestamp, out: &mut Collector) {
        if wm <= self.watermark {
            return;
        }
        let prev = std::mem::replace(&mut self.watermark, wm);
        let cx = Ctx::new(&self.specs, &self.output);
        match &mut self.state {
            State::Aligned(a) => a.advance(prev, wm, &cx, out),
            State::Sessions(s) => s.advance(wm, &cx, out),
            State::Global(g) => g.advance(wm, &cx, out),
        }
        stamp(&mut self.pending_origin, out, cx.emitted());
    }
}

impl WindowOperator {
    /// The snapshot kind of this operator's state.
    fn kind(&self) -> u8 {
        match self.state {
            State::Aligned(_) => snapshot::KIND_ALIGNED,
            State::Sessions(_) => snapshot::KIND_SESSIONS,
            State::Global(_) => snapshot::KIND_GLOBAL,
        }
    }

    /// The snapshot's bytes (see the `snapshot` module for the format).
    fn snapshot_bytes(&self) -> Vec<u8> {
        let mut enc = Encoder::new();
        snapshot::begin(&mut enc, self.kind(), self.watermark);
        match &self.state {
            State::Aligned(a) => a.encode(&mut enc),
            State::Sessions(s) => s.encode(&mut enc),
            State::Global(g) => g.encode(&mut enc),
        }
        snapshot::seal(enc)
    }

    /// Restores the state and watermark from a snapshot's bytes.
    fn restore_bytes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let (mut dec, watermark) = snapshot::open(bytes, self.kind())?;
        let like = Accumulator::for_specs(&self.specs);
        let r = Reader {
            like: &like,
            key_len: self.keys.len(),
        };
        match &mut self.state {
            State::Aligned(a) => a.decode(&mut dec, &r)?,
            State::Sessions(s) => s.decode(&mut dec, &r)?,
            State::Global(g) => g.decode(&mut dec, &r)?,
        }
        dec.finish()?;
        self.watermark = watermark;
        self.pending_origin = 0;
        Ok(())
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
    fn process(&mut self, _input: usize, batch: Batch, out: &mut Collector) {
        self.pending_origin = self.pending_origin.max(batch.origin_ns);
        let processing = self.time == TimeDomain::Processing;
        let now = if processing {
            // Never place an event in a window the clock already closed.
            (self.clock)().max(self.watermark.saturating_add(1))
        } else {
            0
        };
        let cx = Ctx::new(&self.specs, &self.output);
        // Lateness is judged against the watermark the event's own source
        // partition had reached before it (the batch's stamp), which
        // depends only on the input, and against this operator's, which
        // bounds what state is still here.
        let judge = self.watermark.max(batch.stamp);
        for event in batch.events {
            let time = if processing { now } else { event.time };
            if let Err(reason) = evaluate(&mut self.scratch, &self.keys, &self.specs, &event, time)
            {
                out.dead_letter(&self.name, reason, &event);
                continue;
            }
            let placed = match &mut self.state {
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
        match &mut self.state {
            State::Aligned(a) => a.flush(&cx, out),
            State::Sessions(s) => s.flush(&cx, out),
            State::Global(g) => g.flush(&cx, out),
        }
        stamp(&mut self.pending_origin, out, cx.emitted());
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Collector) {
        if self.time == TimeDomain::Event {
            self.advance(watermark, out);
        }
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Collector) {
        if self.time == TimeDomain::Processing {
            // At wall time `now`, everything before `now` is complete.
            self.advance(now.saturating_sub(1), out);
        }
    }

    fn finish(&mut self, out: &mut Collector) {
        // As a final watermark of +infinity; global windows emit what is open.
        self.advance(MAX_TIMESTAMP, out);
        if let State::Global(g) = &mut self.state {
            let cx = Ctx::new(&self.specs, &self.output);
            g.finish(&cx, out);
            stamp(&mut self.pending_origin, out, cx.emitted());
        }
    }

    /// Writes the open windows, keys, accumulators, timers and the
    /// watermark. After `finish` the watermark is +infinity and nothing is
    /// open, so a restored operator's `finish` emits nothing.
    fn snapshot(&mut self) -> Result<Option<StateSnapshot>, StateError> {
        Ok(Some(StateSnapshot {
            bytes: self.snapshot_bytes(),
        }))
    }

    fn restore(&mut self, snapshot: StateSnapshot) -> Result<(), StateError> {
        self.restore_bytes(&snapshot.bytes)
            .map_err(|e| StateError::Corrupt(format!("window `{}`: {e}", self.name)))
    }
}
