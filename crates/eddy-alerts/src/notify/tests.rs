//! The `notify` operator on a simulated clock: routing to receivers,
//! group timing, resolution, repetition, dead letters, and groups and
//! timers that survive a checkpoint.

use std::cell::Cell;
use std::sync::Arc;

use eddy_core::component::{BuildContext, TransformFactory};
use eddy_core::config::{deserialize_body, parse_document};
use eddy_core::operator_state::OperatorState;
use eddy_core::state::GroupRange;
use eddy_core::{Batch, Collector, Event, Fields, Operator, OperatorContext, Output, Sym, Value};

use super::{Ack, AlertControl, NotifyConfig};

thread_local! {
    static NOW: Cell<i64> = const { Cell::new(0) };
}

fn clock() -> i64 {
    NOW.with(Cell::get)
}

const CONFIG: &str = r#"
receiver = "oncall"
group_by = ["dept"]
group_wait = "10s"
group_interval = "1m"
repeat_interval = "5m"
routes = [
  { matchers = ['severity = "critical"'], receiver = "pager", continue = true, group_by = ["alertname"] },
]
"#;

fn config(body: &str) -> NotifyConfig {
    let text = format!("[alerts.notify]\ntype = \"notify\"\ninputs = [\"rules\"]\n{body}\n");
    let (doc, diags) = parse_document(&text, &[]);
    assert!(diags.is_empty(), "{diags:?}");
    deserialize_body::<NotifyConfig>(&doc.components[0].body)
        .unwrap_or_else(|d| panic!("{}", d.message))
}

/// A notification as the tests compare it: receiver, status, and each
/// alert's `name:status`, sorted.
type Sent = (String, String, Vec<String>);

struct Notify {
    control: Arc<AlertControl>,
    op: Box<dyn Operator>,
    cx: OperatorContext,
    out: Collector,
    receivers: Vec<(String, Output)>,
}

impl Notify {
    fn new() -> Notify {
        Notify::with(CONFIG)
    }

    fn with(body: &str) -> Notify {
        let c = config(body);
        let cx = BuildContext::single("notify")
            .with_outputs(&c.outputs())
            .unwrap();
        let prepared = c.prepare(&cx.node()).unwrap();
        let cx = cx.with_prepared(prepared);
        let receivers = c
            .outputs()
            .iter()
            .map(|o| (o.name.clone(), cx.output(&o.name).unwrap()))
            .collect();
        Notify {
            control: cx.prepared::<AlertControl>().unwrap(),
            op: Box::new(c.operator(&cx).unwrap().with_clock(clock)),
            cx: eddy_state::context(GroupRange::all()),
            out: Collector::new(),
            receivers,
        }
    }

    /// Checkpoints the operator and carries on with a new one restored
    /// from it, as a process killed and started again does.
    fn restart(&mut self, body: &str) {
        let state = OperatorState::take(&mut *self.op, &mut self.cx).unwrap();
        let mut fresh = Notify::with(body);
        OperatorState::restore(
            &state.encode(),
            &GroupRange::all(),
            &mut *fresh.op,
            &mut fresh.cx,
        )
        .unwrap();
        fresh.op.open(&mut fresh.cx);
        *self = fresh;
    }

    /// Everything sent when the clock moves second by second to `to`:
    /// (second, receiver, status, alerts).
    fn run_to(&mut self, from: i64, to: i64) -> Vec<(i64, Sent)> {
        let mut log = Vec::new();
        for t in (from / S + 1)..=(to / S) {
            for s in self.tick(t * S) {
                log.push((t, s));
            }
        }
        log
    }

    fn send(&mut self, at: i64, events: Vec<Event>) {
        NOW.with(|n| n.set(at));
        self.op
            .process(0, Batch::new(events, 0), &mut self.cx, &mut self.out);
    }

