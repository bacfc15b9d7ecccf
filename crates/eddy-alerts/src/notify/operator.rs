//! The `notify` operator: alert events into groups, group timers,
//! escalation, inhibition, silences and acknowledgements.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use eddy_core::state::{KeyGroup, TimeDomain, Timer, KEY_GROUPS};
use eddy_core::time::now_ms;
use eddy_core::{
    Batch, Collector, Event, NamedTable, Operator, OperatorContext, Output, Timestamp, Value,
};
use eddy_state::ValueTable;

use super::control::{Ack, AlertControl, ControlState, Silencer};
use super::escalate::{self, Escalation};
use super::group::{is_firing, Group};
use super::inhibit::Inhibitor;
use super::route::Route;

/// Label (name, value) pairs.
type Labels = Vec<(String, String)>;

/// The key of the one entry of the `control` table.
const CONTROL_KEY: &[u8] = b"control";

/// Routes alert events into groups and emits their notifications.
pub struct NotifyOperator {
    name: String,
    tree: Route,
    outputs: BTreeMap<String, Output>,
    groups: ValueTable<Group>,
    inhibitor: Inhibitor,
    /// Firing alerts that can mute others: fingerprint → labels.
    sources: ValueTable<Vec<(String, String)>>,
    /// Alerts climbing their route's escalation ladder.
    escalations: ValueTable<Escalation>,
    /// Where acknowledgements and silences come from during the run.
    control: Option<Arc<AlertControl>>,
    /// The control's version last copied into `controlled`.
    seen: u64,
    /// The acknowledgements and silences, checkpointed (one entry).
    controlled: ValueTable<ControlState>,
    silencer: Silencer,
    acked: BTreeSet<String>,
    clock: fn() -> Timestamp,
}

impl NotifyOperator {
    /// An operator routing through `tree`, each receiver's notifications
    /// to its output.
    pub fn new(name: &str, tree: Route, outputs: BTreeMap<String, Output>) -> NotifyOperator {
        NotifyOperator {
            name: name.to_string(),
            tree,
            outputs,
            groups: ValueTable::new(None),
            inhibitor: Inhibitor::default(),
            sources: ValueTable::new(None),
            escalations: ValueTable::new(None),
            control: None,
            seen: 0,
            controlled: ValueTable::new(None),
            silencer: Silencer::default(),
            acked: BTreeSet::new(),
            clock: now_ms,
        }
    }

    /// Copies a new version of the control's acknowledgements and
    /// silences into checkpointed state, and tells the receivers of each
    /// new acknowledgement.
    fn sync(&mut self, out: &mut Collector) {
        let Some(control) = &self.control else {
            return;
        };
        if control.version() == self.seen {
            return;
        }
        let (version, state) = control.snapshot();
        self.seen = version;
        let new: Vec<(String, Ack)> = state
            .acks
            .iter()
            .filter(|(fp, _)| !self.acked.contains(*fp))
            .map(|(fp, ack)| (fp.clone(), ack.clone()))
            .collect();
        self.adopt(state);
        for (fingerprint, ack) in new {
            self.tell_acknowledged(&fingerprint, &ack, out);
        }
    }

    /// Tells every receiver that heard alert `fingerprint` fire (through
    /// its group or its escalation) that `ack` took it on, once each.
    fn tell_acknowledged(&self, fingerprint: &str, ack: &Ack, out: &mut Collector) {
        let mut told = BTreeSet::new();
        let mut tell = |group: &Group, receiver: &str, key: &[u8], alert: &Event| {
            let Some(&output) = self.outputs.get(receiver) else {
                return;
            };
            if !told.insert(receiver.to_string()) {
                return;
            }
            let mut acked = alert.clone();
            acked
                .fields
                .insert(eddy_core::sym!("status"), Value::str("acknowledged"));
            acked
                .fields
                .insert(eddy_core::sym!("acknowledged_by"), Value::str(&ack.by));
            acked
                .fields
                .insert(eddy_core::sym!("comment"), Value::str(&ack.comment));
            let key = String::from_utf8_lossy(key);
            out.push(output, group.notification(receiver, &key, &[acked]));
        };
        for g in (0..KEY_GROUPS).filter_map(KeyGroup::new) {
            for (key, group) in self.groups.iter_group(g, 0) {
                let Some(alert) = group.alerts.get(fingerprint) else {
                    continue;
                };
                if group.notified.get(fingerprint) == Some(&true) && is_firing(alert) {
                    if let Some(route) = self.tree.find(group.route) {
                        tell(group, &route.receiver, key, alert);
                    }
                }
            }
            for (key, climb) in self.escalations.iter_group(g, 0) {
                let fp = climb.alert.get(eddy_core::sym!("fingerprint"));
                if fp.and_then(Value::as_str) != Some(fingerprint) {
                    continue;
                }
                let group = Group {
                    route: climb.route,
                    ..Group::default()
                };
                for receiver in &climb.reached {
                    tell(&group, receiver, key, &climb.alert);
                }
            }
        }
    }

