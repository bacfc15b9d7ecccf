//! Anomaly transform tests: configuration, scoring, ordering and state,
//! with a property test against a simple oracle (each key's events sorted
//! by time and fed to the detector model directly).

use std::collections::BTreeMap;

use eddy_core::codec::encode_to_vec;
use eddy_core::component::{BuildContext, TransformFactory, ValidateContext};
use eddy_core::config::{deserialize_body, parse_document};
use eddy_core::{Batch, Collector, Event, Fields, Output, Sym, Value};
use proptest::prelude::*;

use super::{AnomalyConfig, AnomalyOperator, LATE};
use crate::test_util::{driven, Driven};

fn parse(body: &str) -> Result<AnomalyConfig, String> {
    let text = format!("[transforms.a]\ntype = \"anomaly\"\ninputs = [\"src\"]\n{body}\n");
    let (doc, diags) = parse_document(&text, &[]);
    assert!(diags.is_empty(), "{diags:?}");
    deserialize_body::<AnomalyConfig>(&doc.components[0].body).map_err(|d| d.message)
}

fn config(body: &str) -> AnomalyConfig {
    parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn late(c: &AnomalyConfig) -> Output {
    let cx = BuildContext::single("a")
        .with_outputs(&c.outputs())
        .unwrap();
    cx.output(LATE).unwrap()
}

fn operator(body: &str) -> Driven {
    let c = config(body);
    let late = late(&c);
    driven(AnomalyOperator::new(&c, "a", late))
}

fn ev(t: i64, key: &str, x: f64) -> Event {
    let mut f = Fields::default();
    f.push(Sym::intern("host"), Value::str(key));
    f.push(Sym::intern("cpu"), Value::Float(x));
    Event::new(t, f)
}

fn get<'a>(e: &'a Event, path: &str) -> &'a Value {
    let path: Vec<Sym> = path.split('.').map(Sym::intern).collect();
    e.fields.get_path(&path).unwrap_or(&Value::Null)
}

/// A calm series with small deterministic noise and one spike at `spike`.
fn series(n: usize, spike: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let noise = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
            if i == spike {
                50.0
            } else {
                20.0 + noise
            }
        })
        .collect()
}

#[test]
fn marks_the_spike_and_explains_it() {
    for method in ["zscore", "ewma", "iqr", "mad", "ensemble"] {
        let mut op = operator(&format!(
            "key = \"host\"\nfield = \"cpu\"\nmethod = \"{method}\"\norder = \"arrival\""
        ));
        let mut out = Collector::new();
        let events: Vec<Event> = series(300, 250)
            .into_iter()
            .enumerate()
            .map(|(i, x)| ev(i as i64 * 1000, "web-1", x))
            .collect();
        op.process(0, Batch::new(events, 0), &mut out);
        let scored = out.take(Output::MAIN);
        assert_eq!(scored.len(), 300, "{method}");
        let flagged: Vec<i64> = scored
            .iter()
            .filter(|e| get(e, "is_anomaly") == &Value::Bool(true))
            .map(|e| e.time / 1000)
            .collect();
        assert_eq!(flagged.first(), Some(&250), "{method}: {flagged:?}");
        let spike = &scored[250];
        let score = get(spike, "anomaly_score").as_f64().unwrap();
        assert!(score > 0.5 && score < 1.0, "{method}: {score}");
        assert_eq!(get(spike, "anomaly.method"), &Value::str(method));
        let expected = get(spike, "anomaly.expected").as_f64().unwrap();
        assert!(
            (expected - 20.0).abs() < 1.0,
            "{method}: expected {expected}"
        );
        assert!(
            get(spike, "anomaly.high").as_f64().unwrap() < 50.0,
            "{method}"
        );
        assert!(
            (get(spike, "anomaly.deviation").as_f64().unwrap() - (50.0 - expected)).abs() < 1e-9
        );
        // The calm part before it raises nothing.
        assert!(flagged.iter().all(|&t| t >= 250), "{method}: {flagged:?}");
    }
}

