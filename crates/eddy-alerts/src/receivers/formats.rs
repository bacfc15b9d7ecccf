//! What each receiver type posts for a notification.

use std::collections::BTreeMap;

use eddy_core::json::fields_to_json_string;
use eddy_core::{Event, Sym, Value};
use serde_json::json;

/// A receiver type: its name and the requests one notification becomes.
pub trait Format: Send + Sync + Sized {
    /// The `type` it is configured as.
    const NAME: &'static str;
    /// Where it posts when `url` is not set.
    const DEFAULT_URL: Option<&'static str> = None;
    /// Whether it takes (and needs) a `routing_key`.
    const NEEDS_ROUTING_KEY: bool = false;
    /// Whether it takes (and needs) `to` and a `body` template.
    const NEEDS_TEMPLATE: bool = false;
    /// The format for a receiver with these settings.
    fn new(settings: Settings) -> Result<Self, String>;
    /// The request bodies for `notification`; an error dead-letters it.
    fn bodies(&self, notification: &Event) -> Result<Vec<Vec<u8>>, String>;
}

/// What a format is made from: the receiver's settings, `${VAR}`
/// expanded.
#[derive(Debug, Default)]
pub struct Settings {
    /// PagerDuty's routing key.
    pub routing_key: Option<String>,
    /// SMS: the recipients.
    pub to: Vec<String>,
    /// SMS: the body template, with `{to}` and `{text}`.
    pub body: Option<String>,
    /// SMS: whether the body is a form (`{to}`/`{text}` percent-encoded)
    /// rather than JSON (JSON-escaped).
    pub form: bool,
}

/// Alertmanager's webhook payload (version 4), as `notify` builds it.
pub struct Webhook;

impl Format for Webhook {
    const NAME: &'static str = "webhook";

    fn new(_: Settings) -> Result<Self, String> {
        Ok(Webhook)
    }

    fn bodies(&self, notification: &Event) -> Result<Vec<Vec<u8>>, String> {
        View::of(notification)?;
        Ok(vec![
            fields_to_json_string(&notification.fields).into_bytes()
        ])
    }
}

/// A Slack incoming-webhook message: a title and one line per alert in an
/// attachment coloured by severity (green once resolved).
pub struct Slack;

impl Format for Slack {
    const NAME: &'static str = "slack";

    fn new(_: Settings) -> Result<Self, String> {
        Ok(Slack)
    }

    fn bodies(&self, notification: &Event) -> Result<Vec<Vec<u8>>, String> {
        let v = View::of(notification)?;
        let body = json!({
            "text": v.title(),
            "attachments": [{
                "color": v.colour(),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", v.title())}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": v.lines("• ").join("\n")}},
                ],
            }],
        });
        Ok(vec![body.to_string().into_bytes()])
    }
}

/// PagerDuty Events API v2: one event per alert, `trigger` while it fires,
/// `acknowledge` once someone took it on and `resolve` once resolved,
/// deduplicated by the alert's fingerprint.
pub struct PagerDuty {
    routing_key: String,
}

impl Format for PagerDuty {
    const NAME: &'static str = "pagerduty";
    const DEFAULT_URL: Option<&'static str> = Some("https://events.pagerduty.com/v2/enqueue");
    const NEEDS_ROUTING_KEY: bool = true;

    fn new(settings: Settings) -> Result<Self, String> {
        let routing_key = settings.routing_key.ok_or("needs a `routing_key`")?;
        Ok(PagerDuty { routing_key })
    }

    fn bodies(&self, notification: &Event) -> Result<Vec<Vec<u8>>, String> {
        let v = View::of(notification)?;
        let mut out = Vec::new();
        for a in &v.alerts {
            let dedup_key = format!("eddy-{}", a.fingerprint);
            let body = match a.status {
                Status::Firing => json!({
                    "routing_key": self.routing_key,
                    "event_action": "trigger",
                    "dedup_key": dedup_key,
                    "payload": {
                        "summary": truncate(&format!("{}: {}", a.name(), a.summary()), 1024),
                        "source": "eddy",
                        "severity": pagerduty_severity(a.severity()),
                        "custom_details": {
                            "labels": a.labels,
                            "annotations": a.annotations,
                            "group": v.group_key,
                        },
                    },
                }),
                Status::Acknowledged => json!({
                    "routing_key": self.routing_key,
                    "event_action": "acknowledge",
                    "dedup_key": dedup_key,
                }),
                Status::Resolved => json!({
                    "routing_key": self.routing_key,
                    "event_action": "resolve",
                    "dedup_key": dedup_key,
                }),
            };
            out.push(body.to_string().into_bytes());
        }
        Ok(out)
    }
}

