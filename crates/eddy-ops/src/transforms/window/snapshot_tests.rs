//! Checkpoint tests: a run snapshotted at any point between calls and
//! restored into a fresh operator continues exactly as the uninterrupted
//! run, for every window kind; damaged snapshots are errors, not panics.

use eddy_core::state::{GroupRange, StateError};
use eddy_core::{Batch, Collector, Event, Output, Value};
use proptest::prelude::*;

use super::snapshot::{
    seal, Header, KIND_ALIGNED, KIND_GLOBAL, KIND_SESSIONS, KIND_SLICED, VERSION,
};
use super::tests::{ev, late, operator, simulation, In, Op};
use crate::test_util::{driven, Driven};

/// Every aggregate family, so every accumulator's state crosses a
/// snapshot; `v = -50` is a string, which `sum` refuses (a dead letter).
const AGGREGATES: &str = "aggregates = { n = \"count()\", s = \"sum(v)\", mean = \"avg(v)\", \
     lo = \"min(v)\", f = \"first(v)\", l = \"last(v)\", sd = \"stddev(x)\", \
     p = \"quantile(x, 0.9)\", d = \"count_distinct(v)\", top = \"top_k(v, 2)\", \
     e = \"ewma(x, \\\"30ms\\\")\", best = \"max_by(id, x)\" }";

/// The window shapes under test, with their snapshot kind.
pub(super) fn shapes(lateness: i64) -> Vec<(String, u8)> {
    let late = if lateness > 0 {
        format!("allowed_lateness = \"{lateness}ms\"\n")
    } else {
        String::new()
    };
    [
        ("window = { tumbling = \"50ms\" }\n", KIND_ALIGNED),
        (
            "window = { sliding = \"60ms\", every = \"20ms\" }\n",
            KIND_SLICED,
        ),
        ("window = { session = \"15ms\" }\n", KIND_SESSIONS),
        ("window = { global = true, count = 4 }\n", KIND_GLOBAL),
        (
            "window = { global = true, count = 4 }\nttl = \"40ms\"\n",
            KIND_GLOBAL,
        ),
        (
            "window = { global = true, every = \"25ms\" }\n",
            KIND_GLOBAL,
        ),
        (
            "window = { global = true, every = \"25ms\" }\nttl = \"60ms\"\n",
            KIND_GLOBAL,
        ),
        (
            "window = { global = true, every = \"25ms\" }\nemit = \"all\"\nttl = \"60ms\"\n",
            KIND_GLOBAL,
        ),
    ]
    .into_iter()
    .map(|(w, kind)| (format!("key = \"k\"\n{w}{late}{AGGREGATES}"), kind))
    .collect()
}

fn event(e: &In) -> Event {
    let v = if e.v == -50 {
        Value::str("not a number")
    } else {
        Value::Int(e.v)
    };
    ev(
        e.t,
        &[
            ("id", Value::Int(e.id)),
            ("k", Value::Int(e.k)),
            ("v", v),
            ("x", Value::Float(e.v as f64 / 8.0)),
        ],
    )
}

/// One step's output: results, late events and dead letters. Results of
/// one call for different keys of the same aligned window come in hash
/// order, which a restored map need not repeat, so each step's results
/// are compared as a sorted list.
#[derive(Debug, PartialEq)]
pub(super) struct Step {
    results: Vec<String>,
    late: Vec<String>,
    dead: Vec<String>,
}

pub(super) fn drain(out: &mut Collector) -> Step {
    let render = |events: Vec<Event>| events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
    let mut results = render(out.take(Output::MAIN));
    results.sort();
    Step {
        results,
        late: render(out.take(late())),
        dead: render(out.take(Output::DEAD_LETTERS)),
    }
}

pub(super) fn apply(op: &mut Driven, o: &Op, events: &[In], out: &mut Collector) -> Step {
    match o {
        Op::Batch(ids) => {
            let batch = ids.iter().map(|&i| event(&events[i])).collect();
            op.process(0, Batch::new(batch, 0), out);
        }
        Op::Watermark(w) => op.on_watermark(*w, out),
    }
    drain(out)
}

/// The operator's state as a checkpoint stores it.
fn snapshot(op: &mut Driven) -> Vec<u8> {
    let bytes = op.snapshot();
    assert!(!bytes.is_empty(), "the window keeps state");
    bytes
}

/// The bytes of the window's own table.
fn table_bytes(op: &mut Driven) -> Vec<u8> {
    let mut bytes = Vec::new();
    op.op.tables()[0].1.snapshot().write(&mut bytes);
    bytes
}

