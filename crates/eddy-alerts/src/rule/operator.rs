//! The running alert rule: each instance's lifecycle in keyed state, its
//! promotion and resolution on event-time timers.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_connectors::sinks::template::Template;
use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use eddy_core::output::Output;
use eddy_core::state::{KeyGroup, TimeDomain, Timer, KEY_GROUPS};
use eddy_core::time::format_rfc3339;
use eddy_core::{
    Batch, Collector, Event, Expression, Fields, NamedTable, Operator, OperatorContext, Sym,
    Timestamp, Value,
};
use eddy_ops::transforms::key::KeyEvaluator;
use eddy_ops::transforms::ordered::{Order, OrderedEvents, Release};
use eddy_state::ValueTable;

use super::config::{AlertRuleConfig, DEFAULT_RESOLVE_AFTER_MS};
use super::control::RuleControl;

/// One alert instance: where it is in its lifecycle and what it says.
#[derive(Clone, Debug, PartialEq)]
struct Instance {
    firing: bool,
    /// Pending since, or firing since.
    since: Timestamp,
    /// Event time of the last event that met the condition.
    last_met: Timestamp,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
}

/// A running alert rule (one instance per worker).
pub struct AlertRuleOperator {
    name: String,
    condition: Expression,
    keys: KeyEvaluator,
    severity: &'static str,
    labels: Vec<(String, Template)>,
    annotations: Vec<(String, Template)>,
    hold_ms: i64,
    resolve_ms: i64,
    instances: ValueTable<Instance>,
    /// Events waiting for the watermark, so each instance sees its events
    /// in event-time order and its timers see exactly the events before
    /// them.
    waiting: OrderedEvents,
    late: Output,
    buffer: Vec<u8>,
    /// Where resolutions by hand come from during the run.
    control: Option<Arc<RuleControl>>,
    /// The last request of `control` looked at.
    seen: u64,
}

impl AlertRuleOperator {
    /// An instance of `config` named `name`, sending events behind the
    /// watermark to `late`.
    pub fn new(config: &AlertRuleConfig, name: &str, late: Output) -> AlertRuleOperator {
        AlertRuleOperator {
            name: name.to_string(),
            condition: config.condition.clone(),
            keys: KeyEvaluator::new(config.key.0.clone()),
            severity: config.severity.name(),
            labels: config
                .labels
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect(),
            annotations: config
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect(),
            hold_ms: config.hold.map_or(0, |d| d.ms()),
            resolve_ms: config
                .resolve_after
                .map_or(DEFAULT_RESOLVE_AFTER_MS, |d| d.ms()),
            instances: ValueTable::new(None),
            waiting: OrderedEvents::new(Release::EachTime),
            late,
            buffer: Vec::new(),
            control: None,
            seen: 0,
        }
    }

    /// Resolves alerts by hand on the requests of `control`.
    pub fn controlled_by(mut self, control: Option<Arc<RuleControl>>) -> AlertRuleOperator {
        self.control = control;
        self
    }

    /// Resolves the open instances people asked to, at the watermark:
    /// each request reaches every worker and the one owning the alert acts.
    fn resolve_requested(&mut self, cx: &mut OperatorContext, out: &mut Collector) {
        let Some(control) = &self.control else {
            return;
        };
        if control.last() == self.seen {
            return;
        }
        let (last, requests) = control.after(self.seen);
        self.seen = last;
        for request in requests {
            let found = (0..KEY_GROUPS).filter_map(KeyGroup::new).find_map(|g| {
                self.instances
                    .iter_group(g, 0)
                    .find(|(_, i)| {
                        format!("{:016x}", fingerprint(&i.labels)) == request.fingerprint
                    })
                    .map(|(key, _)| (g, key.to_vec()))
            });
            let Some((g, key)) = found else {
                continue;
            };
            let Some(i) = self.instances.remove(g, &key, 0) else {
                continue;
            };
            let t = cx.watermark().max(i.last_met);
            let mut cause = format!("resolved by {}", request.by);
            if !request.comment.is_empty() {
                cause.push_str(&format!(": {}", request.comment));
            }
            let alert = match i.firing {
                true => self.alert(&i, "resolved", t, Some(t), cause),
                false => self.alert(&i, "inactive", t, None, cause),
            };
            out.push(Output::MAIN, alert);
        }
    }

