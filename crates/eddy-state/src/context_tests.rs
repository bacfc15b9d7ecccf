//! The operator contract end to end: an operator keeping value tables (one
//! with an event-time TTL) and event-time timers, driven as the runtime
//! drives it, checkpointed after random steps and restored into a fresh
//! instance, produces what the uninterrupted run produces.

use eddy_core::operator_state::OperatorState;
use eddy_core::state::{KeyGroup, TimeDomain, Timer};
use eddy_core::{
    Batch, Collector, Event, Fields, NamedTable, Operator, OperatorContext, Output, Sym, Value,
};
use proptest::prelude::*;

use crate::{context, GroupRange, Ttl, ValueTable};

/// Idle time after which a key is reported.
const GAP: i64 = 10;

/// Reports each key's event count once it has been idle for `GAP` ms of
/// event time, with the time of the key's previous report if that is at
/// most 30 ms old (a TTL table).
struct IdleReport {
    counts: ValueTable<i64>,
    deadlines: ValueTable<i64>,
    last_report: ValueTable<i64>,
}

impl IdleReport {
    fn new() -> IdleReport {
        IdleReport {
            counts: ValueTable::new(None),
            deadlines: ValueTable::new(None),
            last_report: ValueTable::new(Some(Ttl {
                after_ms: 30,
                domain: TimeDomain::EventTime,
            })),
        }
    }
}

impl Operator for IdleReport {
    fn process(&mut self, _: usize, batch: Batch, cx: &mut OperatorContext, _: &mut Collector) {
        for e in batch.events {
            let Some(Value::Int(k)) = e.fields.get(Sym::intern("k")) else {
                continue;
            };
            let key = k.to_be_bytes();
            let g = KeyGroup::of(&key[..]);
            *self.counts.update(g, &key, 0, || 0) += 1;
            let timers = cx.timers(TimeDomain::EventTime);
            if let Some(old) = self.deadlines.get(g, &key, 0) {
                timers.delete(g, &key, *old);
            }
            let due = e.time.max(cx.watermark()) + GAP;
            cx.timers(TimeDomain::EventTime).register(g, &key, due);
            self.deadlines.put(g, &key, due, 0);
        }
    }

    fn on_timer(
        &mut self,
        _: TimeDomain,
        timer: Timer,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let (g, key, now) = (timer.group, &timer.key[..], cx.watermark());
        let n = self.counts.remove(g, key, 0).unwrap_or(0);
        self.deadlines.remove(g, key, 0);
        let previous = self.last_report.get(g, key, now).copied();
        self.last_report.put(g, key, timer.time, now);
        let mut f = Fields::default();
        let key = key
            .try_into()
            .map_or(Value::Null, |k| Value::Int(i64::from_be_bytes(k)));
        f.push(Sym::intern("key"), key);
        f.push(Sym::intern("n"), Value::Int(n));
        f.push(
            Sym::intern("previous"),
            previous.map_or(Value::Null, Value::Int),
        );
        out.push(Output::MAIN, Event::new(timer.time, f));
    }

    fn tables(&mut self) -> Vec<NamedTable<'_>> {
        vec![
            ("counts", &mut self.counts),
            ("deadlines", &mut self.deadlines),
            ("last_report", &mut self.last_report),
        ]
    }
}

#[derive(Clone, Debug)]
enum Step {
    Events(Vec<(i64, i64)>),
    Watermark(i64),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        prop::collection::vec((0i64..200, 0i64..6), 1..6).prop_map(Step::Events),
        (0i64..220).prop_map(Step::Watermark),
    ];
    prop::collection::vec(step, 1..40)
}

struct Instance {
    op: IdleReport,
    cx: OperatorContext,
}

fn fresh() -> Instance {
    Instance {
        op: IdleReport::new(),
        cx: context(GroupRange::all()),
    }
}

fn apply(inst: &mut Instance, step: &Step, out: &mut Collector) {
    match step {
        Step::Events(events) => {
            let events = events
                .iter()
                .map(|&(t, k)| {
                    let mut f = Fields::default();
                    f.push(Sym::intern("k"), Value::Int(k));
                    Event::new(t, f)
                })
                .collect();
            inst.op.process(0, Batch::new(events, 0), &mut inst.cx, out);
        }
        Step::Watermark(w) => {
            inst.cx.advance(&mut inst.op, *w, out);
        }
    }
}

fn render(out: &mut Collector) -> Vec<String> {
    out.take(Output::MAIN)
        .iter()
        .map(|e| format!("{e:?}"))
        .collect()
}

/// The run's output, checkpointed and restored after each step in `cuts`.
fn run(steps: &[Step], cuts: &[usize]) -> Vec<String> {
    let mut inst = fresh();
    let mut out = Collector::new();
    let mut seen = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        apply(&mut inst, step, &mut out);
        seen.extend(render(&mut out));
        if cuts.contains(&i) {
            let state = OperatorState::take(&mut inst.op, &mut inst.cx);
            let mut restored = fresh();
            if let Some(bytes) = state.map(|s| s.encode()) {
                OperatorState::restore(
                    &bytes,
                    &GroupRange::all(),
                    &mut restored.op,
                    &mut restored.cx,
                )
                .unwrap();
            }
            inst = restored;
        }
    }
    inst.cx.end(&mut inst.op, &mut out);
    seen.extend(render(&mut out));
    seen
}

proptest! {
    #[test]
    fn a_restored_operator_continues_exactly(
        steps in steps(),
        cuts in prop::collection::vec(0usize..40, 0..6),
    ) {
        let straight = run(&steps, &[]);
        // Every key with events is reported once by the end.
        let keys: std::collections::BTreeSet<i64> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Events(e) => Some(e.iter().map(|&(_, k)| k)),
                Step::Watermark(_) => None,
            })
            .flatten()
            .collect();
        prop_assert!(straight.len() >= keys.len());
        prop_assert_eq!(run(&steps, &cuts), straight);
    }
}

#[test]
fn a_table_the_operator_no_longer_keeps_is_named() {
    let mut inst = fresh();
    let mut out = Collector::new();
    apply(&mut inst, &Step::Events(vec![(1, 1)]), &mut out);
    let bytes = OperatorState::take(&mut inst.op, &mut inst.cx)
        .unwrap()
        .encode();

    struct Stateless;
    impl Operator for Stateless {
        fn process(&mut self, _: usize, _: Batch, _: &mut OperatorContext, _: &mut Collector) {}
    }
    let mut cx = context(GroupRange::all());
    let err = OperatorState::restore(&bytes, &GroupRange::all(), &mut Stateless, &mut cx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`counts`"), "{err}");
}