    /// Moves the clock to `at`; returns (receiver, status, alert names and
    /// statuses) of each notification sent meanwhile.
    fn tick(&mut self, at: i64) -> Vec<Sent> {
        NOW.with(|n| n.set(at));
        self.cx.tick(&mut *self.op, at, &mut self.out);
        let mut sent = Vec::new();
        for (name, output) in &self.receivers {
            for n in self.out.take(*output) {
                let status = n
                    .get(Sym::intern("status"))
                    .and_then(Value::as_str)
                    .unwrap();
                let Some(Value::List(alerts)) = n.get(Sym::intern("alerts")) else {
                    panic!("no alerts in {n:?}");
                };
                let mut names: Vec<String> = alerts
                    .iter()
                    .map(|a| {
                        let Value::Map(a) = a else { panic!() };
                        let Some(Value::Map(labels)) = a.get(Sym::intern("labels")) else {
                            panic!()
                        };
                        let name = labels.get(Sym::intern("alertname")).and_then(Value::as_str);
                        let st = a.get(Sym::intern("status")).and_then(Value::as_str);
                        format!("{}:{}", name.unwrap(), st.unwrap())
                    })
                    .collect();
                names.sort();
                sent.push((name.clone(), status.to_string(), names));
            }
        }
        sent
    }
}

fn alert(name: &str, status: &str, severity: &str, dept: &str) -> Event {
    let mut labels = Fields::default();
    labels.push(Sym::intern("alertname"), Value::str(name));
    labels.push(Sym::intern("severity"), Value::str(severity));
    labels.push(Sym::intern("dept"), Value::str(dept));
    let mut f = Fields::default();
    f.push(Sym::intern("alertname"), Value::str(name));
    f.push(Sym::intern("status"), Value::str(status));
    f.push(
        Sym::intern("fingerprint"),
        Value::str(&format!("{name}/{dept}")),
    );
    f.push(Sym::intern("labels"), Value::Map(Arc::new(labels)));
    f.push(Sym::intern("annotations"), Value::Map(Arc::default()));
    f.push(Sym::intern("starts_at"), Value::str("2026-01-01T00:00:00Z"));
    Event::new(0, f)
}

fn sent(receiver: &str, status: &str, alerts: &[&str]) -> Sent {
    (
        receiver.into(),
        status.into(),
        alerts.iter().map(|a| a.to_string()).collect(),
    )
}

const S: i64 = 1_000;

#[test]
fn groups_wait_notify_changes_repeat_and_resolve() {
    let mut n = Notify::new();
    n.send(
        0,
        vec![
            alert("budget", "firing", "critical", "ops"),
            alert("cpu", "firing", "high", "ops"),
            alert("disk", "pending", "high", "ops"),
        ],
    );
    n.send(5 * S, vec![alert("mem", "firing", "low", "ops")]);
    assert!(n.tick(9 * S).is_empty(), "group_wait");
    // The critical alert went to the pager only (a child took it).
    assert_eq!(
        n.tick(10 * S),
        vec![
            sent("oncall", "firing", &["cpu:firing", "mem:firing"]),
            sent("pager", "firing", &["budget:firing"]),
        ]
    );
    n.send(20 * S, vec![alert("cpu", "resolved", "high", "ops")]);
    assert!(n.tick(69 * S).is_empty(), "group_interval");
    assert_eq!(
        n.tick(70 * S),
        vec![sent("oncall", "firing", &["cpu:resolved", "mem:firing"])]
    );
    assert!(n.tick(130 * S).is_empty(), "unchanged");
    // Repeated after repeat_interval (5 min) since the last notification.
    let repeated = n.tick(310 * S);
    assert_eq!(
        repeated,
        vec![sent("pager", "firing", &["budget:firing"])],
        "the pager group last spoke at 10 s"
    );
    assert_eq!(
        n.tick(370 * S),
        vec![sent("oncall", "firing", &["mem:firing"])]
    );
    n.send(380 * S, vec![alert("mem", "resolved", "low", "ops")]);
    assert_eq!(
        n.tick(430 * S),
        vec![sent("oncall", "resolved", &["mem:resolved"])]
    );
    // That group is gone: a late resolution starts nothing.
    n.send(440 * S, vec![alert("mem", "resolved", "low", "ops")]);
    assert!(n.tick(2_000 * S).iter().all(|(r, _, _)| r == "pager"));
}

