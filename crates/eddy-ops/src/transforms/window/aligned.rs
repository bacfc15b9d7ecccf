//! Tumbling and sliding windows: window bounds are the same for every key,
//! so state is ordered by window start and firing pops from the front.

use std::collections::BTreeMap;

use eddy_core::time::MIN_TIMESTAMP;
use eddy_core::{Collector, Timestamp, Value};
use rustc_hash::FxHashMap;

use eddy_core::codec::{Decoder, Encoder};

use super::common::{cleanup_time, fire_time, fold, Ctx, Key, Outcome, PlaceError};
use super::snapshot::{get_accs, get_key, put_accs, put_key, sort_by_key, Reader, SnapshotError};
use crate::aggregate::{admit_all, Accumulator, Observation};

struct Slot {
    accs: Vec<Accumulator>,
    /// Updated after the window fired; re-emitted at the end of the batch.
    dirty: bool,
}

/// State of tumbling (`slide == size`) or sliding windows.
pub(crate) struct Aligned {
    size: i64,
    slide: i64,
    lateness: i64,
    /// Window start → key → accumulators.
    windows: BTreeMap<Timestamp, FxHashMap<Key, Slot>>,
    /// Fired windows updated by late events since the last flush.
    dirty: Vec<(Timestamp, Key)>,
}

impl Aligned {
    pub(crate) fn new(size: i64, slide: i64, lateness: i64) -> Aligned {
        Aligned {
            size,
            slide,
            lateness,
            windows: BTreeMap::new(),
            dirty: Vec::new(),
        }
    }

    /// The start of the latest window containing `t`.
    fn last_start(&self, t: Timestamp) -> Option<Timestamp> {
        t.div_euclid(self.slide).checked_mul(self.slide)
    }

    /// Adds an event at `t` to every window containing it that is not past
    /// its allowed lateness at watermark `wm`.
    pub(crate) fn add(
        &mut self,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
    ) -> Result<Outcome, PlaceError> {
        let range = || PlaceError::OutOfRange(t);
        let mut start = self.last_start(t).ok_or_else(range)?;
        start.checked_add(self.size).ok_or_else(range)?;
        let mut outcome = Outcome::Late;
        if cx.can_overflow() && self.size != self.slide {
            // An event in several windows updates all of them or none.
            self.admits(start, t, key, obs, wm, cx)?;
        }
        // Windows [start, start + size) containing t, latest first.
        while start > t.saturating_sub(self.size) {
            let end = start + self.size;
            if cleanup_time(end, self.lateness) > wm {
                outcome = Outcome::Accepted;
                let fired = fire_time(end) <= wm;
                let keys = self.windows.entry(start).or_default();
                // One hash lookup on the hot path; a new key is inserted
                // after its first update.
                let newly_dirty = match keys.get_mut(key) {
                    Some(slot) => update(slot, obs, fired, cx)?,
                    None => {
                        let mut slot = Slot {
                            accs: cx.fresh(),
                            dirty: false,
                        };
                        let d = update(&mut slot, obs, fired, cx)?;
                        keys.insert(Key::from(key), slot);
                        d
                    }
                };
                if newly_dirty {
                    self.dirty.push((start, Key::from(key)));
                }
            }
            start = match start.checked_sub(self.slide) {
                Some(s) => s,
                None => break,
            };
        }
        Ok(outcome)
    }

    /// Whether every existing window of `key` that the event at `t` would
    /// update (latest start `start`) admits it.
    fn admits(
        &self,
        mut start: Timestamp,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
    ) -> Result<(), PlaceError> {
        while start > t.saturating_sub(self.size) {
            if cleanup_time(start + self.size, self.lateness) > wm {
                if let Some(slot) = self.windows.get(&start).and_then(|m| m.get(key)) {
                    admit_all(&slot.accs, obs).map_err(|e| cx.refused(e))?;
                }
            }
            start = match start.checked_sub(self.slide) {
                Some(s) => s,
                None => break,
            };
        }
        Ok(())
    }

