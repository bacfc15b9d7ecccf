//! The alerting API: acknowledgements and silences, written to the
//! controls of the run's `notify` nodes, and resolutions by hand, written
//! to the control of the alert's rule.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /api/v1/alerts/{fingerprint}/ack` | acknowledge (`{"by", "comment"}`) |
//! | `POST /api/v1/alerts/{fingerprint}/resolve` | resolve by hand (`{"by", "comment"}`), through the rule's control |
//! | `GET /api/v1/alerts/history?fingerprint=&alertname=&limit=` | transitions and acknowledgements, newest first |
//! | `GET /api/v1/silences` | the silences, each with its `state` |
//! | `POST /api/v1/silences` | `{"matchers", "duration" or "ends_at", "starts_at", "created_by", "comment"}` |
//! | `DELETE /api/v1/silences/{id}` | end a silence now |

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use eddy_alerts::notify::{Ack, AlertControl};
use eddy_alerts::rule::Resolution;
use eddy_core::time::{now_ms, parse_duration, parse_rfc3339};
use serde::Deserialize;
use serde_json::json;

use crate::api::error;
use crate::Shared;

/// The controls, unless the pipeline has none.
fn controls(s: &Shared) -> Option<&[(String, Arc<AlertControl>)]> {
    let controls = s.status.alert_controls();
    (!controls.is_empty()).then_some(controls)
}

/// The answer when the pipeline has no `notify` node.
fn no_routing() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this pipeline routes no alerts: add an [alerts.NAME] with type = \"notify\"",
    )
}

/// The body of an acknowledgement.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// The open alert with `fingerprint`.
fn open_alert(s: &Shared, fingerprint: &str) -> Option<eddy_core::Event> {
    s.hub.active_alerts().into_iter().find(|e| {
        e.get(eddy_core::sym!("fingerprint"))
            .and_then(eddy_core::Value::as_str)
            == Some(fingerprint)
    })
}

/// The answer when no open alert has `fingerprint`.
fn not_open(fingerprint: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no open alert has fingerprint `{fingerprint}`; GET /api/v1/alerts lists them"),
    )
}

/// `POST /api/v1/alerts/{fingerprint}/resolve`: `202` once the alert's
/// rule was asked to resolve it (it does so at its next look, and the
/// transition shows in the history with who did it).
pub(crate) async fn resolve(
    State(s): State<Arc<Shared>>,
    Path(fingerprint): Path<String>,
    body: Option<Json<AckBody>>,
) -> Response {
    let Json(body) = body.unwrap_or_default();
    let Some(open) = open_alert(&s, &fingerprint) else {
        return not_open(&fingerprint);
    };
    let rule = open
        .get(eddy_core::sym!("alertname"))
        .and_then(eddy_core::Value::as_str)
        .unwrap_or_default();
    let Some(control) = s.status.rule_control(rule) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("alert rule `{rule}` is not part of this run"),
        );
    };
    control.resolve(Resolution {
        fingerprint: fingerprint.clone(),
        by: body.by.unwrap_or_else(|| "api".into()),
        comment: body.comment.unwrap_or_default(),
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({ "fingerprint": fingerprint, "resolving": true })),
    )
        .into_response()
}

/// `POST /api/v1/alerts/{fingerprint}/ack`: the alert stops escalating and
/// repeating until it resolves.
pub(crate) async fn acknowledge(
    State(s): State<Arc<Shared>>,
    Path(fingerprint): Path<String>,
    body: Option<Json<AckBody>>,
) -> Response {
    let Some(controls) = controls(&s) else {
        return no_routing();
    };
    let Json(body) = body.unwrap_or_default();
    let Some(open) = open_alert(&s, &fingerprint) else {
        return not_open(&fingerprint);
    };
    let ack = Ack {
        by: body.by.unwrap_or_else(|| "api".into()),
        at: now_ms(),
        comment: body.comment.unwrap_or_default(),
    };
    for (_, control) in controls {
        control.acknowledge(&fingerprint, ack.clone());
    }
    let alertname = open
        .get(eddy_core::sym!("alertname"))
        .and_then(eddy_core::Value::as_str);
    s.hub.record(json!({
        "fingerprint": fingerprint,
        "alertname": alertname,
        "status": "acknowledged",
        "by": ack.by,
        "comment": ack.comment,
        "at": eddy_core::time::format_rfc3339(ack.at),
    }));
    Json(json!({ "fingerprint": fingerprint, "acknowledged": ack })).into_response()
}

