//! The server against a real run: a simulator → filter → tumbling window
//! pipeline, served on a free port, queried over HTTP and WebSocket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_runtime::{Plan, RunOptions};
use eddy_server::{Access, ApiKey, Hub, Role, Server, Status};
use serde_json::Value as Json;

const PIPELINE: &str = r#"
[pipeline]
name = "served"

[sources.events]
type = "simulator"
rate = 4000
seed = 3

[transforms.tx]
type = "filter"
inputs = ["events"]
condition = 'type == "transaction"'

[transforms.per_merchant]
type = "window"
inputs = ["tx"]
key = "merchant"
window = { tumbling = "500ms" }
aggregates = { n = "count()" }

[sinks.out]
type = "blackhole"
inputs = ["per_merchant"]

[alerts.busy]
inputs = ["per_merchant"]
condition = "n >= 1"
key = "merchant"
severity = "low"
resolve_after = "1h"
labels = { merchant = "{merchant}" }
"#;

/// A run of [`PIPELINE`] served on a free port.
struct Served {
    running: Option<eddy_runtime::Running>,
    finished: Arc<AtomicBool>,
    server: Server,
}

impl Served {
    fn start() -> Served {
        Served::with_access(Access::default())
    }

    fn with_access(access: Access) -> Served {
        Served::with(PIPELINE, access)
    }

    fn with(pipeline: &str, access: Access) -> Served {
        let plan = Plan::compile("served.toml", pipeline, &[]).unwrap_or_else(|d| panic!("{d}"));
        let hub = Arc::new(Hub::new().with_alert_rules(vec!["busy".into()]));
        let running = eddy_runtime::start(
            &plan,
            RunOptions {
                workers: 2,
                publisher: Some(hub.clone()),
                ..RunOptions::default()
            },
        )
        .unwrap();
        let finished = Arc::new(AtomicBool::new(false));
        let status = Status::new(&plan, running.metrics().clone(), finished.clone());
        let server = Server::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Arc::new(status),
            hub,
            access,
        )
        .unwrap();
        Served {
            running: Some(running),
            finished,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// Status and body of a GET.
    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, None)
    }

    /// Status and body of a request carrying `key` as a bearer token.
    fn request(&self, method: &str, path: &str, key: Option<&str>) -> (u16, String) {
        let (status, body, _) = self.request_full(method, path, key);
        (status, body)
    }

    /// Status, body and `Retry-After` of a request.
    fn request_full(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> (u16, String, Option<String>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = self.url(path);
        let bearer = key.map(|k| format!("Bearer {k}"));
        let mut r = match (method, &bearer) {
            ("POST", Some(b)) => agent.post(&url).header("authorization", b).send("{}"),
            ("POST", None) => agent.post(&url).send("{}"),
            (_, Some(b)) => agent.get(&url).header("authorization", b).call(),
            (_, None) => agent.get(&url).call(),
        }
        .unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap(),
            retry,
        )
    }

    fn json(&self, path: &str) -> (u16, Json) {
        let (status, body) = self.get(path);
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
        )
    }

    /// Ends the run; the server stays up.
    fn finish(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
            r.wait();
            self.finished.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `text` percent-encoded for a query string.
fn query(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Waits until `f` holds (the run needs a moment to produce windows).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the Prometheus text format: every sample's family has `# TYPE`
/// before it, names and labels are well formed, values are numbers, and a
/// histogram's buckets grow with `le` up to `+Inf`, which equals `_count`.
fn check_prometheus(text: &str) {
    let mut typed = std::collections::HashMap::new();
    let mut buckets: Vec<(String, f64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_string(), kind).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("eddy_"), "{line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f) == Some(&"histogram"))
            })
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "sample before its # TYPE: {line}"
        );
        let value: f64 = value.parse().unwrap();
        if name.ends_with("_bucket") {
            let (labels, le) = series.rsplit_once(",le=").unwrap();
            if let Some((prev, last)) = buckets.last() {
                if *prev == labels {
                    assert!(value >= *last, "buckets shrink: {line}");
                }
            }
            if le == "\"+Inf\"}" {
                let count = format!("{}_count{}}}", family, &labels[family.len() + 7..]);
                assert!(
                    text.lines().any(|l| l == format!("{count} {value}")),
                    "+Inf bucket is not {count}: {line}"
                );
            }
            buckets.push((labels.to_string(), value));
        }
        if name.ends_with("_total") {
            assert!(value >= 0.0, "a counter below zero: {line}");
        }
        if let Some(labels) = series.strip_prefix(name).and_then(|l| l.strip_prefix('{')) {
            let labels = labels.strip_suffix('}').unwrap();
            for pair in labels.split(',') {
                let (k, v) = pair.split_once('=').unwrap();
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
            }
        }
    }
}

