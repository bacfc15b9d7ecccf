//! Window operator tests: configuration, unit behaviour, and property tests
//! against a brute-force oracle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

use eddy_core::component::{BuildContext, Partitioning, TransformFactory};
use eddy_core::config::{deserialize_body, parse_document};
use eddy_core::time::format_rfc3339;
use eddy_core::{Batch, Collector, Event, Fields, Output, Sym, Value};
use proptest::prelude::*;

use crate::test_util::driven;

use super::{WindowConfig, WindowKind, WindowOperator};

/// Deserialises a `[transforms.w]` body.
pub(super) fn parse(body: &str) -> Result<WindowConfig, String> {
    let text = format!("[transforms.w]\ntype = \"window\"\ninputs = [\"src\"]\n{body}\n");
    let (doc, diags) = parse_document(&text, &[]);
    assert!(diags.is_empty(), "{diags:?}");
    deserialize_body::<WindowConfig>(&doc.components[0].body).map_err(|d| d.message)
}

pub(super) fn config(body: &str) -> WindowConfig {
    parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

pub(super) fn operator(body: &str) -> WindowOperator {
    let c = config(body);
    WindowOperator::new(&c, "w", u64::MAX, late())
}

/// The id of a window's `late` output, as the runtime resolves it.
pub(super) fn late() -> Output {
    let cx = BuildContext::single("w")
        .with_outputs(&config(TUMBLING).outputs())
        .unwrap();
    cx.output(super::LATE).unwrap()
}

pub(super) fn ev(t: i64, fields: &[(&str, Value)]) -> Event {
    let mut f = Fields::default();
    for (k, v) in fields {
        f.push(Sym::intern(k), v.clone());
    }
    Event::new(t, f)
}

pub(super) fn get<'a>(e: &'a Event, name: &str) -> &'a Value {
    e.get(Sym::intern(name)).unwrap_or(&Value::Null)
}

pub(super) fn names(e: &Event) -> Vec<&'static str> {
    e.fields.iter().map(|(k, _)| k.as_str()).collect()
}

pub(super) fn ts(ms: i64) -> Value {
    Value::str(&format_rfc3339(ms))
}

// ---------------------------------------------------------------- config

#[test]
fn parses_the_design_example() {
    let c = config(
        r#"key = "merchant"
window = { sliding = "5m", every = "1m" }
allowed_lateness = "30s"
aggregates = { n = "count()", total = "sum(amount)", p99 = "quantile(amount, 0.99)",
               buyers = "count_distinct(user.id)", top = "top_k(country, 5)" }"#,
    );
    assert_eq!(
        *c.window.get_ref(),
        WindowKind::Sliding {
            size: eddy_core::config::Duration::from_ms(300_000),
            every: eddy_core::config::Duration::from_ms(60_000)
        }
    );
    assert_eq!(c.allowed_lateness.ms(), 30_000);
    let order: Vec<&str> = c.specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["n", "total", "p99", "buyers", "top"]);
    assert!(matches!(c.partitioning(0), Partitioning::Hash(k) if k.len() == 1));
    let outputs: Vec<String> = c.outputs().into_iter().map(|o| o.name).collect();
    assert_eq!(outputs, ["late"]);
    assert!(c
        .validate(&eddy_core::component::ValidateContext::default())
        .is_empty());
    let cx = BuildContext::single("w");
    assert!(
        c.build(&cx).is_err(),
        "`late` must be declared to the runtime"
    );
    assert!(c.build(&cx.with_outputs(&c.outputs()).unwrap()).is_ok());
}

#[test]
fn every_window_shape_parses() {
    let shapes = [
        ("{ tumbling = \"1m\" }", "Tumbling"),
        ("{ session = \"30s\" }", "Session"),
        ("{ global = true, count = 100 }", "GlobalCount"),
        ("{ global = true, every = \"10s\" }", "GlobalEvery"),
    ];
    for (w, kind) in shapes {
        let c = config(&format!("window = {w}\naggregates = {{ n = \"count()\" }}"));
        assert!(format!("{:?}", c.window.get_ref()).starts_with(kind), "{w}");
        assert!(matches!(c.partitioning(0), Partitioning::Single));
    }
    let c = config("key = [\"a\", \"user.id\"]\nwindow = { tumbling = \"1s\" }\ntime = \"processing\"\naggregates = { n = \"count()\" }");
    assert_eq!(c.key.0.len(), 2);
    assert_eq!(c.time, super::TimeDomain::Processing);
}