/// Restores the window's own table from `bytes` into a fresh operator.
fn restore_table(body: &str, bytes: &[u8]) -> Result<usize, StateError> {
    let mut op = driven(operator(body));
    let mut tables = op.op.tables();
    tables[0].1.restore(bytes, &GroupRange::all())
}

/// The uninterrupted run, step by step, ending with `finish`.
pub(super) fn straight(body: &str, events: &[In], ops: &[Op]) -> Vec<Step> {
    let mut op = driven(operator(body));
    let mut out = Collector::new();
    let mut steps: Vec<Step> = ops
        .iter()
        .map(|o| apply(&mut op, o, events, &mut out))
        .collect();
    op.finish(&mut out);
    steps.push(drain(&mut out));
    steps
}

/// The run snapshotted after each step in `cuts`, each time continuing in
/// a fresh operator restored from the snapshot.
fn interrupted(body: &str, events: &[In], ops: &[Op], cuts: &[usize]) -> Vec<Step> {
    let mut op = driven(operator(body));
    let mut out = Collector::new();
    let mut steps = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        steps.push(apply(&mut op, o, events, &mut out));
        if cuts.contains(&i) {
            let snap = snapshot(&mut op);
            let mut fresh = driven(operator(body));
            fresh.restore(&snap).unwrap();
            // Same state, same bytes.
            assert_eq!(snapshot(&mut fresh), snap, "{body}");
            op = fresh;
        }
    }
    op.finish(&mut out);
    steps.push(drain(&mut out));
    // A snapshot taken after `finish` restores to an operator whose
    // `finish` emits nothing more.
    let snap = snapshot(&mut op);
    let mut again = driven(operator(body));
    again.restore(&snap).unwrap();
    again.finish(&mut out);
    assert_eq!(
        drain(&mut out),
        Step {
            results: vec![],
            late: vec![],
            dead: vec![]
        },
        "{body}"
    );
    steps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Snapshot and restore anywhere: the concatenated output equals the
    /// uninterrupted run's, results, late events and dead letters alike.
    #[test]
    fn restored_runs_continue_exactly(
        (events, ops) in simulation(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        late in prop::bool::ANY,
    ) {
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(ops.len())).collect();
        for (body, _) in shapes(if late { 45 } else { 0 }) {
            let want = straight(&body, &events, &ops);
            let got = interrupted(&body, &events, &ops, &cuts);
            prop_assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(g, w, "step {} of {}", i, body);
            }
        }
    }

    /// Truncated or flipped snapshots, and well-sealed garbage, are
    /// `Corrupt` errors or (for garbage that happens to decode) a usable
    /// operator; never a panic.
    #[test]
    fn damaged_snapshots_are_errors(
        (events, ops) in simulation(),
        cut in any::<prop::sample::Index>(),
        flip in (any::<prop::sample::Index>(), 1u8..=255),
        noise in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        for (body, kind) in shapes(30) {
            let mut op = driven(operator(&body));
            let mut out = Collector::new();
            for o in &ops[..ops.len() / 2] {
                apply(&mut op, o, &events, &mut out);
            }
            let bytes = table_bytes(&mut op);
            let cut = cut.index(bytes.len());
            let r = restore_table(&body, &bytes[..cut]);
            prop_assert!(matches!(r, Err(StateError::Corrupt(_))), "{:?}", r);
            let mut flipped = bytes.clone();
            flipped[flip.0.index(bytes.len())] ^= flip.1;
            let r = restore_table(&body, &flipped);
            prop_assert!(matches!(r, Err(StateError::Corrupt(_))), "{:?}", r);
            // A damaged operator state around the table is an error too.
            let mut whole = snapshot(&mut op);
            let at = flip.0.index(whole.len());
            whole.truncate(at);
            prop_assert!(driven(operator(&body)).restore(&whole).is_err());
            // Garbage with a valid header and checksum reaches the decoder.
            let mut enc = eddy_core::codec::Encoder::new();
            Header { kind }.begin(&mut enc);
            for b in &noise {
                enc.u8(*b);
            }
            let mut op = driven(operator(&body));
            let restored = op.op.tables()[0].1.restore(&seal(enc), &GroupRange::all());
            if restored.is_ok() {
                for o in &ops {
                    apply(&mut op, o, &events, &mut out);
                }
                op.finish(&mut out);
            }
        }
    }
}

