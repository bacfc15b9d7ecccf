//! Types shared by the window state machines.

use std::cell::Cell;
use std::sync::Arc;

use eddy_core::output::Output as OutputId;
use eddy_core::state::KeyGroup;
use eddy_core::{Collector, Timestamp, Value};
use rustc_hash::{FxHashMap, FxHashSet};

use super::output::Output;
use super::snapshot::group_of;
use crate::aggregate::{
    fold_all, Accumulator, AggregateError, AggregateSpec, NonFinite, Observation,
};

/// A grouping key: the values of the key expressions (empty when unkeyed).
/// Lookups borrow the operator's scratch `[Value]`, so only a new key
/// allocates.
pub(crate) type Key = Arc<[Value]>;

/// Small ids for the keys a window state holds, so its ordered indexes
/// (timers, boundaries, expiries) store a `u64` instead of a key.
#[derive(Default)]
pub(crate) struct KeyIds {
    ids: FxHashMap<Key, u64>,
    next: u64,
}

impl KeyIds {
    /// The id of `key`, if it has one.
    #[inline]
    pub(crate) fn get(&self, key: &[Value]) -> Option<u64> {
        self.ids.get(key).copied()
    }

    /// Gives `key` a new id; returns it with the shared key.
    pub(crate) fn add(&mut self, key: &[Value]) -> (u64, Key) {
        let id = self.next;
        self.next += 1;
        let key = Key::from(key);
        self.ids.insert(key.clone(), id);
        (id, key)
    }

    /// Forgets `key`'s id.
    pub(crate) fn remove(&mut self, key: &[Value]) {
        self.ids.remove(key);
    }

    /// Number of keys with an id.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Forgets every key.
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
    }

    /// The id the next new key will get (snapshots keep it: ids decide
    /// the order of emission among keys).
    pub(crate) fn next_id(&self) -> u64 {
        self.next
    }

    /// Starts a restore: no keys, the next new key gets `next`.
    pub(crate) fn reset(&mut self, next: u64) {
        self.ids.clear();
        self.next = next;
    }

    /// Keeps the entries of `keys` whose key's group `keep` accepts,
    /// forgetting the others' ids; returns the ids dropped.
    pub(crate) fn retain<T: Clone>(
        &mut self,
        keys: &mut Sharded<T>,
        key_of: impl Fn(&T) -> &Key,
        keep: impl Fn(KeyGroup) -> bool,
    ) -> FxHashSet<u64> {
        let removed = keys.retain(|_, entry| keep(group_of(key_of(entry))));
        removed
            .into_iter()
            .map(|(id, entry)| {
                self.ids.remove(key_of(&entry));
                id
            })
            .collect()
    }

    /// Restores `key` with the id it had; `false` when the id is not below
    /// the next id or the key already has one.
    pub(crate) fn restore(&mut self, key: Key, id: u64) -> bool {
        id < self.next && self.ids.insert(key, id).is_none()
    }
}

/// Shards per [`Sharded`] map.
pub(crate) const SHARDS: usize = 128;

/// Per-key state by key id, in shards behind shared pointers: a checkpoint
/// snapshot clones 128 pointers (microseconds, whatever the state's size),
/// and while it is alive the first write to a shard copies only that shard.
#[derive(Clone)]
pub(crate) struct Sharded<T> {
    shards: Vec<Arc<FxHashMap<u64, T>>>,
}

impl<T: Clone> Sharded<T> {
    pub(crate) fn new() -> Sharded<T> {
        Sharded {
            shards: (0..SHARDS).map(|_| Arc::default()).collect(),
        }
    }

    #[inline]
    fn shard(id: u64) -> usize {
        (id % SHARDS as u64) as usize
    }

    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        self.shards[Self::shard(id)].get(&id)
    }

    /// The state of `id` for writing (its shard copied first if a snapshot
    /// still shares it).
    #[inline]
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        Arc::make_mut(&mut self.shards[Self::shard(id)]).get_mut(&id)
    }

    pub(crate) fn insert(&mut self, id: u64, value: T) -> Option<T> {
        Arc::make_mut(&mut self.shards[Self::shard(id)]).insert(id, value)
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        Arc::make_mut(&mut self.shards[Self::shard(id)]).remove(&id)
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(&id, v)| (id, v)))
    }

    /// Every entry by ascending id (the order snapshots are written in).
    pub(crate) fn sorted(&self) -> Vec<(u64, &T)> {
        let mut all: Vec<(u64, &T)> = self.iter().collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Keeps the entries `keep` accepts and returns the others (shards it
    /// keeps whole are not copied).
    pub(crate) fn retain(&mut self, keep: impl Fn(u64, &T) -> bool) -> Vec<(u64, T)> {
        let mut removed = Vec::new();
        for shard in &mut self.shards {
            let gone: Vec<u64> = shard
                .iter()
                .filter(|(&id, v)| !keep(id, v))
                .map(|(&id, _)| id)
                .collect();
            if gone.is_empty() {
                continue;
            }
            let shard = Arc::make_mut(shard);
            removed.extend(
                gone.into_iter()
                    .filter_map(|id| Some((id, shard.remove(&id)?))),
            );
        }
        removed
    }
}

/// What happened to an event offered to a window state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It updated at least one window.
    Accepted,
    /// Every window it belongs to is past its allowed lateness.
    Late,
}

