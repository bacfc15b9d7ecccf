//! Alert rule tests: the lifecycle on event-time timers, rendering,
//! identity, errors, and state that survives a checkpoint.

use eddy_core::component::{BuildContext, TransformFactory};
use eddy_core::config::{deserialize_body, parse_document};
use eddy_core::operator_state::OperatorState;
use eddy_core::state::GroupRange;
use eddy_core::{Batch, Collector, Event, Fields, Operator, OperatorContext, Output, Sym, Value};
use proptest::prelude::*;

use super::{AlertRuleConfig, AlertRuleOperator};

const MIN: i64 = 60_000;

fn config(body: &str) -> AlertRuleConfig {
    let text = format!("[alerts.cpu_high]\ninputs = [\"src\"]\n{body}\n");
    let (doc, diags) = parse_document(&text, &[]);
    assert!(diags.is_empty(), "{diags:?}");
    deserialize_body::<AlertRuleConfig>(&doc.components[0].body)
        .unwrap_or_else(|d| panic!("{}", d.message))
}

struct Rule {
    op: AlertRuleOperator,
    cx: OperatorContext,
    out: Collector,
}

impl Rule {
    fn new(body: &str) -> Rule {
        let c = config(body);
        let cx = BuildContext::single("cpu_high")
            .with_outputs(&c.outputs())
            .unwrap();
        Rule {
            op: AlertRuleOperator::new(&c, "cpu_high", cx.output(super::LATE).unwrap()),
            cx: eddy_state::context(GroupRange::all()),
            out: Collector::new(),
        }
    }

    fn send(&mut self, events: Vec<Event>) {
        self.op
            .process(0, Batch::new(events, 0), &mut self.cx, &mut self.out);
    }

    fn op_late(&self) -> Output {
        let c = config(RULE);
        BuildContext::single("cpu_high")
            .with_outputs(&c.outputs())
            .unwrap()
            .output(super::LATE)
            .unwrap()
    }

    fn watermark(&mut self, t: i64) {
        self.cx.advance(&mut self.op, t, &mut self.out);
    }

    /// (minute, status, host) of the alerts emitted since the last call.
    fn alerts(&mut self) -> Vec<(i64, String, String)> {
        self.out
            .take(Output::MAIN)
            .iter()
            .map(|e| (e.time / MIN, text(e, "status"), text(e, "labels.host")))
            .collect()
    }
}