/// A Microsoft Teams incoming-webhook MessageCard.
pub struct Teams;

impl Format for Teams {
    const NAME: &'static str = "teams";

    fn new(_: Settings) -> Result<Self, String> {
        Ok(Teams)
    }

    fn bodies(&self, notification: &Event) -> Result<Vec<Vec<u8>>, String> {
        let v = View::of(notification)?;
        let body = json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "themeColor": v.colour().trim_start_matches('#'),
            "summary": v.title(),
            "title": v.title(),
            "text": v.lines("- ").join("\n\n"),
        });
        Ok(vec![body.to_string().into_bytes()])
    }
}

/// A text message through an SMS provider's HTTP API: one request per
/// recipient, its body the `body` template with `{to}` and `{text}` (the
/// title and a line per alert, at most 320 characters) filled in.
pub struct Sms {
    to: Vec<String>,
    body: String,
    form: bool,
}

/// Longest SMS text sent (two segments).
const SMS_TEXT: usize = 320;

impl Format for Sms {
    const NAME: &'static str = "sms";
    const NEEDS_TEMPLATE: bool = true;

    fn new(settings: Settings) -> Result<Self, String> {
        let body = settings.body.ok_or("needs a `body` template")?;
        if settings.to.is_empty() {
            return Err("needs at least one number in `to`".into());
        }
        Ok(Sms {
            to: settings.to,
            body,
            form: settings.form,
        })
    }

    fn bodies(&self, notification: &Event) -> Result<Vec<Vec<u8>>, String> {
        let v = View::of(notification)?;
        let text = truncate(
            &format!("{}: {}", v.title(), v.lines("").join("; ")),
            SMS_TEXT,
        );
        let fill = |value: &str| {
            if self.form {
                percent_encode(value)
            } else {
                let quoted = serde_json::Value::String(value.to_string()).to_string();
                quoted[1..quoted.len() - 1].to_string()
            }
        };
        Ok(self
            .to
            .iter()
            .map(|to| {
                self.body
                    .replace("{to}", &fill(to))
                    .replace("{text}", &fill(&text))
                    .into_bytes()
            })
            .collect())
    }
}

/// `text` percent-encoded for a form body (unreserved characters kept).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// PagerDuty's four severities.
fn pagerduty_severity(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "high" => "error",
        "medium" => "warning",
        _ => "info",
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// Severities from most to least urgent.
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// Where a notification (or one alert in it) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// The alert fires (for a notification: at least one does).
    Firing,
    /// Someone took the alert on (a notification of its own, sent to the
    /// receivers that heard it fire).
    Acknowledged,
    /// The alert stopped (for a notification: every one did).
    Resolved,
}

impl Status {
    fn of(text: &str) -> Status {
        match text {
            "firing" => Status::Firing,
            "acknowledged" => Status::Acknowledged,
            _ => Status::Resolved,
        }
    }

    /// `FIRING`, `ACKNOWLEDGED` or `RESOLVED`.
    pub(super) fn shout(self) -> &'static str {
        match self {
            Status::Firing => "FIRING",
            Status::Acknowledged => "ACKNOWLEDGED",
            Status::Resolved => "RESOLVED",
        }
    }
}

/// A notification read back from its event.
pub(super) struct View {
    status: Status,
    group_key: String,
    group_labels: BTreeMap<String, String>,
    pub(super) alerts: Vec<AlertView>,
}

