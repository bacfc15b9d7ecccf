//! Tumbling and sliding windows: window bounds are the same for every key,
//! so state is ordered by time and firing pops from the front.
//!
//! State is kept per **slice** (`gcd(size, every)` long): each event
//! updates the one slice that holds it, whatever the number of windows it
//! falls in, and a firing window merges its slices' accumulators per key.
//! A tumbling window is its own single slice. So a 10 s window sliding by
//! 2 s costs one update per event (not five) and five slices of state per
//! key (not five windows).
//!
//! Each slice's keys are split by key group, each group's map behind an
//! `Arc`: a checkpoint snapshot copies the pointers (microseconds, whatever
//! the state's size), and while it is being written out the first update
//! of a group copies only that group (copy-on-write).
//!
//! With a memory budget, shards beyond it go to the spill store (see
//! `spill`): a key not in memory is looked up there when its slice has
//! spilled entries, firing and snapshots read both.
//!
//! With `top`, a window emits only its best `n` keys by one aggregate,
//! ranked (see [`Top`]), instead of every key's result. A ranked sliding
//! window merges its complete slices ahead, between batches (see
//! `merge::Ahead`), so its firing merges one slice before it ranks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use eddy_core::operator::PIECE;
use eddy_core::prefetch::{each_ahead, AHEAD};
use eddy_core::state::{GroupRange, KeyGroup, TableSnapshot, KEY_GROUPS};
use eddy_core::time::MIN_TIMESTAMP;
use eddy_core::{Collector, Timestamp, Value};
use rustc_hash::{FxHashMap, FxHashSet};

use eddy_core::codec::{Decoder, Encoder};

use super::common::{
    cleanup_time, fire_time, fold, merge_all, merges_admit, Ctx, Key, Outcome, PlaceError,
};
use super::merge::{ahead, Ahead, Merge};
use super::snapshot::{
    self, get_accs, get_key, group_of, key_order, put_accs, put_key, sort_by_key, Reader,
    SnapshotError,
};
use super::spill::{self as spilling, Spiller};
use crate::aggregate::{value_order, Accumulator, Observation};

#[derive(Clone)]
pub(super) struct Slot {
    pub(super) accs: Vec<Accumulator>,
    /// The spill store has an (older) copy.
    on_disk: bool,
}

/// One key group's keys in one slice.
type Shard = FxHashMap<Key, Slot>;

/// Frees `slice`'s keys and accumulators, requesting the next entries'
/// blocks ahead (freeing reads each block; a slice holds many).
fn free(slice: Slice) {
    let mut entries: Vec<(Key, Slot)> = Vec::new();
    for shard in slice.shards {
        // A shard a snapshot still shares is freed with the snapshot.
        let Ok(mut shard) = Arc::try_unwrap(shard) else {
            continue;
        };
        entries.extend(shard.drain());
        let mut rest = entries.drain(..);
        loop {
            if let Some((key, slot)) = rest.as_slice().get(AHEAD) {
                ahead(&(key, slot));
            }
            let Some(entry) = rest.next() else { break };
            drop(entry);
        }
    }
}

/// One slice's keys in memory, by key group, and how many it has in the
/// spill store.
#[derive(Clone)]
pub(super) struct Slice {
    shards: Vec<Arc<Shard>>,
    on_disk: u64,
}

