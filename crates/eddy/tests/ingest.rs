//! HTTP ingest as a client meets it: `eddy run` with an `http` source and
//! `[server]`; bodies posted to `/api/v1/ingest/{source}` reach the sinks,
//! bad lines are reported with their numbers and dead-lettered, oversized
//! bodies get 413, and nothing accepted is lost when the run stops.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::eddy;

fn pipeline(dir: &std::path::Path, server: bool) -> std::path::PathBuf {
    let d = dir.display();
    let server = if server {
        "[server]\nlisten = \"127.0.0.1:0\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"{server}
[sources.orders]
type = "http"
event_time = {{ field = "ts", format = "epoch_ms" }}
max_body_bytes = 2000

[sinks.out]
type = "file"
inputs = ["orders"]
path = "{d}/out.ndjson"

[sinks.rejected]
type = "file"
inputs = ["orders.dead_letters"]
path = "{d}/rejected.ndjson"
"#
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `eddy run config` with its server; the process, the base URL
/// and the thread collecting its log.
fn run_served(
    config: &std::path::Path,
) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    let mut child = eddy()
        .arg("run")
        .arg(config)
        .arg("-q")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (base, log) = support::served_at(&mut child);
    (child, base, log)
}

/// POSTs `body`; returns the status, the body and `Retry-After`.
fn post(url: &str, body: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.post(url).send(body).unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[test]
fn posted_events_reach_the_sinks_and_bad_lines_are_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(dir.path(), true);
    let (mut child, base, reader) = run_served(&config);
    let url = format!("{base}/api/v1/ingest/orders");

    let (status, answer) = post(
        &url,
        "{\"ts\": 1000, \"id\": 1}\nnot json\n{\"ts\": 2000, \"id\": 2}\n",
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["line"], 2);
    assert!(answer["rejected"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not a JSON object"));

    let (status, answer) = post(
        &url,
        r#"[{"ts": 3000, "id": 3}, {"id": 4}, {"ts": 4000, "id": 5}]"#,
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert!(answer["rejected"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("missing time field `ts`"));

    let big = format!("{{\"ts\": 1, \"pad\": \"{}\"}}", "x".repeat(3000));
    let (status, answer) = post(&url, &big);
    assert_eq!(status, 413, "{answer}");
    let (status, _) = post(&format!("{base}/api/v1/ingest/nope"), "{}");
    assert_eq!(status, 404);

    // Ctrl-C: the run stops, flushing what it accepted.
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{log}");
    let out = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    let ids: Vec<i64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, [1, 2, 3, 5]);
    let rejected = std::fs::read_to_string(dir.path().join("rejected.ndjson")).unwrap();
    assert_eq!(rejected.lines().count(), 2, "{rejected}");
    assert!(rejected.contains("http:2"), "{rejected}");
}

#[test]
fn an_http_source_without_a_server_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(dir.path(), false);
    let out = eddy().arg("run").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("source `orders` (type = \"http\")") && stderr.contains("[server]"),
        "{stderr}"
    );
}

/// With ingestion time the watermark follows the clock while nothing is
/// posted: a window over one posted event closes on its own, without a
/// later post to move it.
#[test]
fn an_ingestion_time_window_closes_without_further_posts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = support::write_pipeline(
        dir.path(),
        "clock.toml",
        &format!(
            r#"[server]
listen = "127.0.0.1:0"

[sources.orders]
type = "http"

[transforms.per_second]
type = "window"
inputs = ["orders"]
window = {{ tumbling = "500ms" }}
aggregates = {{ n = "count()" }}

[sinks.out]
type = "file"
inputs = ["per_second"]
path = "{d}/out.ndjson"
"#
        ),
    );
    let (child, base, _reader) = run_served(&config);
    let _run = support::Killed(child);
    let (status, answer) = post(&format!("{base}/api/v1/ingest/orders"), "{\"id\": 1}\n");
    assert_eq!(status, 202, "{answer}");
    let out = dir.path().join("out.ndjson");
    support::wait_until(Duration::from_secs(15), "the window's result", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("\"n\":1"))
    });
}
