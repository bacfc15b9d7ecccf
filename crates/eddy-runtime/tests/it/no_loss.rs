//! No record is lost or duplicated, whatever mix of good and bad lines a
//! pipeline reads, however it is batched and however many workers run it:
//! every input line ends up exactly once in the output or in a dead-letter
//! output, and the window's counts add up to what reached it.

use std::collections::BTreeMap;
use std::path::Path;

use eddy_runtime::{Plan, RunOptions};
use proptest::prelude::*;
use serde_json::Value as Json;

const T0: i64 = 1_700_000_000_000;

/// One input line and where it must end up.
#[derive(Clone, Debug)]
enum Line {
    /// A valid event: passes the filter and the map, reaches the window.
    Good { t: i64, amount: i64, key: u8 },
    /// Not JSON: the source's dead letters.
    Garbage,
    /// A JSON array: the source's dead letters.
    NotAnObject,
    /// No time field: the source's dead letters.
    NoTime,
    /// `amount` is a string: the filter's condition fails, its dead letters.
    TextAmount,
    /// `amount * 2` overflows: the map's dead letters.
    Overflow,
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => (0i64..60_000, 0i64..1_000, 0u8..4)
            .prop_map(|(t, amount, key)| Line::Good { t, amount, key }),
        1 => Just(Line::Garbage),
        1 => Just(Line::NotAnObject),
        1 => Just(Line::NoTime),
        1 => Just(Line::TextAmount),
        1 => Just(Line::Overflow),
    ]
}

fn render(n: usize, line: &Line) -> String {
    let ts = T0 + 30_000;
    match line {
        Line::Good { t, amount, key } => {
            format!(
                r#"{{"n":{n},"ts":{},"amount":{amount},"k":"k{key}"}}"#,
                T0 + t
            )
        }
        Line::Garbage => format!("not json #{n}#"),
        Line::NotAnObject => format!("[{n}]"),
        Line::NoTime => format!(r#"{{"n":{n},"amount":1}}"#),
        Line::TextAmount => format!(r#"{{"n":{n},"ts":{ts},"amount":"ten"}}"#),
        Line::Overflow => format!(r#"{{"n":{n},"ts":{ts},"amount":{}}}"#, i64::MAX),
    }
}

fn pipeline(dir: &Path, batch_size: usize) -> String {
    let p = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    format!(
        r#"
[pipeline]
batch_size = {batch_size}

[sources.tx]
type = "file"
path = {input}
event_time = {{ field = "ts", max_out_of_orderness = "1s" }}

[transforms.f]
type = "filter"
inputs = ["tx"]
condition = "amount >= 0"

[transforms.m]
type = "map"
inputs = ["f"]
set = {{ doubled = "amount * 2" }}

[transforms.w]
type = "window"
inputs = ["m"]
key = "k"
window = {{ tumbling = "10s" }}
aggregates = {{ count = "count()", ids = "sum(n)" }}

[sinks.out]
type = "file"
inputs = ["m"]
path = {out}

[sinks.agg]
type = "file"
inputs = ["w"]
path = {agg}

[sinks.late]
type = "file"
inputs = ["w.late"]
path = {late}

[sinks.dead]
type = "file"
inputs = ["tx.dead_letters", "f.dead_letters", "m.dead_letters", "w.dead_letters"]
path = {dead}
"#,
        input = p("in.ndjson"),
        out = p("out.ndjson"),
        agg = p("agg.ndjson"),
        late = p("late.ndjson"),
        dead = p("dead.ndjson"),
    )
}

fn read(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The line number an output record came from: its `n` field, or the
/// first number in the raw text of a line that could not be decoded.
fn origin(record: &Json) -> u64 {
    match record {
        Json::Object(m) if m.contains_key("n") => m["n"].as_u64().unwrap(),
        Json::Object(m) => origin(&m["event"]),
        Json::String(raw) => {
            let digits: String = raw
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap()
        }
        other => panic!("no origin in {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_line_lands_exactly_once(
        lines in proptest::collection::vec(line(), 1..300),
        workers in 1usize..=3,
        batch_size in 1usize..=64,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text: String = lines.iter().enumerate().map(|(n, l)| render(n, l) + "\n").collect();
        std::fs::write(dir.path().join("in.ndjson"), text).unwrap();
        let plan = Plan::compile("p.toml", &pipeline(dir.path(), batch_size), &[])
            .unwrap_or_else(|d| panic!("{d}"));
        let report = eddy_runtime::run(&plan, RunOptions { workers, ..RunOptions::default() }).unwrap();
        prop_assert!(report.errors.is_empty(), "{:?}", report.errors);

        let out = read(&dir.path().join("out.ndjson"));
        let dead = read(&dir.path().join("dead.ndjson"));
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        for record in out.iter().chain(&dead) {
            *seen.entry(origin(record)).or_default() += 1;
        }
        let expected: BTreeMap<u64, usize> = (0..lines.len() as u64).map(|n| (n, 1)).collect();
        prop_assert_eq!(seen, expected);
        let good = lines.iter().filter(|l| matches!(l, Line::Good { .. })).count();
        prop_assert_eq!(out.len(), good);

        // What reached the window is counted once, in a result or as late.
        let late = read(&dir.path().join("late.ndjson"));
        let agg = read(&dir.path().join("agg.ndjson"));
        let counted: u64 = agg.iter().map(|r| r["count"].as_u64().unwrap()).sum();
        prop_assert_eq!(counted + late.len() as u64, out.len() as u64);
        let ids: u64 = agg.iter().map(|r| r["ids"].as_u64().unwrap()).sum::<u64>()
            + late.iter().map(origin).sum::<u64>();
        prop_assert_eq!(ids, out.iter().map(origin).sum::<u64>());
    }
}