    /// Re-emits fired windows that late events updated.
    pub(crate) fn flush(&mut self, cx: &Ctx<'_>, out: &mut Collector) {
        for (start, key) in self.dirty.drain(..) {
            if let Some(slot) = self.windows.get_mut(&start).and_then(|m| m.get_mut(&key)) {
                slot.dirty = false;
                cx.emit(out, start, start + self.size, &key, &slot.accs);
            }
        }
    }

    /// The watermark moved from `prev` to `wm`: fire windows whose last
    /// instant it passed, then drop those past their allowed lateness.
    pub(crate) fn advance(
        &mut self,
        prev: Timestamp,
        wm: Timestamp,
        cx: &Ctx<'_>,
        out: &mut Collector,
    ) {
        // Fired now: prev < start + size - 1 <= wm.
        let lo = if prev == MIN_TIMESTAMP {
            MIN_TIMESTAMP
        } else {
            prev.saturating_sub(self.size).saturating_add(2)
        };
        let hi = wm.saturating_sub(self.size).saturating_add(1);
        if lo <= hi {
            for (&start, keys) in self.windows.range(lo..=hi) {
                for (key, slot) in keys {
                    cx.emit(out, start, start + self.size, key, &slot.accs);
                }
            }
        }
        while let Some(entry) = self.windows.first_entry() {
            if cleanup_time(*entry.key() + self.size, self.lateness) > wm {
                break;
            }
            entry.remove();
        }
    }
}

/// Folds `obs` into `slot`; returns whether the slot just became dirty
/// (updated after its window fired).
#[inline]
fn update(
    slot: &mut Slot,
    obs: &[Observation],
    fired: bool,
    cx: &Ctx<'_>,
) -> Result<bool, PlaceError> {
    fold(cx, &mut slot.accs, obs)?;
    let newly = fired && !slot.dirty;
    slot.dirty |= fired;
    Ok(newly)
}

impl Aligned {
    /// Writes the open windows by start, each window's keys in key order.
    /// Snapshots are taken between calls, when `flush` has cleared every
    /// dirty mark, so the marks are not written.
    pub(crate) fn encode(&self, enc: &mut Encoder) {
        debug_assert!(self.dirty.is_empty());
        enc.varint(self.windows.len() as u64);
        let mut keys: Vec<(u64, &Key, &Slot)> = Vec::new();
        for (&start, slots) in &self.windows {
            enc.zigzag(start);
            enc.varint(slots.len() as u64);
            keys.clear();
            keys.extend(slots.iter().map(|(k, s)| (0, k, s)));
            sort_by_key(&mut keys);
            for (_, key, slot) in &keys {
                debug_assert!(!slot.dirty);
                put_key(enc, key);
                put_accs(enc, &slot.accs);
            }
        }
    }

    /// Replaces the state with one written by [`Aligned::encode`].
    pub(crate) fn decode(
        &mut self,
        dec: &mut Decoder<'_>,
        r: &Reader<'_>,
    ) -> Result<(), SnapshotError> {
        let mut windows = BTreeMap::new();
        let n = dec.len(2)?;
        let mut prev: Option<Timestamp> = None;
        for _ in 0..n {
            let start = dec.zigzag()?;
            if prev.is_some_and(|p| p >= start) || start.checked_add(self.size).is_none() {
                return Err(SnapshotError::Inconsistent("window starts"));
            }
            prev = Some(start);
            let count = dec.len(1)?;
            let mut slots = FxHashMap::with_capacity_and_hasher(count, rustc_hash::FxBuildHasher);
            for _ in 0..count {
                let key = get_key(dec, r.key_len)?;
                let accs = get_accs(dec, r.like)?;
                if slots.insert(key, Slot { accs, dirty: false }).is_some() {
                    return Err(SnapshotError::Inconsistent(
                        "a key appears twice in a window",
                    ));
                }
            }
            windows.insert(start, slots);
        }
        self.windows = windows;
        self.dirty.clear();
        Ok(())
    }
}
