//! Global windows: one window per key, fired by a count or at interval
//! boundaries rather than by window bounds.
//!
//! **`count = N`** folds a key's events in arrival order and emits and
//! clears the window at its N-th event, labelled `window_start` = its
//! earliest event time and `window_end` = its latest event time + 1.
//!
//! **`every = D`** keeps running totals per key, fired at the boundaries
//! `k·D` of the window's time domain. The result emitted at boundary `b`
//! covers exactly the key's events with time < `b` (labelled
//! `window_start` = the key's earliest such event time, `window_end` = `b`),
//! however events were batched and however far a watermark jumps: a jump
//! over many boundaries emits, boundary by boundary in order, what
//! advancing one boundary at a time would. A key keeps the total of its
//! fired periods plus one pending accumulator per period `[b − D, b)` with
//! events not yet fired; an ordered index of pending boundaries drives
//! firing, so a watermark costs only the keys that changed. With
//! `emit = "changed"` a boundary emits the keys with events in its period;
//! with `emit = "all"`, a boundary where any key changed emits every key.
//! An event whose period already fired is late: within `allowed_lateness`
//! (the watermark before `b − 1 + allowed_lateness`) it joins the total and
//! the key is re-emitted once per batch, labelled with its latest boundary
//! (or the event's, when later); after that it goes to `NAME.late`.
//!
//! With `ttl`, a key not updated for that long is dropped (a `count`
//! window emits its partial result first; an `every` key is kept until its
//! last period is also past allowed lateness, so a later event for the key
//! starts afresh rather than silently missing its earlier total). Without
//! `ttl`, at most `max_keys` keys are kept; an event that would add one
//! more is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use eddy_core::codec::{Decoder, Encoder};
use eddy_core::state::{KeyGroup, TableSnapshot};
use eddy_core::time::MAX_TIMESTAMP;
use eddy_core::{Collector, Timestamp, Value};

use super::common::{
    cleanup_time, fire_time, fold, merge_all, Ctx, Key, KeyIds, Outcome, PlaceError, Sharded,
    SHARDS,
};
use super::snapshot::{self, get_accs, get_key, put_accs, put_key, Reader, SnapshotError};
use crate::aggregate::{Accumulator, Observation};

/// What fires a global window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Emit and clear after this many events per key.
    Count(u64),
    /// Emit running totals at every multiple of this interval (ms, > 0).
    Every(i64),
}

/// How a global window behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) trigger: Trigger,
    /// Drop keys idle this long (window time domain).
    pub(crate) ttl: Option<i64>,
    /// `every`: how long after a boundary fired late events still count.
    pub(crate) lateness: i64,
    /// `every`: a firing boundary emits every key, not just changed ones.
    pub(crate) emit_all: bool,
    /// Most keys kept without `ttl`.
    pub(crate) max_keys: u64,
}

/// A period `[end − every, end)` of one key with events not yet fired.
#[derive(Clone)]
struct Period {
    end: Timestamp,
    first: Timestamp,
    accs: Vec<Accumulator>,
}

#[derive(Clone)]
struct KeyState {
    key: Key,
    /// `count`: the open window. `every`: the total of fired periods.
    accs: Vec<Accumulator>,
    /// Earliest event time in `accs` (`MAX_TIMESTAMP` while empty).
    first: Timestamp,
    /// Latest event time seen.
    last: Timestamp,
    /// Events in the open `count` window.
    count: u64,
    /// `every`: periods with events not yet fired, by ascending end.
    pending: Vec<Period>,
    /// `every`: the boundary of the latest result.
    label: Timestamp,
    /// `every`: a re-emission is due at the end of the batch at this label.
    dirty: Option<Timestamp>,
    /// Has an entry in the expiry index.
    scheduled: bool,
}

/// State of global windows.
pub(crate) struct Global {
    opts: Options,
    ids: KeyIds,
    keys: Sharded<KeyState>,
    /// `every`: boundary → keys with a pending period ending there, in the
    /// order their first event of that period arrived.
    fires: BTreeMap<Timestamp, Arc<Vec<u64>>>,
    /// When to look at a key's `ttl` again.
    expiries: Expiries,
    /// Keys to re-emit at the end of the batch.
    dirty: Vec<u64>,
}

/// The end of the period `[b − every, b)` containing `t`.
#[inline]
fn boundary_after(t: Timestamp, every: i64) -> Option<Timestamp> {
    t.div_euclid(every).checked_add(1)?.checked_mul(every)
}

