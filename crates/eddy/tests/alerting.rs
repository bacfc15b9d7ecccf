//! Alerts from rules through `notify` to real HTTP receivers: a live
//! simulator run whose transactions raise alerts; the webhook receiver
//! gets Alertmanager-shaped notifications, signed, first firing and at the
//! end resolved; the critical route's Slack receiver gets its own.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eddy_testkit::http::HttpReceiver;
use serde_json::Value;
use support::write_pipeline;

#[test]
fn rules_notify_real_receivers_firing_then_resolved() {
    let hook = HttpReceiver::start();
    let chat = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let config = write_pipeline(
        dir.path(),
        "alerts.toml",
        &format!(
            r#"[pipeline]
name = "alerting"
data_dir = "{d}/data"

[sources.business]
type = "simulator"
rate = 400
seed = 7

[transforms.transactions]
type = "filter"
inputs = ["business"]
condition = 'type == "transaction"'

[alerts.payments_flowing]
inputs = ["transactions"]
condition = "amount_usd > 0.0"
severity = "high"
annotations = {{ summary = "payments are flowing" }}

[alerts.payments_critical]
inputs = ["transactions"]
condition = "amount_usd > 0.0"
severity = "critical"

[alerts.notify]
type = "notify"
inputs = ["payments_flowing", "payments_critical"]
receiver = "hook"
group_by = ["alertname"]
group_wait = "300ms"
group_interval = "500ms"
routes = [
  {{ matchers = ['severity = "critical"'], receiver = "chat" }},
]

[receivers.hook]
type = "webhook"
url = "{hook}"
hmac = {{ secret = "s3cret" }}

[receivers.chat]
type = "slack"
url = "{chat}"
"#,
            hook = hook.url(),
            chat = chat.url(),
        ),
    );
    run_for_3s(&config);

    let hooked = hook.requests();
    let hooked_bodies = bodies(&hook);
    let statuses: Vec<&str> = hooked_bodies
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"firing"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"resolved"), "{statuses:?}");
    for (r, b) in hooked.iter().zip(&hooked_bodies) {
        assert_eq!(b["version"], "4");
        assert_eq!(b["receiver"], "hook");
        assert_eq!(b["groupLabels"]["alertname"], "payments_flowing");
        assert_eq!(
            b["alerts"][0]["annotations"]["summary"],
            "payments are flowing"
        );
        let want = format!(
            "sha256={}",
            eddy_connectors::sinks::http::sign(b"s3cret", &r.body)
        );
        assert_eq!(r.header("x-eddy-signature"), Some(want.as_str()));
    }
    let chatted = bodies(&chat);
    assert!(!chatted.is_empty());
    assert_eq!(chatted[0]["text"], "[FIRING:1] payments_critical");
    assert_eq!(chatted[0]["attachments"][0]["color"], "#d00000");
    assert_eq!(
        chatted.last().unwrap()["text"],
        "[RESOLVED] payments_critical"
    );
}

