//! The running `anomaly` transform.

use std::sync::Arc;

use eddy_anomaly::{KeyState, Model, Verdict};
use eddy_core::output::Output;
use eddy_core::state::{KeyGroup, TimeDomain, Timer};
use eddy_core::{
    Batch, Collector, Event, Expression, Fields, NamedTable, Operator, OperatorContext, Sym, Value,
};
use eddy_state::{Ttl, ValueTable};

use super::config::{AnomalyConfig, Emit, Order};
use crate::transforms::key::KeyEvaluator;
use crate::transforms::ordered::{OrderedEvents, Release};

/// A running anomaly transform (one instance per worker).
pub struct AnomalyOperator {
    name: String,
    keys: KeyEvaluator,
    values: Vec<Expression>,
    model: Model,
    emit: Emit,
    order: Order,
    late: Output,
    /// Each key's detector state.
    detectors: ValueTable<KeyState>,
    /// `order = "event_time"`: each key's events waiting for the watermark.
    pending: OrderedEvents,
    syms: Syms,
    scratch: Scratch,
}

/// Field names, interned once.
struct Syms {
    score: Sym,
    is_anomaly: Sym,
    anomaly: Sym,
    method: Sym,
    value: Sym,
    expected: Sym,
    low: Sym,
    high: Sym,
    deviation: Sym,
}

#[derive(Default)]
struct Scratch {
    values: Vec<f64>,
}

impl AnomalyOperator {
    /// An instance of `config` named `name`, sending late events to `late`.
    pub fn new(config: &AnomalyConfig, name: &str, late: Output) -> AnomalyOperator {
        let ttl = config.ttl.map(|d| Ttl {
            after_ms: d.ms(),
            domain: TimeDomain::EventTime,
        });
        AnomalyOperator {
            name: name.to_string(),
            keys: KeyEvaluator::new(config.key.0.clone()),
            values: config.values(),
            model: config.model(),
            emit: config.emit,
            order: config.order,
            late,
            detectors: ValueTable::new(ttl),
            pending: OrderedEvents::new(Release::UpToWatermark),
            syms: Syms {
                score: Sym::intern("anomaly_score"),
                is_anomaly: Sym::intern("is_anomaly"),
                anomaly: Sym::intern("anomaly"),
                method: Sym::intern("method"),
                value: Sym::intern("value"),
                expected: Sym::intern("expected"),
                low: Sym::intern("low"),
                high: Sym::intern("high"),
                deviation: Sym::intern("deviation"),
            },
            scratch: Scratch::default(),
        }
    }

    /// Evaluates the values of `event` into `scratch.values`.
    fn values_of(&mut self, event: &Event) -> Result<(), String> {
        self.scratch.values.clear();
        for e in &self.values {
            let v = e
                .eval_ref(event)
                .map_err(|err| format!("anomaly `{}`: `{}`: {err}", self.name, e.source()))?;
            let x = match v.as_f64() {
                Some(x) if x.is_finite() => x,
                Some(x) => {
                    return Err(format!(
                        "anomaly `{}`: `{}` is {x}, not a finite number",
                        self.name,
                        e.source()
                    ))
                }
                None => {
                    return Err(format!(
                        "anomaly `{}`: `{}` is {}, not a number",
                        self.name,
                        e.source(),
                        v.type_name()
                    ))
                }
            };
            self.scratch.values.push(x);
        }
        Ok(())
    }

    /// Scores `event` for its key and emits it as configured.
    fn score(&mut self, g: KeyGroup, key: &[u8], event: Event, out: &mut Collector) {
        if let Err(reason) = self.values_of(&event) {
            out.dead_letter(&self.name, reason, &event);
            return;
        }
        let model = &self.model;
        let state = self
            .detectors
            .update(g, key, event.time, || model.key_state());
        let verdict = model.observe(state, event.time, &self.scratch.values);
        if self.emit == Emit::Anomalies && !verdict.is_anomaly {
            return;
        }
        let x = self.scratch.values.first().copied().unwrap_or(0.0);
        out.push(Output::MAIN, self.annotate(event, x, &verdict));
    }

    fn annotate(&self, mut event: Event, x: f64, v: &Verdict) -> Event {
        let s = &self.syms;
        let a = &v.assessment;
        let mut why = Fields::with_capacity(6);
        why.push(s.method, Value::str(self.model.method().name()));
        why.push(s.value, Value::Float(x));
        why.push(s.expected, Value::Float(a.expected));
        why.push(s.low, Value::Float(a.low));
        why.push(s.high, Value::Float(a.high));
        why.push(s.deviation, Value::Float(x - a.expected));
        event.fields.insert(s.score, Value::Float(v.score));
        event.fields.insert(s.is_anomaly, Value::Bool(v.is_anomaly));
        event.fields.insert(s.anomaly, Value::Map(Arc::new(why)));
        event
    }
}

impl Operator for AnomalyOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let now = self.pending.admit(
            batch,
            self.order,
            &mut self.keys,
            &self.name,
            self.late,
            cx,
            out,
        );
        for (g, key, event) in now {
            self.score(g, &key, event, out);
        }
    }

    fn on_timer(
        &mut self,
        _domain: TimeDomain,
        timer: Timer,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        for event in self.pending.release(&timer, cx) {
            self.score(timer.group, &timer.key, event, out);
        }
    }

    fn tables(&mut self) -> Vec<NamedTable<'_>> {
        vec![
            ("detectors", &mut self.detectors),
            ("pending", self.pending.table()),
        ]
    }
}