#[test]
fn config_errors_are_specific() {
    let agg = "aggregates = { n = \"count()\" }";
    let cases = [
        (
            format!("window = {{ sliding = \"1m\", every = \"5m\" }}\n{agg}"),
            "exceeds its size",
        ),
        (
            format!("window = {{ sliding = \"1m\" }}\n{agg}"),
            "needs `every`",
        ),
        (
            format!("window = {{ tumbling = \"1m\", session = \"5s\" }}\n{agg}"),
            "exactly one of",
        ),
        (
            format!("window = {{ global = true }}\n{agg}"),
            "needs a trigger",
        ),
        (
            format!("window = {{ tumbling = \"1m\" }}\nwindwo = 3\n{agg}"),
            "unknown field",
        ),
        (
            format!("window = {{ tumbling = \"1m\" }}\ntime = \"wall\"\n{agg}"),
            "unknown variant",
        ),
        (
            format!("window = {{ tumbling = \"1m\" }}\nkey = \"a +\"\n{agg}"),
            "bad key expression",
        ),
        (
            "window = { tumbling = \"1m\" }\naggregates = { p = \"quantile(x, 2)\" }".into(),
            "within [0, 1]",
        ),
        (
            "window = { tumbling = \"1m\" }\naggregates = { s = \"summ(x)\" }".into(),
            "did you mean `sum`?",
        ),
        (
            "window = { tumbling = \"1m\" }\naggregates = {}".into(),
            "no aggregates",
        ),
    ];
    for (body, want) in cases {
        let err = parse(&body).expect_err(&body);
        assert!(err.contains(want), "{body}\n=> {err}");
    }
    let clash = config("key = \"merchant\"\nwindow = { tumbling = \"1m\" }\naggregates = { merchant = \"count()\" }");
    let diags = clash.validate(&eddy_core::component::ValidateContext::default());
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.contains("`merchant`"));
}

// ---------------------------------------------------------------- behaviour

const TUMBLING: &str = "key = \"k\"\nwindow = { tumbling = \"10ms\" }\naggregates = { n = \"count()\", total = \"sum(v)\" }";

/// A firing larger than a piece comes out in pieces when the caller takes
/// them one at a time (as the runtime does), each about `PIECE` events,
/// every key once, and the window's state goes only once all are out.
#[test]
fn a_large_firing_comes_out_in_pieces() {
    use eddy_core::operator::PIECE;
    let keys = 3 * PIECE as i64 + 123;
    let mut op = driven(operator(TUMBLING));
    op.cx.piecewise = true;
    let mut out = Collector::new();
    let events: Vec<Event> = (0..keys)
        .map(|k| ev(1, &[("k", Value::Int(k)), ("v", Value::Int(k))]))
        .collect();
    op.process(0, Batch::new(events, 0), &mut out);
    op.on_watermark(9, &mut out);
    let mut pieces = vec![out.take(Output::MAIN)];
    while op.cx.resume(&mut *op.op, &mut out) {
        pieces.push(out.take(Output::MAIN));
    }
    pieces.push(out.take(Output::MAIN));
    // The last call frees the fired slices, after the last results left.
    assert_eq!(pieces.pop().map(|p| p.len()), Some(0));
    let sizes: Vec<usize> = pieces.iter().map(Vec::len).collect();
    assert!(sizes.len() >= 4, "{sizes:?}");
    // A piece ends at the first key group boundary past PIECE events.
    assert!(sizes.iter().all(|&n| n < PIECE + PIECE / 8), "{sizes:?}");
    let (last, full) = sizes.split_last().unwrap_or((&0, &[]));
    assert!(
        full.iter().all(|&n| n >= PIECE) && *last < PIECE,
        "{sizes:?}"
    );
    let mut seen: Vec<i64> = pieces
        .iter()
        .flatten()
        .map(|e| match get(e, "k") {
            Value::Int(k) => *k,
            other => panic!("{other:?}"),
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..keys).collect::<Vec<_>>());
    assert!(op.snapshot().len() < 64, "the fired window was dropped");
}

#[test]
fn tumbling_fires_at_end_minus_one_with_field_order_and_origin() {
    let mut op = driven(operator(TUMBLING));
    let mut out = Collector::new();
    let batch = vec![
        ev(3, &[("k", Value::str("a")), ("v", Value::Int(1))]),
        ev(9, &[("k", Value::str("a")), ("v", Value::Int(2))]),
        ev(10, &[("k", Value::str("a")), ("v", Value::Int(4))]),
    ];
    op.process(0, Batch::new(batch, 77), &mut out);
    assert!(out.is_empty());
    op.on_watermark(8, &mut out);
    assert!(
        out.take(Output::MAIN).is_empty(),
        "window [0,10) must wait for watermark 9"
    );
    op.on_watermark(9, &mut out);
    let results = out.take(Output::MAIN);
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(names(r), ["window_start", "window_end", "k", "n", "total"]);
    assert_eq!(get(r, "window_start"), &ts(0));
    assert_eq!(get(r, "window_end"), &ts(10));
    assert_eq!(get(r, "k"), &Value::str("a"));
    assert_eq!(
        (get(r, "n"), get(r, "total")),
        (&Value::Int(2), &Value::Int(3))
    );
    assert_eq!(r.time, 9);
    assert_eq!(out.origin_ns, 77);
    op.finish(&mut out);
    let rest = out.take(Output::MAIN);
    assert_eq!(rest.len(), 1);
    assert_eq!(get(&rest[0], "total"), &Value::Int(4));
}

