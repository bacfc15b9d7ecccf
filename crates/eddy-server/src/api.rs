//! The HTTP routes: health, readiness, metrics, the REST API and the
//! dashboard page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use eddy_core::ingest::IngestRefused;
use eddy_core::Expression;
use serde_json::json;

use crate::hub::node_channel;
use crate::{prometheus, ws, Shared};

/// The dashboard page, embedded at build time.
const DASHBOARD: &str = include_str!("../assets/index.html");
/// The chart library (uPlot, pinned in `assets/package-lock.json`; see
/// `scripts/dashboard-assets.sh`).
const UPLOT_JS: &str = include_str!("../assets/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/vendor/uPlot.min.css");
/// The OpenAPI 3 description of `/api/v1`.
const OPENAPI: &str = include_str!("../assets/openapi.json");
/// Largest ingest body any source may accept; each source has its own
/// `max_body_bytes` below it.
const MAX_INGEST_BODY: usize = 256 << 20;
/// Most events `recent` returns.
const MAX_RECENT: usize = 1000;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/assets/uPlot.iife.min.js", get(uplot_js))
        .route("/assets/uPlot.min.css", get(uplot_css))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/pipeline", get(pipeline))
        .route("/api/v1/nodes/{node}/recent", get(recent))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/history", get(crate::alerting::history))
        .route(
            "/api/v1/alerts/{fingerprint}/ack",
            post(crate::alerting::acknowledge),
        )
        .route(
            "/api/v1/alerts/{fingerprint}/resolve",
            post(crate::alerting::resolve),
        )
        .route(
            "/api/v1/silences",
            get(crate::alerting::silences).post(crate::alerting::create_silence),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(crate::alerting::expire_silence),
        )
        .route(
            "/api/v1/ingest/{source}",
            post(ingest).layer(DefaultBodyLimit::max(MAX_INGEST_BODY)),
        )
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/ws", get(ws::upgrade))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            crate::auth::guard,
        ))
        .layer(axum::middleware::from_fn(traced))
        .with_state(shared)
}

/// One `http.request` span per request, refused ones included (exported
/// when spans are, see the CLI's `--otlp-endpoint`); named by route, not
/// path, so ids in paths do not multiply the span names.
async fn traced(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("", |p| p.as_str())
        .to_string();
    let span = tracing::info_span!(
        "http.request",
        http.request.method = %request.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    response
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn uplot_js() -> Response {
    asset("text/javascript; charset=utf-8", UPLOT_JS)
}

async fn uplot_css() -> Response {
    asset("text/css; charset=utf-8", UPLOT_CSS)
}

/// An embedded file; it changes only with the binary.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let problems = s.status.problems();
    if problems.is_empty() {
        Json(json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "problems": problems })),
        )
            .into_response()
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let text = prometheus::render(&s.status, &s.hub);
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response()
}

async fn pipeline(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(s.status.snapshot(s.hub.connections()))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// An error answer: `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such path; see /api/v1/openapi.json",
    )
}

