//! Global window tests: `every` against a brute-force oracle, batching
//! independence, the defects they replace, `ttl`, `max_keys`, and
//! aggregates that would leave the finite range.

use std::collections::BTreeMap;

use eddy_core::component::{BuildContext, TransformFactory};
use eddy_core::{Batch, Collector, Event, Output, Value};
use proptest::prelude::*;

use crate::test_util::driven;

use super::tests::{
    body, config, ev, expected, get, late, operator, run, simulation, ts, In, Op, AGG_NAMES,
};
use super::WindowOperator;

/// One result: key, start, end, aggregates.
type Row = (i64, i64, i64, Vec<Value>);

fn rows(results: &[Event], keyed: bool) -> Vec<(i64, Value, Value, Vec<Value>)> {
    results
        .iter()
        .map(|r| {
            let key = if keyed {
                get(r, "k").as_i64().unwrap_or(-1)
            } else {
                0
            };
            let aggs = AGG_NAMES.iter().map(|a| get(r, a).clone()).collect();
            (
                key,
                get(r, "window_start").clone(),
                get(r, "window_end").clone(),
                aggs,
            )
        })
        .collect()
}

fn rendered(want: &[Row]) -> Vec<(i64, Value, Value, Vec<Value>)> {
    want.iter()
        .map(|(k, s, e, a)| (*k, ts(*s), ts(*e), a.clone()))
        .collect()
}

/// Brute-force `{ global = true, every }`: every accepted event is kept;
/// the result at boundary b is computed from scratch from the key's events
/// before b. Emission order: per watermark, boundaries ascending; within
/// one, keys by the arrival of their first event of that period (`all`:
/// by their first accepted event); late re-emissions at the end of each
/// batch in the order keys became dirty.
fn every_oracle(
    events: &[In],
    ops: &[Op],
    every: i64,
    lateness: i64,
    keyed: bool,
    all: bool,
) -> (Vec<Row>, Vec<i64>) {
    let period = |t: i64| (t.div_euclid(every) + 1) * every;
    let key_of = |e: &In| if keyed { e.k } else { 0 };
    let mut accepted: Vec<&In> = Vec::new();
    let mut label: BTreeMap<i64, i64> = BTreeMap::new();
    let (mut rows, mut late, mut wm) = (Vec::new(), Vec::new(), i64::MIN);
    let row = |key: i64, end: i64, group: Vec<&In>| -> Row {
        let start = group.iter().map(|e| e.t).min().unwrap_or(i64::MAX);
        (key, start, end, expected(&group))
    };
    let fire = |prev: i64,
                w: i64,
                accepted: &[&In],
                label: &mut BTreeMap<i64, i64>,
                rows: &mut Vec<Row>| {
        let mut bounds: Vec<i64> = accepted
            .iter()
            .map(|e| period(e.t))
            .filter(|p| prev < p - 1 && p - 1 <= w)
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        for b in bounds {
            let mut keys: Vec<i64> = Vec::new();
            for e in accepted {
                let fits = if all {
                    period(e.t) <= b
                } else {
                    period(e.t) == b
                };
                if fits && !keys.contains(&key_of(e)) {
                    keys.push(key_of(e));
                }
            }
            if all {
                // By first accepted event of the key.
                keys.sort_by_key(|k| accepted.iter().position(|e| key_of(e) == *k));
            }
            for k in keys {
                let group: Vec<&In> = accepted
                    .iter()
                    .copied()
                    .filter(|e| key_of(e) == k && period(e.t) <= b)
                    .collect();
                label.insert(k, b);
                rows.push(row(k, b, group));
            }
        }
    };
    for o in ops {
        match o {
            Op::Watermark(w) => {
                if *w > wm {
                    fire(wm, *w, &accepted, &mut label, &mut rows);
                    wm = *w;
                }
            }
            Op::Batch(ids) => {
                let mut dirty: Vec<(i64, i64)> = Vec::new();
                for &i in ids {
                    let e = &events[i];
                    let p = period(e.t);
                    if p - 1 + lateness <= wm {
                        late.push(e.id);
                        continue;
                    }
                    accepted.push(e);
                    if p - 1 <= wm {
                        let k = key_of(e);
                        let l = label.get(&k).copied().unwrap_or(i64::MIN).max(p);
                        match dirty.iter_mut().find(|(dk, _)| *dk == k) {
                            Some(d) => d.1 = d.1.max(l),
                            None => dirty.push((k, l)),
                        }
                    }
                }
                for (k, l) in dirty {
                    let l = label.get(&k).copied().unwrap_or(i64::MIN).max(l);
                    label.insert(k, l);
                    let group: Vec<&In> = accepted
                        .iter()
                        .copied()
                        .filter(|e| key_of(e) == k && period(e.t) - 1 <= wm)
                        .collect();
                    rows.push(row(k, l, group));
                }
            }
        }
    }
    fire(wm, i64::MAX, &accepted, &mut label, &mut rows);
    (rows, late)
}