/// When a key may be dropped for `ttl`: idle that long and, for `every`,
/// its latest period past allowed lateness.
fn drop_time(opts: &Options, ttl: i64, state: &KeyState) -> Timestamp {
    let idle = state.last.saturating_add(ttl);
    match opts.trigger {
        Trigger::Count(_) => idle,
        Trigger::Every(every) => {
            let end = boundary_after(state.last, every).unwrap_or(MAX_TIMESTAMP);
            idle.max(cleanup_time(end, opts.lateness))
        }
    }
}

impl Global {
    pub(crate) fn new(opts: Options) -> Global {
        Global {
            opts,
            ids: KeyIds::default(),
            keys: Sharded::new(),
            fires: BTreeMap::new(),
            expiries: Expiries::new(),
            dirty: Vec::new(),
        }
    }

    /// Adds an event at `t` with watermark `wm`; a `count` trigger may fire
    /// right away.
    pub(crate) fn add(
        &mut self,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
        out: &mut Collector,
    ) -> Result<Outcome, PlaceError> {
        match self.opts.trigger {
            Trigger::Count(n) => self.add_count(n, t, key, obs, cx, out),
            Trigger::Every(every) => self.add_every(every, t, key, obs, wm, cx),
        }
    }

    /// The id of `key`, adding it (empty) if new; `true` when new.
    fn id_for(&mut self, key: &[Value], cx: &Ctx<'_>) -> Result<(u64, bool), PlaceError> {
        if let Some(id) = self.ids.get(key) {
            return Ok((id, false));
        }
        if self.opts.ttl.is_none() && self.ids.len() as u64 >= self.opts.max_keys {
            return Err(PlaceError::TooManyKeys {
                limit: self.opts.max_keys,
            });
        }
        let (id, key) = self.ids.add(key);
        self.keys.insert(
            id,
            KeyState {
                key,
                accs: cx.fresh(),
                first: MAX_TIMESTAMP,
                last: Timestamp::MIN,
                count: 0,
                pending: Vec::new(),
                label: Timestamp::MIN,
                dirty: None,
                scheduled: false,
            },
        );
        Ok((id, true))
    }

    fn forget(&mut self, id: u64) {
        if let Some(state) = self.keys.remove(id) {
            self.ids.remove(&state.key);
        }
    }

    /// Makes sure an updated key has an expiry entry (with `ttl`).
    fn schedule(&mut self, id: u64) {
        let Some(ttl) = self.opts.ttl else {
            return;
        };
        if let Some(state) = self.keys.get_mut(id) {
            if !state.scheduled {
                state.scheduled = true;
                self.expiries.insert(drop_time(&self.opts, ttl, state), id);
            }
        }
    }

