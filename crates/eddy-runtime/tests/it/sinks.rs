//! Network sinks in whole runs against real servers: recovery after an
//! outage, and a slow sink held to its buffer while the others go on.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use eddy_runtime::{Plan, RunOptions};
use eddy_testkit::{HttpReceiver, Redis};

fn plan(text: &str) -> Plan {
    Plan::compile("test.toml", text, &[]).unwrap_or_else(|d| panic!("{d}"))
}

fn one_worker() -> RunOptions {
    RunOptions {
        workers: 1,
        tick: Duration::from_millis(20),
        ..RunOptions::default()
    }
}

/// Polls `what` until it holds; fails the test after `secs` seconds.
fn wait_for(secs: u64, what: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !what() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(what(), "timed out");
}

/// `n` NDJSON events `{"ts": .., "n": i}`.
fn write_events(path: &Path, n: usize) {
    let text: String = (0..n)
        .map(|i| format!("{{\"ts\":{},\"n\":{i}}}\n", 1_700_000_000_000u64 + i as u64))
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn redis_outage_opens_the_circuit_and_every_entry_arrives_after_restart() {
    let Some(mut server) = Redis::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let n = 2_000;
    write_events(&input, n);
    // Down before the first write: nothing is lost with the server, so the
    // final count tells whether the sink lost or duplicated anything.
    server.kill();
    let text = format!(
        r#"
[pipeline]
batch_size = 100

[sources.events]
type = "file"
path = {input:?}
event_time = {{ field = "ts" }}

[sinks.cache]
type = "redis"
inputs = ["events"]
url = "{url}"
kind = "stream"
key = "events"
batch_size = 250
retry = {{ attempts = 0, initial_backoff = "10ms", max_backoff = "50ms" }}
circuit_breaker = {{ failure_threshold = 3, reset_timeout = "100ms" }}
"#,
        url = server.url()
    );
    let running = eddy_runtime::start(&plan(&text), one_worker()).unwrap();
    let component = || running.metrics().node("cache").unwrap().component.clone();
    wait_for(20, &|| component().total("circuit_open") > 0);
    assert_eq!(component().total("records_out"), 0);
    assert!(!running.is_finished(), "the run waits for Redis");
    server.restart();
    wait_for(30, &|| running.is_finished());
    let metrics = component();
    let report = running.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(metrics.total("circuit_open"), 0, "closed again");
    assert_eq!(metrics.total("records_out"), n as i64);
    assert_eq!(metrics.total("dead_letters"), 0);
    assert!(metrics.total("failures") >= 3);

    let mut c = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .unwrap();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("events")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    assert_eq!(entries.len(), n, "no entry lost or written twice");
    let seen: BTreeSet<i64> = entries
        .iter()
        .map(|(_, f)| f[3].parse::<i64>().unwrap())
        .collect();
    assert_eq!(seen, (0..n as i64).collect());
}

#[test]
fn a_slow_webhook_does_not_hold_back_a_file_sink_within_its_buffer() {
    let receiver = HttpReceiver::start();
    let delay = Duration::from_millis(300);
    receiver.set_delay(delay);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let output = dir.path().join("out.ndjson");
    // Five source batches: four fit the webhook's buffer, one is in flight.
    let (n, batch) = (500, 100);
    write_events(&input, n);
    let text = format!(
        r#"
[pipeline]
batch_size = {batch}

[sources.events]
type = "file"
path = {input:?}
event_time = {{ field = "ts" }}

[sinks.archive]
type = "file"
inputs = ["events"]
path = {output:?}

[sinks.hook]
type = "http"
inputs = ["events"]
url = "{url}"
batch_size = {batch}
buffer = 4
"#,
        url = receiver.url()
    );
    let start = Instant::now();
    let running = eddy_runtime::start(&plan(&text), one_worker()).unwrap();
    let archived = || running.metrics().node("archive").unwrap().received();
    let delivered = || {
        running
            .metrics()
            .node("hook")
            .unwrap()
            .component
            .total("records_out")
    };
    wait_for(20, &|| archived() == n as u64);
    let file_done = start.elapsed();
    let delivered_then = delivered();
    wait_for(30, &|| running.is_finished());
    let hook_done = start.elapsed();
    let report = running.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        delivered_then < n as i64,
        "the webhook cannot have taken all {n} events yet ({delivered_then} after {file_done:?})"
    );
    assert!(
        hook_done >= file_done + delay,
        "file sink done at {file_done:?}, webhook at {hook_done:?}"
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), n);
    let bodies: usize = receiver
        .requests()
        .iter()
        .map(|r| r.text().matches("\"n\":").count())
        .sum();
    assert_eq!(bodies, n);
}

#[test]
fn batches_a_webhook_refuses_reach_its_dead_letters_output() {
    let receiver = HttpReceiver::start();
    receiver.fail_next(1, 400);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let rejects = dir.path().join("rejects.ndjson");
    write_events(&input, 30);
    let text = format!(
        r#"
[pipeline]
batch_size = 10

[sources.events]
type = "file"
path = {input:?}
event_time = {{ field = "ts" }}

[sinks.hook]
type = "http"
inputs = ["events"]
url = "{url}"
batch_size = 10

[sinks.rejects]
type = "file"
inputs = ["hook.dead_letters"]
path = {rejects:?}
"#,
        url = receiver.url()
    );
    let report = eddy_runtime::run(&plan(&text), one_worker()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "the first batch was refused");
    assert_eq!(lines[0]["reason"], "HTTP 400");
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200, 200]);
}

/// Regression: a channel head handling more than 256 queued messages in a
/// row dropped every 257th (found by `eddy bench redis`).
#[test]
fn a_deep_sink_buffer_delivers_every_batch() {
    let receiver = HttpReceiver::start();
    // The first requests block the sink while the source queues up
    // hundreds of one-event batches.
    receiver.set_delay(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let n = 700;
    write_events(&input, n);
    let text = format!(
        r#"
[pipeline]
batch_size = 1

[sources.events]
type = "file"
path = {input:?}
event_time = {{ field = "ts" }}

[sinks.hook]
type = "http"
inputs = ["events"]
url = "{url}"
batch_size = 100
buffer = 1000
"#,
        url = receiver.url()
    );
    let report = eddy_runtime::run(&plan(&text), one_worker()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let delivered: usize = receiver
        .requests()
        .iter()
        .map(|r| r.text().matches("\"n\":").count())
        .sum();
    assert_eq!(delivered, n);
}
