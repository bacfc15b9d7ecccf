//! Aggregation groups: the alerts one route gathered under one set of
//! group labels, and when they are worth a notification (Alertmanager's
//! semantics).
//!
//! A new group waits `group_wait` for company, then notifies. From then
//! on it is looked at every `group_interval` and notifies when what it
//! would say changed (an alert started firing or resolved) or, still
//! firing, when `repeat_interval` passed since it last spoke. A resolved
//! alert is reported once and then forgotten; one that resolved before
//! the group ever reported it firing is dropped silently. A group with no
//! alerts left is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use eddy_core::{Event, Fields, Sym, Value};

/// One group's state, checkpointed with the operator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// The route that formed it.
    pub route: u32,
    /// Its group labels.
    pub labels: Vec<(String, String)>,
    /// The latest alert event of each alert, by fingerprint.
    pub alerts: BTreeMap<String, Event>,
    /// What the last notification said: fingerprint → firing.
    pub notified: BTreeMap<String, bool>,
    /// When the last notification went out (processing time, ms).
    pub last_sent: Option<i64>,
    /// When the notifications of the current limit window went out.
    pub recent: Vec<i64>,
}

/// Whether an alert event says firing (`false`: resolved).
pub fn is_firing(event: &Event) -> bool {
    event.get(eddy_core::sym!("status")).and_then(Value::as_str) == Some("firing")
}

/// Whether an alert event tells of an acknowledgement.
fn is_acknowledged(event: &Event) -> bool {
    event.get(eddy_core::sym!("status")).and_then(Value::as_str) == Some("acknowledged")
}

impl Group {
    /// The key a group is known by: its route and group labels.
    pub fn key(route: u32, labels: &[(String, String)]) -> String {
        let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{route}:{{{}}}", pairs.join(","))
    }

    /// Takes in the latest event of alert `fingerprint`.
    pub fn admit(&mut self, fingerprint: &str, event: Event) {
        self.alerts.insert(fingerprint.to_string(), event);
    }

    /// The alerts to notify about at `now`, if a notification is due:
    /// the group changed since it last spoke, or it is still firing and
    /// `repeat_interval` ms passed (acknowledged alerts are not repeated
    /// for). Firing alerts `muted` says are inhibited or silenced count as
    /// absent (they stay in the group). Records the notification as sent
    /// and forgets the resolved alerts it reports.
    pub fn flush(
        &mut self,
        now: i64,
        repeat_interval: i64,
        muted: impl Fn(&Event) -> bool,
        acked: impl Fn(&Event) -> bool,
    ) -> Option<Vec<Event>> {
        // Resolved before anyone heard of them firing: nothing to say.
        let notified = &self.notified;
        self.alerts
            .retain(|fp, e| is_firing(e) || notified.get(fp) == Some(&true));
        let visible: Vec<(&String, &Event)> = self
            .alerts
            .iter()
            .filter(|(_, e)| !(is_firing(e) && muted(e)))
            .collect();
        let current: BTreeMap<String, bool> = visible
            .iter()
            .map(|(fp, e)| ((*fp).clone(), is_firing(e)))
            .collect();
        if current.is_empty() {
            self.notified.clear();
            return None;
        }
        let unacked_firing = visible.iter().any(|(_, e)| is_firing(e) && !acked(e));
        let repeat = unacked_firing && self.last_sent.is_some_and(|t| now - t >= repeat_interval);
        if current == self.notified && !repeat {
            return None;
        }
        let alerts: Vec<Event> = visible.into_iter().map(|(_, e)| e.clone()).collect();
        self.alerts
            .retain(|fp, e| is_firing(e) || !current.contains_key(fp));
        self.notified = current.into_iter().filter(|(_, f)| *f).collect();
        self.last_sent = Some(now);
        self.recent.push(now);
        Some(alerts)
    }

    /// [`Group::flush`] with nothing muted.
    #[cfg(test)]
    pub fn flush_all(&mut self, now: i64, repeat_interval: i64) -> Option<Vec<Event>> {
        self.flush(now, repeat_interval, |_| false, |_| false)
    }