#[test]
fn late_events_go_to_the_late_port_unchanged() {
    let mut op = driven(operator(TUMBLING));
    let mut out = Collector::new();
    op.on_watermark(100, &mut out);
    let late = ev(5, &[("k", Value::str("a")), ("v", Value::Int(1))]);
    op.process(0, Batch::new(vec![late.clone()], 1), &mut out);
    assert_eq!(out.take(super::tests::late()), vec![late]);
    assert!(out.take(Output::MAIN).is_empty());
}

#[test]
fn in_lateness_updates_re_emit_once_per_batch() {
    let body = TUMBLING.replace("aggregates", "allowed_lateness = \"20ms\"\naggregates");
    let mut op = driven(operator(&body));
    let mut out = Collector::new();
    let e = |v: i64| ev(2, &[("k", Value::str("a")), ("v", Value::Int(v))]);
    op.process(0, Batch::new(vec![e(1)], 1), &mut out);
    op.on_watermark(15, &mut out);
    assert_eq!(out.take(Output::MAIN).len(), 1);
    op.process(0, Batch::new(vec![e(10), e(100)], 2), &mut out);
    let updated = out.take(Output::MAIN);
    assert_eq!(updated.len(), 1, "one re-emission for the batch");
    assert_eq!(get(&updated[0], "total"), &Value::Int(111));
    assert_eq!(out.origin_ns, 2);
    // Cleanup at end - 1 + lateness = 29: afterwards the event is late.
    op.on_watermark(29, &mut out);
    op.process(0, Batch::new(vec![e(5)], 3), &mut out);
    assert_eq!(out.take(late()).len(), 1);
    assert!(out.take(Output::MAIN).is_empty());
}

#[test]
fn failed_evaluation_is_a_dead_letter_and_updates_nothing() {
    let mut op = driven(operator("key = \"10 / d\"\nwindow = { tumbling = \"10ms\" }\naggregates = { n = \"count()\", s = \"sum(v)\" }"));
    let mut out = Collector::new();
    let events = vec![
        ev(1, &[("d", Value::Int(0)), ("v", Value::Int(1))]),
        ev(1, &[("d", Value::Int(1)), ("v", Value::str("x"))]),
        ev(1, &[("d", Value::Int(2)), ("v", Value::Int(3))]),
    ];
    op.process(0, Batch::new(events, 0), &mut out);
    let dead = out.take(Output::DEAD_LETTERS);
    assert_eq!(dead.len(), 2);
    let reason = |i: usize| get(&dead[i], "reason").to_string();
    assert!(reason(0).contains("division by zero"), "{}", reason(0));
    assert!(reason(1).contains("needs a number"), "{}", reason(1));
    op.finish(&mut out);
    let results = out.take(Output::MAIN);
    assert_eq!(results.len(), 1);
    assert_eq!(
        names(&results[0]),
        ["window_start", "window_end", "key", "n", "s"]
    );
    assert_eq!(get(&results[0], "key"), &Value::Int(5));
    assert_eq!(get(&results[0], "n"), &Value::Int(1));
}

#[test]
fn multi_key_fields_are_named_after_paths() {
    let mut op = driven(operator("key = [\"user.id\", \"country\"]\nwindow = { session = \"5ms\" }\naggregates = { n = \"count()\" }"));
    let mut user = Fields::default();
    user.push(Sym::intern("id"), Value::Int(7));
    let user = Value::Map(std::sync::Arc::new(user));
    let mut out = Collector::new();
    let e = |t| ev(t, &[("user", user.clone()), ("country", Value::str("AR"))]);
    op.process(0, Batch::new(vec![e(1), e(4), e(20)], 0), &mut out);
    op.finish(&mut out);
    let results = out.take(Output::MAIN);
    assert_eq!(results.len(), 2);
    assert_eq!(
        names(&results[0]),
        ["window_start", "window_end", "id", "country", "n"]
    );
    assert_eq!(
        (get(&results[0], "window_end"), get(&results[0], "n")),
        (&ts(9), &Value::Int(2))
    );
}