pub(super) struct AlertView {
    pub(super) status: Status,
    fingerprint: String,
    /// Who acknowledged it, and why (acknowledgements only).
    acknowledged: Option<(String, String)>,
    pub(super) labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Map(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

impl View {
    pub(super) fn of(e: &Event) -> Result<View, String> {
        let text = |name: &str| e.get(Sym::intern(name)).and_then(Value::as_str);
        let status = text("status").ok_or("not a notification: no `status`")?;
        let Some(Value::List(list)) = e.get(Sym::intern("alerts")) else {
            return Err("not a notification: no `alerts` list".into());
        };
        let mut alerts = Vec::with_capacity(list.len());
        for a in list.iter() {
            let Value::Map(a) = a else {
                return Err("not a notification: an alert is not a map".into());
            };
            let text = |name: &str| {
                a.get(Sym::intern(name))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let by = text("acknowledgedBy");
            alerts.push(AlertView {
                status: Status::of(&text("status")),
                fingerprint: text("fingerprint"),
                acknowledged: (!by.is_empty()).then(|| (by, text("comment"))),
                labels: string_map(a.get(Sym::intern("labels"))),
                annotations: string_map(a.get(Sym::intern("annotations"))),
            });
        }
        Ok(View {
            status: Status::of(status),
            group_key: text("groupKey").unwrap_or_default().to_string(),
            group_labels: string_map(e.get(Sym::intern("groupLabels"))),
            alerts,
        })
    }

    /// `[FIRING:2] ops budget`: status, firing count, group label values
    /// (or the alert name when the group has no labels).
    pub(super) fn title(&self) -> String {
        let status = match self.status {
            Status::Firing => {
                let n = self.alerts.iter().filter(|a| a.firing()).count();
                format!("FIRING:{n}")
            }
            other => other.shout().to_string(),
        };
        let names: Vec<&str> = if self.group_labels.is_empty() {
            let mut names: Vec<&str> = self.alerts.iter().map(|a| a.name()).collect();
            names.dedup();
            names
        } else {
            self.group_labels.values().map(String::as_str).collect()
        };
        format!("[{status}] {}", names.join(" "))
    }

    /// The most urgent severity among the alerts that count (the firing
    /// ones, or all once resolved).
    fn severity(&self) -> &'static str {
        let firing = self.status == Status::Firing;
        let counted = self.alerts.iter().filter(|a| a.firing() || !firing);
        counted
            .filter_map(|a| SEVERITIES.iter().position(|s| *s == a.severity()))
            .min()
            .map_or("info", |i| SEVERITIES[i])
    }

    /// Red to blue by severity while firing, grey once acknowledged,
    /// green once resolved.
    pub(super) fn colour(&self) -> &'static str {
        match self.status {
            Status::Resolved => return "#2eb886",
            Status::Acknowledged => return "#8d8d8d",
            Status::Firing => {}
        }
        match self.severity() {
            "critical" => "#d00000",
            "high" => "#e8590c",
            "medium" => "#f2c744",
            _ => "#439fe0",
        }
    }

    /// One line per alert: `• FIRING budget_critical: summary`, or
    /// `• ACKNOWLEDGED budget_critical by ana (on it): summary`.
    pub(super) fn lines(&self, bullet: &str) -> Vec<String> {
        self.alerts
            .iter()
            .map(|a| {
                format!(
                    "{bullet}{} {}{}: {}",
                    a.status.shout(),
                    a.name(),
                    a.by(),
                    a.summary()
                )
            })
            .collect()
    }
}

impl AlertView {
    pub(super) fn firing(&self) -> bool {
        self.status == Status::Firing
    }

    /// ` by ana (on it)` for an acknowledgement, else nothing.
    pub(super) fn by(&self) -> String {
        match &self.acknowledged {
            Some((by, comment)) if comment.is_empty() => format!(" by {by}"),
            Some((by, comment)) => format!(" by {by} ({comment})"),
            None => String::new(),
        }
    }

    pub(super) fn name(&self) -> &str {
        self.labels.get("alertname").map_or("alert", String::as_str)
    }

    fn severity(&self) -> &str {
        self.labels.get("severity").map_or("info", String::as_str)
    }

    /// The `summary` annotation, else `description`, else the labels.
    pub(super) fn summary(&self) -> String {
        match self
            .annotations
            .get("summary")
            .or_else(|| self.annotations.get("description"))
        {
            Some(s) => s.clone(),
            None => self
                .labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}