#[test]
fn other_versions_and_kinds_are_named_in_the_error() {
    let (body, _) = &shapes(0)[0];
    let mut op = driven(operator(body));
    let mut out = Collector::new();
    op.process(
        0,
        Batch::new(
            vec![ev(5, &[("k", Value::Int(1)), ("v", Value::Int(2))])],
            0,
        ),
        &mut out,
    );
    let mut bytes = table_bytes(&mut op);
    bytes[0] = VERSION + 1;
    let err = restore_table(body, &bytes).unwrap_err().to_string();
    assert!(
        err.contains(&format!("version {}", VERSION + 1)) && err.contains("window state"),
        "{err}"
    );
    let snap = snapshot(&mut op);
    let (session, _) = &shapes(0)[2];
    let err = driven(operator(session))
        .restore(&snap)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("snapshot of a tumbling") && err.contains("this window is a session"),
        "{err}"
    );
    // A sliding window keeps slices: a tumbling window's state is refused.
    let (sliding, _) = &shapes(0)[1];
    let err = driven(operator(sliding))
        .restore(&snap)
        .unwrap_err()
        .to_string();
    assert!(err.contains("this window is a sliding window"), "{err}");
    let err = restore_table(body, &[]).unwrap_err().to_string();
    assert!(err.contains("too short"), "{err}");
}

/// Snapshot size and speed for a count + sum tumbling, session and global
/// window with a million keys:
/// `cargo test -p eddy-ops --release -- --ignored snapshot_cost --nocapture`.
#[test]
#[ignore = "timing; run in release mode"]
fn snapshot_cost() {
    use eddy_core::operator_state::OperatorState;
    use std::time::Instant;
    const KEYS: i64 = 1_000_000;
    type Case = (&'static str, fn(i64) -> Value, fn(i64) -> Value);
    let cases: [Case; 3] = [
        ("int keys, int amounts", Value::Int, |i| {
            Value::Int(i % 1000)
        }),
        (
            "string keys, int amounts",
            |i| Value::str(&format!("merchant-{i}")),
            |i| Value::Int(i % 1000),
        ),
        (
            "string keys, float amounts (cents)",
            |i| Value::str(&format!("merchant-{i}")),
            |i| Value::Float((i % 100_000) as f64 / 100.0),
        ),
    ];
    let bodies = [
        ("tumbling", "tumbling = \"1m\""),
        ("session", "session = \"1m\""),
        ("global", "global = true, every = \"1m\""),
    ];
    for ((window, shape), (what, key, amount)) in bodies
        .iter()
        .flat_map(|b| cases.iter().map(move |c| (*b, *c)))
    {
        let body = &format!(
            "key = \"k\"\nwindow = {{ {shape} }}\n\
             aggregates = {{ n = \"count()\", total = \"sum(amount)\" }}"
        );
        let mut op = driven(operator(body));
        let mut out = Collector::new();
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(10_000) {
            let batch = chunk
                .iter()
                .flat_map(|&i| {
                    // Two events per key.
                    [i, i + 7].map(|j| ev(1_000, &[("k", key(i)), ("amount", amount(j))]))
                })
                .collect();
            op.process(0, Batch::new(batch, 0), &mut out);
        }
        // The synchronous part (what stalls the pipeline at a barrier),
        // then the encoding the checkpoint writer does on its thread.
        let start = Instant::now();
        let frozen = OperatorState::take(&mut *op.op, &mut op.cx).unwrap();
        let stall = start.elapsed();
        let (start, cpu) = (Instant::now(), cpu_ms());
        let snap = frozen.encode();
        let (took, took_cpu) = (start.elapsed(), cpu_ms() - cpu);
        let bytes = snap.len();
        let (start, cpu) = (Instant::now(), cpu_ms());
        let mut fresh = driven(operator(body));
        fresh.restore(&snap).unwrap();
        let (restored, restored_cpu) = (start.elapsed(), cpu_ms() - cpu);
        drop(op);
        fresh.finish(&mut out);
        assert_eq!(out.take(Output::MAIN).len(), KEYS as usize);
        println!(
            "{window}, {what}: {bytes} bytes, {:.2} bytes/key; stall {:.0} µs; written in {:.0} ms \
             ({took_cpu} ms CPU), restore {:.0} ms ({restored_cpu} ms CPU)",
            bytes as f64 / KEYS as f64,
            stall.as_secs_f64() * 1e6,
            took.as_secs_f64() * 1e3,
            restored.as_secs_f64() * 1e3
        );
    }
}

/// CPU time of this thread in ms (10 ms resolution; 0 off Linux): wall
/// time on a loaded machine overstates the work.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the parenthesised name: utime and stime are 12 and 13.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 10
}