    fn render(
        &mut self,
        templates: &[(String, Template)],
        event: &Event,
    ) -> Result<Vec<(String, String)>, String> {
        templates
            .iter()
            .map(|(name, t)| {
                self.buffer.clear();
                t.render(event, &mut self.buffer)
                    .map_err(|e| format!("alert `{}`: {name}: {e}", self.name))?;
                Ok((
                    name.clone(),
                    String::from_utf8_lossy(&self.buffer).into_owned(),
                ))
            })
            .collect()
    }

    /// The labels of an alert from `event`: `alertname`, `severity` and the
    /// configured ones, sorted by name.
    fn labels_of(&mut self, event: &Event) -> Result<Vec<(String, String)>, String> {
        let templates = std::mem::take(&mut self.labels);
        let rendered = self.render(&templates, event);
        self.labels = templates;
        let mut labels: BTreeMap<String, String> = rendered?.into_iter().collect();
        labels.insert("alertname".into(), self.name.clone());
        labels.insert("severity".into(), self.severity.into());
        Ok(labels.into_iter().collect())
    }

    fn met(
        &mut self,
        g: KeyGroup,
        key: &[u8],
        event: &Event,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let labels = self.labels_of(event);
        let templates = std::mem::take(&mut self.annotations);
        let annotations = self.render(&templates, event);
        self.annotations = templates;
        let (labels, annotations) = match (labels, annotations) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(reason), _) | (_, Err(reason)) => {
                out.dead_letter(&self.name, reason, event);
                return;
            }
        };
        let t = event.time;
        let timers = cx.timers(TimeDomain::EventTime);
        match self.instances.remove(g, key, 0) {
            None if self.hold_ms > 0 => {
                let i = Instance {
                    firing: false,
                    since: t,
                    last_met: t,
                    labels,
                    annotations,
                };
                timers.register(g, key, t.saturating_add(self.hold_ms));
                out.push(
                    Output::MAIN,
                    self.alert(&i, "pending", t, None, "condition met".into()),
                );
                self.instances.put(g, key, i, 0);
            }
            None => {
                let i = Instance {
                    firing: true,
                    since: t,
                    last_met: t,
                    labels,
                    annotations,
                };
                timers.register(g, key, t.saturating_add(self.resolve_ms));
                out.push(
                    Output::MAIN,
                    self.alert(&i, "firing", t, None, "condition met".into()),
                );
                self.instances.put(g, key, i, 0);
            }
            Some(mut i) => {
                // A firing instance has one resolution timer, at this
                // deadline: moved, not added to, as events keep meeting
                // the condition (or timers would pile up for
                // `resolve_after` at the event rate).
                let deadline = i.firing.then(|| i.last_met.saturating_add(self.resolve_ms));
                i.last_met = t.max(i.last_met);
                i.labels = labels;
                i.annotations = annotations;
                if !i.firing && t >= i.since.saturating_add(self.hold_ms) {
                    i.firing = true;
                    i.since = t;
                    let cause = format!("condition held for {}", human(self.hold_ms));
                    out.push(Output::MAIN, self.alert(&i, "firing", t, None, cause));
                }
                if i.firing {
                    let next = i.last_met.saturating_add(self.resolve_ms);
                    // Unless an event waits for release at the old time.
                    if let Some(old) = deadline.filter(|&old| old != next) {
                        if !self.waiting.waits_at(g, key, old) {
                            timers.delete(g, key, old);
                        }
                    }
                    timers.register(g, key, next);
                }
                self.instances.put(g, key, i, 0);
            }
        }
    }

    /// Applies one released event to its instance.
    fn judge(
        &mut self,
        g: KeyGroup,
        key: &[u8],
        event: &Event,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        match self.condition.eval_bool(event) {
            Ok(true) => self.met(g, key, event, cx, out),
            Ok(false) => self.not_met(g, key, event.time, out),
            Err(e) => out.dead_letter(
                &self.name,
                format!(
                    "alert `{}`: condition `{}`: {e}",
                    self.name,
                    self.condition.source()
                ),
                event,
            ),
        }
    }

    fn not_met(&mut self, g: KeyGroup, key: &[u8], t: Timestamp, out: &mut Collector) {
        // Only a pending instance reacts: a firing one resolves by time.
        let pending = self.instances.get(g, key, 0).is_some_and(|i| !i.firing);
        if pending {
            if let Some(i) = self.instances.remove(g, key, 0) {
                let cause = format!(
                    "condition failed before holding for {}",
                    human(self.hold_ms)
                );
                out.push(Output::MAIN, self.alert(&i, "inactive", t, None, cause));
            }
        }
    }

    /// The alert event for instance `i` entering `status` at `t`.
    fn alert(
        &self,
        i: &Instance,
        status: &str,
        t: Timestamp,
        ends_at: Option<Timestamp>,
        cause: String,
    ) -> Event {
        let pairs = |list: &[(String, String)]| {
            let mut f = Fields::with_capacity(list.len());
            for (k, v) in list {
                f.push(Sym::intern(k), Value::str(v));
            }
            Value::Map(Arc::new(f))
        };
        let mut f = Fields::with_capacity(10);
        f.push(eddy_core::sym!("alertname"), Value::str(&self.name));
        f.push(eddy_core::sym!("status"), Value::str(status));
        f.push(eddy_core::sym!("severity"), Value::str(self.severity));
        f.push(
            eddy_core::sym!("fingerprint"),
            Value::str(&format!("{:016x}", fingerprint(&i.labels))),
        );
        f.push(eddy_core::sym!("labels"), pairs(&i.labels));
        f.push(eddy_core::sym!("annotations"), pairs(&i.annotations));
        f.push(
            eddy_core::sym!("starts_at"),
            Value::str(&format_rfc3339(i.since)),
        );
        f.push(
            eddy_core::sym!("ends_at"),
            ends_at.map_or(Value::Null, |e| Value::str(&format_rfc3339(e))),
        );
        f.push(eddy_core::sym!("cause"), Value::str(&cause));
        Event::new(t, f)
    }
}

