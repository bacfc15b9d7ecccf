//! Whole runs: shuffles across workers, watermarks, idleness, backpressure
//! and shutdown, checked against results computed directly.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_core::Event;
use eddy_runtime::{Plan, Publisher, RunOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const T0: i64 = 1_700_000_000_000;

/// Default options on `workers` workers.
fn on(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        ..RunOptions::default()
    }
}

/// Polls `what` until it holds; fails the test after 20 s.
fn wait_for(what: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !what() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(what(), "timed out waiting for the run");
}

fn plan(text: &str) -> Plan {
    Plan::compile("test.toml", text, &[]).unwrap_or_else(|d| panic!("{d}"))
}

fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Writes events with bounded disorder: time of event i is about i*10 ms,
/// shifted back by up to `disorder` ms. Returns (key, time, amount) triples.
fn write_events(
    path: &Path,
    n: usize,
    keys: u32,
    disorder: i64,
    seed: u64,
) -> Vec<(String, i64, i64)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut text = String::new();
    let mut out = Vec::new();
    for i in 0..n as i64 {
        let key = format!("k{}", rng.random_range(0..keys));
        let t = T0 + i * 10 - rng.random_range(0..=disorder);
        let amount = rng.random_range(1..100);
        text.push_str(&format!(
            "{{\"ts\":{t},\"key\":\"{key}\",\"amount\":{amount}}}\n"
        ));
        out.push((key, t, amount));
    }
    std::fs::write(path, text).unwrap();
    out
}

fn window_pipeline(input: &Path, output: &Path, disorder_bound: &str, follow: bool) -> String {
    format!(
        r#"
[sources.tx]
type = "file"
path = {input:?}
follow = {follow}
event_time = {{ field = "ts", max_out_of_orderness = "{disorder_bound}" }}

[transforms.w]
type = "window"
inputs = ["tx"]
key = "key"
window = {{ tumbling = "1s" }}
aggregates = {{ n = "count()", total = "sum(amount)" }}

[sinks.out]
type = "file"
inputs = ["w"]
path = {output:?}
"#,
        input = input.display().to_string(),
        output = output.display().to_string(),
    )
}

/// (window_start ms, key) → (count, sum), from the raw events.
fn oracle(events: &[(String, i64, i64)]) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut m = BTreeMap::new();
    for (k, t, a) in events {
        let e = m
            .entry((t.div_euclid(1000) * 1000, k.clone()))
            .or_insert((0, 0));
        e.0 += 1;
        e.1 += a;
    }
    m
}

fn results(path: &Path) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut m = BTreeMap::new();
    for v in read_json_lines(path) {
        let start = eddy_core::time::parse_rfc3339(v["window_start"].as_str().unwrap()).unwrap();
        let key = v["key"].as_str().unwrap().to_string();
        let prev = m.insert(
            (start, key),
            (v["n"].as_i64().unwrap(), v["total"].as_i64().unwrap()),
        );
        assert!(prev.is_none(), "window emitted twice: {v}");
    }
    m
}

#[test]
fn keyed_windows_give_the_same_results_on_one_and_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let events = write_events(&input, 20_000, 50, 500, 1);
    let expected = oracle(&events);
    for workers in [1, 3] {
        let output = dir.path().join(format!("out{workers}.ndjson"));
        let p = plan(&window_pipeline(&input, &output, "500ms", false));
        let report = eddy_runtime::run(&p, on(workers)).unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(results(&output), expected, "workers = {workers}");
        assert_eq!(report.metrics.node("w").unwrap().out("late"), 0);
    }
}

#[test]
fn tiny_channels_apply_backpressure_without_losing_events() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let events = write_events(&input, 30_000, 200, 0, 2);
    let output = dir.path().join("out.ndjson");
    let mut text = window_pipeline(&input, &output, "1ms", false);
    text.insert_str(0, "[pipeline]\nbatch_size = 16\n");
    let p = plan(&text);
    let opts = RunOptions {
        workers: 3,
        channel_capacity: 1,
        ..RunOptions::default()
    };
    let report = eddy_runtime::run(&p, opts).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(results(&output), oracle(&events));
}