/// `GET /api/v1/nodes/{node}/recent?output=main&limit=100&filter=CEL`.
async fn recent(
    State(s): State<Arc<Shared>>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(node): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if caller.is_some_and(|c| !c.may_read(&format!("node:{node}"))) {
        return error(
            StatusCode::FORBIDDEN,
            format!("this key may not read node `{node}`"),
        );
    }
    let Some(info) = s.status.nodes().iter().find(|n| n.name == node) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no node `{node}` in the pipeline"),
        );
    };
    let output = q.get("output").map_or("main", String::as_str);
    let outputs = s
        .status
        .metrics()
        .node(&info.name)
        .map(|m| m.outputs.clone());
    if outputs.is_some_and(|o| o.get(output).is_none()) {
        return error(
            StatusCode::NOT_FOUND,
            format!("node `{node}` has no output `{output}`"),
        );
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_RECENT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`limit` must be a whole number from 1 to {MAX_RECENT}"),
            )
        }
    };
    let filter = match q.get("filter").map(|f| Expression::compile(f)) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            return error(StatusCode::BAD_REQUEST, format!("`filter`: {e}"));
        }
    };
    let events = s
        .hub
        .recent(&node_channel(&node, output), limit, filter.as_ref());
    let mut body = Vec::with_capacity(64 + events.len() * 64);
    body.extend_from_slice(b"{\"node\":");
    eddy_core::json::write_str(&mut body, &node);
    body.extend_from_slice(b",\"output\":");
    eddy_core::json::write_str(&mut body, output);
    body.extend_from_slice(b",\"events\":");
    ws::write_events(&mut body, events.iter());
    body.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /api/v1/alerts?status=firing|pending&filter=CEL`: the open alerts,
/// the latest event of each, by fingerprint; one a `notify` node leaves
/// out of notifications now has `suppressed_by` (`silence N`, `inhibited
/// by FINGERPRINT`).
async fn alerts(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let status = match q.get("status").map(String::as_str) {
        None => None,
        Some(st @ ("firing" | "pending")) => Some(st.to_string()),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`status` is `firing` or `pending`, not `{other}`"),
            )
        }
    };
    let filter = match q.get("filter").map(|f| Expression::compile(f)) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("`filter`: {e}")),
    };
    let key = eddy_core::sym!("status");
    let open = s.hub.active_alerts();
    let suppressed = |e: &eddy_core::Event| {
        let fp = e.get(eddy_core::sym!("fingerprint"))?.as_str()?;
        s.status
            .alert_controls()
            .iter()
            .find_map(|(_, c)| c.suppressed_by(fp))
    };
    let shown: Vec<eddy_core::Event> = open
        .iter()
        .filter(|e| {
            status
                .as_deref()
                .is_none_or(|st| e.get(key).and_then(eddy_core::Value::as_str) == Some(st))
                && crate::hub::accepts(filter.as_ref(), e)
        })
        .map(|e| match suppressed(e) {
            Some(by) => {
                let mut e = e.clone();
                e.fields
                    .insert(eddy_core::sym!("suppressed_by"), eddy_core::Value::str(&by));
                e
            }
            None => e.clone(),
        })
        .collect();
    let shown = shown.iter();
    let mut body = Vec::with_capacity(64 + open.len() * 256);
    body.extend_from_slice(b"{\"alerts\":");
    ws::write_events(&mut body, shown);
    body.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /api/v1/ingest/{source}`: NDJSON or a JSON array into an `http`
/// source. `202` once the body is queued for the pipeline, with the lines
/// refused (they went to the source's dead letters); `429` or `503` with
/// `Retry-After` when the pipeline cannot take it now, and nothing of it
/// was accepted.
async fn ingest(State(s): State<Arc<Shared>>, Path(source): Path<String>, body: Bytes) -> Response {
    let Some(queue) = s.status.ingest(&source) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no `http` source `{source}` in the pipeline"),
        );
    };
    match queue.offer(&body) {
        Ok(done) => {
            let rejected: Vec<serde_json::Value> = done
                .rejected
                .iter()
                .map(|(line, reason)| json!({ "line": line, "reason": reason }))
                .collect();
            (
                StatusCode::ACCEPTED,
                Json(json!({ "accepted": done.accepted, "rejected": rejected })),
            )
                .into_response()
        }
        Err(e) => {
            let (status, retry) = match e {
                IngestRefused::Busy => (StatusCode::TOO_MANY_REQUESTS, Some("1")),
                IngestRefused::Closed => (StatusCode::SERVICE_UNAVAILABLE, Some("5")),
                IngestRefused::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, None),
                IngestRefused::Malformed(_) => (StatusCode::BAD_REQUEST, None),
            };
            let mut response = error(status, e.to_string());
            if let Some(after) = retry {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static(after));
            }
            response
        }
    }
}