/// Eddy watches itself: a `health` source's readings raise the error-rate
/// alert once most events fail, and it reaches a real webhook.
#[test]
fn the_health_source_raises_an_error_rate_alert() {
    let hook = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let config = write_pipeline(
        dir.path(),
        "health.toml",
        &format!(
            r#"[pipeline]
name = "selfwatch"
data_dir = "{d}/data"

[sources.business]
type = "simulator"
rate = 400
seed = 7

# Every event fails here and becomes a dead letter.
[transforms.broken]
type = "map"
inputs = ["business"]
set = {{ ratio = "1 / 0" }}

[sources.eddy_health]
type = "health"
interval = "200ms"

[alerts.eddy_error_rate]
inputs = ["eddy_health"]
condition = "error_rate > 0.05"
severity = "high"
for = "400ms"
annotations = {{ summary = "{{int(error_rate * 100.0)}}% of events failed in {{pipeline}}" }}

[alerts.notify]
type = "notify"
inputs = ["eddy_error_rate"]
receiver = "hook"
group_wait = "100ms"

[receivers.hook]
type = "webhook"
url = "{hook}"
"#,
            hook = hook.url(),
        ),
    );
    run_for_3s(&config);
    let got = bodies(&hook);
    let first = got.first().expect("no notification reached the webhook");
    assert_eq!(first["status"], "firing", "{first}");
    let alert = &first["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "eddy_error_rate");
    assert_eq!(
        alert["annotations"]["summary"], "100% of events failed in selfwatch",
        "{alert}"
    );
}

/// `kill -9` in the middle of an escalation: the restarted run tells the
/// next rung on time (3 s after the first notification, not 3 s after the
/// restart) and sends nothing twice.
#[test]
fn an_escalation_survives_sigkill_on_time_without_repeats() {
    let hook = HttpReceiver::start();
    let boss = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let config = escalating(
        dir.path(),
        &hook,
        &boss,
        "3s",
        "[checkpoint]\ninterval = \"200ms\"",
    );
    let eddy = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_eddy"));
        c.arg("run").arg(&config).arg("-q").stdout(Stdio::null());
        c
    };
    let mut first = eddy().stderr(Stdio::null()).spawn().unwrap();
    let notified = first_request(&hook);
    std::thread::sleep(Duration::from_millis(1500));
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(boss.requests().is_empty(), "escalated before its time");

    let out = eddy().args(["--duration", "6"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let firing = |r: &HttpReceiver| bodies(r).iter().filter(|b| b["status"] == "firing").count();
    assert_eq!(firing(&hook), 1, "the first notification was repeated");
    assert_eq!(
        firing(&boss),
        1,
        "the escalation came {} times",
        firing(&boss)
    );
    // The boss heard about 3 s after the first notification (each arrives
    // up to a checkpoint interval after it was sent); counted from the
    // restart instead, it would have been after 4.5 s at the earliest.
    let boss_at = boss.requests()[0].at;
    let waited = boss_at.duration_since(notified);
    assert!(
        waited >= Duration::from_millis(2_500) && waited < Duration::from_millis(4_300),
        "escalated {waited:?} after the first notification"
    );
}

/// Acknowledgement and silences through the CLI against a running server:
/// an acknowledged alert does not escalate; a silence is listed, mutes,
/// and ends on request.
#[test]
fn the_cli_acknowledges_and_silences_through_the_api() {
    let hook = HttpReceiver::start();
    let boss = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let config = escalating(
        dir.path(),
        &hook,
        &boss,
        "2s",
        "[server]\nlisten = \"127.0.0.1:0\"",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("run")
        .arg(&config)
        .args(["--duration", "6"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, log) = support::served_at(&mut child);
    first_request(&hook);
    let first: Value = serde_json::from_slice(&hook.requests()[0].body).unwrap();
    let fingerprint = first["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let cli = |args: &[&str]| alerts_cli(&url, args);
    let acked = cli(&["ack", &fingerprint, "--by", "ann", "--comment", "on it"]);
    assert!(
        acked.contains("acknowledged") && acked.contains("ann"),
        "{acked}"
    );
    let silenced = cli(&[
        "silence",
        "--matcher",
        "alertname = \"nothing_like_this\"",
        "--duration",
        "10m",
        "--comment",
        "maintenance",
    ]);
    assert!(silenced.starts_with("silence 1 until"), "{silenced}");
    let listed = cli(&["silences"]);
    assert!(
        listed.contains("active") && listed.contains("maintenance"),
        "{listed}"
    );
    assert!(cli(&["unsilence", "1"]).contains("silence 1 ended"));
    assert!(cli(&["silences"]).contains("expired"));
    let history = cli(&["history", "--fingerprint", &fingerprint]);
    let entries: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries[0]["status"], "acknowledged", "{history}");
    assert_eq!(entries[0]["by"], "ann");
    assert!(entries.iter().any(|e| e["status"] == "firing"), "{history}");

    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    assert!(
        boss.requests().is_empty(),
        "the acknowledged alert escalated anyway"
    );
    let told: Vec<Value> = bodies(&hook)
        .into_iter()
        .filter(|b| b["status"] == "acknowledged")
        .collect();
    assert_eq!(
        told.len(),
        1,
        "the receiver that heard it fire is told once"
    );
    assert_eq!(told[0]["alerts"][0]["acknowledgedBy"], "ann");
    assert_eq!(told[0]["alerts"][0]["comment"], "on it");
}

/// An alert silenced, then resolved by hand through the CLI: while
/// silenced it is listed with what suppresses it and the history records
/// that; resolved, the rule resolves it naming who did it, the receiver
/// hears of the resolution, the history shows it and the alert is no
/// longer open.
#[test]
fn the_cli_resolves_an_alert_by_hand() {
    let hook = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = write_pipeline(
        dir.path(),
        "resolving.toml",
        &format!(
            r#"[pipeline]
name = "resolving"
data_dir = "{d}/data"

[server]
listen = "127.0.0.1:0"

[sources.orders]
type = "http"
event_time = {{ field = "ts" }}

[alerts.big_order]
inputs = ["orders"]
condition = "amount > 1000"
severity = "high"
resolve_after = "1h"

[alerts.notify]
type = "notify"
inputs = ["big_order"]
receiver = "hook"
group_wait = "100ms"
group_interval = "200ms"

[receivers.hook]
type = "webhook"
url = "{hook}"
"#,
            hook = hook.url(),
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("run")
        .arg(&config)
        .args(["--duration", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, log) = support::served_at(&mut child);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let posted = agent
        .post(format!("{url}/api/v1/ingest/orders"))
        // The second order moves the watermark past the first.
        .send(concat!(
            r#"{"ts": "2026-01-01T00:00:00Z", "amount": 5000}"#,
            "\n",
            r#"{"ts": "2026-01-01T00:01:00Z", "amount": 10}"#,
        ))
        .unwrap();
    assert_eq!(posted.status().as_u16(), 202);
    first_request(&hook);
    let first: Value = serde_json::from_slice(&hook.requests()[0].body).unwrap();
    assert_eq!(first["status"], "firing", "{first}");
    let fingerprint = first["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let cli = |args: &[&str]| alerts_cli(&url, args);
    // Silenced, the open alert says by what, and the history records it.
    let silenced = cli(&[
        "silence",
        "--matcher",
        "alertname = \"big_order\"",
        "--duration",
        "1h",
    ]);
    assert!(silenced.starts_with("silence 1 until"), "{silenced}");
    support::wait_until(
        Duration::from_secs(10),
        "the alert listed as silenced",
        || cli(&["list", "--json"]).contains("\"suppressed_by\":\"silence 1\""),
    );
    assert!(cli(&["unsilence", "1"]).contains("silence 1 ended"));
    // Both ends of the suppression reach the history.
    support::wait_until(
        Duration::from_secs(10),
        "the suppression in the history",
        || {
            let history = cli(&["history", "--fingerprint", &fingerprint]);
            history.contains("\"status\":\"suppressed\"")
                && history.contains("\"cause\":\"silence 1\"")
                && history.contains("\"status\":\"unsuppressed\"")
        },
    );
    let answer = cli(&[
        "resolve",
        &fingerprint,
        "--by",
        "bob",
        "--comment",
        "refunded",
    ]);
    assert!(answer.contains("resolving"), "{answer}");
    support::wait_until(Duration::from_secs(10), "the resolved notification", || {
        bodies(&hook).iter().any(|b| b["status"] == "resolved")
    });
    let history = cli(&["history", "--fingerprint", &fingerprint]);
    let newest: Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    assert_eq!(newest["status"], "resolved", "{history}");
    assert_eq!(newest["cause"], "resolved by bob: refunded", "{history}");
    let open = cli(&["list", "--json"]);
    assert!(!open.contains(&fingerprint), "still open: {open}");
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    // The history outlives the run, for the next one to read back.
    let kept =
        std::fs::read_to_string(dir.path().join("data/alert-history-resolving.ndjson")).unwrap();
    assert!(kept.contains("resolved by bob: refunded"), "{kept}");
}

/// A live pipeline whose every simulated transaction keeps one critical
/// alert firing, routed to `hook` and escalated to `boss` `after` the
/// first notification; `top` goes under `[pipeline]` (checkpoints, the
/// server).
fn escalating(
    dir: &std::path::Path,
    hook: &HttpReceiver,
    boss: &HttpReceiver,
    after: &str,
    top: &str,
) -> std::path::PathBuf {
    let d = dir.display();
    write_pipeline(
        dir,
        "escalating.toml",
        &format!(
            r#"[pipeline]
name = "escalating"
data_dir = "{d}/data"

{top}

[sources.business]
type = "simulator"
rate = 200
seed = 7

[alerts.payments_critical]
inputs = ["business"]
condition = 'type == "transaction"'
severity = "critical"

[alerts.notify]
type = "notify"
inputs = ["payments_critical"]
receiver = "hook"
group_wait = "200ms"
group_interval = "300ms"
escalate = [{{ after = "{after}", receiver = "boss" }}]

[receivers.hook]
type = "webhook"
url = "{hook}"

[receivers.boss]
type = "webhook"
url = "{boss}"
"#,
            hook = hook.url(),
            boss = boss.url(),
        ),
    )
}

/// Runs `config` for 3 seconds and fails the test unless it succeeds.
fn run_for_3s(config: &std::path::Path) {
    support::succeed(
        Command::new(env!("CARGO_BIN_EXE_eddy"))
            .arg("run")
            .arg(config)
            .args(["--duration", "3", "-q"]),
    );
}

/// The JSON bodies `receiver` got, in order.
fn bodies(receiver: &HttpReceiver) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// `eddy alerts ARGS --url URL`'s output; fails the test unless it succeeds.
fn alerts_cli(url: &str, args: &[&str]) -> String {
    let out = support::succeed(
        Command::new(env!("CARGO_BIN_EXE_eddy"))
            .arg("alerts")
            .args(args)
            .args(["--url", url]),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (up to 30 s) for `hook`'s first request.
fn first_request(hook: &HttpReceiver) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.requests().is_empty() {
        assert!(Instant::now() < deadline, "no first notification");
        std::thread::sleep(Duration::from_millis(20));
    }
    Instant::now()
}
