//! Combining the watermarks of a node's input channels: the minimum over
//! every upstream instance that is neither idle nor finished.

use eddy_core::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};

#[derive(Clone, Copy, Debug)]
struct Sender {
    watermark: Timestamp,
    idle: bool,
    ended: bool,
}

/// Watermark and end-of-input state of every (input slot, upstream instance).
#[derive(Debug)]
pub struct InputTracker {
    senders: Vec<Sender>,
    instances: usize,
    combined: Timestamp,
}

impl InputTracker {
    /// Tracks `slots` inputs, each fed by `instances` upstream instances.
    /// `expected(slot, sender)` says whether that sender feeds this instance
    /// at all (forward edges have one sender); others count as ended.
    pub fn new(
        slots: usize,
        instances: usize,
        expected: impl Fn(usize, usize) -> bool,
    ) -> InputTracker {
        let senders = (0..slots * instances)
            .map(|i| Sender {
                watermark: MIN_TIMESTAMP,
                idle: false,
                ended: !expected(i / instances, i % instances),
            })
            .collect();
        InputTracker {
            senders,
            instances,
            combined: MIN_TIMESTAMP,
        }
    }

    fn at(&mut self, slot: usize, sender: usize) -> Option<&mut Sender> {
        self.senders.get_mut(slot * self.instances + sender)
    }

    /// Data arrived: the sender is active again.
    pub fn data(&mut self, slot: usize, sender: usize) {
        if let Some(s) = self.at(slot, sender) {
            s.idle = false;
        }
    }

    /// A watermark arrived. Returns the new combined watermark if it advanced.
    pub fn watermark(&mut self, slot: usize, sender: usize, wm: Timestamp) -> Option<Timestamp> {
        if let Some(s) = self.at(slot, sender) {
            s.watermark = s.watermark.max(wm);
            s.idle = false;
        }
        self.recompute()
    }

    /// The sender went idle.
    pub fn idle(&mut self, slot: usize, sender: usize) -> Option<Timestamp> {
        if let Some(s) = self.at(slot, sender) {
            s.idle = true;
        }
        self.recompute()
    }

    /// The sender finished.
    pub fn end(&mut self, slot: usize, sender: usize) -> Option<Timestamp> {
        if let Some(s) = self.at(slot, sender) {
            s.ended = true;
        }
        self.recompute()
    }

    /// Whether this sender finished (or never fed this instance).
    pub fn is_ended(&self, slot: usize, sender: usize) -> bool {
        self.senders
            .get(slot * self.instances + sender)
            .is_none_or(|s| s.ended)
    }

    /// Number of (slot, sender) pairs tracked.
    pub fn pairs(&self) -> usize {
        self.senders.len()
    }

    /// Whether every sender finished.
    pub fn all_ended(&self) -> bool {
        self.senders.iter().all(|s| s.ended)
    }

    /// The current combined watermark.
    pub fn current(&self) -> Timestamp {
        self.combined
    }

    fn recompute(&mut self) -> Option<Timestamp> {
        let live = self.senders.iter().filter(|s| !s.ended);
        let active_min = live.clone().filter(|s| !s.idle).map(|s| s.watermark).min();
        let candidate = match active_min {
            Some(m) => m,
            // Every live sender is idle: nothing can arrive behind the
            // largest watermark any of them reached, so move up to it.
            None => live.map(|s| s.watermark).max().unwrap_or(MAX_TIMESTAMP),
        };
        (candidate > self.combined).then(|| {
            self.combined = candidate;
            candidate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_active_senders() {
        let mut t = InputTracker::new(2, 2, |_, _| true);
        assert_eq!(t.watermark(0, 0, 10), None);
        assert_eq!(t.watermark(0, 1, 20), None);
        assert_eq!(t.watermark(1, 0, 5), None);
        assert_eq!(t.watermark(1, 1, 7), Some(5));
        assert_eq!(t.watermark(1, 0, 30), Some(7));
    }

    #[test]
    fn idle_senders_do_not_hold_back_the_watermark() {
        let mut t = InputTracker::new(1, 2, |_, _| true);
        t.watermark(0, 0, 100);
        assert_eq!(t.idle(0, 1), Some(100));
        // Back from idle with an older watermark: the combined one never regresses.
        assert_eq!(t.watermark(0, 1, 50), None);
        assert_eq!(t.current(), 100);
    }

    #[test]
    fn when_every_sender_is_idle_the_largest_watermark_counts() {
        let mut t = InputTracker::new(1, 2, |_, _| true);
        t.watermark(0, 0, 100);
        assert_eq!(t.watermark(0, 1, 40), Some(40));
        assert_eq!(t.idle(0, 0), None);
        assert_eq!(t.idle(0, 1), Some(100));
    }

    #[test]
    fn ended_senders_count_as_infinite() {
        let mut t = InputTracker::new(1, 2, |_, s| s == 0);
        assert_eq!(t.watermark(0, 0, 9), Some(9));
        assert!(!t.all_ended());
        assert_eq!(t.end(0, 0), Some(MAX_TIMESTAMP));
        assert!(t.all_ended());
    }
}
