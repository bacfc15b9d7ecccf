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
//!
//! The core a paused source leaves is handed to one firing worker, which
//! moves itself there. Between firings the workers sleep and wake often,
//! and a waking thread goes to an idle core: with the source busy on the
//! other, that is the same core for both workers. When both then fire, the
//! scheduler leaves the second queued behind the first on that core for
//! the first's whole time slice (3–4 ms measured) while the source's core
//! idles. The move sets the worker's allowed cores to the free one and at
//! once back to what they were, so it is never left pinned.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest a source waits for firings before reading again.
pub(crate) const MAX_PAUSE: Duration = Duration::from_millis(20);

/// No core is free (`free_core`).
const NONE: i32 = -1;

/// How many instances are passing on a firing's pieces now; a paused
/// source's wait for that to end, and the core it left meanwhile.
pub(crate) struct Emissions {
    active: AtomicU32,
    /// Held around the last firing's end and a source's check before it
    /// sleeps, so the wake-up cannot fall between the two.
    lock: Mutex<()>,
    idle: Condvar,
    /// The core a waiting source left, until a firing worker claims it.
    free_core: AtomicI32,
}

impl Default for Emissions {
    fn default() -> Emissions {
        Emissions {
            active: AtomicU32::new(0),
            lock: Mutex::new(()),
            idle: Condvar::new(),
            free_core: AtomicI32::new(NONE),
        }
    }
}

impl Emissions {
    /// An instance starts passing on a firing's pieces.
    pub(crate) fn start(&self) {
        self.active.fetch_add(1, Relaxed);
    }

    /// The instance passed on the last piece.
    pub(crate) fn end(&self) {
        if self.active.fetch_sub(1, Relaxed) == 1 {
            let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.idle.notify_all();
        }
    }

    /// Waits while some firing is being passed on, at most [`MAX_PAUSE`],
    /// offering the caller's core to a firing worker meanwhile. One sleep
    /// for the whole wait: a core that idles only in short spells is one
    /// the scheduler does not move waiting threads onto.
    pub(crate) fn wait(&self) {
        if self.active.load(Relaxed) == 0 {
            return;
        }
        let deadline = Instant::now() + MAX_PAUSE;
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(core) = cores::current() {
            self.free_core.store(core, Relaxed);
        }
        while self.active.load(Relaxed) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            held = match self.idle.wait_timeout(held, left) {
                Ok((held, _)) => held,
                Err(e) => e.into_inner().0,
            };
        }
        self.free_core.store(NONE, Relaxed);
    }

    /// For a firing worker between pieces: claims the core a waiting
    /// source left, if no other worker did, and moves the caller onto it
    /// unless it is there already. Returns whether it claimed one (a
    /// worker claims at most one per firing).
    pub(crate) fn claim_free_core(&self) -> bool {
        let core = self.free_core.load(Relaxed);
        if core == NONE
            || self
                .free_core
                .compare_exchange(core, NONE, Relaxed, Relaxed)
                .is_err()
        {
            return false;
        }
        if cores::current() != Some(core) {
            cores::move_to(core);
        }
        true
    }
}

/// Which core the calling thread runs on, and moving it to another.
#[cfg(target_os = "linux")]
mod cores {
    use std::mem::size_of;

    /// The core the calling thread runs on now.
    pub(super) fn current() -> Option<i32> {
        // SAFETY: takes no arguments and touches no memory of ours.
        let core = unsafe { libc::sched_getcpu() };
        (core >= 0).then_some(core)
    }

    /// Moves the calling thread onto `core`, leaving it allowed on the
    /// cores it was allowed on before. Returns whether it ran there; does
    /// nothing if a call fails (`core` outside the allowed set, a sandbox
    /// without the calls).
    pub(super) fn move_to(core: i32) -> bool {
        let Some(index) = usize::try_from(core)
            .ok()
            .filter(|&i| i < libc::CPU_SETSIZE as usize)
        else {
            return false;
        };
        // SAFETY: `cpu_set_t` is plain bits, valid zeroed; each call reads
        // or writes only the set it is given, of the size it is told.
        unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) != 0
                || !libc::CPU_ISSET(index, &allowed)
            {
                return false;
            }
            let mut only: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(index, &mut only);
            // Setting the set moves a running thread before it returns.
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &only) != 0 {
                return false;
            }
            let there = current() == Some(core);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &allowed);
            there
        }
    }

    /// The cores the calling thread may run on.
    #[cfg(test)]
    pub(super) fn allowed() -> Vec<usize> {
        // SAFETY: as in `move_to`.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }
}

/// Elsewhere the core is unknown and no worker moves.
#[cfg(not(target_os = "linux"))]
mod cores {
    pub(super) fn current() -> Option<i32> {
        None
    }

    pub(super) fn move_to(_core: i32) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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

    #[cfg(target_os = "linux")]
    #[test]
    fn a_waiting_source_offers_its_core_until_the_firings_end() {
        let e = Arc::new(Emissions::default());
        e.start();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let source = {
            let (e, stop) = (Arc::clone(&e), Arc::clone(&stop));
            // Waits again after each cap, as a paused source does.
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    e.wait();
                }
            })
        };
        let t = Instant::now();
        while e.free_core.load(Relaxed) == NONE {
            assert!(t.elapsed() < Duration::from_secs(10), "no core offered");
            std::thread::yield_now();
        }
        stop.store(true, Relaxed);
        e.end();
        source.join().expect("the source thread");
        assert_eq!(e.free_core.load(Relaxed), NONE, "withdrawn after the wait");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn one_worker_claims_a_free_core_and_is_left_allowed_where_it_was() {
        let e = Emissions::default();
        assert!(!e.claim_free_core(), "no core offered");
        let allowed = cores::allowed();
        let core = *allowed.last().expect("some allowed core") as i32;
        e.free_core.store(core, Relaxed);
        assert!(e.claim_free_core());
        assert_eq!(cores::allowed(), allowed, "not left pinned");
        assert!(!e.claim_free_core(), "claimed once");
        assert!(cores::move_to(core), "ran on the core while moving");
        assert_eq!(cores::allowed(), allowed);
        assert!(!cores::move_to(-1));
    }
}