/// FNV-1a (64-bit) over the sorted labels: stable across runs, versions
/// and machines, as an alert's identity must be.
fn fingerprint(labels: &[(String, String)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn human(ms: i64) -> String {
    eddy_core::time::format_duration(ms)
}

impl Operator for AlertRuleOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        self.resolve_requested(cx, out);
        // Rules always follow event time: their `for` and `resolve_after`
        // are event-time spans.
        self.waiting.admit(
            batch,
            Order::EventTime,
            &mut self.keys,
            &self.name,
            self.late,
            cx,
            out,
        );
    }

    fn on_timer(
        &mut self,
        _domain: TimeDomain,
        timer: Timer,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let (g, key, t) = (timer.group, &timer.key[..], timer.time);
        // The events up to this time first, in event-time order.
        for event in self.waiting.release(&timer, cx) {
            self.judge(g, key, &event, cx, out);
        }
        let Some(mut i) = self.instances.get(g, key, 0).cloned() else {
            return;
        };
        if !i.firing {
            if t < i.since.saturating_add(self.hold_ms) {
                return;
            }
            self.instances.remove(g, key, 0);
            if t.saturating_sub(i.last_met) >= self.resolve_ms {
                let cause = format!(
                    "no event met the condition for {} while pending",
                    human(self.resolve_ms)
                );
                out.push(Output::MAIN, self.alert(&i, "inactive", t, None, cause));
                return;
            }
            i.firing = true;
            i.since = t;
            let cause = format!("condition held for {}", human(self.hold_ms));
            out.push(Output::MAIN, self.alert(&i, "firing", t, None, cause));
            cx.timers(TimeDomain::EventTime).register(
                g,
                key,
                i.last_met.saturating_add(self.resolve_ms),
            );
            self.instances.put(g, key, i, 0);
        } else if t >= i.last_met.saturating_add(self.resolve_ms) {
            self.instances.remove(g, key, 0);
            let cause = format!("no event met the condition for {}", human(self.resolve_ms));
            out.push(Output::MAIN, self.alert(&i, "resolved", t, Some(t), cause));
        }
    }

    /// Resolutions by hand are looked for while no events come too.
    fn on_tick(&mut self, _now: Timestamp, cx: &mut OperatorContext, out: &mut Collector) {
        self.resolve_requested(cx, out);
    }

    fn tables(&mut self) -> Vec<NamedTable<'_>> {
        vec![
            ("instances", &mut self.instances),
            ("waiting", self.waiting.table()),
        ]
    }
}

impl Encode for Instance {
    fn encode(&self, enc: &mut Encoder) {
        enc.u8(u8::from(self.firing));
        enc.zigzag(self.since);
        enc.zigzag(self.last_met);
        self.labels.encode(enc);
        self.annotations.encode(enc);
    }
}

impl Decode for Instance {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Instance {
            firing: dec.u8()? != 0,
            since: dec.zigzag()?,
            last_met: dec.zigzag()?,
            labels: dec.get()?,
            annotations: dec.get()?,
        })
    }
}
