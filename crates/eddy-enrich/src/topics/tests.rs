//! The `topics` operator as the runtime drives it: ordering, keys, late
//! events, dead letters and checkpoints.

use eddy_core::json::JsonDecoder;
use eddy_core::operator_state::OperatorState;
use eddy_core::state::GroupRange;
use eddy_core::{Batch, Collector, Event, Operator, OperatorContext, Output, Value};

use super::{TopicsConfig, LATE};
use crate::test_support::{build, config, field};

const TEXTS: [&str; 8] = [
    "payment gateway timeout during checkout",
    "quarterly budget review for marketing",
    "checkout payment gateway returns timeout errors",
    "marketing budget review moved",
    "database latency spike on primary",
    "gateway timeout payment checkout again",
    "primary database latency alert",
    "budget review marketing numbers",
];

fn cfg(extra: &str) -> TopicsConfig {
    config(&format!(
        "[transforms.t]\ntype = \"topics\"\nfield = \"text\"\n{extra}"
    ))
    .unwrap()
}

/// Event `i` of TEXTS at time `i * 1000`, in team `i % 2`.
fn event(i: usize) -> Event {
    let line = format!(
        r#"{{"n": {i}, "team": "t{}", "text": "{}"}}"#,
        i % 2,
        TEXTS[i]
    );
    Event::new(
        i as i64 * 1000,
        JsonDecoder::new().decode(line.as_bytes()).unwrap(),
    )
}

struct Run {
    op: Box<dyn Operator>,
    cx: OperatorContext,
    out: Collector,
}

impl Run {
    fn new(c: &TopicsConfig) -> Run {
        Run {
            op: build(c),
            cx: eddy_state::context(GroupRange::all()),
            out: Collector::new(),
        }
    }

    fn feed(&mut self, order: &[usize], watermark: i64) {
        let events = order.iter().map(|&i| event(i)).collect();
        self.op
            .process(0, Batch::new(events, 0), &mut self.cx, &mut self.out);
        self.cx.advance(&mut *self.op, watermark, &mut self.out);
    }

    fn finish(&mut self) -> Vec<String> {
        self.cx.end(&mut *self.op, &mut self.out);
        summary(&self.out.take(Output::MAIN))
    }
}

/// `n:topic` of each event, in output order.
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let n = field(e, "n").map(Value::to_string).unwrap_or_default();
            let t = field(e, "topics.topic")
                .map(Value::to_string)
                .unwrap_or_default();
            format!("{n}:{t}")
        })
        .collect()
}

#[test]
fn texts_about_one_thing_share_a_topic() {
    let mut run = Run::new(&cfg(""));
    run.feed(&[0, 1, 2, 3, 4, 5, 6, 7], 10_000);
    let main = run.out.take(Output::MAIN);
    assert_eq!(
        summary(&main),
        ["0:1", "1:2", "2:1", "3:2", "4:3", "5:1", "6:3", "7:2"]
    );
    let third = field(&main[2], "topics").unwrap().to_string();
    assert!(third.contains(r#""size":2"#), "{third}");
    assert!(third.contains(r#""new":false"#), "{third}");
    assert!(third.contains(r#""keywords":["#), "{third}");
    assert_eq!(field(&main[0], "topics.new"), Some(&Value::Bool(true)));
}

#[test]
fn event_time_order_makes_topics_independent_of_arrival_order_and_batches() {
    let c = cfg("key = \"team\"\n");
    let mut ordered = Run::new(&c);
    ordered.feed(&[0, 1, 2, 3, 4, 5, 6, 7], 7_000);
    let expected = ordered.finish();

    let mut shuffled = Run::new(&c);
    shuffled.feed(&[5, 2, 0], 0);
    shuffled.feed(&[7, 1, 6, 3, 4], 1_500);
    let got = shuffled.finish();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(got), sorted(expected.clone()));
    // Keys number their topics on their own: team t0 holds texts 0, 2, 4, 6.
    assert!(expected.contains(&"4:2".to_string()), "{expected:?}");
    assert!(expected.contains(&"1:1".to_string()), "{expected:?}");
}

#[test]
fn late_events_and_odd_fields_are_set_aside() {
    let c = cfg("");
    let mut run = Run::new(&c);
    run.feed(&[0, 1, 2], 5_000);
    run.feed(&[3], 5_000); // time 3000: behind the watermark
    let late_id = crate::test_support::output_of(&c, LATE);
    assert_eq!(summary(&run.out.take(late_id)), ["3:"]);
    let mut bad = event(6);
    bad.fields
        .insert(eddy_core::Sym::intern("text"), Value::Int(3));
    run.op
        .process(0, Batch::new(vec![bad], 0), &mut run.cx, &mut run.out);
    run.cx.end(&mut *run.op, &mut run.out);
    assert_eq!(run.out.take(Output::DEAD_LETTERS).len(), 1);
}

#[test]
fn a_restored_operator_continues_as_the_uninterrupted_one() {
    let c = cfg("key = \"team\"\n");
    let mut whole = Run::new(&c);
    whole.feed(&[0, 1, 2, 3], 2_500);
    whole.feed(&[4, 5, 6, 7], 8_000);
    let expected = whole.finish();

    let mut first = Run::new(&c);
    first.feed(&[0, 1, 2, 3], 2_500);
    let before = summary(&first.out.take(Output::MAIN));
    let bytes = OperatorState::take(&mut *first.op, &mut first.cx)
        .unwrap()
        .encode();
    let mut second = Run::new(&c);
    OperatorState::restore(&bytes, &GroupRange::all(), &mut *second.op, &mut second.cx).unwrap();
    second.feed(&[4, 5, 6, 7], 8_000);
    let after = second.finish();
    assert_eq!([before, after].concat(), expected);
}

#[test]
fn bad_settings_are_refused() {
    let err = config::<TopicsConfig>(
        "[transforms.t]\ntype = \"topics\"\nfield = \"text\"\nmax_topics = 0\n",
    )
    .unwrap_err();
    assert!(err.contains("nonzero"), "{err}");
}
