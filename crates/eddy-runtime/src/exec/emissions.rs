//! Results before more input when threads outnumber cores.
//!
//! A window firing emits its results in pieces, one key group after
//! another; its last result's latency is the time the whole firing takes.
//! With more instance threads than cores (two workers and a source on two
//! cores), a firing worker shares a core with the source and fires at half
//! speed while the source reads input that will only wait in the channels.
//! So while some instance is passing on a firing's pieces, sources pause
//! before their next read (for at most [`MAX_PAUSE`] at a time): the input
//! already in the channels keeps the other workers busy.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The longest a source waits for firings before reading again.
pub(crate) const MAX_PAUSE: Duration = Duration::from_millis(20);

/// How often a paused source looks again.
const RECHECK: Duration = Duration::from_micros(100);

/// How many instances are passing on a firing's pieces now.
#[derive(Default)]
pub(crate) struct Emissions {
    active: AtomicU32,
}

impl Emissions {
    /// An instance starts passing on a firing's pieces.
    pub(crate) fn start(&self) {
        self.active.fetch_add(1, Relaxed);
    }

    /// The instance passed on the last piece.
    pub(crate) fn end(&self) {
        self.active.fetch_sub(1, Relaxed);
    }

    /// Waits while some firing is being passed on, at most [`MAX_PAUSE`].
    pub(crate) fn wait(&self) {
        if self.active.load(Relaxed) == 0 {
            return;
        }
        let started = Instant::now();
        while self.active.load(Relaxed) > 0 && started.elapsed() < MAX_PAUSE {
            std::thread::sleep(RECHECK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_waits_for_a_firing_but_never_longer_than_the_cap() {
        let e = Emissions::default();
        let t = Instant::now();
        e.wait();
        assert!(t.elapsed() < MAX_PAUSE, "no firing: no wait");
        e.start();
        let t = Instant::now();
        e.wait();
        assert!(
            t.elapsed() >= MAX_PAUSE,
            "a firing that never ends: the cap"
        );
        e.end();
        let t = Instant::now();
        e.wait();
        assert!(t.elapsed() < MAX_PAUSE);
    }
}