#[test]
fn global_every_emits_running_totals_without_purging() {
    let mut op = driven(operator("key = \"k\"\nwindow = { global = true, every = \"10ms\" }\naggregates = { n = \"count()\" }"));
    let mut out = Collector::new();
    let e = |t| ev(t, &[("k", Value::Int(1))]);
    op.process(0, Batch::new(vec![e(1), e(3)], 0), &mut out);
    op.on_watermark(9, &mut out);
    let first = out.take(Output::MAIN);
    assert_eq!(first.len(), 1);
    assert_eq!(
        (get(&first[0], "window_start"), get(&first[0], "window_end")),
        (&ts(1), &ts(10))
    );
    op.on_watermark(12, &mut out);
    assert!(out.take(Output::MAIN).is_empty(), "no new boundary");
    op.process(0, Batch::new(vec![e(15)], 0), &mut out);
    op.on_watermark(30, &mut out);
    let second = out.take(Output::MAIN);
    assert_eq!(second.len(), 1, "only the boundary after the new event");
    assert_eq!(get(&second[0], "n"), &Value::Int(3));
    assert_eq!(get(&second[0], "window_end"), &ts(20));
    assert_eq!(get(&second[0], "window_start"), &ts(1));
}

/// A sliding window keeps one accumulator per key and slice (the gcd of
/// size and every), not per window: ten events of one key in five slices
/// are five entries, though each event falls in five windows. Each window
/// still counts every event it covers.
#[test]
fn sliding_windows_keep_state_per_slice() {
    let mut op = driven(operator(
        "key = \"k\"\nwindow = { sliding = \"10s\", every = \"2s\" }\naggregates = { n = \"count()\" }",
    ));
    let mut out = Collector::new();
    let events = (0..10)
        .map(|i| ev(i * 1_000, &[("k", Value::Int(1))]))
        .collect();
    op.process(0, Batch::new(events, 0), &mut out);
    assert_eq!(op.op.tables()[0].1.stored(), 5);
    op.on_watermark(30_000, &mut out);
    let counts: Vec<(String, i64)> = out
        .take(Output::MAIN)
        .iter()
        .map(|r| {
            (
                get(r, "window_start").to_string(),
                get(r, "n").as_i64().unwrap(),
            )
        })
        .collect();
    // Windows [-8s, 2s) .. [8s, 18s): 2, 4, 6, 8, 10, 8, 6, 4, 2 events.
    let want: Vec<i64> = vec![2, 4, 6, 8, 10, 8, 6, 4, 2];
    assert_eq!(
        counts.iter().map(|c| c.1).collect::<Vec<_>>(),
        want,
        "{counts:?}"
    );
    assert_eq!(op.op.tables()[0].1.stored(), 0, "every slice dropped");
}

