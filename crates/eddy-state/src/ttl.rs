//! Time-to-live of table entries.

use eddy_core::Timestamp;

pub use eddy_core::state::TimeDomain;

/// How long an entry lives after it was last written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl {
    /// Milliseconds after the last write.
    pub after_ms: i64,
    /// Which clock `now` is read from.
    pub domain: TimeDomain,
}

/// An entry's expiry time when none applies.
pub(crate) const NEVER: Timestamp = Timestamp::MAX;

impl Ttl {
    /// An entry written at `now` expires at this time (it is visible while
    /// `now < expiry`).
    pub(crate) fn expiry(ttl: Option<Ttl>, now: Timestamp) -> Timestamp {
        match ttl {
            Some(t) => now.saturating_add(t.after_ms.max(0)),
            None => NEVER,
        }
    }
}
