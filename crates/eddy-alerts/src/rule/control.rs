//! Alerts people resolve by hand (API, CLI, dashboard) while the run goes
//! on: the rule node's `prepare` makes one [`RuleControl`] per run, the
//! server writes to it, and each worker's operator resolves the instance
//! it owns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A request to resolve one alert now.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Who resolves it.
    pub by: String,
    /// Why.
    pub comment: String,
}

/// One rule node's resolution requests for one run, numbered from 1.
#[derive(Debug, Default)]
pub struct RuleControl {
    requests: Mutex<Vec<(u64, Resolution)>>,
    last: AtomicU64,
}

/// Requests kept for workers that have not looked yet (they look every
/// tick, so only a flood could drop one).
const KEEP: usize = 1024;

impl RuleControl {
    /// Asks the owner of `resolution.fingerprint` to resolve it.
    pub fn resolve(&self, resolution: Resolution) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let id = self.last.load(Ordering::Acquire) + 1;
        requests.push((id, resolution));
        if requests.len() > KEEP {
            requests.remove(0);
        }
        self.last.store(id, Ordering::Release);
    }

    /// The number of the latest request (0: none yet).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// The requests numbered after `seen`, and the number of the last.
    pub fn after(&self, seen: u64) -> (u64, Vec<Resolution>) {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let new = requests
            .iter()
            .filter(|(id, _)| *id > seen)
            .map(|(_, r)| r.clone())
            .collect();
        (self.last(), new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reader_sees_each_request_once() {
        let control = RuleControl::default();
        let r = |fp: &str| Resolution {
            fingerprint: fp.into(),
            by: "ann".into(),
            comment: String::new(),
        };
        assert_eq!(control.after(0), (0, vec![]));
        control.resolve(r("a"));
        control.resolve(r("b"));
        assert_eq!(control.after(0), (2, vec![r("a"), r("b")]));
        assert_eq!(control.after(1), (2, vec![r("b")]));
        assert_eq!(control.after(2), (2, vec![]));
    }
}