#[test]
fn late_events_go_to_the_late_output_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!(
            "{{\"ts\":{},\"key\":\"a\",\"amount\":1}}\n",
            T0 + i * 100
        ));
    }
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("out.ndjson");
    let late = dir.path().join("late.ndjson");
    let mut p = window_pipeline(&input, &output, "1ms", true);
    p.push_str(&format!(
        "\n[sinks.late]\ntype = \"file\"\ninputs = [\"w.late\"]\npath = {:?}\n",
        late.display().to_string()
    ));
    let running = eddy_runtime::start(&plan(&p), on(2)).unwrap();
    // Windows up to [9 s, 10 s) close once the watermark passes them.
    wait_for(&|| running.metrics().node("w").unwrap().out("main") >= 9);
    // Now an event 5 s behind: its window closed long ago.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        format!("{{\"ts\":{},\"key\":\"a\",\"amount\":1000}}\n", T0 + 4_000).as_bytes(),
    )
    .unwrap();
    wait_for(&|| running.metrics().node("w").unwrap().out("late") >= 1);
    running.stop();
    let report = running.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let late = read_json_lines(&late);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["amount"], 1000);
    let total: i64 = results(&output).values().map(|(_, s)| s).sum();
    assert_eq!(total, 100, "the late amount must not be counted");
}

#[test]
fn an_idle_input_does_not_stall_windows() {
    let dir = tempfile::tempdir().unwrap();
    let busy = dir.path().join("busy.ndjson");
    let quiet = dir.path().join("quiet.ndjson");
    let output = dir.path().join("out.ndjson");
    std::fs::write(&quiet, "").unwrap();
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "{{\"ts\":{},\"key\":\"a\",\"amount\":1}}\n",
            T0 + i * 100
        ));
    }
    std::fs::write(&busy, text).unwrap();
    let p = plan(&format!(
        r#"
[sources.busy]
type = "file"
path = {busy:?}
follow = true
event_time = {{ field = "ts", idle_timeout = "200ms" }}

[sources.quiet]
type = "file"
path = {quiet:?}
follow = true
event_time = {{ field = "ts", idle_timeout = "200ms" }}

[transforms.w]
type = "window"
inputs = ["busy", "quiet"]
key = "key"
window = {{ tumbling = "1s" }}
aggregates = {{ n = "count()", total = "sum(amount)" }}

[sinks.out]
type = "file"
inputs = ["w"]
path = {output:?}
"#,
        busy = busy.display().to_string(),
        quiet = quiet.display().to_string(),
        output = output.display().to_string(),
    ));
    let running = eddy_runtime::start(&p, on(1)).unwrap();
    // Both sources follow their files and never end; only idleness lets the
    // quiet one stop holding the watermark back. Windows [0,1s)..[3s,4s) close.
    let fired = || running.metrics().node("w").unwrap().out("main");
    wait_for(&|| fired() >= 4);
    let fired_while_running = running.metrics().node("w").unwrap().out("main");
    running.stop();
    let report = running.wait();
    assert!(
        fired_while_running >= 4,
        "windows stalled: {fired_while_running} fired before stop"
    );
    // Stopping flushes the last, still open window.
    assert_eq!(results(&output).values().map(|(n, _)| n).sum::<i64>(), 50);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn stopping_an_unbounded_source_flushes_open_windows() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.ndjson");
    let p = plan(&format!(
        r#"
[sources.sim]
type = "simulator"
rate = 2000
seed = 3

[transforms.w]
type = "window"
inputs = ["sim"]
key = "type"
window = {{ tumbling = "1h" }}
aggregates = {{ n = "count()" }}

[sinks.out]
type = "file"
inputs = ["w"]
path = {:?}
"#,
        output.display().to_string()
    ));
    let opts = RunOptions {
        workers: 2,
        duration: Some(Duration::from_millis(700)),
        ..RunOptions::default()
    };
    let report = eddy_runtime::run(&p, opts).unwrap();
    let read = report.metrics.source_events();
    assert!(read > 0);
    let counted: i64 = read_json_lines(&output)
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .sum();
    assert_eq!(
        counted as u64, read,
        "every event read must be in a flushed window"
    );
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, usize)>>);

impl Publisher for Recorder {
    fn wants(&self, node: &str) -> bool {
        node == "big"
    }
    fn publish(&self, node: &str, output: &str, events: &[Event]) {
        self.0
            .lock()
            .unwrap()
            .push((node.to_string(), output.to_string(), events.len()));
    }
}

#[test]
fn the_publish_hook_sees_the_outputs_it_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    write_events(&input, 1_000, 5, 0, 4);
    let p = plan(&format!(
        "[sources.tx]\ntype = \"file\"\npath = {:?}\n\n[transforms.big]\ntype = \"filter\"\ninputs = [\"tx\"]\ncondition = \"amount >= 50\"\n\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"big\"]\n",
        input.display().to_string()
    ));
    let recorder = Arc::new(Recorder::default());
    let opts = RunOptions {
        workers: 1,
        publisher: Some(recorder.clone()),
        ..RunOptions::default()
    };
    let report = eddy_runtime::run(&p, opts).unwrap();
    let seen = recorder.0.lock().unwrap();
    assert!(seen.iter().all(|(n, port, _)| n == "big" && port == "main"));
    let published: usize = seen.iter().map(|(_, _, n)| n).sum();
    assert_eq!(
        published as u64,
        report.metrics.node("out").unwrap().received()
    );
    assert!(published > 0);
    assert_eq!(report.metrics.backpressure_waits.load(Ordering::Relaxed), 0);
}