/// `top` needs aligned windows, a key, a sensible `n` and an aggregate to
/// rank by; each mistake is named.
#[test]
fn top_settings_are_checked() {
    let check = |body: &str| {
        let c = config(body);
        let cx = eddy_core::component::ValidateContext::default();
        c.validate(&cx)
            .into_iter()
            .map(|d| format!("{} (hint: {})", d.message, d.hint.unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let aggs = "aggregates = { n = \"count()\" }";
    let ok = check(&format!(
        "key = \"k\"\nwindow = {{ tumbling = \"1s\" }}\n{aggs}\ntop = {{ n = 3, by = \"n\" }}"
    ));
    assert_eq!(ok, "");
    let session = check(&format!(
        "key = \"k\"\nwindow = {{ session = \"1s\" }}\n{aggs}\ntop = {{ n = 3, by = \"n\" }}"
    ));
    assert!(
        session.contains("tumbling and sliding windows only"),
        "{session}"
    );
    let unkeyed = check(&format!(
        "window = {{ tumbling = \"1s\" }}\n{aggs}\ntop = {{ n = 3, by = \"n\" }}"
    ));
    assert!(unkeyed.contains("has no `key`"), "{unkeyed}");
    let zero = check(&format!(
        "key = \"k\"\nwindow = {{ tumbling = \"1s\" }}\n{aggs}\ntop = {{ n = 0, by = \"n\" }}"
    ));
    assert!(zero.contains("n = 0"), "{zero}");
    let unknown = check(&format!(
        "key = \"k\"\nwindow = {{ tumbling = \"1s\" }}\n{aggs}\ntop = {{ n = 1, by = \"total\" }}"
    ));
    assert!(
        unknown.contains("`total`") && unknown.contains("use one of: n"),
        "{unknown}"
    );
    let clash = check("key = \"k\"\nwindow = { tumbling = \"1s\" }\naggregates = { rank = \"count()\" }\ntop = { n = 1, by = \"rank\" }");
    assert!(
        clash.contains("aggregate `rank` has the name of another output field"),
        "{clash}"
    );
}

static CLOCK: AtomicI64 = AtomicI64::new(0);

fn fake_clock() -> i64 {
    CLOCK.load(Ordering::SeqCst)
}

#[test]
fn processing_time_windows_use_the_operator_clock() {
    let mut op = driven(operator(
        "window = { tumbling = \"10ms\" }\ntime = \"processing\"\naggregates = { n = \"count()\" }",
    )
    .with_clock(fake_clock));
    let mut out = Collector::new();
    CLOCK.store(1_003, Ordering::SeqCst);
    // The event time is ignored: the operator's clock places it.
    op.process(
        0,
        Batch::new(vec![ev(5, &[]), ev(999_999, &[])], 0),
        &mut out,
    );
    op.on_watermark(i64::MAX - 1, &mut out);
    assert!(
        out.take(Output::MAIN).is_empty(),
        "watermarks do not drive processing time"
    );
    op.on_tick(1_009, &mut out);
    assert!(out.take(Output::MAIN).is_empty());
    op.on_tick(1_010, &mut out);
    let r = out.take(Output::MAIN);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (get(&r[0], "window_start"), get(&r[0], "n")),
        (&ts(1_000), &Value::Int(2))
    );
}

// ---------------------------------------------------------------- oracle

/// One generated input event.
#[derive(Clone, Debug)]
pub(super) struct In {
    pub(super) id: i64,
    pub(super) t: i64,
    pub(super) k: i64,
    pub(super) v: i64,
}

/// What the simulated source does next.
#[derive(Clone, Debug)]
pub(super) enum Op {
    Batch(Vec<usize>),
    Watermark(i64),
}

/// Max distance by which the watermark trails the largest time seen. Jitter
/// goes up to three times that, so some events arrive late.
const BOUND: i64 = 40;

/// Random out-of-order input: times increase by 0..20 per event, minus a
/// jitter of 0..120; batches end at random and a watermark
/// `max_seen - BOUND` (never decreasing) follows some batches.
pub(super) fn simulation() -> impl Strategy<Value = (Vec<In>, Vec<Op>)> {
    prop::collection::vec((0i64..20, 0i64..120, 0i64..3, -50i64..50, 0u8..8), 1..300).prop_map(
        |raw| {
            let (mut base, mut max_seen, mut wm) = (1_000i64, i64::MIN, i64::MIN);
            let (mut events, mut ops, mut batch) = (Vec::new(), Vec::new(), Vec::new());
            for (i, (delta, jitter, k, v, action)) in raw.into_iter().enumerate() {
                base += delta;
                let t = base - jitter;
                events.push(In {
                    id: i as i64,
                    t,
                    k,
                    v,
                });
                batch.push(i);
                max_seen = max_seen.max(t);
                if action < 3 {
                    ops.push(Op::Batch(std::mem::take(&mut batch)));
                    if action < 2 && max_seen - BOUND > wm {
                        wm = max_seen - BOUND;
                        ops.push(Op::Watermark(wm));
                    }
                }
            }
            ops.push(Op::Batch(batch));
            (events, ops)
        },
    )
}

pub(super) const AGGS: &str =
    "aggregates = { n = \"count()\", s = \"sum(v)\", lo = \"min(v)\", hi = \"max(v)\", \
                    mean = \"avg(v)\", f = \"first(v)\", l = \"last(v)\" }";
pub(super) const AGG_NAMES: [&str; 7] = ["n", "s", "lo", "hi", "mean", "f", "l"];

pub(super) fn body(keyed: bool, window: &str, lateness: i64) -> String {
    let key = if keyed { "key = \"k\"\n" } else { "" };
    let late = if lateness > 0 {
        format!("allowed_lateness = \"{lateness}ms\"\n")
    } else {
        String::new()
    };
    format!("{key}window = {window}\n{late}{AGGS}")
}

/// The expected aggregates of a group of events (`first` / `last` break
/// event-time ties by the value, never by arrival).
pub(super) fn expected(group: &[&In]) -> Vec<Value> {
    let n = group.len() as i64;
    let sum: i64 = group.iter().map(|e| e.v).sum();
    let first = group.iter().map(|e| (e.t, e.v)).min().map(|(_, v)| v);
    let last = group.iter().map(|e| (e.t, e.v)).max().map(|(_, v)| v);
    vec![
        Value::Int(n),
        Value::Int(sum),
        Value::Int(group.iter().map(|e| e.v).min().unwrap_or(0)),
        Value::Int(group.iter().map(|e| e.v).max().unwrap_or(0)),
        Value::Float(sum as f64 / n as f64),
        Value::Int(first.unwrap_or(0)),
        Value::Int(last.unwrap_or(0)),
    ]
}

pub(super) struct Run {
    /// Results in emission order.
    pub(super) results: Vec<Event>,
    /// Ids of events emitted on the late port, in order.
    pub(super) late: Vec<i64>,
}

/// Feeds the simulation to a fresh operator, then finishes it.
pub(super) fn run(body: &str, events: &[In], ops: &[Op], keyed: bool) -> Run {
    let mut op = driven(operator(body));
    let mut out = Collector::new();
    let mut run = Run {
        results: Vec::new(),
        late: Vec::new(),
    };
    for o in ops {
        match o {
            Op::Batch(ids) => {
                let batch = ids
                    .iter()
                    .map(|&i| {
                        let e = &events[i];
                        let mut f = vec![("id", Value::Int(e.id)), ("v", Value::Int(e.v))];
                        if keyed {
                            f.push(("k", Value::Int(e.k)));
                        }
                        ev(e.t, &f)
                    })
                    .collect();
                op.process(0, Batch::new(batch, 0), &mut out);
            }
            Op::Watermark(w) => op.on_watermark(*w, &mut out),
        }
        run.results.extend(out.take(Output::MAIN));
        run.late.extend(
            out.take(late())
                .iter()
                .map(|e| get(e, "id").as_i64().unwrap_or(-1)),
        );
        assert!(out.take(Output::DEAD_LETTERS).is_empty());
    }
    op.finish(&mut out);
    run.results.extend(out.take(Output::MAIN));
    assert!(out.take(late()).is_empty(), "finish emits no late events");
    run
}

type WindowId = (i64, i64, i64);

/// Per window (start, end): its ranked rows (key, aggregates).
type Rankings = BTreeMap<(String, String), Vec<(i64, Vec<Value>)>>;

/// The last result per (key, start, end), with the aggregates in order.
fn last_results(results: &[Event], keyed: bool) -> BTreeMap<(i64, String, String), Vec<Value>> {
    let mut m = BTreeMap::new();
    for r in results {
        let key = if keyed {
            get(r, "k").as_i64().unwrap_or(-1)
        } else {
            0
        };
        let start = get(r, "window_start").to_string();
        let end = get(r, "window_end").to_string();
        m.insert(
            (key, start, end),
            AGG_NAMES.iter().map(|a| get(r, a).clone()).collect(),
        );
    }
    m
}

fn rendered(groups: &BTreeMap<WindowId, Vec<&In>>) -> BTreeMap<(i64, String, String), Vec<Value>> {
    groups
        .iter()
        .map(|(&(k, s, e), g)| ((k, format_rfc3339(s), format_rfc3339(e)), expected(g)))
        .collect()
}

/// Oracle for tumbling and sliding windows: per arrival, the windows that
/// contain the event and are not past `end - 1 + lateness` at the current
/// watermark; none → late.
fn aligned_oracle<'a>(
    events: &'a [In],
    ops: &[Op],
    size: i64,
    slide: i64,
    lateness: i64,
    keyed: bool,
) -> (BTreeMap<WindowId, Vec<&'a In>>, Vec<i64>) {
    let (mut groups, mut late, mut wm) = (BTreeMap::new(), Vec::new(), i64::MIN);
    for o in ops {
        match o {
            Op::Watermark(w) => wm = wm.max(*w),
            Op::Batch(ids) => {
                for &i in ids {
                    let e = &events[i];
                    let key = if keyed { e.k } else { 0 };
                    let mut accepted = false;
                    // Brute force: every aligned start near t.
                    let mut start = (e.t - size).div_euclid(slide) * slide;
                    while start <= e.t {
                        let end = start + size;
                        if start <= e.t && e.t < end && end - 1 + lateness > wm {
                            groups
                                .entry((key, start, end))
                                .or_insert_with(Vec::new)
                                .push(e);
                            accepted = true;
                        }
                        start += slide;
                    }
                    if !accepted {
                        late.push(e.id);
                    }
                }
            }
        }
    }
    (groups, late)
}

/// Oracle for session windows: per key, the live sessions as lists of
/// events, merged by brute force; sessions past `end - 1 + lateness` at a
/// watermark become final.
fn session_oracle<'a>(
    events: &'a [In],
    ops: &[Op],
    gap: i64,
    lateness: i64,
    keyed: bool,
) -> (BTreeMap<WindowId, Vec<&'a In>>, Vec<i64>) {
    type Live<'a> = Vec<(i64, i64, Vec<&'a In>)>;
    let mut live: BTreeMap<i64, Live<'a>> = BTreeMap::new();
    let (mut done, mut late, mut wm) = (BTreeMap::new(), Vec::new(), i64::MIN);
    for o in ops {
        match o {
            Op::Watermark(w) => {
                wm = wm.max(*w);
                for (k, sessions) in live.iter_mut() {
                    sessions.retain(|(s, e, g)| {
                        let keep = e - 1 + lateness > wm;
                        if !keep {
                            done.insert((*k, *s, *e), g.clone());
                        }
                        keep
                    });
                }
            }
            Op::Batch(ids) => {
                for &i in ids {
                    let ev = &events[i];
                    let key = if keyed { ev.k } else { 0 };
                    let sessions = live.entry(key).or_default();
                    let (mut s, mut e, mut g) = (ev.t, ev.t + gap, vec![ev]);
                    let touching: Vec<usize> = (0..sessions.len())
                        .filter(|&j| sessions[j].0 <= e && sessions[j].1 >= s)
                        .collect();
                    if touching.is_empty() && e - 1 + lateness <= wm {
                        late.push(ev.id);
                        continue;
                    }
                    for &j in touching.iter().rev() {
                        let (s2, e2, g2) = sessions.remove(j);
                        s = s.min(s2);
                        e = e.max(e2);
                        g.extend(g2);
                    }
                    g.sort_by_key(|x| x.id);
                    sessions.push((s, e, g));
                }
            }
        }
    }
    for (k, sessions) in live {
        for (s, e, g) in sessions {
            done.insert((k, s, e), g);
        }
    }
    (done, late)
}