    /// Matches by `state` from now on, and keeps it for checkpoints.
    fn adopt(&mut self, state: ControlState) {
        self.silencer = Silencer::new(&state.silences);
        self.acked = state.acks.keys().cloned().collect();
        self.controlled.put(KeyGroup::MIN, CONTROL_KEY, state, 0);
    }

    /// Takes acknowledgements and silences from `control` during the run.
    pub fn controlled_by(mut self, control: Option<Arc<AlertControl>>) -> NotifyOperator {
        self.control = control;
        self
    }

    /// Mutes alerts by these inhibit rules.
    pub fn inhibited_by(mut self, inhibitor: Inhibitor) -> NotifyOperator {
        self.inhibitor = inhibitor;
        self
    }

    /// Replaces the processing-time clock (tests).
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> NotifyOperator {
        self.clock = clock;
        self
    }

    /// Adds one alert event to the groups of every route that takes it.
    fn admit(
        &mut self,
        event: Event,
        now: Timestamp,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<(), String> {
        let status = event.get(eddy_core::sym!("status")).and_then(Value::as_str);
        if !matches!(status, Some("firing" | "resolved")) {
            return Ok(());
        }
        let fingerprint = event
            .get(eddy_core::sym!("fingerprint"))
            .and_then(Value::as_str)
            .ok_or("not an alert event: it has no `fingerprint`")?
            .to_string();
        let labels = alert_labels(&event).ok_or("not an alert event: it has no `labels` map")?;
        let firing = is_firing(&event);
        if let (false, Some(control)) = (firing, &self.control) {
            // An acknowledgement lasts until the alert resolves, and a
            // resolved alert is suppressed no more.
            if self.acked.contains(&fingerprint) {
                control.forget(&fingerprint);
            }
            let name = labels.get("alertname").map_or("", String::as_str);
            control.set_suppressed(&fingerprint, name, None, now);
        }
        if self.inhibitor.is_source(&labels) {
            let g = KeyGroup::of(&fingerprint);
            if firing {
                let pairs = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                self.sources.put(g, fingerprint.as_bytes(), pairs, 0);
            } else {
                self.sources.remove(g, fingerprint.as_bytes(), 0);
            }
        }
        // (route, its group's labels, its group_wait), matched once.
        let matched: Vec<(u32, Labels, i64)> = self
            .tree
            .matching(&labels)
            .iter()
            .map(|r| (r.id, r.group_labels(&labels), r.group_wait))
            .collect();
        for (route, _, _) in &matched {
            self.update_escalation(*route, &fingerprint, &event, out);
        }
        for (route, group_labels, group_wait) in matched {
            let key = Group::key(route, &group_labels);
            let g = KeyGroup::of(&key);
            let known = self.groups.get(g, key.as_bytes(), 0).is_some();
            match known {
                true => self
                    .groups
                    .update(g, key.as_bytes(), 0, Group::default)
                    .admit(&fingerprint, event.clone()),
                // A group that is gone has nothing to say about a resolution.
                false if !firing => {}
                false => {
                    let mut group = Group {
                        route,
                        labels: group_labels,
                        ..Group::default()
                    };
                    group.admit(&fingerprint, event.clone());
                    self.groups.put(g, key.as_bytes(), group, 0);
                    cx.timers(TimeDomain::ProcessingTime).register(
                        g,
                        key.as_bytes(),
                        now.saturating_add(group_wait),
                    );
                }
            }
        }
        Ok(())
    }
}

impl NotifyOperator {
    /// Emits `group`'s notification (it is keyed `key`) if one is due at
    /// `now`, counting a repeat only with `repeat`, and starts the
    /// escalation of the firing alerts it reported; returns its route's
    /// `group_interval`, or `None` when that route is gone.
    fn speak(
        &mut self,
        key: &[u8],
        group: &mut Group,
        now: Timestamp,
        repeat: bool,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Option<i64> {
        let (interval, reported) = self.notify_group(key, group, now, repeat, out)?;
        for alert in reported.iter().filter(|a| is_firing(a)) {
            self.start_escalation(group.route, alert, now, cx);
        }
        Some(interval)
    }

    /// [`Self::speak`]'s notification: returns the route's
    /// `group_interval` and the alerts reported.
    fn notify_group(
        &self,
        key: &[u8],
        group: &mut Group,
        now: Timestamp,
        repeat: bool,
        out: &mut Collector,
    ) -> Option<(i64, Vec<Event>)> {
        let route = self.tree.find(group.route)?;
        if !group.may_speak(now, route.max_notifications) {
            // Over its limit: what it would say waits for the next look.
            return Some((route.group_interval, Vec::new()));
        }
        let repeat_after = if repeat {
            route.repeat_interval
        } else {
            i64::MAX
        };
        // The firing sources, read only when there are inhibit rules.
        let sources: Vec<(String, BTreeMap<String, String>)> = (0..KEY_GROUPS)
            .filter(|_| !self.inhibitor.is_empty())
            .filter_map(KeyGroup::new)
            .flat_map(|g| self.sources.iter_group(g, 0))
            .map(|(fp, pairs)| {
                let labels = pairs.iter().cloned().collect();
                (String::from_utf8_lossy(fp).into_owned(), labels)
            })
            .collect();
        let muted = |e: &Event| {
            let fp = e
                .get(eddy_core::sym!("fingerprint"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(labels) = alert_labels(e) else {
                return false;
            };
            let sources = sources.iter().map(|(fp, l)| (fp.as_str(), l));
            let by = match self.silencer.silenced_by(&labels, now) {
                Some(id) => Some(format!("silence {id}")),
                None => self
                    .inhibitor
                    .muted_by(fp, &labels, sources)
                    .map(|source| format!("inhibited by {source}")),
            };
            let muted = by.is_some();
            if let Some(control) = &self.control {
                let name = labels.get("alertname").map_or("", String::as_str);
                control.set_suppressed(fp, name, by, now);
            }
            muted
        };
        let acked = |e: &Event| {
            let fp = e
                .get(eddy_core::sym!("fingerprint"))
                .and_then(Value::as_str);
            fp.is_some_and(|fp| self.acked.contains(fp))
        };
        let mut reported = Vec::new();
        if let Some(alerts) = group.flush(now, repeat_after, muted, acked) {
            if let Some(&output) = self.outputs.get(&route.receiver) {
                let key = String::from_utf8_lossy(key);
                out.push(output, group.notification(&route.receiver, &key, &alerts));
            }
            reported = alerts;
        }
        Some((route.group_interval, reported))
    }

    /// Puts a firing alert its route just reported on the route's ladder,
    /// unless it is on it already or the route has none.
    fn start_escalation(
        &mut self,
        route: u32,
        alert: &Event,
        now: Timestamp,
        cx: &mut OperatorContext,
    ) {
        let Some(&(after, _)) = self.tree.find(route).and_then(|r| r.escalate.first()) else {
            return;
        };
        let fingerprint = alert
            .get(eddy_core::sym!("fingerprint"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = escalate::key(route, fingerprint);
        let g = KeyGroup::of(&key);
        if self.escalations.get(g, key.as_bytes(), 0).is_some() {
            return;
        }
        let climb = Escalation {
            route,
            started: now,
            next: 0,
            alert: alert.clone(),
            reached: Vec::new(),
        };
        self.escalations.put(g, key.as_bytes(), climb, 0);
        cx.timers(TimeDomain::ProcessingTime).register(
            g,
            key.as_bytes(),
            now.saturating_add(after),
        );
    }

    /// A new event of an alert on route `route`'s ladder: kept as its
    /// latest; a resolution ends the climb and is told to every receiver
    /// it reached.
    fn update_escalation(
        &mut self,
        route: u32,
        fingerprint: &str,
        event: &Event,
        out: &mut Collector,
    ) {
        let key = escalate::key(route, fingerprint);
        let g = KeyGroup::of(&key);
        let Some(mut climb) = self.escalations.remove(g, key.as_bytes(), 0) else {
            return;
        };
        if is_firing(event) {
            climb.alert = event.clone();
            self.escalations.put(g, key.as_bytes(), climb, 0);
            return;
        }
        let group = Group {
            route,
            ..Group::default()
        };
        for receiver in &climb.reached {
            if let Some(&output) = self.outputs.get(receiver) {
                out.push(
                    output,
                    group.notification(receiver, &key, std::slice::from_ref(event)),
                );
            }
        }
    }

    /// An escalation's time came: tell the next rung, unless the alert was
    /// acknowledged, and wait for the one after.
    fn climb(&mut self, timer: &Timer, cx: &mut OperatorContext, out: &mut Collector) {
        let Some(mut climb) = self.escalations.remove(timer.group, &timer.key, 0) else {
            return;
        };
        let Some(route) = self.tree.find(climb.route) else {
            return;
        };
        let Some((_, receiver)) = route.escalate.get(climb.next as usize) else {
            return;
        };
        let fingerprint = climb.alert.get(eddy_core::sym!("fingerprint"));
        if fingerprint
            .and_then(Value::as_str)
            .is_some_and(|fp| self.acked.contains(fp))
        {
            // Someone took it on: the climb ends here.
            return;
        }
        let key = String::from_utf8_lossy(&timer.key).into_owned();
        // A rung reached while the alert is silenced is passed over.
        let silenced = alert_labels(&climb.alert)
            .and_then(|labels| self.silencer.silenced_by(&labels, timer.time))
            .is_some();
        if let (Some(&output), false) = (self.outputs.get(receiver), silenced) {
            let group = Group {
                route: climb.route,
                ..Group::default()
            };
            out.push(
                output,
                group.notification(receiver, &key, std::slice::from_ref(&climb.alert)),
            );
            climb.reached.push(receiver.clone());
        }
        climb.next += 1;
        if let Some(&(after, _)) = route.escalate.get(climb.next as usize) {
            cx.timers(TimeDomain::ProcessingTime).register(
                timer.group,
                &timer.key,
                climb.started.saturating_add(after),
            );
        }
        self.escalations.put(timer.group, &timer.key, climb, 0);
    }
}

impl Operator for NotifyOperator {
    /// Hands restored acknowledgements and silences back to the control.
    fn open(&mut self, _cx: &mut OperatorContext) {
        if let Some(state) = self.controlled.get(KeyGroup::MIN, CONTROL_KEY, 0).cloned() {
            if let Some(control) = &self.control {
                control.restore(state.clone());
                self.seen = control.version();
            }
            self.adopt(state);
        }
    }

    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        self.sync(out);
        let now = (self.clock)();
        for event in batch.events {
            if let Err(reason) = self.admit(event.clone(), now, cx, out) {
                out.dead_letter(&self.name, reason, &event);
            }
        }
    }

    /// A group's time came: notify if it has something to say, then look
    /// again after `group_interval` unless it is empty.
    fn on_timer(
        &mut self,
        _domain: TimeDomain,
        timer: Timer,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        self.sync(out);
        if timer.key.starts_with(escalate::PREFIX.as_bytes()) {
            self.climb(&timer, cx, out);
            return;
        }
        let Some(mut group) = self.groups.remove(timer.group, &timer.key, 0) else {
            return;
        };
        // A group whose route is gone (the tree changed shape under
        // restored state) goes with it.
        let Some(interval) = self.speak(&timer.key, &mut group, timer.time, true, cx, out) else {
            return;
        };
        if !group.is_empty() {
            let next = timer.time.saturating_add(interval.max(1));
            self.groups.put(timer.group, &timer.key, group, 0);
            cx.timers(TimeDomain::ProcessingTime)
                .register(timer.group, &timer.key, next);
        }
    }

    /// Keeps checkpoints current with what people changed, and tells of
    /// acknowledgements while no events come.
    fn on_tick(&mut self, _now: Timestamp, _cx: &mut OperatorContext, out: &mut Collector) {
        self.sync(out);
    }

    /// The input ended: every group with something left to say (the
    /// resolutions the end of input brought) speaks now.
    fn finish(&mut self, cx: &mut OperatorContext, out: &mut Collector) {
        self.sync(out);
        let now = (self.clock)();
        for g in (0..KEY_GROUPS).filter_map(KeyGroup::new) {
            let keys: Vec<Vec<u8>> = self
                .groups
                .iter_group(g, 0)
                .map(|(k, _)| k.to_vec())
                .collect();
            for key in keys {
                let Some(mut group) = self.groups.remove(g, &key, 0) else {
                    continue;
                };
                let spoke = self.speak(&key, &mut group, now, false, cx, out);
                if spoke.is_some() && !group.is_empty() {
                    self.groups.put(g, &key, group, 0);
                }
            }
        }
    }

    fn tables(&mut self) -> Vec<NamedTable<'_>> {
        vec![
            ("groups", &mut self.groups),
            ("inhibiting", &mut self.sources),
            ("escalations", &mut self.escalations),
            ("control", &mut self.controlled),
        ]
    }
}

/// An alert event's labels (non-text values as JSON text).
fn alert_labels(event: &Event) -> Option<BTreeMap<String, String>> {
    let Some(Value::Map(m)) = event.get(eddy_core::sym!("labels")) else {
        return None;
    };
    Some(
        m.iter()
            .map(|(k, v)| {
                let v = match v.as_str() {
                    Some(s) => s.to_string(),
                    None => eddy_core::json::value_to_json_string(v),
                };
                (k.as_str().to_string(), v)
            })
            .collect(),
    )
}
