//! Tumbling and sliding windows: window bounds are the same for every key,
//! so state is ordered by window start and firing pops from the front.
//!
//! Each window's keys are split by key group, each group's map behind an
//! `Arc`: a checkpoint snapshot copies the pointers (microseconds, whatever
//! the state's size), and while it is being written out the first update
//! of a group copies only that group (copy-on-write).
//!
//! With a memory budget, shards beyond it go to the spill store (see
//! `spill`): a key not in memory is looked up there when its window has
//! spilled entries, firing and snapshots read both.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use eddy_core::operator::PIECE;
use eddy_core::state::{GroupRange, KeyGroup, TableSnapshot, KEY_GROUPS};
use eddy_core::time::MIN_TIMESTAMP;
use eddy_core::{Collector, Timestamp, Value};
use rustc_hash::FxHashMap;

use eddy_core::codec::{Decoder, Encoder};

use super::common::{cleanup_time, fire_time, fold, Ctx, Key, Outcome, PlaceError};
use super::snapshot::{
    self, get_accs, get_key, group_of, put_accs, put_key, sort_by_key, Reader, SnapshotError,
};
use super::spill::{self as spilling, Spiller};
use crate::aggregate::{admit_all, Accumulator, Observation};

#[derive(Clone)]
struct Slot {
    accs: Vec<Accumulator>,
    /// Updated after the window fired; re-emitted at the end of the batch.
    dirty: bool,
    /// The spill store has an (older) copy.
    on_disk: bool,
}

/// One key group's keys in one window.
type Shard = FxHashMap<Key, Slot>;

/// One window's keys in memory, by key group, and how many it has in the
/// spill store.
#[derive(Clone)]
struct Window {
    shards: Vec<Arc<Shard>>,
    on_disk: u64,
}

impl Window {
    fn new() -> Window {
        Window {
            shards: (0..KEY_GROUPS).map(|_| Arc::default()).collect(),
            on_disk: 0,
        }
    }

    /// Keys in memory or in the spill store (each once).
    fn keys(&self) -> u64 {
        if self.on_disk == 0 {
            return self.len() as u64;
        }
        let only_here = self.iter().filter(|(_, s)| !s.on_disk).count();
        only_here as u64 + self.on_disk
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
    /// Spilling beyond the memory budget, when there is one.
    spill: Option<Spiller>,
    /// Windows being fired and the next key group of each: a firing
    /// larger than a piece continues in `fire_pending`.
    firing: VecDeque<(Timestamp, u32)>,
    /// The watermark whose firing is under way: windows past their
    /// lateness at it are dropped once it is done.
    firing_to: Option<Timestamp>,
}

impl Aligned {
    pub(crate) fn new(size: i64, slide: i64, lateness: i64) -> Aligned {
        Aligned {
            size,
            slide,
            lateness,
            windows: BTreeMap::new(),
            dirty: Vec::new(),
            spill: None,
            firing: VecDeque::new(),
            firing_to: None,
        }
    }

    /// Keeps state beyond the budget in `spill`'s store.
    pub(crate) fn spill_to(&mut self, spill: Spiller) {
        self.spill = Some(spill);
    }

    /// The in-memory bytes of a map slot, for the spill's estimate.
    pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<(Key, Slot)>();

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
                let window = self.windows.entry(start).or_insert_with(Window::new);
                let spilled = window.on_disk > 0;
                let keys = window.shard_mut(group);
                // One hash lookup on the hot path; a new key is inserted
                // after its first update.
                let newly_dirty = match keys.get_mut(key) {
                    Some(slot) => update(slot, obs, fired, cx)?,
                    None => {
                        let loaded = match &self.spill {
                            Some(s) if spilled => s.load(start, group, key),
                            _ => None,
                        };
                        let mut slot = Slot {
                            on_disk: loaded.is_some(),
                            accs: loaded.unwrap_or_else(|| cx.fresh()),
                            dirty: false,
                        };
                        let d = update(&mut slot, obs, fired, cx)?;
                        keys.insert(Key::from(key), slot);
                        if let Some(s) = &mut self.spill {
                            s.resident += 1;
                        }
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
                if let Some(window) = self.windows.get(&start) {
                    if let Some(slot) = window.get(group, key) {
                        admit_all(&slot.accs, obs).map_err(|e| cx.refused(e))?;
                    } else if let (Some(s), true) = (&self.spill, window.on_disk > 0) {
                        if let Some(accs) = s.load(start, group, key) {
                            admit_all(&accs, obs).map_err(|e| cx.refused(e))?;
                        }
                    }
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
            self.firing
                .extend(self.windows.range(lo..=hi).map(|(&start, _)| (start, 0)));
        }
        self.firing_to = Some(wm);
        self.fire_pending(cx, out);
    }

    /// Emits the windows being fired, a key group at a time, until `out`
    /// holds a piece's worth ([`PIECE`]); then drops the windows past
    /// their lateness. Returns whether some remain to fire.
    pub(crate) fn fire_pending(&mut self, cx: &Ctx<'_>, out: &mut Collector) -> bool {
        while let Some((start, next)) = self.firing.front_mut() {
            let Some(window) = self.windows.get(start) else {
                self.firing.pop_front();
                continue;
            };
            while let Some(g) = KeyGroup::new(*next) {
                if out.len() >= PIECE {
                    return true;
                }
                for (key, slot) in window.shards[g.index()].iter() {
                    cx.emit(out, *start, *start + self.size, key, &slot.accs);
                }
                if let (Some(s), true) = (&self.spill, window.on_disk > 0) {
                    // Spilled keys not in memory (memory holds the newer copy).
                    s.scan_group(*start, g, &mut |g, key, accs| {
                        if window.get(g, &key).is_none() {
                            cx.emit(out, *start, *start + self.size, &key, &accs);
                        }
                    });
                }
                *next += 1;
            }
            self.firing.pop_front();
        }
        if let Some(wm) = self.firing_to.take() {
            self.drop_expired(wm);
        }
        false
    }

    /// Drops the windows past their allowed lateness at watermark `wm`.
    fn drop_expired(&mut self, wm: Timestamp) {
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            if cleanup_time(start + self.size, self.lateness) > wm {
                break;
            }
            let window = entry.remove();
            if let Some(s) = &mut self.spill {
                s.resident = s.resident.saturating_sub(window.len() as u64);
                if window.on_disk > 0 {
                    s.remove(start, None);
                }
            }
        }
    }

