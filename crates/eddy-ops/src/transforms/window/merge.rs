//! Merging a sliding window's slices, one key group at a time: for a
//! firing (keys borrowed from the slices), and, for a ranked window, ahead
//! of its firing between batches (see [`Ahead`]).
//!
//! Every merge takes a key's parts in slice order, the first copied and
//! the others merged into it, so a result never depends on when or in how
//! many steps its slices were merged.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use eddy_core::prefetch::{each_ahead, prefetch};
use eddy_core::state::{KeyGroup, KEY_GROUPS};
use eddy_core::{Timestamp, Value};

use super::aligned::{Slice, Slot};
use super::common::{merge_all, Key};
use crate::aggregate::Accumulator;

/// How a [`Merge`] holds its keys: borrowed from the slices for the
/// length of a firing, or owned when the merge is kept between batches.
pub(super) trait MergeKey<'k> {
    /// The merge's hold on `key`, taken when the key is first merged.
    fn hold(key: &'k Key) -> Self;
    /// The key's values.
    fn values(&self) -> &[Value];
}

impl<'k> MergeKey<'k> for &'k Key {
    fn hold(key: &'k Key) -> Self {
        key
    }
    fn values(&self) -> &[Value] {
        self
    }
}

impl MergeKey<'_> for Key {
    fn hold(key: &Key) -> Self {
        Arc::clone(key)
    }
    fn values(&self) -> &[Value] {
        self
    }
}

/// Keys with their parts merged, in one flat arena of `width`
/// accumulators per key, in the order keys were first merged.
pub(super) struct Merge<K> {
    width: usize,
    /// Index into `keys`, by the key's hash.
    table: hashbrown::HashTable<u32>,
    keys: Vec<K>,
    accs: Vec<Accumulator>,
}

impl<'k, K: MergeKey<'k>> Merge<K> {
    pub(super) fn new(width: usize) -> Merge<K> {
        Merge {
            width,
            table: hashbrown::HashTable::new(),
            keys: Vec::new(),
            accs: Vec::new(),
        }
    }

    /// Empties the merge, keeping its memory.
    fn clear(&mut self) {
        self.table.clear();
        self.keys.clear();
        self.accs.clear();
    }

    /// Makes room for `more` keys.
    fn reserve(&mut self, more: usize) {
        let keys = &self.keys;
        self.table
            .reserve(more, |&i| hash_of(keys[i as usize].values()));
        self.keys.reserve(more);
        self.accs.reserve(more * self.width);
    }

    /// Makes room for `more` keys beyond those held, its memory mapped in
    /// now: the first write to a fresh page faults, and a firing that
    /// filled the room would take the faults (a thousand of them, 5–10 ms,
    /// the first time a window of 60,000 keys fires).
    fn prepare(&mut self, more: usize) {
        let room = |capacity: usize, len: usize| capacity - len >= more;
        if room(self.keys.capacity(), self.keys.len())
            && room(self.table.capacity(), self.table.len())
        {
            return;
        }
        self.reserve(more);
        map_spare(&mut self.keys);
        map_spare(&mut self.accs);
    }

    /// Merges `part` into `key`'s accumulators (a copy if it is new).
    pub(super) fn add(&mut self, key: &'k Key, part: &[Accumulator]) {
        let hash = hash_of(key);
        let keys = &mut self.keys;
        let w = self.width;
        match self
            .table
            .find(hash, |&i| keys[i as usize].values() == &key[..])
        {
            Some(&i) => merge_all(&mut self.accs[i as usize * w..(i as usize + 1) * w], part),
            None => {
                self.table.insert_unique(hash, keys.len() as u32, |&i| {
                    hash_of(keys[i as usize].values())
                });
                keys.push(K::hold(key));
                self.accs.extend_from_slice(part);
            }
        }
    }

    /// Merges group `g`'s keys of the slices in `range`, slice by slice.
    pub(super) fn add_slices(
        &mut self,
        slices: &'k BTreeMap<Timestamp, Slice>,
        g: KeyGroup,
        range: Range<Timestamp>,
    ) -> usize {
        let slices = slices.range(range);
        // Room for every entry as a new key: growing the table as it
        // fills would rehash it several times.
        let entries = slices.clone().map(|(_, s)| s.group(g).len()).sum();
        self.reserve(entries);
        for (_, slice) in slices {
            each_ahead(slice.group(g).iter(), ahead, |(key, slot)| {
                self.add(key, &slot.accs)
            });
        }
        entries
    }

    /// Each key with its merged accumulators.
    pub(super) fn results(&self) -> impl Iterator<Item = (&K, &[Accumulator])> + '_ {
        let w = self.width;
        (self.keys.iter().enumerate()).map(move |(i, k)| (k, &self.accs[i * w..(i + 1) * w]))
    }
}