/// At the end of input the resolutions it brought are reported at once,
/// without waiting for the groups' timers.
#[test]
fn the_end_of_input_reports_what_is_left_at_once() {
    let mut n = Notify::new();
    n.send(0, vec![alert("cpu", "firing", "high", "ops")]);
    assert_eq!(n.tick(10 * S).len(), 1);
    n.send(12 * S, vec![alert("cpu", "resolved", "high", "ops")]);
    NOW.with(|c| c.set(13 * S));
    n.cx.end(&mut *n.op, &mut n.out);
    let (_, output) = n.receivers[0].clone();
    let sent = n.out.take(output);
    assert_eq!(sent.len(), 1);
    let status = sent[0].get(Sym::intern("status")).and_then(Value::as_str);
    assert_eq!(status, Some("resolved"));
}

/// A firing critical alert mutes the high ones of its department while
/// it fires; they come back once it resolves.
#[test]
fn a_firing_source_inhibits_targets_sharing_its_labels() {
    let body = format!(
        "{CONFIG}\ninhibit = [{{ source_matchers = ['severity = \"critical\"'], \
         target_matchers = ['severity = \"high\"'], equal = [\"dept\"] }}]\n"
    );
    let mut n = Notify::with(&body);
    n.send(
        0,
        vec![
            alert("budget", "firing", "critical", "ops"),
            alert("cpu", "firing", "high", "ops"),
            alert("cpu", "firing", "high", "fin"),
        ],
    );
    assert_eq!(
        n.tick(10 * S),
        vec![
            sent("oncall", "firing", &["cpu:firing"]),
            sent("pager", "firing", &["budget:firing"]),
        ],
        "ops' cpu is muted, fin's is not"
    );
    n.send(20 * S, vec![alert("budget", "resolved", "critical", "ops")]);
    assert_eq!(
        n.tick(70 * S),
        vec![
            sent("oncall", "firing", &["cpu:firing"]),
            sent("pager", "resolved", &["budget:resolved"]),
        ],
        "ops' cpu speaks again"
    );
}

/// A critical alert climbs its route's ladder while it fires: the boss
/// after 5 minutes, the CTO after 15, counted from its first notification,
/// on time across a restart and never twice; its resolution reaches all.
#[test]
fn escalation_climbs_on_time_across_a_restart_and_resolves_everywhere() {
    let body = CONFIG.replace(
        "continue = true,",
        "continue = true, escalate = [{ after = \"5m\", receiver = \"boss\" }, { after = \"15m\", receiver = \"cto\" }],",
    );
    let mut n = Notify::with(&body);
    n.send(0, vec![alert("budget", "firing", "critical", "ops")]);
    // The pager group repeats every 5 minutes meanwhile.
    assert_eq!(
        n.run_to(0, 400 * S),
        vec![
            (10, sent("pager", "firing", &["budget:firing"])),
            (310, sent("pager", "firing", &["budget:firing"])),
            (310, sent("boss", "firing", &["budget:firing"])),
        ]
    );
    n.restart(&body);
    assert_eq!(
        n.run_to(400 * S, 1000 * S),
        vec![
            (610, sent("pager", "firing", &["budget:firing"])),
            (910, sent("pager", "firing", &["budget:firing"])),
            (910, sent("cto", "firing", &["budget:firing"])),
        ]
    );
    n.send(
        1000 * S,
        vec![alert("budget", "resolved", "critical", "ops")],
    );
    assert_eq!(
        n.run_to(1000 * S, 2000 * S),
        vec![
            (1001, sent("boss", "resolved", &["budget:resolved"])),
            (1001, sent("cto", "resolved", &["budget:resolved"])),
            (1030, sent("pager", "resolved", &["budget:resolved"])),
        ]
    );
}