#[test]
fn mute_after_alert_keeps_one_incident_to_one_anomaly() {
    let mut op = operator(
        "key = \"host\"\nfield = \"cpu\"\nmethod = \"zscore\"\norder = \"arrival\"\nmute_after_alert = \"10s\"",
    );
    let mut out = Collector::new();
    let mut xs = series(300, 250);
    for x in &mut xs[250..255] {
        *x = 50.0;
    }
    let events = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| ev(i as i64 * 1000, "web-1", x))
        .collect();
    op.process(0, Batch::new(events, 0), &mut out);
    let flagged: Vec<i64> = out
        .take(Output::MAIN)
        .iter()
        .filter(|e| get(e, "is_anomaly") == &Value::Bool(true))
        .map(|e| e.time / 1000)
        .collect();
    assert_eq!(flagged, vec![250]);
}

#[test]
fn keys_learn_apart_and_bad_values_become_dead_letters() {
    let mut op = operator("key = \"host\"\nfield = \"cpu\"\nmethod = \"ewma\"\norder = \"arrival\"\nemit = \"anomalies\"");
    let mut out = Collector::new();
    let mut events = Vec::new();
    for i in 0..200 {
        events.push(ev(i * 1000, "low", 1.0 + (i % 3) as f64 * 0.01));
        events.push(ev(i * 1000, "high", 100.0 + (i % 3) as f64));
    }
    // Normal for `high`, far off for `low`.
    events.push(ev(200_000, "low", 100.0));
    events.push(ev(200_000, "high", 100.0));
    let mut bad = ev(200_001, "low", 0.0);
    bad.fields.insert(Sym::intern("cpu"), Value::str("n/a"));
    events.push(bad);
    op.process(0, Batch::new(events, 0), &mut out);
    let anomalies = out.take(Output::MAIN);
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    assert_eq!(get(&anomalies[0], "host"), &Value::str("low"));
    let dead = out.take(Output::DEAD_LETTERS);
    assert_eq!(dead.len(), 1);
    let reason = get(&dead[0], "reason").as_str().unwrap().to_string();
    assert!(reason.contains("`cpu` is string, not a number"), "{reason}");
}

#[test]
fn event_time_order_waits_for_the_watermark_and_sends_late_events_aside() {
    let c = config("key = \"host\"\nfield = \"cpu\"\nmethod = \"ewma\"");
    let late_out = late(&c);
    let mut op = driven(AnomalyOperator::new(&c, "a", late_out));
    let mut out = Collector::new();
    op.process(
        0,
        Batch::new(vec![ev(3000, "a", 1.0), ev(1000, "a", 2.0)], 0),
        &mut out,
    );
    assert!(
        out.take(Output::MAIN).is_empty(),
        "nothing before the watermark"
    );
    op.on_watermark(2000, &mut out);
    let first: Vec<i64> = out.take(Output::MAIN).iter().map(|e| e.time).collect();
    assert_eq!(first, vec![1000]);
    op.process(0, Batch::new(vec![ev(1500, "a", 3.0)], 0), &mut out);
    assert_eq!(out.take(late_out).len(), 1);
    op.finish(&mut out);
    let rest: Vec<i64> = out.take(Output::MAIN).iter().map(|e| e.time).collect();
    assert_eq!(rest, vec![3000]);
}