/// The same arrivals cut into other batches (`cuts`), with each watermark
/// step split so that it passes one boundary at a time.
fn rebatched(ops: &[Op], cuts: &[bool], every: i64) -> Vec<Op> {
    let (mut out, mut batch, mut n, mut wm) = (Vec::new(), Vec::new(), 0usize, i64::MIN);
    for o in ops {
        match o {
            Op::Batch(ids) => {
                for &i in ids {
                    batch.push(i);
                    if cuts.get(n).copied().unwrap_or(false) {
                        out.push(Op::Batch(std::mem::take(&mut batch)));
                    }
                    n += 1;
                }
            }
            Op::Watermark(w) => {
                out.push(Op::Batch(std::mem::take(&mut batch)));
                if wm > i64::MIN {
                    // Stop at the last instant of each boundary on the way.
                    let mut b = (wm + 1).div_euclid(every) * every + every;
                    while b - 1 < *w {
                        out.push(Op::Watermark(b - 1));
                        b += every;
                    }
                }
                out.push(Op::Watermark(*w));
                wm = *w;
            }
        }
    }
    out.push(Op::Batch(batch));
    out
}

fn every_body(keyed: bool, lateness: i64, all: bool) -> String {
    let b = body(keyed, "{ global = true, every = \"20ms\" }", lateness);
    if all {
        format!("emit = \"all\"\n{b}")
    } else {
        b
    }
}