impl Slice {
    fn new() -> Slice {
        Slice {
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

    /// Group `g`'s keys.
    pub(super) fn group(&self, g: KeyGroup) -> &Shard {
        &self.shards[g.index()]
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

/// `top = { n, by, order }`: a window emits the `n` keys that rank best by
/// aggregate `by` (largest first, or smallest with `descending` false),
/// each with its `rank` from 1. Ties go to the smaller key (in the value
/// order), so the ranking never depends on arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Top {
    /// Keys kept per window.
    pub(crate) n: usize,
    /// Index of the ranking aggregate.
    pub(crate) by: usize,
    /// Largest first.
    pub(crate) descending: bool,
}

impl Top {
    /// Whether result `a` (its ranking value and key) ranks before `b`.
    fn before(&self, a: (&Value, &[Value]), b: (&Value, &[Value])) -> bool {
        let by_value = if self.descending {
            value_order(b.0, a.0)
        } else {
            value_order(a.0, b.0)
        };
        by_value.then_with(|| key_order(a.1, b.1)).is_lt()
    }
}

/// The best results of the window being fired, best first.
#[derive(Default)]
struct Ranking {
    best: Vec<(Value, Key, Vec<Accumulator>)>,
}

impl Ranking {
    fn offer(&mut self, top: &Top, key: &Key, accs: &[Accumulator]) {
        let Some(value) = accs.get(top.by).map(Accumulator::result) else {
            return;
        };
        if self.best.len() == top.n {
            let Some(last) = self.best.last() else { return };
            if !top.before((&value, key), (&last.0, &last.1)) {
                return;
            }
        }
        let at = self
            .best
            .partition_point(|(v, k, _)| top.before((v, k), (&value, key)));
        self.best.insert(at, (value, key.clone(), accs.to_vec()));
        self.best.truncate(top.n);
    }

    /// Emits the ranked results of window `[start, end)` and empties.
    fn emit(&mut self, cx: &Ctx<'_>, out: &mut Collector, start: Timestamp, end: Timestamp) {
        for (rank, (_, key, accs)) in self.best.drain(..).enumerate() {
            let mut result = cx.result(start, end, &key, &accs);
            result
                .fields
                .push(eddy_core::sym!("rank"), Value::Int(rank as i64 + 1));
            cx.push(out, result);
        }
    }
}

/// State of tumbling (`slide == size`) or sliding windows.
pub(crate) struct Aligned {
    size: i64,
    slide: i64,
    /// The slice length, `gcd(size, slide)` (`size` for tumbling windows).
    slice: i64,
    lateness: i64,
    /// Slice start → key → accumulators.
    slices: BTreeMap<Timestamp, Slice>,
    /// Fired windows (start, key) that late events updated since the last
    /// flush, each once, in the order first updated.
    dirty: Vec<(Timestamp, Key)>,
    marked: FxHashSet<(Timestamp, Key)>,
    /// Spilling beyond the memory budget, when there is one.
    spill: Option<Spiller>,
    /// Windows being fired and the next key group of each: a firing
    /// larger than a piece continues in `fire_pending`.
    firing: VecDeque<(Timestamp, u32)>,
    /// The watermark whose firing is under way: slices no window needs at
    /// it are dropped once it is done.
    firing_to: Option<Timestamp>,
    /// The firing's last results were handed out: the slices go next.
    fired_all: bool,
    /// Only the best keys of each window, when set.
    top: Option<Top>,
    /// With `top`, the open windows' complete slices merged ahead.
    ahead: Ahead,
    /// The overflow guard: the largest magnitude an aggregate that can
    /// overflow observed, and how many events they observed.
    largest: f64,
    observed: f64,
}

/// Greatest common divisor (both positive).
fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The magnitude of a numeric value.
fn magnitude(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(i.unsigned_abs() as f64),
        Value::Float(f) => Some(f.abs()),
        _ => None,
    }
}

impl Aligned {
    pub(crate) fn new(size: i64, slide: i64, lateness: i64, top: Option<Top>) -> Aligned {
        Aligned {
            size,
            slide,
            slice: gcd(size, slide),
            lateness,
            slices: BTreeMap::new(),
            dirty: Vec::new(),
            marked: FxHashSet::default(),
            spill: None,
            firing: VecDeque::new(),
            firing_to: None,
            fired_all: false,
            top,
            ahead: Ahead::default(),
            largest: 0.0,
            observed: 0.0,
        }
    }

    /// Keeps state beyond the budget in `spill`'s store.
    pub(crate) fn spill_to(&mut self, spill: Spiller) {
        self.spill = Some(spill);
    }

    /// The in-memory bytes of a map slot, for the spill's estimate.
    pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<(Key, Slot)>();

    /// Whether windows are made of several slices (sliding windows).
    pub(crate) fn sliced(&self) -> bool {
        self.slice != self.size
    }

    /// The start of the latest window containing `t`.
    fn last_start(&self, t: Timestamp) -> Option<Timestamp> {
        t.div_euclid(self.slide).checked_mul(self.slide)
    }

    /// The start of the earliest window containing `t`: the first start
    /// after `t - size` (`every` need not divide the size).
    fn first_start(&self, t: Timestamp) -> Timestamp {
        t.saturating_sub(self.size).div_euclid(self.slide) * self.slide + self.slide
    }

    /// Adds an event at `t` to the slice holding it, unless every window
    /// containing it is past its allowed lateness at watermark `wm`.
    pub(crate) fn add(
        &mut self,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
    ) -> Result<Outcome, PlaceError> {
        let range = || PlaceError::OutOfRange(t);
        let last = self.last_start(t).ok_or_else(range)?;
        let last_end = last.checked_add(self.size).ok_or_else(range)?;
        // The latest window containing `t` is the last to be dropped.
        if cleanup_time(last_end, self.lateness) <= wm {
            return Ok(Outcome::Late);
        }
        let at = t.div_euclid(self.slice) * self.slice;
        // Hashed once for the slice and the windows it is part of.
        let group = group_of(key);
        if cx.can_overflow() && self.sliced() && self.may_overflow(obs) {
            self.admits(t, at, (group, key), obs, wm, cx)?;
        }
        self.ahead.touch(at, group);
        let slice = self.slices.entry(at).or_insert_with(Slice::new);
        let spilled = slice.on_disk > 0;
        let keys = slice.shard_mut(group);
        // One hash lookup on the hot path; a new key is inserted after its
        // first update.
        match keys.get_mut(key) {
            Some(slot) => fold(cx, &mut slot.accs, obs)?,
            None => {
                let loaded = match &self.spill {
                    Some(s) if spilled => s.load(at, group, key),
                    _ => None,
                };
                let mut slot = Slot {
                    on_disk: loaded.is_some(),
                    accs: loaded.unwrap_or_else(|| cx.fresh()),
                };
                fold(cx, &mut slot.accs, obs)?;
                keys.insert(Key::from(key), slot);
                if let Some(s) = &mut self.spill {
                    s.resident += 1;
                }
            }
        }
        // Windows that fired already re-emit at the end of the batch.
        let first = self.first_start(t);
        if fire_time(first + self.size) <= wm {
            self.mark_fired(first, last, key, wm);
        }
        Ok(Outcome::Accepted)
    }

    /// Marks the windows from `first` to `last` (starts) that fired and
    /// are not past their lateness at `wm` as updated for `key`.
    fn mark_fired(&mut self, first: Timestamp, last: Timestamp, key: &[Value], wm: Timestamp) {
        let mut start = first;
        while start <= last {
            let end = start + self.size;
            if fire_time(end) <= wm && cleanup_time(end, self.lateness) > wm {
                let entry = (start, Key::from(key));
                if self.marked.insert(entry.clone()) {
                    self.dirty.push(entry);
                }
            }
            start += self.slide;
        }
    }

    /// Notes `obs` in the overflow guard; whether some window could now
    /// hold a float result beyond the finite range. The bound (every
    /// observation as large as the largest seen, squared for variances)
    /// is far from the range for any real data, so the exact check below
    /// almost never runs; when it does, the results are the same.
    fn may_overflow(&mut self, obs: &[Observation]) -> bool {
        for o in obs {
            if let Some(m) = magnitude(&o.value) {
                self.largest = self.largest.max(m);
            }
        }
        self.observed += 1.0;
        let bound = self.observed * self.largest.max(1.0) * self.largest.max(1.0) * 4.0;
        // NaN-safe: anything not surely in range counts as a risk.
        bound.partial_cmp(&1e300) != Some(std::cmp::Ordering::Less)
    }

    /// Whether every window of `key` the event (in slice `at`) joins that
    /// is not past its lateness keeps finite results: its slices merged in
    /// order as a firing merges them, the event's own slice with the event.
    fn admits(
        &self,
        t: Timestamp,
        at: Timestamp,
        (group, key): (KeyGroup, &[Value]),
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
    ) -> Result<(), PlaceError> {
        let mut own = self.slot(at, group, key).unwrap_or_else(|| cx.fresh());
        fold(cx, &mut own, obs)?;
        let mut start = self.first_start(t);
        while start <= t {
            let end = start + self.size;
            if cleanup_time(end, self.lateness) > wm {
                let mut parts: Vec<Vec<Accumulator>> = Vec::new();
                let mut slice = start;
                while slice < end {
                    if slice == at {
                        parts.push(own.clone());
                    } else if let Some(accs) = self.slot(slice, group, key) {
                        parts.push(accs);
                    }
                    slice += self.slice;
                }
                // As a firing merges them: the first copied, the rest merged.
                if let Some((first, rest)) = parts.split_first() {
                    let rest: Vec<&[Accumulator]> = rest.iter().map(Vec::as_slice).collect();
                    merges_admit(cx, first, &rest, &[])?;
                }
            }
            start += self.slide;
        }
        Ok(())
    }

    /// The accumulators of `key` in slice `at`, from memory or the store.
    fn slot(&self, at: Timestamp, g: KeyGroup, key: &[Value]) -> Option<Vec<Accumulator>> {
        let slice = self.slices.get(&at)?;
        if let Some(slot) = slice.get(g, key) {
            return Some(slot.accs.clone());
        }
        match &self.spill {
            Some(s) if slice.on_disk > 0 => s.load(at, g, key),
            _ => None,
        }
    }

    /// The result of window `start` for `key`: its slices merged in order.
    fn merged(&self, start: Timestamp, key: &[Value]) -> Option<Vec<Accumulator>> {
        let g = group_of(key);
        if !self.sliced() {
            return self.slot(start, g, key);
        }
        let mut accs: Option<Vec<Accumulator>> = None;
        for (&at, _) in self.slices.range(start..start + self.size) {
            if let Some(part) = self.slot(at, g, key) {
                match &mut accs {
                    Some(accs) => merge_all(accs, &part),
                    None => accs = Some(part),
                }
            }
        }
        accs
    }

    /// Calls `f` with each key's result in window `start` for key group
    /// `g`: a tumbling window's slot as it is, a sliding window's slices
    /// merged in order.
    fn each_result(
        &self,
        start: Timestamp,
        g: KeyGroup,
        cx: &Ctx<'_>,
        f: &mut dyn FnMut(&Key, &[Accumulator]),
    ) {
        if !self.sliced() {
            for (&at, slice) in self.slices.range(start..start + self.size) {
                each_ahead(slice.shards[g.index()].iter(), ahead, |(key, slot)| {
                    f(key, &slot.accs)
                });
                if let (Some(s), true) = (&self.spill, slice.on_disk > 0) {
                    // Spilled keys not in memory (memory holds the newer copy).
                    s.scan_group(at, g, &mut |g, key, accs| {
                        if slice.get(g, &key).is_none() {
                            f(&key, &accs);
                        }
                    });
                }
            }
            return;
        }
        let mut spilled = Vec::new();
        let mut merge = Merge::new(cx.width());
        self.merge_group(start, g, &mut spilled, &mut merge);
        for (key, accs) in merge.results() {
            f(key, accs);
        }
    }

    /// Merges the slices of window `start` for the keys of group `g` into
    /// `merge`, slice by slice in order. Spilled entries memory does not
    /// hold are read into `spilled` first, so the merge can borrow them.
    fn merge_group<'k>(
        &'k self,
        start: Timestamp,
        g: KeyGroup,
        spilled: &'k mut Vec<(Timestamp, Key, Vec<Accumulator>)>,
        merge: &mut Merge<&'k Key>,
    ) {
        let window = start..start + self.size;
        let Some(s) = &self.spill else {
            merge.add_slices(&self.slices, g, window);
            return;
        };
        for (&at, slice) in self.slices.range(window.clone()) {
            if slice.on_disk > 0 {
                s.scan_group(at, g, &mut |g, key, accs| {
                    if slice.get(g, &key).is_none() {
                        spilled.push((at, key, accs));
                    }
                });
            }
        }
        let spilled: &'k [(Timestamp, Key, Vec<Accumulator>)] = spilled;
        for (&at, _) in self.slices.range(window) {
            merge.add_slices(&self.slices, g, at..at + 1);
            for (_, key, part) in spilled.iter().filter(|(a, _, _)| *a == at) {
                merge.add(key, part);
            }
        }
    }

    /// Re-emits fired windows that late events updated: the key's result,
    /// or with `top` the window's whole ranking.
    pub(crate) fn flush(&mut self, cx: &Ctx<'_>, out: &mut Collector) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        self.marked.clear();
        if let Some(top) = self.top {
            let mut done = BTreeSet::new();
            for (start, _) in dirty {
                if done.insert(start) {
                    self.rank(start, &top, cx, out);
                }
            }
            return;
        }
        for (start, key) in dirty {
            if let Some(accs) = self.merged(start, &key) {
                cx.emit(out, start, start + self.size, &key, &accs);
            }
        }
    }

    /// Ranks every key of window `start` and emits the best.
    fn rank(&mut self, start: Timestamp, top: &Top, cx: &Ctx<'_>, out: &mut Collector) {
        let mut ranking = Ranking::default();
        let end = start + self.size;
        let mut ahead = std::mem::take(&mut self.ahead);
        for g in KeyGroup::all() {
            match ahead.finished(&self.slices, start, end, g) {
                Some(merge) => {
                    for (key, accs) in merge.results() {
                        ranking.offer(top, key, accs);
                    }
                }
                None => {
                    self.each_result(start, g, cx, &mut |key, accs| ranking.offer(top, key, accs))
                }
            }
        }
        ahead.fired(start);
        self.ahead = ahead;
        ranking.emit(cx, out, start, end);
    }

    /// After a batch of `events`, at watermark `wm`: merges some of the
    /// open windows' complete slices ahead of their firing (a ranked
    /// sliding window without a spill store; see [`Ahead`]). Up to
    /// `size / every` entries per event, so the merges keep up even when
    /// every event brings a new key.
    pub(crate) fn merge_ahead(&mut self, wm: Timestamp, width: usize, events: usize) {
        if events == 0
            || self.top.is_none()
            || !self.sliced()
            || self.spill.is_some()
            || !self.firing.is_empty()
        {
            return;
        }
        // The first window not fired at `wm` (fired: start + size - 1 <= wm)
        // and the end of the slices complete at `wm`.
        let (Some(fired_to), Some(complete)) = (
            wm.checked_sub(self.size - 1),
            wm.checked_add(1)
                .and_then(|t| t.div_euclid(self.slice).checked_mul(self.slice)),
        ) else {
            return;
        };
        let Some(first) = self
            .last_start(fired_to)
            .and_then(|s| s.checked_add(self.slide))
        else {
            return;
        };
        let budget = events.saturating_mul((self.size / self.slide) as usize);
        self.ahead.step(
            &self.slices,
            width,
            first,
            (self.size, self.slide),
            complete,
            budget,
        );
    }

    /// The watermark moved from `prev` to `wm`: fire windows whose last
    /// instant it passed, then drop the slices no window needs any more.
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
            if self.sliced() {
                // The windows that hold some slice: a window `[s, s + size)`
                // holds slice `p` when `s <= p < s + size`.
                let mut starts = BTreeSet::new();
                for &at in self
                    .slices
                    .range(lo..hi.saturating_add(self.size))
                    .map(|(s, _)| s)
                {
                    let mut start = at.div_euclid(self.slide) * self.slide;
                    while start > at - self.size {
                        if (lo..=hi).contains(&start) {
                            starts.insert(start);
                        }
                        start -= self.slide;
                    }
                }
                self.firing.extend(starts.into_iter().map(|s| (s, 0)));
            } else {
                self.firing
                    .extend(self.slices.range(lo..=hi).map(|(&start, _)| (start, 0)));
            }
        }
        self.firing_to = Some(wm);
        self.fire_pending(cx, out);
    }

    /// Emits the windows being fired, a key group at a time, until `out`
    /// holds a piece's worth ([`PIECE`]); then drops the slices no window
    /// needs. Returns whether some remain to fire. With `top` a window is
    /// ranked whole in one call (its output is `n` results).
    pub(crate) fn fire_pending(&mut self, cx: &Ctx<'_>, out: &mut Collector) -> bool {
        while let Some(&(start, next)) = self.firing.front() {
            if let Some(top) = self.top {
                self.rank(start, &top, cx, out);
                self.firing.pop_front();
                continue;
            }
            let mut group = next;
            while let Some(g) = KeyGroup::new(group) {
                if out.len() >= PIECE {
                    if let Some(f) = self.firing.front_mut() {
                        f.1 = group;
                    }
                    return true;
                }
                let end = start + self.size;
                self.each_result(start, g, cx, &mut |key, accs| {
                    cx.emit(out, start, end, key, accs);
                });
                group += 1;
            }
            self.firing.pop_front();
        }
        if self.firing_to.is_some() && !self.fired_all && !out.is_empty() {
            // The last results go out before the slices are freed (a
            // slice of many keys takes a while).
            self.fired_all = true;
            return true;
        }
        self.fired_all = false;
        if let Some(wm) = self.firing_to.take() {
            self.drop_expired(wm);
        }
        false
    }

    /// Drops the slices whose every window is past its allowed lateness at
    /// watermark `wm` (the latest window holding a slice is dropped last).
    fn drop_expired(&mut self, wm: Timestamp) {
        while let Some(entry) = self.slices.first_entry() {
            let at = *entry.key();
            let last = at.div_euclid(self.slide) * self.slide;
            if cleanup_time(last + self.size, self.lateness) > wm {
                break;
            }
            let slice = entry.remove();
            if let Some(s) = &mut self.spill {
                s.resident = s.resident.saturating_sub(slice.len() as u64);
                if slice.on_disk > 0 {
                    s.remove(at, None);
                }
            }
            free(slice);
        }
    }

    /// Moves key-group shards to the spill store while memory is over the
    /// budget, round the key groups, every slice's shard of a group at
    /// once. Called between batches, when nothing is waiting to re-emit.
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
            for (&start, slice) in self.slices.iter_mut() {
                let shard = std::mem::take(&mut slice.shards[g.index()]);
                let entries = shard
                    .iter()
                    .map(|(k, slot)| (k, &slot.accs[..], slot.on_disk));
                slice.on_disk += s.evict(start, g, entries);
            }
        }
    }
}