#[test]
fn health_readiness_metrics_and_the_pipeline_are_served() {
    let mut s = Served::start();
    assert_eq!(
        s.json("/healthz"),
        (200, serde_json::json!({"status": "alive"}))
    );
    assert_eq!(s.json("/readyz"), (200, serde_json::json!({"ready": true})));

    eventually("windows fire", || {
        let (_, p) = s.json("/api/v1/pipeline");
        p["nodes"][2]["events_out"]["main"].as_u64().unwrap_or(0) > 0
            && p["nodes"][0]["in_per_second"].as_f64().unwrap_or(0.0) > 0.0
    });
    let (status, p) = s.json("/api/v1/pipeline");
    assert_eq!(status, 200);
    assert_eq!(p["pipeline"], "served");
    assert_eq!(p["status"], "running");
    let names: Vec<&str> = p["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["events", "tx", "per_merchant", "out", "busy"]);
    assert_eq!(p["nodes"][2]["inputs"], serde_json::json!(["tx"]));
    assert_eq!(p["nodes"][2]["role"], "transform");
    assert!(p["nodes"][0]["watermark"].is_string());

    // The sink's latency histograms count what it wrote.
    eventually("the sink's histograms fill", || {
        s.get("/metrics").1.lines().any(|l| {
            l.strip_prefix("eddy_sink_latency_seconds_count{node=\"out\"} ")
                .is_some_and(|v| v != "0")
        })
    });
    let (status, metrics) = s.get("/metrics");
    assert_eq!(status, 200);
    check_prometheus(&metrics);
    for series in [
        "eddy_sink_event_time_lag_seconds_bucket{node=\"out\",le=\"+Inf\"}",
        "eddy_node_watermark_lag_seconds{node=\"per_merchant\"}",
        "eddy_node_backpressure_seconds_total{node=\"out\"}",
        "eddy_websocket_events_skipped_total ",
    ] {
        assert!(metrics.contains(series), "no {series} in {metrics}");
    }
    // Per instance: the run has two workers.
    for w in 0..2 {
        assert!(
            metrics.contains(&format!(
                "eddy_node_events_in_total{{node=\"per_merchant\",worker=\"{w}\"}}"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("eddy_node_events_out_total{node=\"tx\",worker=\"0\",output=\"main\"}")
    );

    // The OpenAPI document names every path served.
    let (_, api) = s.json("/api/v1/openapi.json");
    for path in [
        "/api/v1/ingest/{source}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/pipeline",
        "/api/v1/nodes/{node}/recent",
        "/api/v1/alerts",
    ] {
        assert!(api["paths"][path].is_object(), "{path} undocumented");
    }
    assert!(s.get("/").1.contains("<title>Eddy</title>"));
    assert_eq!(s.get("/nowhere").0, 404);

    s.finish();
    let (status, ready) = s.json("/readyz");
    assert_eq!(status, 503);
    assert_eq!(ready["problems"][0], "pipeline: the run is over");
    assert_eq!(s.json("/api/v1/pipeline").1["status"], "finished");
}

/// With checkpoints on, the pipeline lists the latest ones, newest first;
/// every node reports its share of backpressure.
#[test]
fn recent_checkpoints_and_backpressure_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = PIPELINE.replace(
        "name = \"served\"",
        &format!(
            "name = \"served\"\ndata_dir = \"{}\"\n\n[checkpoint]\ninterval = \"100ms\"",
            dir.path().display()
        ),
    );
    let mut s = Served::with(&pipeline, Access::default());
    eventually("three checkpoints are listed", || {
        s.json("/api/v1/pipeline").1["checkpoints"]["history"]
            .as_array()
            .is_some_and(|h| h.len() >= 3)
    });
    let (_, p) = s.json("/api/v1/pipeline");
    let history = p["checkpoints"]["history"].as_array().unwrap();
    let ids: Vec<u64> = history.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(ids[0] <= p["checkpoints"]["last_id"].as_u64().unwrap());
    for c in history {
        assert!(c["bytes"].as_u64() > Some(0), "{c}");
        assert!(c["duration_ms"].is_u64() && c["at_seconds"].is_f64(), "{c}");
    }
    for n in p["nodes"].as_array().unwrap() {
        assert!(n["backpressure"].as_f64() >= Some(0.0), "{n}");
    }
    s.finish();
}

#[test]
fn open_alerts_are_listed_by_fingerprint_and_fed_on_the_alerts_channel() {
    let s = Served::start();
    eventually("two alerts open", || {
        s.json("/api/v1/alerts").1["alerts"]
            .as_array()
            .is_some_and(|a| a.len() >= 2)
    });
    let (status, body) = s.json("/api/v1/alerts?status=firing");
    assert_eq!(status, 200);
    let alerts = body["alerts"].as_array().unwrap();
    let prints: Vec<&str> = alerts
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap())
        .collect();
    let mut sorted = prints.clone();
    sorted.dedup();
    assert_eq!(prints, sorted, "one entry per fingerprint, in order");
    assert!(alerts
        .iter()
        .all(|a| a["status"] == "firing" && a["alertname"] == "busy"));
    let merchant = alerts[0]["labels"]["merchant"]
        .as_str()
        .unwrap()
        .to_string();
    let encoded: String = format!("labels.merchant == \"{merchant}\"")
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let filter = encoded;
    let (_, one) = s.json(&format!("/api/v1/alerts?filter={filter}"));
    assert_eq!(one["alerts"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(
        s.json("/api/v1/alerts?status=pending").1["alerts"],
        serde_json::json!([])
    );
    let (status, e) = s.json("/api/v1/alerts?status=resolved");
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("`status`"), "{e}");

    // The feed: a subscriber to `alerts` gets the rule's transitions.
    let url = format!("ws://{}/api/v1/ws", s.server.addr());
    let stream = std::net::TcpStream::connect(s.server.addr()).unwrap();
    let (mut ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
    ws.send(tungstenite::Message::text(
        r#"{"subscribe": "alerts", "after": 0}"#,
    ))
    .unwrap();
    let mut got_alert = false;
    for _ in 0..20 {
        let text = ws.read().unwrap().into_text().unwrap().to_string();
        let m: Json = serde_json::from_str(&text).unwrap();
        if m["channel"] == "alerts" && m["events"][0]["alertname"] == "busy" {
            got_alert = true;
            break;
        }
    }
    assert!(got_alert, "no alert on the feed");
}

#[test]
fn recent_output_is_filtered_and_bad_requests_say_why() {
    let s = Served::start();
    eventually("results", || {
        s.json("/api/v1/nodes/per_merchant/recent?limit=5").1["events"]
            .as_array()
            .is_some_and(|e| e.len() == 5)
    });
    // Filtered by key: a merchant seen in the results.
    let (_, all) = s.json("/api/v1/nodes/per_merchant/recent?limit=5");
    let merchant = all["events"][0]["merchant"].as_str().unwrap().to_string();
    let filter = query(&format!("merchant == \"{merchant}\""));
    let (status, r) = s.json(&format!(
        "/api/v1/nodes/per_merchant/recent?limit=50&filter={filter}"
    ));
    assert_eq!(status, 200);
    let events = r["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["merchant"] == merchant.as_str()),
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["window_start"].is_string()));
    // A filter that matches nothing gives nothing.
    let (_, none) = s.json("/api/v1/nodes/per_merchant/recent?filter=n%20%3C%200");
    assert_eq!(none["events"], serde_json::json!([]));

    let (status, e) = s.json("/api/v1/nodes/per_merchant/recent?filter=n%20%3E");
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().starts_with("`filter`"), "{e}");
    assert_eq!(s.json("/api/v1/nodes/per_merchant/recent?limit=0").0, 400);
    assert_eq!(s.json("/api/v1/nodes/nope/recent").0, 404);
    let (status, e) = s.json("/api/v1/nodes/per_merchant/recent?output=nope");
    assert_eq!(status, 404);
    assert!(e["error"].as_str().unwrap().contains("no output `nope`"));
    // Other outputs are there to ask for.
    assert_eq!(
        s.json("/api/v1/nodes/per_merchant/recent?output=late").0,
        200
    );
}

type Socket = tungstenite::WebSocket<std::net::TcpStream>;

fn ws_connect(s: &Served) -> Socket {
    let stream = std::net::TcpStream::connect(s.server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("ws://{}/api/v1/ws", s.server.addr());
    tungstenite::client(url.as_str(), stream).unwrap().0
}

fn ws_send(ws: &mut Socket, msg: Json) {
    ws.send(tungstenite::Message::Text(msg.to_string().into()))
        .unwrap();
}

fn ws_next(ws: &mut Socket) -> Json {
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn websocket_subscribers_get_filtered_numbered_messages_and_what_they_missed() {
    let s = Served::start();
    let mut ws = ws_connect(&s);
    ws_send(&mut ws, serde_json::json!({"subscribe": "node:nope"}));
    assert!(ws_next(&mut ws)["error"]
        .as_str()
        .unwrap()
        .contains("no channel"));
    ws_send(
        &mut ws,
        serde_json::json!({"subscribe": "node:per_merchant", "filter": "n > 1"}),
    );
    let ok = ws_next(&mut ws);
    assert_eq!(ok["subscribed"], "node:per_merchant");
    let epoch = ok["epoch"].as_u64().unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 6 {
        let m = ws_next(&mut ws);
        assert_eq!(
            (m["channel"].as_str(), m["epoch"].as_u64()),
            (Some("node:per_merchant"), Some(epoch))
        );
        let events = m["events"].as_array().unwrap();
        assert!(!events.is_empty() && events.iter().all(|e| e["n"].as_i64().unwrap() > 1));
        seqs.push(m["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    drop(ws);

    // Reconnecting after the third message (no filter this time) replays
    // every message since, before anything new.
    let mut again = ws_connect(&s);
    let after = seqs[2];
    ws_send(
        &mut again,
        serde_json::json!({"subscribe": "node:per_merchant", "after": after}),
    );
    assert_eq!(ws_next(&mut again)["subscribed"], "node:per_merchant");
    for expected in after + 1..after + 11 {
        let m = ws_next(&mut again);
        assert_eq!(m["seq"].as_u64(), Some(expected), "{m}");
    }
    // The metrics channel carries the pipeline's snapshot each second.
    ws_send(&mut again, serde_json::json!({"subscribe": "metrics"}));
    let mut subscribed = false;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let m = ws_next(&mut again);
        if m["subscribed"] == "metrics" {
            subscribed = true;
        }
        if m["channel"] == "metrics" && m["data"]["pipeline"] == "served" {
            break;
        }
    }
    assert!(subscribed, "the metrics channel answered");
}

const VIEWER: &str = "viewer-key-0123456789";
const OPERATOR: &str = "operator-key-0123456789";

fn keys(rate: Option<(f64, f64)>) -> Access {
    let key = |name: &str, key: &str, role| ApiKey {
        name: name.into(),
        key: key.into(),
        role,
        channels: None,
    };
    Access {
        keys: vec![
            key("dash", VIEWER, Role::Viewer),
            key("feeder", OPERATOR, Role::Operator),
        ],
        rate,
        audit: None,
        jwt: None,
    }
}

#[test]
fn with_api_keys_only_health_is_open_and_roles_decide_what_a_key_may_do() {
    let s = Served::with_access(keys(None));
    assert_eq!(s.request("GET", "/healthz", None).0, 200);
    assert_eq!(s.request("GET", "/assets/uPlot.min.css", None).0, 200);
    for path in [
        "/",
        "/metrics",
        "/readyz",
        "/api/v1/pipeline",
        "/api/v1/openapi.json",
    ] {
        let (status, body) = s.request("GET", path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains(VIEWER));
        assert_eq!(
            s.request("GET", path, Some("not-a-key-0123456789")).0,
            401,
            "{path}"
        );
        assert_eq!(s.request("GET", path, Some(VIEWER)).0, 200, "{path}");
    }
    // The page and the feed take the key as a query parameter.
    assert_eq!(s.get(&format!("/api/v1/pipeline?api_key={VIEWER}")).0, 200);
    // Ingest needs an operator: a viewer is forbidden, an operator gets
    // through to the route (this pipeline has no http source: 404).
    let (status, body) = s.request("POST", "/api/v1/ingest/events", Some(VIEWER));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("needs operator"), "{body}");
    assert_eq!(
        s.request("POST", "/api/v1/ingest/events", Some(OPERATOR)).0,
        404
    );
    // The WebSocket needs a key too.
    let url = format!("ws://{}/api/v1/ws", s.server.addr());
    let stream = std::net::TcpStream::connect(s.server.addr()).unwrap();
    assert!(
        tungstenite::client(url.as_str(), stream).is_err(),
        "no key, no feed"
    );
    let stream = std::net::TcpStream::connect(s.server.addr()).unwrap();
    let url = format!("{url}?api_key={VIEWER}");
    assert!(tungstenite::client(url.as_str(), stream).is_ok());
}

#[test]
fn the_audit_log_records_changes_sessions_and_refusals_without_secrets() {
    let dir = std::env::temp_dir().join(format!("eddy-audit-{}", std::process::id()));
    let path = dir.join("audit.ndjson");
    let mut access = keys(None);
    access.audit = Some(Arc::new(eddy_server::AuditLog::open(&path).unwrap()));
    let s = Served::with_access(access);
    assert_eq!(s.request("GET", "/api/v1/pipeline", None).0, 401);
    assert_eq!(
        s.request("POST", "/api/v1/ingest/events", Some(VIEWER)).0,
        403
    );
    assert_eq!(
        s.request("POST", "/api/v1/ingest/events", Some(OPERATOR)).0,
        404
    );
    assert_eq!(s.request("GET", "/api/v1/pipeline", Some(VIEWER)).0, 200);
    let url = format!("ws://{}/api/v1/ws?api_key={VIEWER}", s.server.addr());
    let stream = std::net::TcpStream::connect(s.server.addr()).unwrap();
    let (mut ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
    ws.close(None).ok();
    let lines = || -> Vec<Json> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    eventually("the session is audited", || lines().len() >= 4);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(VIEWER) && !text.contains(OPERATOR),
        "no secret in {text}"
    );
    let got: Vec<(String, Json, String, u64)> = lines()
        .iter()
        .map(|l| {
            (
                l["what"].as_str().unwrap().to_string(),
                l["key"].clone(),
                l["path"].as_str().unwrap().to_string(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = vec![
        ("refused".into(), Json::Null, "/api/v1/pipeline".into(), 401),
        (
            "refused".into(),
            serde_json::json!("dash"),
            "/api/v1/ingest/events".into(),
            403,
        ),
        (
            "change".into(),
            serde_json::json!("feeder"),
            "/api/v1/ingest/events".into(),
            404,
        ),
        (
            "session".into(),
            serde_json::json!("dash"),
            "/api/v1/ws".into(),
            101,
        ),
    ];
    assert_eq!(got, want, "the viewer's plain read is not audited");
    assert!(lines()
        .iter()
        .all(|l| l["time"].is_string() && l["client"] == "127.0.0.1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn jwts_are_checked_for_signature_algorithm_time_audience_and_role() {
    use eddy_server::jwt::sign;
    use serde_json::json;
    let secret = b"a-shared-secret-of-32-bytes-or-more".to_vec();
    let access = Access {
        jwt: Some(eddy_server::JwtSettings {
            key: eddy_server::jwt::JwtKey::Hs256(secret.clone()),
            issuer: Some("https://id.example".into()),
            audience: Some("eddy".into()),
            role_claim: "role".into(),
            leeway_secs: 5,
        }),
        ..Access::default()
    };
    let s = Served::with_access(access);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let claims = |role: &str, exp: i64, aud: &str| json!({"sub": "ann", "iss": "https://id.example", "aud": aud, "exp": exp, "role": role});
    let viewer = sign(&secret, &hs, &claims("viewer", now + 600, "eddy"));
    let operator = sign(&secret, &hs, &claims("operator", now + 600, "eddy"));
    assert_eq!(s.request("GET", "/healthz", None).0, 200);
    assert_eq!(s.request("GET", "/api/v1/pipeline", None).0, 401);
    assert_eq!(s.request("GET", "/api/v1/pipeline", Some(&viewer)).0, 200);
    let (status, body) = s.request("POST", "/api/v1/ingest/events", Some(&viewer));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("jwt:ann") && body.contains("needs operator"),
        "{body}"
    );
    assert_eq!(
        s.request("POST", "/api/v1/ingest/events", Some(&operator))
            .0,
        404
    );
    let refused = |token: &str, why: &str| {
        let (status, body) = s.request("GET", "/api/v1/pipeline", Some(token));
        assert_eq!(status, 401, "{body}");
        assert!(body.contains(why), "{body} (wanted {why})");
    };
    refused(
        &sign(&secret, &hs, &claims("viewer", now - 60, "eddy")),
        "expired",
    );
    refused(
        &sign(&secret, &hs, &claims("viewer", now + 600, "other")),
        "`aud`",
    );
    refused(
        &sign(
            b"the wrong secret, also 32 bytes..",
            &hs,
            &claims("viewer", now + 600, "eddy"),
        ),
        "signature",
    );
    let unsigned = sign(
        b"",
        &json!({"alg": "none"}),
        &claims("admin", now + 600, "eddy"),
    );
    refused(
        &format!("{}.", unsigned.rsplit_once('.').unwrap().0),
        "`none` is not accepted",
    );
    refused(
        &sign(
            &secret,
            &json!({"alg": "RS256"}),
            &claims("admin", now + 600, "eddy"),
        ),
        "HS256 only",
    );
}

#[test]
fn a_key_past_its_rate_gets_429_with_retry_after_and_others_go_on() {
    let s = Served::with_access(keys(Some((1.0, 3.0))));
    for _ in 0..3 {
        assert_eq!(s.request("GET", "/api/v1/pipeline", Some(VIEWER)).0, 200);
    }
    let (status, _, retry) = s.request_full("GET", "/api/v1/pipeline", Some(VIEWER));
    assert_eq!(status, 429);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(
        s.request("GET", "/api/v1/pipeline", Some(OPERATOR)).0,
        200,
        "per key"
    );
    assert_eq!(
        s.request("GET", "/healthz", None).0,
        200,
        "health is never limited"
    );
}

/// A key limited to some channels reads those, over the feed and REST,
/// and is refused the others, with the reason.
#[test]
fn a_key_reads_only_its_channels() {
    const KPIS: &str = "kpis-key-0123456789";
    let mut access = keys(None);
    access.keys.push(ApiKey {
        name: "kpis".into(),
        key: KPIS.into(),
        role: Role::Viewer,
        channels: Some(vec!["metrics".into(), "node:per_*".into()]),
    });
    let s = Served::with_access(access);
    let stream = std::net::TcpStream::connect(s.server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("ws://{}/api/v1/ws?api_key={KPIS}", s.server.addr());
    let mut ws = tungstenite::client(url.as_str(), stream).unwrap().0;
    for refused in ["alerts", "node:tx", "node:events.dead_letters"] {
        ws_send(&mut ws, serde_json::json!({"subscribe": refused}));
        let answer = ws_next(&mut ws);
        assert_eq!(
            answer["error"],
            format!("this key may not read channel `{refused}`"),
            "{answer}"
        );
    }
    ws_send(
        &mut ws,
        serde_json::json!({"subscribe": "node:per_merchant"}),
    );
    assert_eq!(ws_next(&mut ws)["subscribed"], "node:per_merchant");
    let (status, body) = s.request("GET", "/api/v1/nodes/tx/recent", Some(KPIS));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not read node `tx`"), "{body}");
    assert_eq!(
        s.request("GET", "/api/v1/nodes/per_merchant/recent", Some(KPIS))
            .0,
        200
    );
    // A key without a list reads everything.
    assert_eq!(
        s.request("GET", "/api/v1/nodes/tx/recent", Some(VIEWER)).0,
        200
    );
}

/// With a certificate the server speaks HTTPS only: a client trusting the
/// certificate gets through; plain HTTP on the same port gets no answer,
/// and the server goes on serving, also while another client stalls in
/// its handshake.
#[test]
fn with_a_certificate_the_server_speaks_https() {
    use openssl::ssl::{SslConnector, SslMethod};
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let tls = eddy_server::Tls::from_pem_files(&cert, &key).unwrap();
    let plan = Plan::compile("served.toml", PIPELINE, &[]).unwrap_or_else(|d| panic!("{d}"));
    let hub = Arc::new(Hub::new());
    let running = eddy_runtime::start(&plan, RunOptions::default()).unwrap();
    let status = Status::new(
        &plan,
        running.metrics().clone(),
        Arc::new(AtomicBool::new(false)),
    );
    let server = Server::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::new(status),
        hub,
        Access::default(),
        Some(tls),
    )
    .unwrap();
    let get = |path: &str| -> String {
        let mut connector = SslConnector::builder(SslMethod::tls_client()).unwrap();
        connector.set_ca_file(&cert).unwrap();
        let tcp = std::net::TcpStream::connect(server.addr()).unwrap();
        let mut tls = connector.build().connect("localhost", tcp).unwrap();
        write!(
            tls,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer);
        answer
    };
    assert!(get("/healthz").starts_with("HTTP/1.1 200"));
    let mut plain = std::net::TcpStream::connect(server.addr()).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(plain, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "plain HTTP was served"
    );
    // A client that connects and never says anything holds no one up.
    let _stalled = std::net::TcpStream::connect(server.addr()).unwrap();
    let pipeline = get("/api/v1/pipeline");
    assert!(pipeline.contains("\"pipeline\":\"served\""), "{pipeline}");
    running.stop();
    running.wait();
}

/// A self-signed certificate for `localhost` and its key, as PEM files.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509NameBuilder, X509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "localhost").unwrap();
    let name = name.build();
    let mut x = X509::builder().unwrap();
    x.set_version(2).unwrap();
    x.set_subject_name(&name).unwrap();
    x.set_issuer_name(&name).unwrap();
    x.set_pubkey(&key).unwrap();
    x.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    x.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .build(&x.x509v3_context(None, None))
        .unwrap();
    x.append_extension(san).unwrap();
    x.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert, x.build().to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert, key_path)
}