#[test]
fn checkpoint_barriers_align_and_every_live_instance_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let write = |path: &Path, from: i64, n: i64| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in from..from + n {
            std::io::Write::write_all(
                &mut f,
                format!(
                    "{{\"ts\":{},\"key\":\"k{}\",\"amount\":1}}\n",
                    T0 + i,
                    i % 7
                )
                .as_bytes(),
            )
            .unwrap();
        }
    };
    write(&a, 0, 300);
    write(&b, 0, 200);
    let out = dir.path().join("out.ndjson");
    let p = plan(&format!(
        r#"
[sources.a]
type = "file"
path = {a:?}
follow = true
event_time = {{ field = "ts" }}

[sources.b]
type = "file"
path = {b:?}
follow = true
event_time = {{ field = "ts" }}

[transforms.both]
type = "filter"
inputs = ["a", "b"]
condition = "true"

[transforms.w]
type = "window"
inputs = ["both"]
key = "key"
window = {{ tumbling = "1h" }}
aggregates = {{ n = "count()" }}

[sinks.out]
type = "file"
inputs = ["both"]
path = {out:?}

[sinks.wout]
type = "blackhole"
inputs = ["w"]
"#,
        a = a.display().to_string(),
        b = b.display().to_string(),
        out = out.display().to_string(),
    ));
    let running = eddy_runtime::start(&p, on(2)).unwrap();
    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    };

    for (round, expected) in [(1u64, 500usize), (2, 800)] {
        if round == 2 {
            write(&a, 300, 300);
        }
        wait_for(&|| running.metrics().source_events() == expected as u64);
        let id = running.checkpoint();
        assert_eq!(id, round);
        wait_for(&|| running.latest_checkpoint().is_some_and(|c| c.id == id));
        // The file sink pre-committed (flushed) after every event read
        // before the barrier had passed it.
        assert_eq!(lines(&out), expected);
        let done = running.latest_checkpoint().unwrap();
        let reported: Vec<(String, usize)> = done
            .instances
            .iter()
            .map(|s| (p.nodes[s.node].name.clone(), s.worker))
            .collect();
        // Worker 1's file sources end at once (worker 0 reads each file), and
        // with them the forward-routed `both` and `out` on worker 1: those
        // count with their final state, so every instance is in it.
        let want: Vec<(String, usize)> = ["a", "b", "both", "w", "out", "wout"]
            .iter()
            .flat_map(|n| [(*n, 0), (*n, 1)])
            .collect::<Vec<_>>()
            .iter()
            .map(|(n, w)| (n.to_string(), *w))
            .collect();
        let mut sorted = reported.clone();
        sorted.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(sorted, want_sorted);
        let a_pos = done
            .instances
            .iter()
            .find(|s| p.nodes[s.node].name == "a")
            .unwrap();
        let a_len = std::fs::metadata(&a).unwrap().len();
        assert!(
            a_pos
                .positions
                .iter()
                .any(|pos| pos.partition == 0 && pos.offset == a_len),
            "{:?}",
            a_pos.positions
        );
    }
    running.stop();
    let report = running.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// Per-run objects come from `prepare`, not from the compiled plan: a plan
/// run twice truncates and writes its `file` sink afresh each time, and
/// each run has its own simulator switches.
#[test]
fn a_plan_run_twice_prepares_its_per_run_objects_twice() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let output = dir.path().join("out.ndjson");
    write_events(&input, 500, 5, 0, 7);
    let p = plan(&format!(
        "[sources.tx]\ntype = \"file\"\npath = {:?}\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"tx\"]\npath = {:?}\n",
        input.display().to_string(),
        output.display().to_string()
    ));
    for run in 0..2 {
        eddy_runtime::run(&p, on(2)).unwrap();
        // A writer kept from the first run would append to it (1,000
        // lines) or write to the removed file (none).
        assert_eq!(read_json_lines(&output).len(), 500, "run {run}");
        std::fs::remove_file(&output).unwrap();
    }

    let sim = plan(
        "[sources.sim]\ntype = \"simulator\"\nfast = true\nevents = 100\n\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"sim\"]\n",
    );
    let control = |running: &eddy_runtime::Running| {
        running
            .prepared("sim")
            .and_then(|p| p.get::<eddy_connectors::sources::simulator::ScenarioControl>())
            .unwrap()
    };
    let first = eddy_runtime::start(&sim, on(1)).unwrap();
    let second = eddy_runtime::start(&sim, on(1)).unwrap();
    assert!(!Arc::ptr_eq(&control(&first), &control(&second)));
    assert!(first.prepared("out").is_none());
    first.wait();
    second.wait();
}

