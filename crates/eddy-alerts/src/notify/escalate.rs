//! Escalation: an alert its route notified as firing climbs a ladder of
//! receivers (`escalate = [{ after = "5m", receiver = "pager" }, ...]`,
//! each `after` counted from that first notification) until it is
//! acknowledged or resolved; every receiver it reached hears of its
//! resolution.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use eddy_core::config::Duration;
use eddy_core::Event;
use serde::Deserialize;

/// One rung: `{ after = "5m", receiver = "pager" }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// How long after the alert's first notification.
    pub after: Duration,
    /// Who is told then.
    pub receiver: String,
}

/// Prefix of escalation timer and state keys (group keys start with a
/// digit).
pub const PREFIX: &str = "esc/";

/// The key of alert `fingerprint`'s escalation on route `route`.
pub fn key(route: u32, fingerprint: &str) -> String {
    format!("{PREFIX}{route}/{fingerprint}")
}

/// One alert's climb, checkpointed with the operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Escalation {
    /// The route whose ladder it climbs.
    pub route: u32,
    /// When its route first notified it (processing time, ms).
    pub started: i64,
    /// The next rung.
    pub next: u32,
    /// The alert's latest event.
    pub alert: Event,
    /// The receivers it reached, in order.
    pub reached: Vec<String>,
}

impl Encode for Escalation {
    fn encode(&self, enc: &mut Encoder) {
        enc.put(&u64::from(self.route));
        enc.put(&self.started);
        enc.put(&u64::from(self.next));
        enc.put(&self.alert);
        enc.put(&self.reached);
    }
}

impl Decode for Escalation {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let small = |n: u64, what| u32::try_from(n).map_err(|_| DecodeError::OutOfRange(what));
        Ok(Escalation {
            route: small(dec.get()?, "route")?,
            started: dec.get()?,
            next: small(dec.get()?, "level")?,
            alert: dec.get()?,
            reached: dec.get()?,
        })
    }
}