/// `GET /api/v1/alerts/history`: what happened to alerts, newest first.
pub(crate) async fn history(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) => n.min(crate::hub::ALERT_HISTORY),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "`limit` is a number"),
    };
    let entries = s.hub.alert_history(
        q.get("fingerprint").map(String::as_str),
        q.get("alertname").map(String::as_str),
        limit,
    );
    Json(json!({ "history": entries })).into_response()
}

/// `GET /api/v1/silences`: every node's silences, newest first, each with
/// `state` (`active`, `pending` or `expired`).
pub(crate) async fn silences(State(s): State<Arc<Shared>>) -> Response {
    let Some(controls) = controls(&s) else {
        return no_routing();
    };
    let now = now_ms();
    let mut list = Vec::new();
    for (node, control) in controls {
        for silence in control.snapshot().1.silences.iter().rev() {
            let state = if now < silence.starts_at {
                "pending"
            } else if now < silence.ends_at {
                "active"
            } else {
                "expired"
            };
            let mut v = json!(silence);
            v["node"] = json!(node);
            v["state"] = json!(state);
            list.push(v);
        }
    }
    Json(json!({ "silences": list })).into_response()
}

/// The body of a new silence.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SilenceBody {
    matchers: Vec<String>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /api/v1/silences`: `201` with the new silence's `id`.
pub(crate) async fn create_silence(
    State(s): State<Arc<Shared>>,
    Json(body): Json<SilenceBody>,
) -> Response {
    let Some(controls) = controls(&s) else {
        return no_routing();
    };
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let starts_at = match &body.starts_at {
        Some(t) => match parse_rfc3339(t) {
            Some(t) => t,
            None => return bad(format!("`starts_at` `{t}` is not an RFC 3339 time")),
        },
        None => now_ms(),
    };
    let ends_at = match (&body.duration, &body.ends_at) {
        (Some(d), None) => match parse_duration(d) {
            Ok(ms) => starts_at.saturating_add(ms),
            Err(e) => return bad(format!("`duration`: {e}")),
        },
        (None, Some(t)) => match parse_rfc3339(t) {
            Some(t) => t,
            None => return bad(format!("`ends_at` `{t}` is not an RFC 3339 time")),
        },
        _ => return bad("give either `duration` (\"2h\") or `ends_at`".into()),
    };
    let mut ids = Vec::new();
    for (_, control) in controls {
        match control.silence(
            body.matchers.clone(),
            starts_at,
            ends_at,
            body.created_by.clone().unwrap_or_else(|| "api".into()),
            body.comment.clone().unwrap_or_default(),
        ) {
            Ok(id) => ids.push(id),
            Err(e) => return bad(e),
        }
    }
    (
        StatusCode::CREATED,
        Json(json!({ "id": ids[0], "starts_at": starts_at, "ends_at": ends_at })),
    )
        .into_response()
}

/// `DELETE /api/v1/silences/{id}`: ends it now.
pub(crate) async fn expire_silence(State(s): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    let Some(controls) = controls(&s) else {
        return no_routing();
    };
    let now = now_ms();
    let mut ended = false;
    for (_, control) in controls {
        ended |= control.expire(id, now);
    }
    if ended {
        Json(json!({ "id": id, "expired": true })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no active or pending silence {id}"),
        )
    }
}