    fn add_count(
        &mut self,
        n: u64,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        cx: &Ctx<'_>,
        out: &mut Collector,
    ) -> Result<Outcome, PlaceError> {
        let (id, new) = self.id_for(key, cx)?;
        let Some(state) = self.keys.get_mut(id) else {
            return Ok(Outcome::Accepted);
        };
        if let Err(e) = fold(cx, &mut state.accs, obs) {
            if new {
                self.forget(id);
            }
            return Err(e);
        }
        state.first = state.first.min(t);
        state.last = state.last.max(t);
        state.count += 1;
        if state.count >= n {
            emit_through_last(cx, out, state);
            self.forget(id);
        } else {
            self.schedule(id);
        }
        Ok(Outcome::Accepted)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_every(
        &mut self,
        every: i64,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
    ) -> Result<Outcome, PlaceError> {
        let end = boundary_after(t, every).ok_or(PlaceError::OutOfRange(t))?;
        if cleanup_time(end, self.opts.lateness) <= wm {
            return Ok(Outcome::Late);
        }
        let late = fire_time(end) <= wm;
        let (id, new) = self.id_for(key, cx)?;
        let Some(state) = self.keys.get_mut(id) else {
            return Ok(Outcome::Accepted);
        };
        let was_dirty = state.dirty.is_some();
        let placed = if late {
            fold_late(state, end, t, obs, cx)
        } else {
            fold_pending(state, end, t, obs, cx)
        };
        match placed {
            Ok(opened) => {
                if opened {
                    Arc::make_mut(self.fires.entry(end).or_default()).push(id);
                }
                if !was_dirty && state.dirty.is_some() {
                    self.dirty.push(id);
                }
                state.last = state.last.max(t);
                self.schedule(id);
                Ok(Outcome::Accepted)
            }
            Err(e) => {
                if new {
                    self.forget(id);
                }
                Err(e)
            }
        }
    }

    /// Re-emits keys that late events updated in this batch.
    pub(crate) fn flush(&mut self, cx: &Ctx<'_>, out: &mut Collector) {
        for id in self.dirty.drain(..) {
            let Some(state) = self.keys.get_mut(id) else {
                continue;
            };
            if let Some(label) = state.dirty.take() {
                state.label = state.label.max(label);
                cx.emit(out, state.first, state.label, &state.key, &state.accs);
            }
        }
    }

    /// Time (watermark or wall clock) reached `now`: fire every boundary it
    /// passed, in order, then drop keys idle past `ttl`.
    pub(crate) fn advance(&mut self, now: Timestamp, cx: &Ctx<'_>, out: &mut Collector) {
        while let Some(entry) = self.fires.first_entry() {
            let b = *entry.key();
            if fire_time(b) > now {
                break;
            }
            let ids = entry.remove();
            for &id in ids.iter() {
                let Some(state) = self.keys.get_mut(id) else {
                    continue;
                };
                let Some(i) = state.pending.iter().position(|p| p.end == b) else {
                    continue;
                };
                let period = state.pending.remove(i);
                merge_all(&mut state.accs, &period.accs);
                state.first = state.first.min(period.first);
                if !self.opts.emit_all {
                    state.label = b;
                    cx.emit(out, state.first, b, &state.key, &state.accs);
                }
            }
            if self.opts.emit_all {
                let mut all: Vec<u64> = self
                    .keys
                    .iter()
                    .filter(|(_, s)| s.first < b)
                    .map(|(id, _)| id)
                    .collect();
                all.sort_unstable();
                for id in all {
                    if let Some(state) = self.keys.get_mut(id) {
                        state.label = b;
                        cx.emit(out, state.first, b, &state.key, &state.accs);
                    }
                }
            }
        }
        self.expire(now, cx, out);
    }

    /// Drops keys whose `ttl` passed by `now`.
    fn expire(&mut self, now: Timestamp, cx: &Ctx<'_>, out: &mut Collector) {
        let Some(ttl) = self.opts.ttl else {
            return;
        };
        while let Some((due, id)) = self.expiries.first() {
            if due > now {
                break;
            }
            self.expiries.remove((due, id));
            let Some(state) = self.keys.get_mut(id) else {
                continue;
            };
            let due = drop_time(&self.opts, ttl, state);
            if due > now || !state.pending.is_empty() {
                // Updated since, or (never expected) still holding
                // unfired events: look again later.
                let later = if due > now {
                    due
                } else {
                    now.saturating_add(1)
                };
                self.expiries.insert(later, id);
                continue;
            }
            if let Trigger::Count(_) = self.opts.trigger {
                emit_through_last(cx, out, state);
            }
            self.forget(id);
        }
    }

    /// End of input (after a final watermark of +infinity fired every
    /// pending period): emit every open `count` window.
    pub(crate) fn finish(&mut self, cx: &Ctx<'_>, out: &mut Collector) {
        if let Trigger::Count(_) = self.opts.trigger {
            for (_, state) in self.keys.sorted() {
                emit_through_last(cx, out, state);
            }
        }
        self.keys = Sharded::new();
        self.ids.clear();
        self.fires.clear();
        self.expiries = Expiries::new();
    }
}

impl Global {
    /// The state as it is now; later updates do not change it
    /// (copy-on-write). Taken between calls, when no key awaits a flush.
    pub(crate) fn snapshot(&self, header: snapshot::Header) -> Box<dyn TableSnapshot> {
        debug_assert!(self.dirty.is_empty());
        Box::new(Frozen {
            header,
            next_id: self.ids.next_id(),
            keys: self.keys.clone(),
            fires: self.fires.clone(),
            expiries: self.expiries.clone(),
        })
    }