    /// Whether a `(count, per)` limit lets the group speak at `now`;
    /// forgets notifications older than the window.
    pub fn may_speak(&mut self, now: i64, limit: Option<(u32, i64)>) -> bool {
        let Some((count, per)) = limit else {
            return true;
        };
        self.recent.retain(|&t| now - t < per);
        self.recent.len() < count as usize
    }

    /// Whether no alert is left.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// The notification for `alerts` of this group (keyed `key`) to
    /// `receiver`, shaped like Alertmanager's webhook payload (version 4).
    /// An acknowledgement is one too, with status `acknowledged` and the
    /// alert's `acknowledgedBy` and `comment`.
    pub fn notification(&self, receiver: &str, key: &str, alerts: &[Event]) -> Event {
        let field =
            |e: &Event, name: &str| e.get(Sym::intern(name)).cloned().unwrap_or(Value::Null);
        let status = if alerts.iter().any(is_firing) {
            "firing"
        } else if alerts.iter().any(is_acknowledged) {
            "acknowledged"
        } else {
            "resolved"
        };
        let list: Vec<Value> = alerts
            .iter()
            .map(|e| {
                let mut f = Fields::with_capacity(7);
                f.push(Sym::intern("status"), field(e, "status"));
                f.push(Sym::intern("labels"), field(e, "labels"));
                f.push(Sym::intern("annotations"), field(e, "annotations"));
                f.push(Sym::intern("startsAt"), field(e, "starts_at"));
                f.push(
                    Sym::intern("endsAt"),
                    match field(e, "ends_at") {
                        Value::Null => Value::str("0001-01-01T00:00:00Z"),
                        v => v,
                    },
                );
                f.push(Sym::intern("generatorURL"), Value::str(""));
                f.push(Sym::intern("fingerprint"), field(e, "fingerprint"));
                if let Some(by) = e.get(eddy_core::sym!("acknowledged_by")) {
                    f.push(Sym::intern("acknowledgedBy"), by.clone());
                    f.push(Sym::intern("comment"), field(e, "comment"));
                }
                Value::Map(Arc::new(f))
            })
            .collect();
        let map = |pairs: &[(String, String)]| {
            let mut f = Fields::with_capacity(pairs.len());
            for (k, v) in pairs {
                f.push(Sym::intern(k), Value::str(v));
            }
            Value::Map(Arc::new(f))
        };
        let mut f = Fields::with_capacity(11);
        f.push(Sym::intern("receiver"), Value::str(receiver));
        f.push(Sym::intern("status"), Value::str(status));
        f.push(Sym::intern("alerts"), Value::List(Arc::new(list)));
        f.push(Sym::intern("groupLabels"), map(&self.labels));
        f.push(Sym::intern("commonLabels"), map(&common(alerts, "labels")));
        f.push(
            Sym::intern("commonAnnotations"),
            map(&common(alerts, "annotations")),
        );
        f.push(Sym::intern("externalURL"), Value::str(""));
        f.push(Sym::intern("version"), Value::str("4"));
        f.push(Sym::intern("groupKey"), Value::str(key));
        f.push(Sym::intern("truncatedAlerts"), Value::Int(0));
        let time = alerts.iter().map(|e| e.time).max().unwrap_or_default();
        Event::new(time, f)
    }
}