    /// Moves key-group shards to the spill store while memory is over the
    /// budget, round the key groups, every window's shard of a group at
    /// once. Called between batches, when no slot is dirty.
    pub(crate) fn shed(&mut self) {
        let Some(s) = &mut self.spill else { return };
        if !s.over() {
            return;
        }
        debug_assert!(self.dirty.is_empty());
        for _ in 0..KEY_GROUPS {
            if s.relieved() {
                break;
            }
            let g = s.next_group();
            for (&start, window) in self.windows.iter_mut() {
                let shard = std::mem::take(&mut window.shards[g.index()]);
                let entries = shard
                    .iter()
                    .map(|(k, slot)| (k, &slot.accs[..], slot.on_disk));
                window.on_disk += s.evict(start, g, entries);
            }
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
                .filter(|(_, w)| w.len() > 0 || w.on_disk > 0)
                .map(|(&start, w)| (start, w.clone()))
                .collect(),
            spill: self.spill.as_ref().map(Spiller::freeze),
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
        self.windows.clear();
        self.dirty.clear();
        if let Some(s) = &mut self.spill {
            s.clear();
        }
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
            for _ in 0..count {
                let key = get_key(dec, r.key_len)?;
                let accs = get_accs(dec, r.like)?;
                let g = group_of(&key);
                if !groups.contains(g) {
                    continue;
                }
                let slot = Slot {
                    accs,
                    dirty: false,
                    on_disk: false,
                };
                let window = self.windows.entry(start).or_insert_with(Window::new);
                if window.shard_mut(g).insert(key, slot).is_some() {
                    return Err(SnapshotError::Inconsistent(
                        "a key appears twice in a window",
                    ));
                }
                restored += 1;
                if let Some(s) = &mut self.spill {
                    s.resident += 1;
                    // Spilled as it is read, so a restore stays in budget.
                    if restored % 4096 == 0 {
                        self.shed();
                    }
                }
            }
        }
        self.shed();
        Ok(restored)
    }

    /// Drops the keys in `groups`.
    pub(crate) fn clear(&mut self, groups: &GroupRange) {
        for (&start, window) in self.windows.iter_mut() {
            for g in KeyGroup::all().filter(|g| groups.contains(*g)) {
                let shard = std::mem::take(&mut window.shards[g.index()]);
                if let Some(s) = &mut self.spill {
                    s.resident = s.resident.saturating_sub(shard.len() as u64);
                    if window.on_disk > 0 {
                        s.remove(start, Some(g));
                    }
                }
            }
            if let Some(s) = &self.spill {
                let mut left = 0;
                s.scan(start, &mut |_, _, _| left += 1);
                window.on_disk = left;
            }
        }
        self.windows.retain(|_, w| w.len() > 0 || w.on_disk > 0);
    }

    /// Stored (window, key) entries, in memory or spilled.
    pub(crate) fn stored(&self) -> usize {
        self.windows.values().map(|w| w.keys() as usize).sum()
    }
}

/// Aligned windows frozen at a barrier: shared shards and a view of the
/// spill store, written out later.
struct Frozen {
    header: snapshot::Header,
    windows: Vec<(Timestamp, Window)>,
    spill: Option<spilling::Frozen>,
}

impl TableSnapshot for Frozen {
    /// Writes the open windows by start, each window's keys in key order.
    fn write(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new();
        self.header.begin(&mut enc);
        enc.varint(self.windows.len() as u64);
        for (start, window) in &self.windows {
            enc.zigzag(*start);
            // Spilled keys not in memory, read back for the write-out.
            let mut spilled: Vec<(Key, Vec<Accumulator>)> = Vec::new();
            if let (Some(view), true) = (&self.spill, window.on_disk > 0) {
                view.scan(*start, &mut |g, key, accs| {
                    if window.get(g, &key).is_none() {
                        spilled.push((key, accs));
                    }
                });
            }
            let mut keys: Vec<(u64, &Key, &[Accumulator])> = window
                .iter()
                .map(|(k, s)| (0, k, &s.accs[..]))
                .chain(spilled.iter().map(|(k, a)| (0, k, &a[..])))
                .collect();
            enc.varint(keys.len() as u64);
            sort_by_key(&mut keys);
            for (_, key, accs) in &keys {
                put_key(&mut enc, key);
                put_accs(&mut enc, accs);
            }
        }
        out.extend_from_slice(&snapshot::seal(enc));
    }

    fn len(&self) -> usize {
        self.windows.iter().map(|(_, w)| w.keys() as usize).sum()
    }
}