    /// Replaces the state with one written by a [`Frozen`] snapshot.
    pub(crate) fn decode(
        &mut self,
        dec: &mut Decoder<'_>,
        r: &Reader<'_>,
    ) -> Result<(), SnapshotError> {
        let bad = SnapshotError::Inconsistent;
        self.ids.reset(dec.varint()?);
        self.keys = Sharded::new();
        self.fires.clear();
        self.expiries = Expiries::new();
        self.dirty.clear();
        let n = dec.len(8)?;
        for _ in 0..n {
            let id = dec.varint()?;
            let key = get_key(dec, r.key_len)?;
            let accs = get_accs(dec, r.like)?;
            let (first, last, count) = (dec.zigzag()?, dec.zigzag()?, dec.varint()?);
            let periods = dec.len(2)?;
            let mut pending: Vec<Period> = Vec::with_capacity(periods);
            for _ in 0..periods {
                let (end, first) = (dec.zigzag()?, dec.zigzag()?);
                if pending.last().is_some_and(|p| p.end >= end) {
                    return Err(bad("pending periods"));
                }
                pending.push(Period {
                    end,
                    first,
                    accs: get_accs(dec, r.like)?,
                });
            }
            let label = dec.zigzag()?;
            let flags = dec.u8()?;
            if flags > 3 {
                return Err(bad("key flags"));
            }
            let dirty = if flags & 1 == 1 {
                Some(dec.zigzag()?)
            } else {
                None
            };
            if !self.ids.restore(key.clone(), id) || self.keys.contains(id) {
                return Err(bad("key ids"));
            }
            self.keys.insert(
                id,
                KeyState {
                    key,
                    accs,
                    first,
                    last,
                    count,
                    pending,
                    label,
                    dirty,
                    scheduled: flags & 2 == 2,
                },
            );
        }
        let n = dec.len(2)?;
        for _ in 0..n {
            let b = dec.zigzag()?;
            let count = dec.len(1)?;
            let ids = (0..count)
                .map(|_| dec.varint())
                .collect::<Result<Vec<u64>, _>>()?;
            if self.fires.insert(b, Arc::new(ids)).is_some() {
                return Err(bad("boundaries"));
            }
        }
        let n = dec.len(2)?;
        for _ in 0..n {
            let (due, id) = (dec.zigzag()?, dec.varint()?);
            self.expiries.insert(due, id);
        }
        Ok(())
    }
}

/// Folds an event whose period (ending at `end`) is still open into that
/// period; returns whether the period is new.
fn fold_pending(
    state: &mut KeyState,
    end: Timestamp,
    t: Timestamp,
    obs: &[Observation],
    cx: &Ctx<'_>,
) -> Result<bool, PlaceError> {
    admit_chain(state, Some(end), obs, cx)?;
    match state.pending.binary_search_by_key(&end, |p| p.end) {
        Ok(i) => {
            let p = &mut state.pending[i];
            fold(cx, &mut p.accs, obs)?;
            p.first = p.first.min(t);
            Ok(false)
        }
        Err(i) => {
            let mut accs = cx.fresh();
            fold(cx, &mut accs, obs)?;
            state.pending.insert(
                i,
                Period {
                    end,
                    first: t,
                    accs,
                },
            );
            Ok(true)
        }
    }
}

/// Folds a late event (its period, ending at `end`, already fired) into the
/// total and marks the key for re-emission.
fn fold_late(
    state: &mut KeyState,
    end: Timestamp,
    t: Timestamp,
    obs: &[Observation],
    cx: &Ctx<'_>,
) -> Result<bool, PlaceError> {
    admit_chain(state, None, obs, cx)?;
    fold(cx, &mut state.accs, obs)?;
    state.first = state.first.min(t);
    let label = state.label.max(end);
    state.dirty = Some(state.dirty.map_or(label, |d| d.max(label)));
    Ok(false)
}

/// Whether folding `obs` into the total (`target` None) or into the period
/// ending at `target`, and then firing every pending period into the total
/// in order, keeps each float aggregate finite at every step: the merges
/// firing will do are then known to succeed. Changes nothing.
fn admit_chain(
    state: &KeyState,
    target: Option<Timestamp>,
    obs: &[Observation],
    cx: &Ctx<'_>,
) -> Result<(), PlaceError> {
    if !cx.can_overflow() {
        return Ok(());
    }
    for (i, total) in state.accs.iter().enumerate() {
        if !total.can_overflow() {
            continue;
        }
        let (Some(o), Some(empty)) = (obs.get(i), cx.fresh_one(i)) else {
            continue;
        };
        let refused = |e| cx.refused((i, e));
        let mut probe = total.clone();
        let mut placed = target.is_none();
        if placed {
            probe.update(o).map_err(refused)?;
        }
        let merge = |probe: &mut Accumulator, part: &Accumulator| {
            let _ = probe.merge(part);
            probe.check().map_err(refused)
        };
        for period in &state.pending {
            if let Some(end) = target.filter(|e| !placed && *e <= period.end) {
                let mut own = if end == period.end {
                    period.accs[i].clone()
                } else {
                    empty.clone()
                };
                own.update(o).map_err(refused)?;
                merge(&mut probe, &own)?;
                placed = true;
                if end == period.end {
                    continue;
                }
            }
            merge(&mut probe, &period.accs[i])?;
        }
        if !placed {
            let mut own = empty;
            own.update(o).map_err(refused)?;
            merge(&mut probe, &own)?;
        }
    }
    Ok(())
}

/// Emits a `count` window as ending just after its latest event.
fn emit_through_last(cx: &Ctx<'_>, out: &mut Collector, state: &KeyState) {
    cx.emit(
        out,
        state.first,
        state.last.saturating_add(1),
        &state.key,
        &state.accs,
    );
}

impl Global {
    /// Keeps only the keys whose group `keep` accepts.
    pub(crate) fn retain_groups(&mut self, keep: impl Fn(KeyGroup) -> bool) {
        let dropped = self.ids.retain(&mut self.keys, |ks| &ks.key, keep);
        if dropped.is_empty() {
            // Entries of keys already gone stay, as they would have.
            return;
        }
        for list in self.fires.values_mut() {
            if list.iter().any(|id| dropped.contains(id)) {
                Arc::make_mut(list).retain(|id| !dropped.contains(id));
            }
        }
        self.fires.retain(|_, list| !list.is_empty());
        self.expiries.retain(|id| !dropped.contains(&id));
    }

