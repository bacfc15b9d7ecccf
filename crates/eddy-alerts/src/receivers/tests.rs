//! Receivers against a local HTTP receiver: each type's payload, the
//! signature, retries of 5xx and none of 4xx.

use std::sync::Arc;

use eddy_core::component::{BuildContext, SinkFactory};
use eddy_core::{Event, Fields, Sink, Sym, Value};
use eddy_testkit::http::HttpReceiver;
use serde_json::Value as Json;

use super::{Format, PagerDuty, ReceiverConfig, Slack, Teams, Webhook};

fn notification(status: &str, alerts: &[(&str, &str, &str)]) -> Event {
    let list: Vec<Value> = alerts
        .iter()
        .map(|(name, st, severity)| {
            let mut labels = Fields::default();
            labels.push(Sym::intern("alertname"), Value::str(name));
            labels.push(Sym::intern("severity"), Value::str(severity));
            let mut ann = Fields::default();
            ann.push(Sym::intern("summary"), Value::str(&format!("{name} is up")));
            let mut a = Fields::default();
            a.push(Sym::intern("status"), Value::str(st));
            if *st == "acknowledged" {
                a.push(Sym::intern("acknowledgedBy"), Value::str("ann"));
                a.push(Sym::intern("comment"), Value::str("on it"));
            }
            a.push(Sym::intern("labels"), Value::Map(Arc::new(labels)));
            a.push(Sym::intern("annotations"), Value::Map(Arc::new(ann)));
            a.push(
                Sym::intern("fingerprint"),
                Value::str(&format!("fp-{name}")),
            );
            Value::Map(Arc::new(a))
        })
        .collect();
    let mut group = Fields::default();
    group.push(Sym::intern("dept"), Value::str("ops"));
    let mut f = Fields::default();
    f.push(Sym::intern("receiver"), Value::str("r"));
    f.push(Sym::intern("status"), Value::str(status));
    f.push(Sym::intern("alerts"), Value::List(Arc::new(list)));
    f.push(Sym::intern("groupLabels"), Value::Map(Arc::new(group)));
    f.push(Sym::intern("groupKey"), Value::str("0:{dept=\"ops\"}"));
    Event::new(0, f)
}

fn receiver<F: Format + 'static>(hook: &HttpReceiver, extra: &str) -> Box<dyn Sink> {
    let cfg: ReceiverConfig<F> = toml::from_str(&format!(
        "url = \"{}\"\nretry = {{ attempts = 3, initial_backoff = \"1ms\", max_backoff = \"2ms\" }}\n{extra}",
        hook.url()
    ))
    .unwrap();
    assert!(cfg.validate(&Default::default()).is_empty());
    cfg.build(&BuildContext::single("r")).unwrap()
}

fn bodies(hook: &HttpReceiver) -> Vec<Json> {
    hook.requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[test]
fn webhook_posts_the_notification_signed() {
    let hook = HttpReceiver::start();
    let mut r = receiver::<Webhook>(&hook, "hmac = { secret = \"s3cret\" }");
    let n = notification("firing", &[("cpu", "firing", "high")]);
    r.write(&[n]).unwrap();
    r.flush().unwrap();
    let got = hook.requests();
    assert_eq!(got.len(), 1);
    let body: Json = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "cpu");
    let want = format!(
        "sha256={}",
        eddy_connectors::sinks::http::sign(b"s3cret", &got[0].body)
    );
    assert_eq!(got[0].header("x-eddy-signature"), Some(want.as_str()));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
}