/// A silence leaves matching alerts out while it lasts; they are reported
/// once it ends.
#[test]
fn a_silence_mutes_matching_alerts_while_it_lasts() {
    let mut n = Notify::new();
    let id = n
        .control
        .silence(
            vec!["dept = \"fin\"".into()],
            5 * S,
            65 * S,
            "ann".into(),
            "audit".into(),
        )
        .unwrap();
    assert_eq!(id, 1);
    n.send(
        0,
        vec![
            alert("cpu", "firing", "high", "ops"),
            alert("cpu", "firing", "high", "fin"),
        ],
    );
    assert_eq!(
        n.run_to(0, 69 * S),
        vec![(10, sent("oncall", "firing", &["cpu:firing"]))]
    );
    assert_eq!(
        n.control.suppressed_by("cpu/fin").as_deref(),
        Some("silence 1"),
        "the API can say why it is quiet"
    );
    assert_eq!(
        n.run_to(69 * S, 70 * S),
        vec![(70, sent("oncall", "firing", &["cpu:firing"]))],
        "fin's group speaks once the silence ended"
    );
    assert_eq!(n.control.suppressed_by("cpu/fin"), None);
    let changes: Vec<(String, Option<String>, i64)> = n
        .control
        .take_changes()
        .into_iter()
        .map(|c| (c.fingerprint, c.by, c.at / S))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("cpu/fin".into(), Some("silence 1".into()), 10),
            ("cpu/fin".into(), None, 70)
        ],
        "suppressed once, then no longer: each change once"
    );
}

/// An acknowledged alert's receivers are told so; it stops climbing and
/// is not repeated for, also after a restart; its resolution is still
/// reported.
#[test]
fn an_acknowledgement_stops_escalation_and_repeats_across_a_restart() {
    let body = CONFIG.replace(
        "continue = true,",
        "continue = true, escalate = [{ after = \"5m\", receiver = \"boss\" }],",
    );
    let mut n = Notify::with(&body);
    n.send(0, vec![alert("budget", "firing", "critical", "ops")]);
    assert_eq!(n.run_to(0, 100 * S).len(), 1, "the pager heard at 10 s");
    n.control.acknowledge(
        "budget/ops",
        Ack {
            by: "ann".into(),
            at: 100 * S,
            comment: "on it".into(),
        },
    );
    assert_eq!(
        n.run_to(100 * S, 200 * S),
        vec![(101, sent("pager", "acknowledged", &["budget:acknowledged"]))],
        "the pager that heard it fire is told, once"
    );
    n.restart(&body);
    assert_eq!(n.control.snapshot().1.acks.len(), 1, "restored for the API");
    assert!(
        n.run_to(200 * S, 1000 * S).is_empty(),
        "no climb to the boss, no repeat to the pager"
    );
    n.send(
        1000 * S,
        vec![alert("budget", "resolved", "critical", "ops")],
    );
    assert_eq!(
        n.run_to(1000 * S, 1100 * S),
        vec![(1030, sent("pager", "resolved", &["budget:resolved"]))]
    );
    assert!(
        n.control.snapshot().1.acks.is_empty(),
        "forgotten once resolved"
    );
}

/// An acknowledgement reaches every receiver the alert reached, through
/// its group and up its escalation, and no other.
#[test]
fn an_acknowledgement_is_told_to_every_receiver_that_was_paged() {
    let body = CONFIG.replace(
        "continue = true,",
        "continue = true, escalate = [{ after = \"5m\", receiver = \"boss\" }, { after = \"15m\", receiver = \"cto\" }],",
    );
    let mut n = Notify::with(&body);
    n.send(0, vec![alert("budget", "firing", "critical", "ops")]);
    let paged: Vec<String> = n.run_to(0, 400 * S).into_iter().map(|(_, s)| s.0).collect();
    assert_eq!(
        paged,
        ["pager", "pager", "boss"],
        "a repeat and a climb at 310 s"
    );
    n.control.acknowledge(
        "budget/ops",
        Ack {
            by: "ann".into(),
            at: 400 * S,
            comment: String::new(),
        },
    );
    let mut told = n.run_to(400 * S, 2000 * S);
    told.sort();
    assert_eq!(
        told,
        vec![
            (401, sent("boss", "acknowledged", &["budget:acknowledged"])),
            (401, sent("pager", "acknowledged", &["budget:acknowledged"])),
        ],
        "the cto was never paged, so is not told"
    );
}