    /// Stored keys.
    pub(crate) fn stored(&self) -> usize {
        self.keys.len()
    }
}

/// `(due, key id)`: when to look at a key's `ttl` again. An entry may be
/// early (the key was updated since); it is then moved to the new time.
/// Kept in shards by key id, each behind a shared pointer (copy-on-write
/// like the keys); entries come out in (due, id) order across shards.
#[derive(Clone)]
struct Expiries {
    shards: Vec<Arc<BTreeSet<(Timestamp, u64)>>>,
}

impl Expiries {
    fn new() -> Expiries {
        Expiries {
            shards: (0..SHARDS).map(|_| Arc::default()).collect(),
        }
    }

    fn shard(id: u64) -> usize {
        (id % SHARDS as u64) as usize
    }

    fn insert(&mut self, due: Timestamp, id: u64) {
        Arc::make_mut(&mut self.shards[Self::shard(id)]).insert((due, id));
    }

    fn remove(&mut self, entry: (Timestamp, u64)) {
        Arc::make_mut(&mut self.shards[Self::shard(entry.1)]).remove(&entry);
    }

    /// The earliest entry.
    fn first(&self) -> Option<(Timestamp, u64)> {
        self.shards.iter().filter_map(|s| s.first().copied()).min()
    }

    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        for shard in &mut self.shards {
            if shard.iter().any(|&(_, id)| !keep(id)) {
                Arc::make_mut(shard).retain(|&(_, id)| keep(id));
            }
        }
    }

    /// Every entry in (due, id) order.
    fn sorted(&self) -> Vec<(Timestamp, u64)> {
        let mut all: Vec<(Timestamp, u64)> =
            self.shards.iter().flat_map(|s| s.iter().copied()).collect();
        all.sort_unstable();
        all
    }
}

/// Global windows frozen at a barrier: shared shards, written out later.
struct Frozen {
    header: snapshot::Header,
    next_id: u64,
    keys: Sharded<KeyState>,
    fires: BTreeMap<Timestamp, Arc<Vec<u64>>>,
    expiries: Expiries,
}

impl TableSnapshot for Frozen {
    /// Writes the keys by id, then the boundary index (ids in arrival
    /// order: it decides the order of emission) and the expiry index.
    fn write(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new();
        self.header.begin(&mut enc);
        enc.varint(self.next_id);
        let keys = self.keys.sorted();
        enc.varint(keys.len() as u64);
        for (id, s) in keys {
            enc.varint(id);
            put_key(&mut enc, &s.key);
            put_accs(&mut enc, &s.accs);
            enc.zigzag(s.first);
            enc.zigzag(s.last);
            enc.varint(s.count);
            enc.varint(s.pending.len() as u64);
            for p in &s.pending {
                enc.zigzag(p.end);
                enc.zigzag(p.first);
                put_accs(&mut enc, &p.accs);
            }
            enc.zigzag(s.label);
            match s.dirty {
                None => enc.u8(u8::from(s.scheduled) << 1),
                Some(label) => {
                    enc.u8(1 | u8::from(s.scheduled) << 1);
                    enc.zigzag(label);
                }
            }
        }
        enc.varint(self.fires.len() as u64);
        for (&b, ids) in &self.fires {
            enc.zigzag(b);
            enc.varint(ids.len() as u64);
            for &id in ids.iter() {
                enc.varint(id);
            }
        }
        let expiries = self.expiries.sorted();
        enc.varint(expiries.len() as u64);
        for (due, id) in expiries {
            enc.zigzag(due);
            enc.varint(id);
        }
        out.extend_from_slice(&snapshot::seal(enc));
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}