/// The hash a [`Merge`]'s table files `key` under.
fn hash_of(key: &[Value]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// Writes one element per memory page of `v`'s spare capacity.
fn map_spare<T>(v: &mut Vec<T>) {
    const PAGE: usize = 4096;
    let per_page = (PAGE / std::mem::size_of::<T>().max(1)).max(1);
    for slot in v.spare_capacity_mut().iter_mut().step_by(per_page) {
        *slot = std::mem::MaybeUninit::zeroed();
        std::hint::black_box(slot);
    }
}

/// Requests what reading a slice entry touches: its key and accumulators.
#[inline(always)]
pub(super) fn ahead(&(key, slot): &(&Key, &Slot)) {
    prefetch(key.as_ptr());
    prefetch(slot.accs.as_ptr());
}

/// The open windows of a ranked sliding window, their complete slices
/// merged ahead of their firing: between batches, a few key groups at a
/// time, earliest window first. A firing then merges only the slice that
/// completes with it (one in five for a 10 s window sliding by 2 s) before
/// it ranks; at the end of input, when every open window fires at once,
/// each merges only the last, partial slice. Each slice is still merged
/// once into each of its windows, as a firing without merges ahead would.
///
/// A merge is only ever extended with later slices; an update to a slice
/// it has merged (a late event) drops that group's merge, which is redone
/// from the slices.
#[derive(Default)]
pub(super) struct Ahead {
    /// The windows being merged ahead, earliest first.
    windows: VecDeque<WindowAhead>,
    /// Merges of windows that fired, kept for their memory.
    spare: Vec<WindowAhead>,
}

/// One window's merges ahead, by key group.
struct WindowAhead {
    start: Timestamp,
    groups: Vec<GroupAhead>,
    /// The group the next step starts with.
    cursor: u32,
}

/// One key group's merge ahead.
struct GroupAhead {
    /// Whether `merge` holds this window's slices before `upto` (when
    /// not, it is emptied before its next use).
    valid: bool,
    upto: Timestamp,
    merge: Merge<Key>,
}

impl Ahead {
    /// Merges ahead for the windows from `first` on (starts `every`
    /// apart, `size` long) that hold some complete slice (those before
    /// `complete`), a group at a time until `budget` entries were merged.
    pub(super) fn step(
        &mut self,
        slices: &BTreeMap<Timestamp, Slice>,
        width: usize,
        first: Timestamp,
        (size, every): (i64, i64),
        complete: Timestamp,
        mut budget: usize,
    ) {
        while self.windows.front().is_some_and(|w| w.start < first) {
            if let Some(w) = self.windows.pop_front() {
                self.spare.push(w);
            }
        }
        let mut start = first;
        let mut i = 0;
        while start < complete {
            if self.windows.get(i).is_none_or(|w| w.start != start) {
                let w = self.fresh(start, width);
                self.windows.insert(i, w);
            }
            let end = start.saturating_add(size);
            let merged = self.windows[i].step(slices, complete.min(end), end, budget);
            budget = budget.saturating_sub(merged);
            if budget == 0 {
                return;
            }
            i += 1;
            start = start.saturating_add(every);
        }
    }

    /// An empty window merge starting at `start`, reusing a spare one.
    fn fresh(&mut self, start: Timestamp, width: usize) -> WindowAhead {
        let mut w = self.spare.pop().unwrap_or_else(|| WindowAhead {
            start,
            groups: (0..KEY_GROUPS)
                .map(|_| GroupAhead {
                    valid: false,
                    upto: start,
                    merge: Merge::new(width),
                })
                .collect(),
            cursor: 0,
        });
        w.start = start;
        w.cursor = 0;
        for group in &mut w.groups {
            group.valid = false;
        }
        w
    }

    /// A slice at `at` of group `g` changes: merges that hold it are
    /// dropped.
    #[inline]
    pub(super) fn touch(&mut self, at: Timestamp, g: KeyGroup) {
        for w in &mut self.windows {
            let group = &mut w.groups[g.index()];
            if group.valid && w.start <= at && at < group.upto {
                group.valid = false;
            }
        }
    }

    /// Group `g`'s merge of window `start` with the slices before `end`
    /// added, if a merge ahead of it was kept.
    pub(super) fn finished(
        &mut self,
        slices: &BTreeMap<Timestamp, Slice>,
        start: Timestamp,
        end: Timestamp,
        g: KeyGroup,
    ) -> Option<&Merge<Key>> {
        let w = self.windows.iter_mut().find(|w| w.start == start)?;
        let group = &mut w.groups[g.index()];
        if !group.valid {
            return None;
        }
        if group.upto < end {
            group.merge.add_slices(slices, g, group.upto..end);
            group.upto = end;
        }
        Some(&group.merge)
    }

    /// Window `start` fired: its merges are spent.
    pub(super) fn fired(&mut self, start: Timestamp) {
        if let Some(i) = self.windows.iter().position(|w| w.start == start) {
            if let Some(w) = self.windows.remove(i) {
                self.spare.push(w);
            }
        }
    }

    /// Forgets every merge (the state was replaced or cut).
    pub(super) fn reset(&mut self) {
        self.spare.extend(self.windows.drain(..));
    }
}

impl WindowAhead {
    /// Extends the groups' merges to the slices before `upto`, from the
    /// cursor on, until `budget` entries were merged, and makes room for
    /// the slice still filling before `end`, which the firing merges.
    /// Returns the entries merged.
    fn step(
        &mut self,
        slices: &BTreeMap<Timestamp, Slice>,
        upto: Timestamp,
        end: Timestamp,
        budget: usize,
    ) -> usize {
        let filling = slices.range(upto..end).next().map(|(_, s)| s);
        let mut merged = 0;
        for _ in 0..KEY_GROUPS {
            let Some(g) = KeyGroup::new(self.cursor) else {
                break;
            };
            let group = &mut self.groups[g.index()];
            if !group.valid {
                group.merge.clear();
                group.upto = self.start;
                group.valid = true;
            }
            if group.upto < upto {
                merged += group.merge.add_slices(slices, g, group.upto..upto);
                group.upto = upto;
            }
            if let Some(slice) = filling {
                group.merge.prepare(slice.group(g).len());
            }
            if merged >= budget {
                return merged;
            }
            self.cursor = (self.cursor + 1) % KEY_GROUPS;
        }
        merged
    }
}