fn check_late(run: &Run, mut want: Vec<i64>) -> Result<(), TestCaseError> {
    let mut got = run.late.clone();
    got.sort_unstable();
    want.sort_unstable();
    prop_assert_eq!(got, want, "late events (each exactly once, nothing else)");
    Ok(())
}

/// Each window's last ranking in `r` (results with aggregates `names`)
/// is its two best keys by aggregate `by` of `row` (ties to the smaller
/// key), as the oracle's `groups` give them.
fn check_rankings(
    r: &Run,
    groups: &BTreeMap<WindowId, Vec<&In>>,
    names: &[&str],
    row: impl Fn(&[&In]) -> Vec<Value>,
    by: usize,
    asc: bool,
) -> Result<(), TestCaseError> {
    // A ranking is emitted whole: rank 1 starts it.
    let mut got: Rankings = BTreeMap::new();
    for res in &r.results {
        let window = (
            get(res, "window_start").to_string(),
            get(res, "window_end").to_string(),
        );
        let values = (
            get(res, "k").as_i64().unwrap_or(-1),
            names.iter().map(|a| get(res, a).clone()).collect(),
        );
        let rank = get(res, "rank").as_i64().unwrap_or(-1);
        let ranking = got.entry(window).or_default();
        if rank == 1 {
            ranking.clear();
        }
        prop_assert_eq!(rank as usize, ranking.len() + 1, "ranks count up from 1");
        ranking.push(values);
    }
    let mut want: Rankings = BTreeMap::new();
    for (&(k, s, e), g) in groups {
        want.entry((format_rfc3339(s), format_rfc3339(e)))
            .or_default()
            .push((k, row(g)));
    }
    for ranking in want.values_mut() {
        let value = |row: &(i64, Vec<Value>)| row.1[by].as_i64().unwrap_or(0);
        ranking.sort_by(|a, b| {
            let order = if asc {
                value(a).cmp(&value(b))
            } else {
                value(b).cmp(&value(a))
            };
            order.then(a.0.cmp(&b.0))
        });
        ranking.truncate(2);
    }
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tumbling_matches_oracle((events, ops) in simulation(), keyed: bool, late in prop::bool::ANY) {
        let lateness = if late { 60 } else { 0 };
        let r = run(&body(keyed, "{ tumbling = \"50ms\" }", lateness), &events, &ops, keyed);
        let (groups, want_late) = aligned_oracle(&events, &ops, 50, 50, lateness, keyed);
        check_late(&r, want_late)?;
        prop_assert_eq!(last_results(&r.results, keyed), rendered(&groups));
    }

    #[test]
    fn sliding_matches_oracle((events, ops) in simulation(), keyed: bool, late in prop::bool::ANY, uneven: bool) {
        let lateness = if late { 35 } else { 0 };
        // `every` dividing the size, or not (slices of 10 ms, an event in
        // two or three windows).
        let (window, size) = if uneven {
            ("{ sliding = \"50ms\", every = \"20ms\" }", 50)
        } else {
            ("{ sliding = \"60ms\", every = \"20ms\" }", 60)
        };
        let r = run(&body(keyed, window, lateness), &events, &ops, keyed);
        let (groups, want_late) = aligned_oracle(&events, &ops, size, 20, lateness, keyed);
        check_late(&r, want_late)?;
        prop_assert_eq!(last_results(&r.results, keyed), rendered(&groups));
    }

    /// `top`: each window's last ranking is its two best keys by `s`
    /// (ties to the smaller key), as the oracle's groups give them, late
    /// updates included.
    #[test]
    fn top_n_matches_oracle((events, ops) in simulation(), sliding: bool, late: bool, asc: bool) {
        let lateness = if late { 35 } else { 0 };
        let (window, size, slide) = if sliding {
            ("{ sliding = \"60ms\", every = \"20ms\" }", 60, 20)
        } else {
            ("{ tumbling = \"50ms\" }", 50, 50)
        };
        let order = if asc { "asc" } else { "desc" };
        let text = format!("{}\ntop = {{ n = 2, by = \"s\", order = \"{order}\" }}", body(true, window, lateness));
        let r = run(&text, &events, &ops, true);
        let (groups, want_late) = aligned_oracle(&events, &ops, size, slide, lateness, true);
        check_late(&r, want_late)?;
        check_rankings(&r, &groups, &AGG_NAMES, expected, 1, asc)?;
    }

    /// Sliding `top` windows over counts only (the hot-items shape): the
    /// same rankings as the oracle's, late updates included.
    #[test]
    fn top_n_over_counts_matches_oracle((events, ops) in simulation(), late: bool, asc: bool, uneven: bool) {
        let lateness = if late { 35 } else { 0 };
        let (window, size) = if uneven {
            ("{ sliding = \"50ms\", every = \"20ms\" }", 50)
        } else {
            ("{ sliding = \"60ms\", every = \"20ms\" }", 60)
        };
        let order = if asc { "asc" } else { "desc" };
        let late_text = if late { format!("allowed_lateness = \"{lateness}ms\"\n") } else { String::new() };
        let text = format!(
            "key = \"k\"\nwindow = {window}\n{late_text}aggregates = {{ n = \"count()\", c = \"count(v)\" }}\n\
             top = {{ n = 2, by = \"n\", order = \"{order}\" }}"
        );
        let r = run(&text, &events, &ops, true);
        let (groups, want_late) = aligned_oracle(&events, &ops, size, 20, lateness, true);
        check_late(&r, want_late)?;
        let counts = |g: &[&In]| vec![Value::Int(g.len() as i64); 2];
        check_rankings(&r, &groups, &["n", "c"], counts, 0, asc)?;
    }

    #[test]
    fn session_matches_oracle((events, ops) in simulation(), keyed: bool, late in prop::bool::ANY) {
        let lateness = if late { 50 } else { 0 };
        let r = run(&body(keyed, "{ session = \"15ms\" }", lateness), &events, &ops, keyed);
        let (sessions, want_late) = session_oracle(&events, &ops, 15, lateness, keyed);
        check_late(&r, want_late)?;
        let got = last_results(&r.results, keyed);
        let want = rendered(&sessions);
        // Every final session's last result is right; other results are
        // earlier versions of sessions that later merged or grew.
        for (id, values) in &want {
            prop_assert_eq!(got.get(id), Some(values), "session {:?}", id);
        }
    }

    #[test]
    fn global_count_matches_oracle((events, ops) in simulation(), keyed: bool) {
        let r = run(&body(keyed, "{ global = true, count = 7 }", 0), &events, &ops, keyed);
        prop_assert!(r.late.is_empty());
        // Per key: arrival order cut into chunks of 7, the last one partial.
        let mut arrivals: BTreeMap<i64, Vec<&In>> = BTreeMap::new();
        for o in &ops {
            if let Op::Batch(ids) = o {
                for &i in ids {
                    arrivals.entry(if keyed { events[i].k } else { 0 }).or_default().push(&events[i]);
                }
            }
        }
        let mut got: BTreeMap<i64, Vec<(Value, Value, Vec<Value>)>> = BTreeMap::new();
        for res in &r.results {
            let key = if keyed { get(res, "k").as_i64().unwrap_or(-1) } else { 0 };
            let aggs = AGG_NAMES.iter().map(|a| get(res, a).clone()).collect();
            got.entry(key).or_default().push((get(res, "window_start").clone(), get(res, "window_end").clone(), aggs));
        }
        let want: BTreeMap<i64, Vec<(Value, Value, Vec<Value>)>> = arrivals
            .iter()
            .map(|(k, evs)| {
                let chunks = evs
                    .chunks(7)
                    .map(|c| {
                        let lo = c.iter().map(|e| e.t).min().unwrap_or(0);
                        let hi = c.iter().map(|e| e.t).max().unwrap_or(0);
                        (ts(lo), ts(hi + 1), expected(c))
                    })
                    .collect();
                (*k, chunks)
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}