#[test]
fn slack_teams_and_pagerduty_shapes() {
    let hook = HttpReceiver::start();
    let firing = notification(
        "firing",
        &[("cpu", "firing", "high"), ("disk", "resolved", "critical")],
    );
    let mut slack = receiver::<Slack>(&hook, "");
    slack.write(std::slice::from_ref(&firing)).unwrap();
    slack.flush().unwrap();
    let mut teams = receiver::<Teams>(&hook, "");
    teams.write(std::slice::from_ref(&firing)).unwrap();
    teams.flush().unwrap();
    let mut pd = receiver::<PagerDuty>(&hook, "routing_key = \"k123\"");
    pd.write(&[firing]).unwrap();
    pd.flush().unwrap();
    let got = bodies(&hook);
    assert_eq!(got.len(), 4, "{got:?}");
    // Slack: title, colour of the most urgent firing alert (high), lines.
    assert_eq!(got[0]["text"], "[FIRING:1] ops");
    assert_eq!(got[0]["attachments"][0]["color"], "#e8590c");
    let lines = got[0]["attachments"][0]["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap();
    assert!(lines.contains("• FIRING cpu: cpu is up"), "{lines}");
    assert!(lines.contains("• RESOLVED disk: disk is up"), "{lines}");
    // Teams: a MessageCard.
    assert_eq!(got[1]["@type"], "MessageCard");
    assert_eq!(got[1]["themeColor"], "e8590c");
    // PagerDuty: one event per alert, deduplicated by fingerprint.
    assert_eq!(got[2]["event_action"], "trigger");
    assert_eq!(got[2]["routing_key"], "k123");
    assert_eq!(got[2]["dedup_key"], "eddy-fp-cpu");
    assert_eq!(got[2]["payload"]["severity"], "error");
    assert_eq!(got[3]["event_action"], "resolve");
    assert_eq!(got[3]["dedup_key"], "eddy-fp-disk");
}

/// An acknowledgement acknowledges the PagerDuty incident and tells a
/// chat channel who took it on, in grey.
#[test]
fn acknowledgements_reach_pagerduty_and_chat() {
    let hook = HttpReceiver::start();
    let acked = notification("acknowledged", &[("cpu", "acknowledged", "high")]);
    let mut pd = receiver::<PagerDuty>(&hook, "routing_key = \"k123\"");
    pd.write(std::slice::from_ref(&acked)).unwrap();
    pd.flush().unwrap();
    let mut slack = receiver::<Slack>(&hook, "");
    slack.write(&[acked]).unwrap();
    slack.flush().unwrap();
    let got = bodies(&hook);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["event_action"], "acknowledge");
    assert_eq!(got[0]["dedup_key"], "eddy-fp-cpu");
    assert_eq!(got[1]["text"], "[ACKNOWLEDGED] ops");
    assert_eq!(got[1]["attachments"][0]["color"], "#8d8d8d");
    let lines = got[1]["attachments"][0]["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap();
    assert_eq!(lines, "• ACKNOWLEDGED cpu by ann (on it): cpu is up");
}

#[test]
fn five_hundreds_are_retried_four_hundreds_are_not() {
    let hook = HttpReceiver::start();
    let mut r = receiver::<Webhook>(&hook, "");
    hook.fail_next(1, 500);
    r.write(&[notification("firing", &[("cpu", "firing", "high")])])
        .unwrap();
    r.flush().unwrap();
    assert!(r.take_dead_letters().is_empty());
    assert_eq!(
        hook.requests().iter().map(|q| q.status).collect::<Vec<_>>(),
        [500, 200]
    );
    hook.fail_next(1, 400);
    r.write(&[notification("firing", &[("cpu", "firing", "high")])])
        .unwrap();
    r.flush().unwrap();
    let dead = r.take_dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(hook.requests().len(), 3, "no retry after 400");
    // Not a notification: dead-lettered without a request.
    r.write(&[Event::new(0, Fields::default())]).unwrap();
    r.flush().unwrap();
    assert_eq!(r.take_dead_letters().len(), 1);
    assert_eq!(hook.requests().len(), 3);
}

#[test]
fn settings_are_checked() {
    let problems = |text: &str| -> Vec<String> {
        let cfg: ReceiverConfig<PagerDuty> = toml::from_str(text).unwrap();
        cfg.validate(&Default::default())
            .into_iter()
            .map(|d| d.message)
            .collect()
    };
    assert!(problems("routing_key = \"k\"").is_empty(), "default url");
    assert!(problems("")[0].contains("routing_key"));
    let slack: ReceiverConfig<Slack> = toml::from_str("routing_key = \"k\"").unwrap();
    let p: Vec<String> = slack
        .validate(&Default::default())
        .into_iter()
        .map(|d| d.message)
        .collect();
    assert!(p.iter().any(|m| m.contains("needs a `url`")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("is for `pagerduty`")), "{p:?}");
    assert!(toml::from_str::<ReceiverConfig<Slack>>("urll = \"x\"").is_err());
}

/// An e-mail per notification through a real SMTP server: subject, both
/// bodies, sender and recipients.
#[test]
fn email_sends_a_text_and_html_message() {
    let Some(smtp) = eddy_testkit::smtp::Smtp::start() else {
        return;
    };
    let cfg: super::EmailConfig = toml::from_str(&format!(
        "smtp = \"{}\"\nsecurity = \"none\"\nfrom = \"Eddy <eddy@example.com>\"\nto = [\"oncall@example.com\", \"boss@example.com\"]",
        smtp.address()
    ))
    .unwrap();
    assert!(cfg.validate(&Default::default()).is_empty());
    let mut r = cfg.build(&BuildContext::single("mail")).unwrap();
    r.write(&[notification(
        "firing",
        &[("cpu", "firing", "high"), ("disk", "resolved", "low")],
    )])
    .unwrap();
    r.flush().unwrap();
    assert!(r.take_dead_letters().is_empty());
    let got = smtp.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(m.contains("Subject: [FIRING:1] ops"), "{m}");
    assert!(m.contains("From: Eddy <eddy@example.com>"), "{m}");
    assert!(
        m.contains("oncall@example.com") && m.contains("boss@example.com"),
        "{m}"
    );
    assert!(m.contains("Content-Type: text/plain"), "{m}");
    assert!(m.contains("Content-Type: text/html"), "{m}");
    assert!(m.contains("- FIRING cpu: cpu is up"), "{m}");
    assert!(m.contains("<b>RESOLVED</b>"), "{m}");
}

#[test]
fn email_settings_are_checked() {
    let problems = |text: &str| -> Vec<String> {
        let cfg: super::EmailConfig = toml::from_str(text).unwrap();
        cfg.validate(&Default::default())
            .into_iter()
            .map(|d| d.message)
            .collect()
    };
    let base = "smtp = \"127.0.0.1:25\"\nsecurity = \"none\"\nfrom = \"eddy@example.com\"";
    assert!(problems(&format!("{base}\nto = [\"a@example.com\"]")).is_empty());
    assert!(problems(&format!("{base}\nto = []"))[0].contains("`to`"));
    assert!(problems(&format!("{base}\nto = [\"not an address\"]"))[0].contains("bad address"));
    assert!(problems(&format!(
        "{base}\nto = [\"a@example.com\"]\nusername = \"u\""
    ))[0]
        .contains("go together"));
}

/// An SMS per recipient through a provider's HTTP API, the template filled
/// in percent-encoded for a form and JSON-escaped for JSON.
#[test]
fn sms_fills_its_template_per_recipient() {
    let hook = HttpReceiver::start();
    let n = notification("firing", &[("cpu \"hot\"", "firing", "high")]);
    let mut form = receiver::<super::Sms>(
        &hook,
        "to = [\"+15550001\", \"+15550002\"]\ncontent_type = \"application/x-www-form-urlencoded\"\nbody = \"To={to}&Body={text}\"",
    );
    form.write(std::slice::from_ref(&n)).unwrap();
    form.flush().unwrap();
    let mut json = receiver::<super::Sms>(
        &hook,
        "to = [\"+15550003\"]\nbody = '{\"to\": \"{to}\", \"text\": \"{text}\"}'",
    );
    json.write(&[n]).unwrap();
    json.flush().unwrap();
    let got = hook.requests();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        got[0].text(),
        "To=%2B15550001&Body=%5BFIRING%3A1%5D%20ops%3A%20FIRING%20cpu%20%22hot%22%3A%20cpu%20%22hot%22%20is%20up"
    );
    assert!(got[1].text().starts_with("To=%2B15550002&"));
    let body: Json = serde_json::from_slice(&got[2].body).unwrap();
    assert_eq!(body["to"], "+15550003");
    assert_eq!(
        body["text"],
        "[FIRING:1] ops: FIRING cpu \"hot\": cpu \"hot\" is up"
    );
    let missing: ReceiverConfig<super::Sms> = toml::from_str("url = \"http://x/\"").unwrap();
    assert!(missing.validate(&Default::default())[0]
        .message
        .contains("needs `to` and `body`"));
    let misplaced: ReceiverConfig<Slack> =
        toml::from_str("url = \"http://x/\"\nto = [\"+1\"]").unwrap();
    assert!(misplaced.validate(&Default::default())[0]
        .message
        .contains("are for `sms`"));
}