impl Aligned {
    /// The open slices' state as it is now; later updates do not change
    /// it (copy-on-write). Taken between calls, when `flush` has re-emitted
    /// what late events updated, so nothing is waiting.
    pub(crate) fn snapshot(&self, header: snapshot::Header) -> Box<dyn TableSnapshot> {
        debug_assert!(self.dirty.is_empty());
        Box::new(Frozen {
            header,
            // A slice may be left without keys (its only event was
            // refused); a restored one would not exist, so it is not written.
            slices: self
                .slices
                .iter()
                .filter(|(_, w)| w.len() > 0 || w.on_disk > 0)
                .map(|(&start, w)| (start, w.clone()))
                .collect(),
            spill: self.spill.as_ref().map(Spiller::freeze),
            guard: self.sliced().then_some((self.largest, self.observed)),
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
        self.slices.clear();
        self.ahead.reset();
        self.dirty.clear();
        self.marked.clear();
        if let Some(s) = &mut self.spill {
            s.clear();
        }
        let mut restored = 0;
        let n = dec.len(2)?;
        let mut prev: Option<Timestamp> = None;
        for _ in 0..n {
            let start = dec.zigzag()?;
            if prev.is_some_and(|p| p >= start) || start.checked_add(self.size).is_none() {
                return Err(SnapshotError::Inconsistent("slice starts"));
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
                    on_disk: false,
                };
                let slice = self.slices.entry(start).or_insert_with(Slice::new);
                if slice.shard_mut(g).insert(key, slot).is_some() {
                    return Err(SnapshotError::Inconsistent(
                        "a key appears twice in a slice",
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
        if self.sliced() {
            // The overflow guard covers every event in the state.
            self.largest = dec.f64()?;
            self.observed = dec.f64()?;
        }
        self.shed();
        Ok(restored)
    }

    /// Drops the keys in `groups`.
    pub(crate) fn clear(&mut self, groups: &GroupRange) {
        self.ahead.reset();
        for (&start, slice) in self.slices.iter_mut() {
            for g in KeyGroup::all().filter(|g| groups.contains(*g)) {
                let shard = std::mem::take(&mut slice.shards[g.index()]);
                if let Some(s) = &mut self.spill {
                    s.resident = s.resident.saturating_sub(shard.len() as u64);
                    if slice.on_disk > 0 {
                        s.remove(start, Some(g));
                    }
                }
            }
            if let Some(s) = &self.spill {
                let mut left = 0;
                s.scan(start, &mut |_, _, _| left += 1);
                slice.on_disk = left;
            }
        }
        self.slices.retain(|_, w| w.len() > 0 || w.on_disk > 0);
    }

    /// Stored (slice, key) entries, in memory or spilled.
    pub(crate) fn stored(&self) -> usize {
        self.slices.values().map(|w| w.keys() as usize).sum()
    }
}

/// Slices frozen at a barrier: shared shards and a view of the spill
/// store, written out later.
struct Frozen {
    header: snapshot::Header,
    slices: Vec<(Timestamp, Slice)>,
    spill: Option<spilling::Frozen>,
    /// Sliding windows: the overflow guard (largest magnitude, events).
    guard: Option<(f64, f64)>,
}

impl TableSnapshot for Frozen {
    /// Writes the open slices by start, each slice's keys in key order,
    /// then (sliding windows) the overflow guard.
    fn write(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new();
        self.header.begin(&mut enc);
        enc.varint(self.slices.len() as u64);
        for (start, slice) in &self.slices {
            enc.zigzag(*start);
            // Spilled keys not in memory, read back for the write-out.
            let mut spilled: Vec<(Key, Vec<Accumulator>)> = Vec::new();
            if let (Some(view), true) = (&self.spill, slice.on_disk > 0) {
                view.scan(*start, &mut |g, key, accs| {
                    if slice.get(g, &key).is_none() {
                        spilled.push((key, accs));
                    }
                });
            }
            let mut keys: Vec<(u64, &Key, &[Accumulator])> = slice
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
        if let Some((largest, observed)) = self.guard {
            enc.f64(largest);
            enc.f64(observed);
        }
        out.extend_from_slice(&snapshot::seal(enc));
    }

    fn len(&self) -> usize {
        self.slices.iter().map(|(_, w)| w.keys() as usize).sum()
    }
}
