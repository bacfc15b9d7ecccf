//! What people change while a run goes on: acknowledgements and silences,
//! made through the API or the CLI and read by the `notify` node.
//!
//! The node's `prepare` makes one [`AlertControl`] per run; the server
//! writes to it and the operator copies every new version into its
//! checkpointed state, so acknowledgements and silences survive restarts
//! (a restored run hands them back to the control for the API to list).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use serde::Serialize;

use super::route::Matcher;

/// Someone took an alert on: its escalation stops and it is not repeated
/// until it resolves.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ack {
    /// Who (as given to the API or CLI).
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// Why, or what is being done.
    pub comment: String,
}

/// Alerts matching every matcher are left out of notifications between
/// `starts_at` and `ends_at`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Silence {
    /// Its number, from 1, in creation order.
    pub id: u64,
    /// `label = "value"` and the like, as in routes.
    pub matchers: Vec<String>,
    /// From (ms since the epoch).
    pub starts_at: i64,
    /// Until (ms since the epoch, exclusive).
    pub ends_at: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// Everything the control holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ControlState {
    /// Acknowledged alerts by fingerprint.
    pub acks: BTreeMap<String, Ack>,
    /// Silences, expired ones included until they are a day old.
    pub silences: Vec<Silence>,
}

/// A firing alert left out of notifications, or back in them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suppression {
    /// The alert.
    pub fingerprint: String,
    /// Its rule.
    pub alertname: String,
    /// `silence N` or `inhibited by FINGERPRINT`; `None`: no longer.
    pub by: Option<String>,
    /// When the node saw it (ms since the epoch).
    pub at: i64,
}

/// One `notify` node's acknowledgements and silences for one run, and
/// which alerts it is suppressing now (for the API; derived, so not
/// checkpointed).
#[derive(Debug, Default)]
pub struct AlertControl {
    state: Mutex<ControlState>,
    /// Bumped by every change, so the operator copies only new versions.
    version: AtomicU64,
    /// Suppressed alerts now: fingerprint → by what.
    suppressed: Mutex<BTreeMap<String, String>>,
    /// Suppressions begun and ended since the server last took them.
    changes: Mutex<Vec<Suppression>>,
}

/// Suppression changes kept for the server between its looks.
const KEEP_CHANGES: usize = 10_000;

/// How long an expired silence stays listed.
const KEEP_EXPIRED_MS: i64 = 24 * 3_600_000;

impl AlertControl {
    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The current version (changes with every write).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// A copy of everything, with its version.
    pub fn snapshot(&self) -> (u64, ControlState) {
        let state = self.lock();
        (self.version(), state.clone())
    }

    /// Acknowledges alert `fingerprint`.
    pub fn acknowledge(&self, fingerprint: &str, ack: Ack) {
        self.lock().acks.insert(fingerprint.to_string(), ack);
        self.changed();
    }

    /// Forgets an acknowledgement (the alert resolved); whether there was one.
    pub fn forget(&self, fingerprint: &str) -> bool {
        let removed = self.lock().acks.remove(fingerprint).is_some();
        if removed {
            self.changed();
        }
        removed
    }

    /// Adds a silence; its id, or why the matchers are wrong.
    pub fn silence(
        &self,
        matchers: Vec<String>,
        starts_at: i64,
        ends_at: i64,
        created_by: String,
        comment: String,
    ) -> Result<u64, String> {
        if matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        for m in &matchers {
            Matcher::parse(m)?;
        }
        if ends_at <= starts_at {
            return Err("a silence must end after it starts".into());
        }
        let mut state = self.lock();
        state
            .silences
            .retain(|s| s.ends_at.saturating_add(KEEP_EXPIRED_MS) > starts_at);
        let id = state.silences.iter().map(|s| s.id).max().unwrap_or(0) + 1;
        state.silences.push(Silence {
            id,
            matchers,
            starts_at,
            ends_at,
            created_by,
            comment,
        });
        drop(state);
        self.changed();
        Ok(id)
    }

    /// Ends silence `id` at `now`; whether it was active or pending.
    pub fn expire(&self, id: u64, now: i64) -> bool {
        let mut state = self.lock();
        let Some(s) = state
            .silences
            .iter_mut()
            .find(|s| s.id == id && s.ends_at > now)
        else {
            return false;
        };
        s.ends_at = now.max(s.starts_at);
        drop(state);
        self.changed();
        true
    }

    /// Records that the alert `fingerprint` of rule `alertname` is
    /// suppressed `by` something now (`None`: it is not), noting the change
    /// if it is one.
    pub fn set_suppressed(&self, fingerprint: &str, alertname: &str, by: Option<String>, at: i64) {
        let mut now = self
            .suppressed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let changed = match &by {
            Some(b) => now.insert(fingerprint.to_string(), b.clone()).as_ref() != Some(b),
            None => now.remove(fingerprint).is_some(),
        };
        drop(now);
        if changed {
            let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
            if changes.len() < KEEP_CHANGES {
                changes.push(Suppression {
                    fingerprint: fingerprint.to_string(),
                    alertname: alertname.to_string(),
                    by,
                    at,
                });
            }
        }
    }