fn text(e: &Event, path: &str) -> String {
    let path: Vec<Sym> = path.split('.').map(Sym::intern).collect();
    match e.fields.get_path(&path) {
        Some(Value::Str(s)) => s.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn cpu(minute: i64, host: &str, load: f64) -> Event {
    let mut f = Fields::default();
    f.push(Sym::intern("host"), Value::str(host));
    f.push(Sym::intern("cpu"), Value::Float(load));
    Event::new(minute * MIN, f)
}

const RULE: &str = r#"condition = "cpu > 90.0"
key = "host"
severity = "high"
resolve_after = "5m"
labels = { host = "{host}" }
annotations = { summary = "CPU of {host} at {cpu}%" }"#;

#[test]
fn fires_at_once_and_resolves_when_no_event_meets_the_condition_for_resolve_after() {
    let mut r = Rule::new(RULE);
    r.send(vec![
        cpu(1, "web-1", 97.0),
        cpu(0, "web-1", 95.0),
        cpu(0, "web-2", 50.0),
    ]);
    assert!(
        r.out.take(Output::MAIN).is_empty(),
        "events wait for the watermark"
    );
    r.watermark(MIN);
    let firing = r.out.take(Output::MAIN);
    assert_eq!(firing.len(), 1);
    let a = &firing[0];
    assert_eq!(text(a, "alertname"), "cpu_high");
    assert_eq!(text(a, "status"), "firing");
    assert_eq!(text(a, "severity"), "high");
    assert_eq!(text(a, "labels.severity"), "high");
    assert_eq!(text(a, "annotations.summary"), "CPU of web-1 at 95.0%");
    assert_eq!(text(a, "starts_at"), "1970-01-01T00:00:00.000Z");
    assert_eq!(text(a, "fingerprint").len(), 16);
    // Still met at minute 1: the 5-minute clock restarts from there.
    r.send(vec![cpu(3, "web-1", 40.0)]);
    r.watermark(5 * MIN);
    // Behind the watermark: aside, unjudged.
    r.send(vec![cpu(4, "web-1", 99.0)]);
    assert_eq!(r.out.take(r.op_late()).len(), 1);
    assert!(r.alerts().is_empty());
    r.watermark(6 * MIN);
    let resolved = r.out.take(Output::MAIN);
    assert_eq!(resolved.len(), 1);
    assert_eq!(text(&resolved[0], "status"), "resolved");
    assert_eq!(resolved[0].time, 6 * MIN);
    assert_eq!(text(&resolved[0], "ends_at"), "1970-01-01T00:06:00.000Z");
    assert_eq!(
        text(&resolved[0], "cause"),
        "no event met the condition for 5m"
    );
    assert_eq!(text(&resolved[0], "fingerprint"), text(a, "fingerprint"));
}

#[test]
fn for_keeps_an_alert_pending_until_it_held_that_long_even_without_events() {
    let mut r = Rule::new(&format!("{RULE}\nfor = \"3m\""));
    r.send(vec![cpu(0, "web-1", 95.0), cpu(0, "web-2", 95.0)]);
    r.watermark(0);
    assert_eq!(
        r.alerts(),
        vec![
            (0, "pending".into(), "web-1".into()),
            (0, "pending".into(), "web-2".into())
        ]
    );
    // web-2 fails the condition before 3 minutes: it never fires.
    r.send(vec![cpu(1, "web-1", 96.0), cpu(2, "web-2", 10.0)]);
    r.watermark(2 * MIN);
    assert_eq!(r.alerts(), vec![(2, "inactive".into(), "web-2".into())]);
    // No event for web-1 after minute 1, but it held: the timer fires it.
    r.watermark(3 * MIN);
    assert_eq!(r.alerts(), vec![(3, "firing".into(), "web-1".into())]);
    r.watermark(i64::MAX);
    assert_eq!(r.alerts(), vec![(6, "resolved".into(), "web-1".into())]);
}

#[test]
fn a_pending_alert_whose_events_stopped_long_ago_does_not_fire() {
    let mut r = Rule::new(&format!("{RULE}\nfor = \"10m\""));
    r.send(vec![cpu(0, "web-1", 95.0)]);
    r.watermark(20 * MIN);
    assert_eq!(
        r.alerts(),
        vec![
            (0, "pending".into(), "web-1".into()),
            (10, "inactive".into(), "web-1".into())
        ]
    );
}

#[test]
fn identity_is_the_label_set_and_errors_become_dead_letters() {
    let mut r = Rule::new(RULE);
    r.send(vec![cpu(0, "web-1", 95.0), cpu(0, "web-2", 95.0)]);
    r.watermark(0);
    let alerts = r.out.take(Output::MAIN);
    assert_ne!(
        text(&alerts[0], "fingerprint"),
        text(&alerts[1], "fingerprint")
    );
    let mut again = Rule::new(RULE);
    again.send(vec![cpu(0, "web-1", 99.0)]);
    again.watermark(0);
    assert_eq!(
        text(&again.out.take(Output::MAIN)[0], "fingerprint"),
        text(&alerts[0], "fingerprint")
    );

    let mut bad = Fields::default();
    bad.push(Sym::intern("host"), Value::str("web-3"));
    bad.push(Sym::intern("cpu"), Value::str("high"));
    r.send(vec![Event::new(MIN, bad)]);
    r.watermark(MIN);
    let dead = r.out.take(Output::DEAD_LETTERS);
    assert_eq!(dead.len(), 1);
    assert!(
        text(&dead[0], "reason").contains("condition `cpu > 90.0`"),
        "{:?}",
        dead[0]
    );
    let mut no_host = Fields::default();
    no_host.push(Sym::intern("cpu"), Value::Float(99.0));
    let mut r =
        Rule::new("condition = \"cpu > 90.0\"\nannotations = { summary = \"{host} is hot\" }");
    r.send(vec![Event::new(0, no_host)]);
    r.watermark(0);
    let dead = r.out.take(Output::DEAD_LETTERS);
    assert!(
        text(&dead[0], "reason").contains("summary"),
        "{:?}",
        dead[0]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A rule checkpointed and restored anywhere emits exactly what the
    /// uninterrupted rule emits.
    #[test]
    fn a_restored_rule_continues_exactly(
        raw in prop::collection::vec((0i64..3, 0usize..3, 0u32..2), 1..60),
        hold in prop::sample::select(vec![0i64, 2, 5]),
        cut in 0usize..60,
    ) {
        let body = if hold == 0 { RULE.to_string() } else { format!("{RULE}\nfor = \"{hold}m\"") };
        let steps: Vec<(Event, i64)> = raw
            .iter()
            .scan(0i64, |t, &(dt, host, hot)| {
                *t += dt;
                Some((cpu(*t, ["a", "b", "c"][host], if hot == 1 { 95.0 } else { 10.0 }), *t * MIN))
            })
            .collect();
        let run = |cut: Option<usize>| {
            let mut r = Rule::new(&body);
            let mut all = Vec::new();
            for (i, (e, wm)) in steps.iter().enumerate() {
                if Some(i) == cut {
                    let state = OperatorState::take(&mut r.op, &mut r.cx).map(|s| s.encode()).unwrap_or_default();
                    let mut fresh = Rule::new(&body);
                    OperatorState::restore(&state, &GroupRange::all(), &mut fresh.op, &mut fresh.cx).unwrap();
                    r = fresh;
                }
                r.send(vec![e.clone()]);
                r.watermark(*wm - 1);
                all.extend(r.out.take(Output::MAIN).into_iter().map(|a| (a.time, text(&a, "status"), text(&a, "fingerprint"), text(&a, "cause"))));
            }
            r.watermark(i64::MAX);
            all.extend(r.out.take(Output::MAIN).into_iter().map(|a| (a.time, text(&a, "status"), text(&a, "fingerprint"), text(&a, "cause"))));
            all
        };
        prop_assert_eq!(run(Some(cut.min(steps.len()))), run(None));
    }
}

#[test]
fn labels_may_not_redefine_alertname_or_severity_and_unknown_severities_are_refused() {
    let text = "[sources.m]\ntype = \"stdin\"\n\n[alerts.hot]\ninputs = [\"m\"]\ncondition = \"cpu > 90.0\"\nlabels = { severity = \"page\" }\n";
    let err = rule_checks(text);
    assert!(
        err.contains("label `severity` is set by the rule itself"),
        "{err}"
    );
    let text = "[alerts.hot]\ninputs = [\"m\"]\ncondition = \"true\"\nseverity = \"urgent\"\n";
    let (doc, _) = parse_document(text, &[]);
    let e = deserialize_body::<AlertRuleConfig>(&doc.components[0].body).unwrap_err();
    assert!(
        e.message.contains("unknown variant `urgent`"),
        "{}",
        e.message
    );
}

/// The rule's own checks, as the plan runs them (the plan itself lives in
/// the runtime, which depends on this crate).
fn rule_checks(text: &str) -> String {
    let (doc, diags) = parse_document(text, &[]);
    assert!(diags.is_empty(), "{diags:?}");
    let c = deserialize_body::<AlertRuleConfig>(&doc.components[1].body).unwrap();
    c.validate(&Default::default())
        .iter()
        .map(|d| d.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// An alert resolved by hand resolves at the watermark naming who did it;
/// its old timer then does nothing, and the condition met again starts a
/// new alert. A fingerprint no instance has changes nothing.
#[test]
fn an_alert_resolved_by_hand_resolves_at_the_watermark_and_may_fire_again() {
    use super::{Resolution, RuleControl};
    use std::sync::Arc;
    let control = Arc::new(RuleControl::default());
    let Rule { op, cx, out } = Rule::new(RULE);
    let mut r = Rule {
        op: op.controlled_by(Some(control.clone())),
        cx,
        out,
    };
    r.send(vec![cpu(0, "web-1", 95.0), cpu(0, "web-2", 95.0)]);
    r.watermark(MIN);
    let firing = r.out.take(Output::MAIN);
    assert_eq!(firing.len(), 2);
    let web1 = text(&firing[0], "fingerprint");
    let resolve = |fingerprint: &str| Resolution {
        fingerprint: fingerprint.into(),
        by: "ann".into(),
        comment: "rebooted".into(),
    };
    control.resolve(resolve("0000000000000000"));
    control.resolve(resolve(&web1));
    r.cx.tick(&mut r.op, 0, &mut r.out);
    let resolved = r.out.take(Output::MAIN);
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(text(&resolved[0], "status"), "resolved");
    assert_eq!(text(&resolved[0], "labels.host"), "web-1");
    assert_eq!(text(&resolved[0], "cause"), "resolved by ann: rebooted");
    assert_eq!(resolved[0].time, MIN, "at the watermark");
    r.cx.tick(&mut r.op, 0, &mut r.out);
    assert!(r.alerts().is_empty(), "each request acts once");
    // web-1's old resolution timer (minute 5) finds nothing to do.
    r.send(vec![cpu(7, "web-1", 99.0)]);
    r.watermark(7 * MIN);
    assert_eq!(
        r.alerts(),
        vec![
            (5, "resolved".into(), "web-2".into()),
            (7, "firing".into(), "web-1".into())
        ]
    );
}

/// A firing alert met again and again keeps one resolution timer (moved
/// to its new deadline), not one per event: memory stays flat under a
/// steady stream, and it still resolves on time.
#[test]
fn a_firing_alert_keeps_one_resolution_timer() {
    use eddy_core::state::TimeDomain;
    let mut r = Rule::new(RULE);
    for minute in 0..1_000 {
        r.send(vec![cpu(minute, "web-1", 95.0)]);
        r.watermark(minute * MIN);
    }
    assert_eq!(r.alerts(), vec![(0, "firing".into(), "web-1".into())]);
    let timers = r.cx.timers(TimeDomain::EventTime).due(i64::MAX);
    assert_eq!(
        timers.iter().map(|t| t.time / MIN).collect::<Vec<_>>(),
        [999 + 5],
        "one timer, at the last event plus resolve_after"
    );
}