fn starts_before_ends(results: &[Event]) -> bool {
    results
        .iter()
        .all(|r| get(r, "window_start").to_string() <= get(r, "window_end").to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn global_every_matches_oracle(
        (events, ops) in simulation(),
        keyed: bool,
        late: bool,
        all: bool,
    ) {
        let lateness = if late { 45 } else { 0 };
        let r = run(&every_body(keyed, lateness, all), &events, &ops, keyed);
        let (want, want_late) = every_oracle(&events, &ops, 20, lateness, keyed, all);
        let mut got_late = r.late.clone();
        got_late.sort_unstable();
        let mut want_late = want_late;
        want_late.sort_unstable();
        prop_assert_eq!(got_late, want_late);
        prop_assert!(starts_before_ends(&r.results));
        prop_assert_eq!(rows(&r.results, keyed), rendered(&want));
    }

    #[test]
    fn global_every_output_does_not_depend_on_batching(
        (events, ops) in simulation(),
        cuts in prop::collection::vec(any::<bool>(), 0..300),
        keyed: bool,
        all: bool,
    ) {
        let b = every_body(keyed, 0, all);
        let one = run(&b, &events, &ops, keyed);
        let other = run(&b, &events, &rebatched(&ops, &cuts, 20), keyed);
        prop_assert_eq!(&one.late, &other.late);
        prop_assert_eq!(rows(&one.results, keyed), rows(&other.results, keyed));
    }
}

const EVERY: &str =
    "key = \"k\"\nwindow = { global = true, every = \"10ms\" }\naggregates = { n = \"count()\" }";

fn k(t: i64, key: &str) -> Event {
    ev(t, &[("k", Value::str(key))])
}

fn summary(results: &[Event]) -> Vec<(String, Value, Value, Value)> {
    results
        .iter()
        .map(|r| {
            (
                get(r, "k").to_string(),
                get(r, "window_start").clone(),
                get(r, "window_end").clone(),
                get(r, "n").clone(),
            )
        })
        .collect()
}

/// Events at or after a boundary that arrive before the watermark passes it
/// belong to the next result (they were counted under the earlier label).
#[test]
fn a_result_covers_only_events_before_its_boundary() {
    let mut op = driven(operator(EVERY));
    let mut out = Collector::new();
    op.process(0, Batch::new(vec![k(1, "a"), k(15, "a")], 0), &mut out);
    op.on_watermark(9, &mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(r, vec![("a".into(), ts(1), ts(10), Value::Int(1))]);
    op.finish(&mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(r, vec![("a".into(), ts(1), ts(20), Value::Int(2))]);
}

/// The same events and watermarks give the same results however they are
/// batched (one result per boundary the key had events before).
#[test]
fn results_do_not_depend_on_batch_size() {
    let feed = |batches: Vec<Vec<Event>>| {
        let mut op = driven(operator(EVERY));
        let mut out = Collector::new();
        for b in batches {
            op.process(0, Batch::new(b, 0), &mut out);
        }
        op.on_watermark(40, &mut out);
        op.finish(&mut out);
        summary(&out.take(Output::MAIN))
    };
    let together = feed(vec![vec![k(5, "a"), k(25, "a")]]);
    let apart = feed(vec![vec![k(5, "a")], vec![k(25, "a")]]);
    assert_eq!(together, apart);
    assert_eq!(
        together,
        vec![
            ("a".into(), ts(5), ts(10), Value::Int(1)),
            ("a".into(), ts(5), ts(30), Value::Int(2)),
        ]
    );
}

/// An event ahead of the watermark never labels a result with an end
/// before its start.
#[test]
fn window_end_is_never_before_window_start() {
    let mut op = driven(operator(EVERY));
    let mut out = Collector::new();
    op.process(0, Batch::new(vec![k(50, "a")], 0), &mut out);
    op.on_watermark(19, &mut out);
    assert!(out.take(Output::MAIN).is_empty(), "its period ends at 60");
    op.on_watermark(59, &mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(r, vec![("a".into(), ts(50), ts(60), Value::Int(1))]);
}

/// A watermark jumping over many boundaries emits each boundary's changes
/// in order, as separate results.
#[test]
fn a_jump_fires_each_boundary_in_order() {
    let mut op = driven(operator(EVERY));
    let mut out = Collector::new();
    let batch = vec![k(31, "b"), k(2, "a"), k(12, "a"), k(35, "a")];
    op.process(0, Batch::new(batch, 0), &mut out);
    op.on_watermark(1_000_000, &mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(
        r,
        vec![
            ("a".into(), ts(2), ts(10), Value::Int(1)),
            ("a".into(), ts(2), ts(20), Value::Int(2)),
            ("b".into(), ts(31), ts(40), Value::Int(1)),
            ("a".into(), ts(2), ts(40), Value::Int(3)),
        ]
    );
}

#[test]
fn late_events_within_lateness_re_emit_the_same_boundary() {
    let mut op = driven(operator(
        &EVERY.replace("aggregates", "allowed_lateness = \"15ms\"\naggregates"),
    ));
    let mut out = Collector::new();
    op.process(0, Batch::new(vec![k(3, "a"), k(14, "a")], 0), &mut out);
    op.on_watermark(19, &mut out);
    assert_eq!(out.take(Output::MAIN).len(), 2);
    // Period [10, 20) is within lateness until watermark 34: re-emitted at 20.
    op.process(0, Batch::new(vec![k(11, "a"), k(12, "a")], 0), &mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(r, vec![("a".into(), ts(3), ts(20), Value::Int(4))]);
    // Period [0, 10) is past its lateness (watermark 24 >= 9 + 15): late.
    op.on_watermark(24, &mut out);
    let e = k(1, "a");
    op.process(0, Batch::new(vec![e.clone()], 0), &mut out);
    assert_eq!(out.take(late()), vec![e]);
    assert!(out.take(Output::MAIN).is_empty());
}

#[test]
fn emit_all_repeats_unchanged_keys_at_firing_boundaries() {
    let mut op = driven(operator(&format!("emit = \"all\"\n{EVERY}")));
    let mut out = Collector::new();
    op.process(
        0,
        Batch::new(vec![k(1, "a"), k(2, "b"), k(15, "b")], 0),
        &mut out,
    );
    op.on_watermark(100, &mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(
        r,
        vec![
            ("a".into(), ts(1), ts(10), Value::Int(1)),
            ("b".into(), ts(2), ts(10), Value::Int(1)),
            ("a".into(), ts(1), ts(20), Value::Int(1)),
            ("b".into(), ts(2), ts(20), Value::Int(2)),
        ]
    );
    let wrong =
        config("window = { tumbling = \"1s\" }\nemit = \"all\"\naggregates = { n = \"count()\" }");
    let diags = wrong.validate(&eddy_core::component::ValidateContext::default());
    assert!(diags
        .iter()
        .any(|d| d.message.contains("`emit` applies only")));
}

#[test]
fn ttl_drops_idle_keys_and_they_start_afresh() {
    let mut op = driven(operator(
        &EVERY.replace("aggregates", "ttl = \"20ms\"\naggregates"),
    ));
    let mut out = Collector::new();
    op.process(0, Batch::new(vec![k(5, "a")], 0), &mut out);
    op.on_watermark(24, &mut out);
    assert_eq!(out.take(Output::MAIN).len(), 1);
    // Idle since 5: dropped at watermark 25.
    op.on_watermark(25, &mut out);
    op.process(0, Batch::new(vec![k(30, "a")], 0), &mut out);
    op.finish(&mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(r, vec![("a".into(), ts(30), ts(40), Value::Int(1))]);

    let mut count = driven(operator("key = \"k\"\nwindow = { global = true, count = 5 }\nttl = \"20ms\"\naggregates = { n = \"count()\" }"));
    count.process(0, Batch::new(vec![k(5, "a"), k(7, "a")], 0), &mut out);
    count.on_watermark(26, &mut out);
    assert!(out.take(Output::MAIN).is_empty(), "idle for 19 ms only");
    count.on_watermark(27, &mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(r, vec![("a".into(), ts(5), ts(8), Value::Int(2))]);
}

#[test]
fn keys_beyond_max_keys_are_dead_letters_without_ttl() {
    let mut cx = BuildContext::single("w");
    cx.limits.max_keys = 2;
    for (window, ttl) in [
        ("{ global = true, every = \"10ms\" }", ""),
        ("{ global = true, count = 3 }", ""),
        ("{ global = true, every = \"10ms\" }", "ttl = \"1h\"\n"),
    ] {
        let c = config(&format!(
            "key = \"k\"\nwindow = {window}\n{ttl}aggregates = {{ n = \"count()\" }}"
        ));
        let mut op = crate::test_util::driven_box(
            c.build(&cx.clone().with_outputs(&c.outputs()).unwrap())
                .unwrap(),
        );
        let mut out = Collector::new();
        let batch = vec![k(1, "a"), k(2, "b"), k(3, "c"), k(4, "a")];
        op.process(0, Batch::new(batch, 0), &mut out);
        op.finish(&mut out);
        let dead = out.take(Output::DEAD_LETTERS);
        let results = summary(&out.take(Output::MAIN));
        if ttl.is_empty() {
            assert_eq!(dead.len(), 1, "{window}");
            let reason = get(&dead[0], "reason").to_string();
            for part in ["window `w`", "2 keys", "max_keys", "set `ttl`"] {
                assert!(reason.contains(part), "{reason}");
            }
            let n: Vec<_> = results.iter().map(|r| (r.0.clone(), r.3.clone())).collect();
            assert_eq!(
                n,
                vec![("a".into(), Value::Int(2)), ("b".into(), Value::Int(1))]
            );
        } else {
            assert!(dead.is_empty());
            assert_eq!(results.len(), 3);
        }
    }
}

#[test]
fn count_windows_label_their_own_events() {
    let mut op = driven(operator(
        "key = \"k\"\nwindow = { global = true, count = 2 }\naggregates = { n = \"count()\" }",
    ));
    let mut out = Collector::new();
    op.process(
        0,
        Batch::new(vec![k(9, "a"), k(4, "a"), k(7, "a")], 0),
        &mut out,
    );
    op.finish(&mut out);
    let r = summary(&out.take(Output::MAIN));
    assert_eq!(
        r,
        vec![
            ("a".into(), ts(4), ts(10), Value::Int(2)),
            ("a".into(), ts(7), ts(8), Value::Int(1)),
        ]
    );
}

/// An operator whose aggregate `s` is `sum(v)` over float values.
fn float_sums(window: &str) -> WindowOperator {
    operator(&format!(
        "key = \"k\"\nwindow = {window}\naggregates = {{ n = \"count()\", s = \"sum(v)\" }}"
    ))
}

fn fv(t: i64, v: f64) -> Event {
    ev(t, &[("k", Value::str("a")), ("v", Value::Float(v))])
}

/// Runs `events` through `op` to the end; returns `(results (n, s), dead-letter reasons)`.
fn sums(op: WindowOperator, events: Vec<Event>) -> (Vec<(Value, Value)>, Vec<String>) {
    let mut op = driven(op);
    let mut out = Collector::new();
    op.process(0, Batch::new(events, 0), &mut out);
    op.finish(&mut out);
    let results = out
        .take(Output::MAIN)
        .iter()
        .map(|r| (get(r, "n").clone(), get(r, "s").clone()))
        .collect();
    let dead = out
        .take(Output::DEAD_LETTERS)
        .iter()
        .map(|d| get(d, "reason").to_string())
        .collect();
    (results, dead)
}

#[test]
fn a_sum_leaving_the_finite_range_is_a_dead_letter() {
    let (results, dead) = sums(
        float_sums("{ tumbling = \"10ms\" }"),
        vec![fv(1, 1e308), fv(2, 1e308), fv(3, -1.0)],
    );
    assert_eq!(results, vec![(Value::Int(2), Value::Float(1e308 - 1.0))]);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].contains("aggregate `s`") && dead[0].contains("`sum`"),
        "{}",
        dead[0]
    );
}

#[test]
fn a_refused_event_changes_no_sliding_window() {
    // 5 is in [-10, 10) and [0, 20); 15 in [0, 20) and [10, 30).
    let (results, dead) = sums(
        float_sums("{ sliding = \"20ms\", every = \"10ms\" }"),
        vec![fv(5, 1.5e308), fv(15, 1.5e308)],
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(
        results,
        vec![
            (Value::Int(1), Value::Float(1.5e308)),
            (Value::Int(1), Value::Float(1.5e308)),
        ],
        "[10, 30) must not hold the refused event"
    );
}

/// The overflow guard of a sliding window (the largest magnitude seen and
/// how many events) is state: a restored window snapshots to the same
/// bytes, guard included, so it decides as the uninterrupted run would.
#[test]
fn a_sliding_window_s_overflow_guard_survives_a_restore() {
    let window = "{ sliding = \"20ms\", every = \"10ms\" }";
    let mut first = driven(float_sums(window));
    let mut out = Collector::new();
    let events = vec![fv(5, 1.5e100), fv(7, -3.0), fv(15, 2.5)];
    first.process(0, Batch::new(events, 0), &mut out);
    let bytes = first.snapshot();
    let mut restored = driven(float_sums(window));
    restored.restore(&bytes).unwrap();
    assert_eq!(restored.snapshot(), bytes);
    // And both refuse alike what would leave the range.
    for op in [&mut first, &mut restored] {
        op.process(
            0,
            Batch::new(vec![fv(16, 1.7e308), fv(17, 1.7e308)], 0),
            &mut out,
        );
        assert_eq!(out.take(Output::DEAD_LETTERS).len(), 1);
    }
}

#[test]
fn a_session_merge_leaving_the_range_is_refused() {
    let (results, dead) = sums(
        float_sums("{ session = \"10ms\" }"),
        vec![fv(0, 1.5e308), fv(20, 1.5e308), fv(10, 0.0)],
    );
    assert_eq!(dead.len(), 1, "the bridging event");
    assert_eq!(results.len(), 2, "the sessions stay apart");
}

#[test]
fn a_global_total_never_overflows_when_periods_fire() {
    let mut op = driven(float_sums("{ global = true, every = \"10ms\" }"));
    let mut out = Collector::new();
    op.process(0, Batch::new(vec![fv(1, 1.5e308)], 0), &mut out);
    op.on_watermark(9, &mut out);
    // Pending alone it is finite; merged into the total at 20 it is not.
    op.process(
        0,
        Batch::new(vec![fv(15, 1.5e308), fv(16, 1.0)], 0),
        &mut out,
    );
    op.finish(&mut out);
    let dead = out.take(Output::DEAD_LETTERS);
    assert_eq!(dead.len(), 1);
    let s: Vec<Value> = out
        .take(Output::MAIN)
        .iter()
        .map(|r| get(r, "s").clone())
        .collect();
    assert_eq!(s, vec![Value::Float(1.5e308), Value::Float(1.5e308 + 1.0)]);
}

#[test]
fn variance_overflow_is_refused_but_huge_ewma_is_not() {
    let feed = |aggs: &str, values: &[f64]| {
        let mut op = driven(operator(&format!(
            "window = {{ tumbling = \"10ms\" }}\naggregates = {{ {aggs} }}"
        )));
        let mut out = Collector::new();
        let batch = values
            .iter()
            .enumerate()
            .map(|(i, v)| ev(i as i64, &[("v", Value::Float(*v))]))
            .collect();
        op.process(0, Batch::new(batch, 0), &mut out);
        op.finish(&mut out);
        (out.take(Output::MAIN), out.take(Output::DEAD_LETTERS))
    };
    let (r, dead) = feed("var = \"variance(v)\"", &[1e150, 1.7e308, -1e150]);
    assert_eq!(dead.len(), 1, "the spread of 1.7e308 overflows the squares");
    assert!(get(&dead[0], "reason")
        .to_string()
        .contains("aggregate `var`"));
    assert!(matches!(get(&r[0], "var"), Value::Float(f) if f.is_finite() && *f > 1e299));
    let (r, dead) = feed(
        "e = \"ewma(v, \\\"1ms\\\")\"",
        &[1.7e308, 1.7e308, -1.7e308, 1.7e308],
    );
    assert!(dead.is_empty());
    assert!(matches!(get(&r[0], "e"), Value::Float(f) if f.is_finite()));
}