#[test]
fn configuration_errors_name_the_fix() {
    let bad_method = parse("field = \"x\"\nmethod = \"magic\"").unwrap_err();
    assert!(
        bad_method.contains("unknown method `magic`") && bad_method.contains("ensemble"),
        "{bad_method}"
    );
    let cx = ValidateContext::default();
    let diag = |body: &str| -> String {
        config(body)
            .validate(&cx)
            .iter()
            .map(|d| format!("{} ({})", d.message, d.hint.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(diag("method = \"ewma\"").contains("no value to score"));
    assert!(diag("fields = [\"a\", \"b\"]\nmethod = \"zscore\"").contains("scores one value"));
    assert!(
        diag("field = \"x\"\nthreshold = 1.5").contains("`threshold` 1.5 is not between 0 and 1")
    );
    assert!(diag("field = \"x\"\nrange = [5, 1]")
        .contains("`range` [5, 1] is not two finite numbers, the smaller first"));
    assert!(diag("field = \"x\"\nrange = [0, 100]").is_empty());
    assert!(diag("fields = [\"a\", \"b\"]\nmethod = \"hst\"").is_empty());
    assert!(diag("field = \"x\"").is_empty());
}

/// What the transform must produce: each key's events in (time, encoded
/// fields) order through the model, every event scored.
fn oracle(c: &AnomalyConfig, events: &[Event]) -> Vec<(Vec<u8>, i64, u64)> {
    let model = c.model();
    let mut by_key: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_key
            .entry(get(e, "host").as_str().unwrap().to_string())
            .or_default()
            .push(e);
    }
    let mut want = Vec::new();
    for (_, mut evs) in by_key {
        // The documented order: time, then the fields as (name, value)
        // pairs in event order.
        let pairs = |e: &Event| -> Vec<(String, Value)> {
            e.fields
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect()
        };
        evs.sort_by(|a, b| {
            a.time.cmp(&b.time).then_with(|| {
                let (pa, pb) = (pairs(a), pairs(b));
                pa.iter()
                    .zip(&pb)
                    .map(|((na, va), (nb, vb))| na.cmp(nb).then_with(|| va.total_cmp(vb)))
                    .find(|o| o.is_ne())
                    .unwrap_or(pa.len().cmp(&pb.len()))
            })
        });
        let mut state = model.key_state();
        for e in evs {
            let x = get(e, "cpu").as_f64().unwrap();
            let v = model.observe(&mut state, e.time, &[x]);
            want.push((encode_to_vec(&e.fields), e.time, v.score.to_bits()));
        }
    }
    want.sort();
    want
}

fn observed(out: Vec<Event>) -> Vec<(Vec<u8>, i64, u64)> {
    let mut got: Vec<(Vec<u8>, i64, u64)> = out
        .into_iter()
        .map(|mut e| {
            let score = get(&e, "anomaly_score").as_f64().unwrap();
            e.fields.remove(Sym::intern("anomaly_score"));
            e.fields.remove(Sym::intern("is_anomaly"));
            e.fields.remove(Sym::intern("anomaly"));
            (encode_to_vec(&e.fields), e.time, score.to_bits())
        })
        .collect();
    got.sort();
    got
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Shuffled within the watermark bound, cut into batches anywhere,
    /// snapshotted and restored midway: the scores equal the oracle's.
    #[test]
    fn scores_depend_only_on_the_input(
        method in prop::sample::select(vec!["zscore", "ewma", "mad", "cusum", "page-hinkley", "bocpd", "seasonal", "hst", "ensemble"]),
        raw in prop::collection::vec((0i64..400, 0usize..3, -50i32..50), 50..250),
        cuts in prop::collection::vec(1usize..40, 1..20),
        restore_at in 0usize..250,
    ) {
        let body = format!("key = \"host\"\nfield = \"cpu\"\nmethod = \"{method}\"\nmin_samples = 5\nhst_window = 16\n");
        let c = config(&body);
        let events: Vec<Event> = raw
            .iter()
            .map(|&(t, k, x)| ev(t * 100, ["a", "b", "c"][k], f64::from(x) + if t % 97 == 0 { 500.0 } else { 0.0 }))
            .collect();
        let want = oracle(&c, &events);
        let late_out = late(&c);
        let mut op = driven(AnomalyOperator::new(&c, "a", late_out));
        let mut out = Collector::new();
        let mut got = Vec::new();
        let mut rest = &events[..];
        let mut i = 0;
        let mut sent = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            i += 1;
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            op.process(0, Batch::new(batch.to_vec(), 0), &mut out);
            sent += n;
            if sent >= restore_at && restore_at > 0 {
                let bytes = op.snapshot();
                let mut fresh = driven(AnomalyOperator::new(&c, "a", late_out));
                fresh.restore(&bytes).unwrap();
                op = fresh;
            }
        }
        op.finish(&mut out);
        got.extend(out.take(Output::MAIN));
        prop_assert!(out.take(late_out).is_empty());
        prop_assert_eq!(observed(got), want);
    }
}