/// The (name, value) pairs of map field `field` that every alert shares.
fn common(alerts: &[Event], field: &str) -> Vec<(String, String)> {
    let pairs = |e: &Event| -> BTreeMap<String, String> {
        match e.get(Sym::intern(field)) {
            Some(Value::Map(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.as_str()?.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let mut iter = alerts.iter();
    let Some(first) = iter.next() else {
        return Vec::new();
    };
    let mut shared = pairs(first);
    for e in iter {
        let other = pairs(e);
        shared.retain(|k, v| other.get(k) == Some(v));
    }
    shared.into_iter().collect()
}

impl Encode for Group {
    fn encode(&self, enc: &mut Encoder) {
        enc.put(&u64::from(self.route));
        enc.put(&self.labels);
        let alerts: Vec<(String, Event)> = self
            .alerts
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        enc.put(&alerts);
        let notified: Vec<(String, bool)> =
            self.notified.iter().map(|(k, v)| (k.clone(), *v)).collect();
        enc.put(&notified);
        enc.put(&self.last_sent);
        enc.put(&self.recent);
    }
}

impl Decode for Group {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let route: u64 = dec.get()?;
        Ok(Group {
            route: u32::try_from(route).map_err(|_| DecodeError::OutOfRange("route"))?,
            labels: dec.get()?,
            alerts: dec.get::<Vec<(String, Event)>>()?.into_iter().collect(),
            notified: dec.get::<Vec<(String, bool)>>()?.into_iter().collect(),
            last_sent: dec.get()?,
            recent: dec.get()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn alert(fp: &str, status: &str, t: i64, labels: &[(&str, &str)]) -> Event {
        let mut l = Fields::default();
        for (k, v) in labels {
            l.push(Sym::intern(k), Value::str(v));
        }
        let mut f = Fields::default();
        f.push(Sym::intern("status"), Value::str(status));
        f.push(Sym::intern("fingerprint"), Value::str(fp));
        f.push(Sym::intern("labels"), Value::Map(Arc::new(l)));
        f.push(Sym::intern("annotations"), Value::Map(Arc::default()));
        f.push(Sym::intern("starts_at"), Value::str("2026-01-01T00:00:00Z"));
        Event::new(t, f)
    }

    #[test]
    fn notifies_on_change_and_on_repeat_only() {
        let mut g = Group::default();
        g.admit("a", alert("a", "firing", 1, &[("x", "1")]));
        g.admit("b", alert("b", "firing", 2, &[("x", "1"), ("y", "2")]));
        assert_eq!(g.flush_all(0, 100).map(|a| a.len()), Some(2));
        assert_eq!(g.flush_all(10, 100), None, "unchanged");
        g.admit("a", alert("a", "firing", 3, &[("x", "1")]));
        assert_eq!(g.flush_all(20, 100), None, "same status is no change");
        assert_eq!(g.flush_all(100, 100).map(|a| a.len()), Some(2), "repeat");
        g.admit("b", alert("b", "resolved", 4, &[("x", "1"), ("y", "2")]));
        let sent = g.flush_all(110, 100).unwrap();
        assert_eq!(sent.iter().filter(|e| !is_firing(e)).count(), 1);
        assert_eq!(g.alerts.len(), 1, "the resolved alert is forgotten");
        g.admit("a", alert("a", "resolved", 5, &[("x", "1")]));
        assert_eq!(g.flush_all(120, 100).map(|a| a.len()), Some(1));
        assert!(g.is_empty());
        assert_eq!(
            g.flush_all(500, 100),
            None,
            "nothing left, nothing repeated"
        );
    }

    #[test]
    fn an_alert_resolved_before_it_was_reported_is_dropped() {
        let mut g = Group::default();
        g.admit("a", alert("a", "firing", 1, &[]));
        g.admit("a", alert("a", "resolved", 2, &[]));
        assert_eq!(g.flush_all(0, 100), None);
        assert!(g.is_empty());
    }

    #[test]
    fn notifications_carry_common_labels_and_encode_round_trip() {
        let mut g = Group {
            route: 3,
            labels: vec![("x".into(), "1".into())],
            ..Group::default()
        };
        g.admit("a", alert("a", "firing", 1, &[("x", "1"), ("y", "2")]));
        g.admit("b", alert("b", "resolved", 2, &[("x", "1"), ("y", "3")]));
        g.notified.insert("b".into(), true);
        let key = Group::key(g.route, &g.labels);
        assert_eq!(key, "3:{x=\"1\"}");
        let bytes = eddy_core::codec::encode_to_vec(&g);
        assert_eq!(eddy_core::codec::decode_from::<Group>(&bytes).unwrap(), g);
        let alerts = g.flush_all(0, 100).unwrap();
        let n = g.notification("ops", &key, &alerts);
        let text = eddy_core::json::fields_to_json_string(&n.fields);
        assert!(text.contains(r#""status":"firing""#), "{text}");
        assert!(text.contains(r#""commonLabels":{"x":"1"}"#), "{text}");
        assert!(text.contains(r#""groupKey":"3:{x=\"1\"}""#), "{text}");
        assert!(text.contains(r#""version":"4""#), "{text}");
        assert!(
            text.contains(r#""endsAt":"0001-01-01T00:00:00Z""#),
            "{text}"
        );
    }
}
