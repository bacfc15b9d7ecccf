//! Span export as an operator meets it: `eddy run --otlp-endpoint URL`
//! sends its spans to a local OTLP/HTTP receiver that decodes them with
//! the official protobuf definitions: the run, the HTTP requests the
//! server answered, the batches a sink delivered and the checkpoints
//! stored, each with its attributes, all from `service.name = eddy`; a
//! collector that does not answer is reported once.

mod support;

use std::process::Stdio;

use eddy_testkit::otlp::OtlpReceiver;
use eddy_testkit::HttpReceiver;
use serde_json::Value;
use support::{eddy, Killed};

#[test]
fn a_run_exports_its_spans_over_otlp() {
    let Some(collector) = OtlpReceiver::start() else {
        return;
    };
    let hook = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = support::write_pipeline(
        dir.path(),
        "traced.toml",
        &format!(
            r#"[pipeline]
name = "traced"
data_dir = "{d}/data"

[server]
listen = "127.0.0.1:0"

[checkpoint]
interval = "200ms"

[sources.orders]
type = "http"

[sinks.hook]
type = "http"
inputs = ["orders"]
url = "{url}"
"#,
            url = hook.url()
        ),
    );
    let mut child = eddy()
        .arg("run")
        .arg(&config)
        .args(["-q", "--duration", "3", "--otlp-endpoint"])
        .arg(collector.url())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (base, log) = support::served_at(&mut child);
    let mut child = Killed(child);
    let response = ureq::post(&format!("{base}/api/v1/ingest/orders"))
        .header("Content-Type", "application/x-ndjson")
        .send("{\"id\": 1}\n{\"id\": 2}\n")
        .unwrap();
    assert_eq!(response.status(), 202);
    let _ = ureq::get(&format!("{base}/api/v1/nodes/nowhere/recent")).call();
    let status = child.0.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    assert!(!log.contains("spans are not exported"), "{log}");
    assert_eq!(collector.errors(), "", "the receiver refused a body");

    // The exporter flushed at exit: everything is there.
    let spans = collector.spans();
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    for s in &spans {
        assert_eq!(s["resource"]["service.name"], "eddy", "{s}");
        assert!(s["end_ns"].as_u64() >= s["start_ns"].as_u64(), "{s}");
    }

    let run = named("eddy.run");
    assert_eq!(run.len(), 1, "{spans:#?}");
    assert_eq!(run[0]["attributes"]["pipeline"], "traced");
    assert_eq!(run[0]["attributes"]["events_read"], 2);
    assert_eq!(run[0]["attributes"]["errors"], 0);

    let requests = named("http.request");
    let ingest = requests
        .iter()
        .find(|s| s["attributes"]["http.route"] == "/api/v1/ingest/{source}")
        .unwrap_or_else(|| panic!("no ingest request in {requests:#?}"));
    assert_eq!(ingest["attributes"]["http.request.method"], "POST");
    assert_eq!(ingest["attributes"]["http.response.status_code"], 202);
    assert!(
        requests.iter().any(|s| {
            s["attributes"]["http.route"] == "/api/v1/nodes/{node}/recent"
                && s["attributes"]["http.response.status_code"] == 404
        }),
        "{requests:#?}"
    );

    let delivered: i64 = named("sink.deliver")
        .iter()
        .filter(|s| s["attributes"]["sink"] == "hook")
        .inspect(|s| assert_eq!(s["attributes"]["outcome"], "delivered", "{s}"))
        .map(|s| s["attributes"]["events"].as_i64().unwrap())
        .sum();
    assert_eq!(delivered, 2);
    let bodies: String = hook.requests().iter().map(|r| r.text()).collect();
    assert!(
        bodies.contains("\"id\":1") && bodies.contains("\"id\":2"),
        "{bodies}"
    );

    // A collector that does not answer: said once, and the run goes on.
    let nobody = format!("http://127.0.0.1:{}", eddy_testkit::free_port());
    let out = eddy()
        .arg("run")
        .arg(&config)
        .args(["-q", "--duration", "2", "--otlp-endpoint", &nobody])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("spans cannot be exported to").count(),
        1,
        "{log}"
    );

    let checkpoints = named("checkpoint.store");
    assert!(!checkpoints.is_empty(), "{spans:#?}");
    for c in &checkpoints {
        assert!(c["attributes"]["bytes"].as_i64() > Some(0), "{c}");
        assert!(c["attributes"]["checkpoint.id"].as_i64() > Some(0), "{c}");
    }
}