/// A run that cannot start says which node, in which domain, and whether
/// trying again can help; the message still names the file.
#[test]
fn start_errors_are_typed_with_domain_and_retry_hint() {
    use eddy_core::{Classify, Domain};
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ndjson");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let cases = [
        (
            missing.clone(),
            dir.path().join("out.ndjson"),
            "tx",
            Domain::Input,
        ),
        (
            blocker.clone(),
            blocker.join("sub/out.ndjson"),
            "out",
            Domain::Sink,
        ),
    ];
    for (input, output, node, domain) in cases {
        let p = plan(&format!(
            "[sources.tx]\ntype = \"file\"\npath = {:?}\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"tx\"]\npath = {:?}\n",
            input.display().to_string(),
            output.display().to_string()
        ));
        let Err(e) = eddy_runtime::run(&p, on(1)) else {
            panic!("{node} must fail to build");
        };
        assert!(
            matches!(&e, eddy_runtime::RunError::Build { node: n, .. } if n == node),
            "{e}"
        );
        assert_eq!((e.domain(), e.retryable()), (domain, false), "{e}");
        let path = if domain == Domain::Input {
            &input
        } else {
            &blocker
        };
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}

/// A pipeline that fails to start leaves its `file` sink's output as it
/// was: the writer is opened when the sink is built, after its upstream.
#[test]
fn a_failed_start_does_not_truncate_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.ndjson");
    std::fs::write(&output, "{\"kept\": true}\n").unwrap();
    let p = plan(&format!(
        "[sources.tx]\ntype = \"file\"\npath = {:?}\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"tx\"]\npath = {:?}\n",
        dir.path().join("missing.ndjson").display().to_string(),
        output.display().to_string()
    ));
    assert!(eddy_runtime::run(&p, on(2)).is_err());
    assert_eq!(read_json_lines(&output).len(), 1);
}

/// Runs `input` through the window pipeline with a `late` sink, on
/// `workers` workers in batches of `batch`; returns the sorted results and
/// late events (files named by `tag` under `dir`).
fn window_and_late(
    dir: &Path,
    input: &Path,
    tag: &str,
    batch: usize,
    workers: usize,
) -> (Vec<String>, Vec<String>) {
    let output = dir.join(format!("out-{tag}.ndjson"));
    let late = dir.join(format!("late-{tag}.ndjson"));
    let mut p = format!("[pipeline]\nbatch_size = {batch}\n");
    p.push_str(&window_pipeline(input, &output, "1s", false));
    p.push_str(&format!(
        "\n[sinks.late]\ntype = \"file\"\ninputs = [\"w.late\"]\npath = {:?}\n",
        late.display().to_string()
    ));
    let report = eddy_runtime::run(&plan(&p), on(workers)).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let sorted = |path: &Path| {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    (sorted(&output), sorted(&late))
}

/// Whether an event is late depends on the events before it, not on where
/// the source's batches happen to be cut.
#[test]
fn lateness_does_not_depend_on_the_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    // Disorder up to 2 s against a bound of 1 s: many late events.
    write_events(&input, 20_000, 20, 2_000, 11);
    let one = window_and_late(dir.path(), &input, "b1", 1, 1);
    assert!(
        one.1.len() > 100,
        "the input must have late events: {}",
        one.1.len()
    );
    for batch in [7, 1024] {
        let other = window_and_late(dir.path(), &input, &format!("b{batch}"), batch, 1);
        assert_eq!(
            other.1.len(),
            one.1.len(),
            "late events with batches of {batch}"
        );
        assert!(other == one, "results differ with batches of {batch}");
    }
}

/// Events up to 2 s out of order against a bound of 1 s: which are late,
/// and so every window's result, is the same on one, two and three
/// workers and in every run.
#[test]
fn late_events_are_the_same_whatever_the_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    write_events(&input, 30_000, 40, 2_000, 5);
    let one = window_and_late(dir.path(), &input, "w1", 1024, 1);
    assert!(
        one.1.len() > 100,
        "the input must have late events: {}",
        one.1.len()
    );
    for workers in [2, 3] {
        for round in 0..3 {
            let other = window_and_late(
                dir.path(),
                &input,
                &format!("w{workers}-{round}"),
                1024,
                workers,
            );
            assert_eq!(
                other.1.len(),
                one.1.len(),
                "late events on {workers} workers, run {round}"
            );
            assert!(
                other == one,
                "results differ on {workers} workers, run {round}"
            );
        }
    }
}