/// Why an event cannot be placed in a window.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum PlaceError {
    /// Window bounds would leave the timestamp range.
    #[error("event time {0} is too close to the end of the timestamp range to place in a window")]
    OutOfRange(Timestamp),
    /// An aggregate refused the event (its result would not be finite).
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// A global window without `ttl` already keeps `limit` keys.
    #[error(
        "a new key would exceed the {limit} keys a global window without `ttl` keeps per \
         instance (`[pipeline.limits] max_keys`); set `ttl` so idle keys are dropped, or \
         raise `[pipeline.limits] max_keys`"
    )]
    TooManyKeys {
        /// The limit.
        limit: u64,
    },
}

/// What the state machines need from the operator.
pub(crate) struct Ctx<'a> {
    specs: &'a [AggregateSpec],
    output: &'a Output,
    /// Results emitted through this context.
    emitted: Cell<usize>,
    /// Some aggregate's float result could overflow (checks are needed).
    can_overflow: bool,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(specs: &'a [AggregateSpec], output: &'a Output) -> Ctx<'a> {
        let can_overflow = specs.iter().any(|s| s.function.can_overflow());
        Ctx {
            specs,
            output,
            emitted: Cell::new(0),
            can_overflow,
        }
    }

    /// Whether updates and merges need a finiteness check before they
    /// happen (some aggregate is a float `sum`, `avg`, variance or `ewma`).
    pub(crate) fn can_overflow(&self) -> bool {
        self.can_overflow
    }

    /// The dead-letter error for aggregate `i` refusing an event.
    pub(crate) fn refused(&self, (i, e): (usize, NonFinite)) -> PlaceError {
        let name = self.specs.get(i).map_or("?", |s| s.name.as_str());
        PlaceError::Aggregate(e.named(name))
    }

    /// An empty accumulator of aggregate `i`.
    pub(crate) fn fresh_one(&self, i: usize) -> Option<Accumulator> {
        self.specs.get(i).map(Accumulator::new)
    }

    pub(crate) fn emitted(&self) -> usize {
        self.emitted.get()
    }

    /// Accumulators per result (one per aggregate).
    pub(crate) fn width(&self) -> usize {
        self.specs.len()
    }

    pub(crate) fn fresh(&self) -> Vec<Accumulator> {
        Accumulator::for_specs(self.specs)
    }

    pub(crate) fn emit(
        &self,
        out: &mut Collector,
        start: Timestamp,
        end: Timestamp,
        key: &[Value],
        accs: &[Accumulator],
    ) {
        self.push(out, self.output.event(start, end, key, accs));
    }

    /// The result of window `[start, end)` for `key`, to emit with [`Ctx::push`].
    pub(crate) fn result(
        &self,
        start: Timestamp,
        end: Timestamp,
        key: &[Value],
        accs: &[Accumulator],
    ) -> eddy_core::Event {
        self.output.event(start, end, key, accs)
    }

    /// Emits a result.
    pub(crate) fn push(&self, out: &mut Collector, result: eddy_core::Event) {
        self.emitted.set(self.emitted.get() + 1);
        out.push(OutputId::MAIN, result);
    }
}

/// Folds one event's observations into a window's accumulators: all, or
/// none when an aggregate's result would leave the finite range.
#[inline]
pub(crate) fn fold(
    cx: &Ctx<'_>,
    accs: &mut [Accumulator],
    obs: &[Observation],
) -> Result<(), PlaceError> {
    if cx.can_overflow {
        fold_all(accs, obs).map_err(|e| cx.refused(e))
    } else {
        for (acc, o) in accs.iter_mut().zip(obs) {
            acc.apply(o);
        }
        Ok(())
    }
}

/// Whether merging each of `parts` into `into` in turn, then folding `obs`
/// in, keeps every result (and every step) finite; changes nothing. The
/// steps are those the caller will perform, in the same order, so floats
/// round alike.
pub(crate) fn merges_admit(
    cx: &Ctx<'_>,
    into: &[Accumulator],
    parts: &[&[Accumulator]],
    obs: &[Observation],
) -> Result<(), PlaceError> {
    if !cx.can_overflow {
        return Ok(());
    }
    for (i, acc) in into.iter().enumerate().filter(|(_, a)| a.can_overflow()) {
        let mut probe = acc.clone();
        for part in parts {
            if let Some(p) = part.get(i) {
                let _ = probe.merge(p);
                probe.check().map_err(|e| cx.refused((i, e)))?;
            }
        }
        if let Some(o) = obs.get(i) {
            probe.update(o).map_err(|e| cx.refused((i, e)))?;
        }
    }
    Ok(())
}

/// Merges accumulators of the same specs (sessions joining).
pub(crate) fn merge_all(into: &mut [Accumulator], from: &[Accumulator]) {
    for (a, b) in into.iter_mut().zip(from) {
        // Both sides come from the same specs, so the variants match.
        let _ = a.merge(b);
    }
}

/// The last instant a window ending at `end` covers; it fires when the
/// watermark reaches it.
#[inline]
pub(crate) fn fire_time(end: Timestamp) -> Timestamp {
    end.saturating_sub(1)
}

/// When a window ending at `end` is dropped: `lateness` after it fired.
#[inline]
pub(crate) fn cleanup_time(end: Timestamp, lateness: i64) -> Timestamp {
    fire_time(end).saturating_add(lateness)
}