    /// What suppresses the alert `fingerprint` now, if anything.
    pub fn suppressed_by(&self, fingerprint: &str) -> Option<String> {
        let now = self
            .suppressed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        now.get(fingerprint).cloned()
    }

    /// The suppressions begun and ended since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<Suppression> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back what a restored run had (replacing anything newer only if
    /// nothing was written since the run started).
    pub fn restore(&self, state: ControlState) {
        if self.version() == 0 {
            *self.lock() = state;
            self.changed();
        }
    }
}

/// Silences compiled for matching.
#[derive(Default)]
pub struct Silencer {
    /// (id, from, until, matchers).
    silences: Vec<(u64, i64, i64, Vec<Matcher>)>,
}

impl Silencer {
    /// Compiles `silences` (ones whose matchers no longer parse are skipped).
    pub fn new(silences: &[Silence]) -> Silencer {
        Silencer {
            silences: silences
                .iter()
                .filter_map(|s| {
                    let matchers: Result<Vec<Matcher>, String> =
                        s.matchers.iter().map(|m| Matcher::parse(m)).collect();
                    Some((s.id, s.starts_at, s.ends_at, matchers.ok()?))
                })
                .collect(),
        }
    }

    /// The silence that silences an alert with `labels` at `now`, if one
    /// does (the first made).
    pub fn silenced_by(&self, labels: &BTreeMap<String, String>, now: i64) -> Option<u64> {
        self.silences
            .iter()
            .find(|(_, from, until, matchers)| {
                *from <= now && now < *until && matchers.iter().all(|m| m.matches(labels))
            })
            .map(|(id, ..)| *id)
    }
}

impl Encode for Ack {
    fn encode(&self, enc: &mut Encoder) {
        enc.put(&self.by);
        enc.put(&self.at);
        enc.put(&self.comment);
    }
}

impl Decode for Ack {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Ack {
            by: dec.get()?,
            at: dec.get()?,
            comment: dec.get()?,
        })
    }
}

impl Encode for ControlState {
    fn encode(&self, enc: &mut Encoder) {
        let acks: Vec<(String, Ack)> = self
            .acks
            .iter()
            .map(|(fp, a)| (fp.clone(), a.clone()))
            .collect();
        enc.put(&acks);
        enc.put(&(self.silences.len() as u64));
        for s in &self.silences {
            enc.put(&s.id);
            enc.put(&s.matchers);
            enc.put(&s.starts_at);
            enc.put(&s.ends_at);
            enc.put(&s.created_by);
            enc.put(&s.comment);
        }
    }
}

impl Decode for ControlState {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let acks: Vec<(String, Ack)> = dec.get()?;
        let n: u64 = dec.get()?;
        let mut silences = Vec::new();
        for _ in 0..n {
            silences.push(Silence {
                id: dec.get()?,
                matchers: dec.get()?,
                starts_at: dec.get()?,
                ends_at: dec.get()?,
                created_by: dec.get()?,
                comment: dec.get()?,
            });
        }
        Ok(ControlState {
            acks: acks.into_iter().collect(),
            silences,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_match_in_their_time_and_state_round_trips() {
        let c = AlertControl::default();
        assert!(c
            .silence(
                vec!["team = \"ops\"".into()],
                100,
                50,
                "me".into(),
                "".into()
            )
            .is_err());
        assert!(c
            .silence(vec!["team ~ ops".into()], 0, 50, "me".into(), "".into())
            .is_err());
        let id = c
            .silence(
                vec!["team = \"ops\"".into()],
                100,
                200,
                "me".into(),
                "deploy".into(),
            )
            .unwrap();
        assert_eq!(id, 1);
        c.acknowledge(
            "fp1",
            Ack {
                by: "ann".into(),
                at: 5,
                comment: "on it".into(),
            },
        );
        let (version, state) = c.snapshot();
        assert_eq!(version, 2);
        let s = Silencer::new(&state.silences);
        let ops: BTreeMap<String, String> = [("team".into(), "ops".into())].into();
        let by = |t| s.silenced_by(&ops, t);
        assert_eq!((by(99), by(100), by(200)), (None, Some(1), None));
        assert_eq!(s.silenced_by(&BTreeMap::new(), 150), None);
        assert!(c.expire(1, 150));
        assert_eq!(
            Silencer::new(&c.snapshot().1.silences).silenced_by(&ops, 160),
            None
        );
        let bytes = eddy_core::codec::encode_to_vec(&c.snapshot().1);
        assert_eq!(
            eddy_core::codec::decode_from::<ControlState>(&bytes).unwrap(),
            c.snapshot().1
        );
        assert!(c.forget("fp1") && !c.forget("fp1"));
    }
}