/// With `max_notifications`, a group speaks at most so often; what it
/// would have said waits for the window to allow it, nothing is lost.
#[test]
fn a_notification_limit_defers_what_a_group_would_say() {
    let body = format!("{CONFIG}\nmax_notifications = {{ count = 2, per = \"10m\" }}\n");
    let mut n = Notify::with(&body);
    n.send(0, vec![alert("cpu", "firing", "high", "ops")]);
    let mut log = n.run_to(0, 20 * S);
    n.send(20 * S, vec![alert("mem", "firing", "high", "ops")]);
    log.extend(n.run_to(20 * S, 80 * S));
    n.send(80 * S, vec![alert("disk", "firing", "high", "ops")]);
    log.extend(n.run_to(80 * S, 700 * S));
    // The change at 130 s and the repeat at 310 s wait for the window.
    let all = ["cpu:firing", "disk:firing", "mem:firing"];
    assert_eq!(
        log,
        vec![
            (10, sent("oncall", "firing", &["cpu:firing"])),
            (70, sent("oncall", "firing", &["cpu:firing", "mem:firing"])),
            (610, sent("oncall", "firing", &all)),
        ]
    );
}

#[test]
fn non_alerts_are_dead_lettered() {
    let mut n = Notify::new();
    let mut f = Fields::default();
    f.push(Sym::intern("status"), Value::str("firing"));
    n.send(0, vec![Event::new(0, f)]);
    let dead = n.out.take(Output::DEAD_LETTERS);
    assert_eq!(dead.len(), 1);
    let reason = dead[0].get(Sym::intern("reason")).and_then(Value::as_str);
    assert!(reason.unwrap().contains("fingerprint"), "{reason:?}");
}

/// Checkpointed and restored into a new operator at every step, the
/// groups speak exactly when the uninterrupted ones do.
#[test]
fn groups_and_their_timers_survive_a_checkpoint() {
    let steps: Vec<(i64, Vec<Event>)> = vec![
        (0, vec![alert("cpu", "firing", "high", "ops")]),
        (3 * S, vec![alert("budget", "firing", "critical", "fin")]),
        (40 * S, vec![alert("cpu", "resolved", "high", "ops")]),
        (50 * S, vec![alert("io", "firing", "low", "fin")]),
    ];
    let run = |restore_each: bool| {
        let mut n = Notify::new();
        let mut log = Vec::new();
        let mut t = 0;
        for (at, events) in &steps {
            n.send(*at, events.clone());
            if restore_each {
                let state = OperatorState::take(&mut *n.op, &mut n.cx).unwrap();
                let bytes = state.encode();
                let mut fresh = Notify::new();
                OperatorState::restore(&bytes, &GroupRange::all(), &mut *fresh.op, &mut fresh.cx)
                    .unwrap();
                n = fresh;
            }
            while t < at + 30 * S {
                t += S;
                for s in n.tick(t) {
                    log.push((t, s));
                }
            }
        }
        while t < 800 * S {
            t += S;
            for s in n.tick(t) {
                log.push((t, s));
            }
        }
        log
    };
    let calm = run(false);
    assert!(calm.len() >= 5, "{calm:?}");
    assert_eq!(run(true), calm);
}

/// `group_wait = "0s"`: a new group speaks at the first look, with no wait.
#[test]
fn a_zero_group_wait_speaks_at_once() {
    let mut n = Notify::with(&CONFIG.replace("group_wait = \"10s\"", "group_wait = \"0s\""));
    n.send(5 * S, vec![alert("cpu", "firing", "high", "ops")]);
    assert_eq!(
        n.tick(5 * S),
        vec![sent("oncall", "firing", &["cpu:firing"])]
    );
}

/// A rung of an escalation reached while the alert is silenced is passed
/// over (no one is paged during the silence); the climb goes on.
#[test]
fn a_silenced_alert_does_not_page_up_its_ladder() {
    let body = CONFIG.replace(
        "continue = true,",
        "continue = true, escalate = [{ after = \"5m\", receiver = \"boss\" }, { after = \"15m\", receiver = \"cto\" }],",
    );
    let mut n = Notify::with(&body);
    n.control
        .silence(
            vec!["alertname = \"budget\"".into()],
            200 * S,
            600 * S,
            "ann".into(),
            "maintenance".into(),
        )
        .unwrap();
    n.send(0, vec![alert("budget", "firing", "critical", "ops")]);
    let climbed: Vec<(i64, String)> = n
        .run_to(0, 1000 * S)
        .into_iter()
        .filter(|(_, s)| s.0 == "boss" || s.0 == "cto")
        .map(|(t, s)| (t, s.0))
        .collect();
    assert_eq!(climbed, vec![(910, "cto".to_string())]);
}
