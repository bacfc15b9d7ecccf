//! Tumbling and sliding windows: window bounds are the same for every key,
//! so state is ordered by window start and firing pops from the front.
//!
//! Each window's keys are split by key group, each group's map behind an
//! `Arc`: a checkpoint snapshot copies the pointers (microseconds, whatever
//! the state's size), and while it is being written out the first update
//! of a group copies only that group (copy-on-write).

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_core::state::{GroupRange, KeyGroup, TableSnapshot, KEY_GROUPS};
use eddy_core::time::MIN_TIMESTAMP;
use eddy_core::{Collector, Timestamp, Value};
use rustc_hash::FxHashMap;

use eddy_core::codec::{Decoder, Encoder};

use super::common::{cleanup_time, fire_time, fold, Ctx, Key, Outcome, PlaceError};
use super::snapshot::{
    self, get_accs, get_key, group_of, put_accs, put_key, sort_by_key, Reader, SnapshotError,
};
use crate::aggregate::{admit_all, Accumulator, Observation};

#[derive(Clone)]
struct Slot {
    accs: Vec<Accumulator>,
    /// Updated after the window fired; re-emitted at the end of the batch.
    dirty: bool,
}

/// One key group's keys in one window.
type Shard = FxHashMap<Key, Slot>;

/// One window's keys, by key group.
#[derive(Clone)]
struct Window {
    shards: Vec<Arc<Shard>>,
}

impl Window {
    fn new() -> Window {
        Window {
            shards: (0..KEY_GROUPS).map(|_| Arc::default()).collect(),
        }
    }

    fn get(&self, g: KeyGroup, key: &[Value]) -> Option<&Slot> {
        self.shards[g.index()].get(key)
    }

    /// The shard of `key`'s group, for writing (copied first if a snapshot
    /// still shares it).
    fn shard_mut(&mut self, g: KeyGroup) -> &mut Shard {
        Arc::make_mut(&mut self.shards[g.index()])
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (&Key, &Slot)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

/// State of tumbling (`slide == size`) or sliding windows.
pub(crate) struct Aligned {
    size: i64,
    slide: i64,
    lateness: i64,
    /// Window start → key → accumulators.
    windows: BTreeMap<Timestamp, Window>,
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
        // Hashed once for all the windows the event falls in.
        let group = group_of(key);
        if cx.can_overflow() && self.size != self.slide {
            // An event in several windows updates all of them or none.
            self.admits(start, t, (group, key), obs, wm, cx)?;
        }
        // Windows [start, start + size) containing t, latest first.
        while start > t.saturating_sub(self.size) {
            let end = start + self.size;
            if cleanup_time(end, self.lateness) > wm {
                outcome = Outcome::Accepted;
                let fired = fire_time(end) <= wm;
                let keys = self
                    .windows
                    .entry(start)
                    .or_insert_with(Window::new)
                    .shard_mut(group);
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
        (group, key): (KeyGroup, &[Value]),
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
    ) -> Result<(), PlaceError> {
        while start > t.saturating_sub(self.size) {
            if cleanup_time(start + self.size, self.lateness) > wm {
                if let Some(slot) = self.windows.get(&start).and_then(|w| w.get(group, key)) {
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
            let slot = self
                .windows
                .get_mut(&start)
                .and_then(|w| w.shard_mut(group_of(&key)).get_mut(&key));
            if let Some(slot) = slot {
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
            for (&start, window) in self.windows.range(lo..=hi) {
                for (key, slot) in window.iter() {
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
    /// The open windows' state as it is now; later updates do not change
    /// it (copy-on-write). Taken between calls, when `flush` has cleared
    /// every dirty mark, so the marks are not written.
    pub(crate) fn snapshot(&self, header: snapshot::Header) -> Box<dyn TableSnapshot> {
        debug_assert!(self.dirty.is_empty());
        Box::new(Frozen {
            header,
            // A window may be left without keys (its only event was
            // refused); a restored one would not exist, so it is not written.
            windows: self
                .windows
                .iter()
                .filter(|(_, w)| w.len() > 0)
                .map(|(&start, w)| (start, w.clone()))
                .collect(),
        })
    }

    /// Replaces the state with the keys in `groups` of one written by a
    /// [`Frozen`] snapshot.
    pub(crate) fn decode(
        &mut self,
        dec: &mut Decoder<'_>,
        r: &Reader<'_>,
        groups: &GroupRange,
    ) -> Result<usize, SnapshotError> {
        let mut windows = BTreeMap::new();
        let mut restored = 0;
        let n = dec.len(2)?;
        let mut prev: Option<Timestamp> = None;
        for _ in 0..n {
            let start = dec.zigzag()?;
            if prev.is_some_and(|p| p >= start) || start.checked_add(self.size).is_none() {
                return Err(SnapshotError::Inconsistent("window starts"));
            }
            prev = Some(start);
            let count = dec.len(1)?;
            let mut window = Window::new();
            for _ in 0..count {
                let key = get_key(dec, r.key_len)?;
                let accs = get_accs(dec, r.like)?;
                let g = group_of(&key);
                if !groups.contains(g) {
                    continue;
                }
                let slot = Slot { accs, dirty: false };
                if window.shard_mut(g).insert(key, slot).is_some() {
                    return Err(SnapshotError::Inconsistent(
                        "a key appears twice in a window",
                    ));
                }
                restored += 1;
            }
            if window.len() > 0 {
                windows.insert(start, window);
            }
        }
        self.windows = windows;
        self.dirty.clear();
        Ok(restored)
    }

    /// Drops the keys in `groups`.
    pub(crate) fn clear(&mut self, groups: &GroupRange) {
        for window in self.windows.values_mut() {
            for g in KeyGroup::all().filter(|g| groups.contains(*g)) {
                window.shards[g.index()] = Arc::default();
            }
        }
        self.windows.retain(|_, w| w.len() > 0);
    }

    /// Stored (window, key) entries.
    pub(crate) fn stored(&self) -> usize {
        self.windows.values().map(Window::len).sum()
    }
}

/// Aligned windows frozen at a barrier: shared shards, written out later.
struct Frozen {
    header: snapshot::Header,
    windows: Vec<(Timestamp, Window)>,
}

impl TableSnapshot for Frozen {
    /// Writes the open windows by start, each window's keys in key order.
    fn write(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new();
        self.header.begin(&mut enc);
        enc.varint(self.windows.len() as u64);
        let mut keys: Vec<(u64, &Key, &Slot)> = Vec::new();
        for (start, window) in &self.windows {
            enc.zigzag(*start);
            keys.clear();
            keys.extend(window.iter().map(|(k, s)| (0, k, s)));
            enc.varint(keys.len() as u64);
            sort_by_key(&mut keys);
            for (_, key, slot) in &keys {
                put_key(&mut enc, key);
                put_accs(&mut enc, &slot.accs);
            }
        }
        out.extend_from_slice(&snapshot::seal(enc));
    }

    fn len(&self) -> usize {
        self.windows.iter().map(|(_, w)| w.len()).sum()
    }
}
