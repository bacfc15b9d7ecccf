//! Session windows: per key, activity separated by gaps.
//!
//! An event at `t` opens `[t, t + gap)`; sessions that overlap or touch
//! merge. Each key's sessions are a small vector sorted by start (disjoint
//! and never touching); an ordered timer set of `(time, key id, end)`
//! drives firing and cleanup without scanning keys. Timers of sessions that
//! merged away are stale and skipped when they come due (the session
//! with that end no longer exists).
//!
//! Keys are [`Sharded`] by id, so a checkpoint snapshot is copy-on-write.
//! Timers are not in
//! snapshots: a restore derives each live session's one timer that matters
//! (its firing, or once fired its cleanup), which fires and drops exactly
//! what the stored set would have.

use std::collections::BTreeSet;

use eddy_core::codec::{Decoder, Encoder};
use eddy_core::state::{KeyGroup, TableSnapshot};
use eddy_core::{Collector, Timestamp, Value};

use super::common::{
    cleanup_time, fire_time, fold, merge_all, merges_admit, Ctx, Key, KeyIds, Outcome, PlaceError,
    Sharded,
};
use super::snapshot::{self, get_accs, get_key, put_accs, put_key, Reader, SnapshotError};
use crate::aggregate::{Accumulator, Observation};

#[derive(Clone)]
struct Session {
    start: Timestamp,
    end: Timestamp,
    accs: Vec<Accumulator>,
    /// The result was emitted by a watermark (later changes re-emit).
    fired: bool,
    /// Changed after firing; re-emitted at the end of the batch.
    dirty: bool,
}

#[derive(Clone)]
struct KeySessions {
    key: Key,
    list: Vec<Session>,
}

/// State of session windows.
pub(crate) struct Sessions {
    gap: i64,
    lateness: i64,
    ids: KeyIds,
    /// Key id → its sessions.
    keys: Sharded<KeySessions>,
    timers: BTreeSet<(Timestamp, u64, Timestamp)>,
    dirty: Vec<u64>,
}

impl Sessions {
    pub(crate) fn new(gap: i64, lateness: i64) -> Sessions {
        Sessions {
            gap,
            lateness,
            ids: KeyIds::default(),
            keys: Sharded::new(),
            timers: BTreeSet::new(),
            dirty: Vec::new(),
        }
    }

    /// Adds an event at `t`; it is late when it touches no live session of
    /// its key and its own session `[t, t + gap)` is past allowed lateness.
    pub(crate) fn add(
        &mut self,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        wm: Timestamp,
        cx: &Ctx<'_>,
    ) -> Result<Outcome, PlaceError> {
        let end = t.checked_add(self.gap).ok_or(PlaceError::OutOfRange(t))?;
        let late_alone = cleanup_time(end, self.lateness) <= wm;
        let id = match self.ids.get(key) {
            Some(id) => id,
            None if late_alone => return Ok(Outcome::Late),
            None => {
                let (id, key) = self.ids.add(key);
                self.keys.insert(
                    id,
                    KeySessions {
                        key,
                        list: Vec::new(),
                    },
                );
                id
            }
        };
        let Some(ks) = self.keys.get_mut(id) else {
            return Ok(Outcome::Late);
        };
        let list = &mut ks.list;
        // Sessions touching [t, end): start <= end and end >= t.
        let lo = list.partition_point(|s| s.end < t);
        let hi = list.partition_point(|s| s.start <= end);
        let (idx, old_end) = if lo >= hi {
            if late_alone {
                return Ok(Outcome::Late);
            }
            list.insert(
                lo,
                Session {
                    start: t,
                    end,
                    accs: cx.fresh(),
                    fired: false,
                    dirty: false,
                },
            );
            (lo, None)
        } else {
            if hi - lo > 1 {
                // Merging then folding must keep every aggregate finite;
                // check before changing anything.
                let parts: Vec<&[Accumulator]> =
                    list[lo + 1..hi].iter().map(|s| &s.accs[..]).collect();
                merges_admit(cx, &list[lo].accs, &parts, obs)?;
                // The event bridges sessions: fold the later ones into the first.
                let rest: Vec<Session> = list.drain(lo + 1..hi).collect();
                let first = &mut list[lo];
                for r in rest {
                    merge_all(&mut first.accs, &r.accs);
                    first.end = first.end.max(r.end);
                    first.dirty |= r.dirty;
                }
            }
            let s = &mut list[lo];
            let old = s.end;
            s.start = s.start.min(t);
            s.end = s.end.max(end);
            (lo, Some(old))
        };
        let s = &mut list[idx];
        fold(cx, &mut s.accs, obs)?;
        s.fired = fire_time(s.end) <= wm;
        if old_end != Some(s.end) {
            let due = if s.fired {
                cleanup_time(s.end, self.lateness)
            } else {
                fire_time(s.end)
            };
            self.timers.insert((due, id, s.end));
        }
        if s.fired && !s.dirty {
            s.dirty = true;
            self.dirty.push(id);
        }
        Ok(Outcome::Accepted)
    }

    /// Re-emits fired sessions that late events changed.
    pub(crate) fn flush(&mut self, cx: &Ctx<'_>, out: &mut Collector) {
        self.dirty.sort_unstable();
        self.dirty.dedup();
        for id in self.dirty.drain(..) {
            let Some(ks) = self.keys.get_mut(id) else {
                continue;
            };
            for s in ks.list.iter_mut().filter(|s| s.dirty) {
                s.dirty = false;
                cx.emit(out, s.start, s.end, &ks.key, &s.accs);
            }
        }
    }

    /// Fires sessions whose last instant the watermark passed and drops
    /// those past allowed lateness.
    pub(crate) fn advance(&mut self, wm: Timestamp, cx: &Ctx<'_>, out: &mut Collector) {
        while let Some(&(due, id, end)) = self.timers.first() {
            if due > wm {
                break;
            }
            self.timers.pop_first();
            let Some(ks) = self.keys.get_mut(id) else {
                continue;
            };
            let Some(i) = ks.list.iter().position(|s| s.end == end) else {
                continue;
            };
            let s = &mut ks.list[i];
            if !s.fired || s.dirty {
                s.fired = true;
                s.dirty = false;
                cx.emit(out, s.start, s.end, &ks.key, &s.accs);
            }
            let cleanup = cleanup_time(end, self.lateness);
            if cleanup <= wm {
                ks.list.remove(i);
                if ks.list.is_empty() {
                    let key = ks.key.clone();
                    self.keys.remove(id);
                    self.ids.remove(&key);
                }
            } else if due < cleanup {
                self.timers.insert((cleanup, id, end));
            }
        }
    }
}

impl Sessions {
    /// The sessions as they are now; later updates do not change them
    /// (copy-on-write). Taken between calls, when no session awaits a
    /// flush, so the dirty list is not written.
    pub(crate) fn snapshot(&self, header: snapshot::Header) -> Box<dyn TableSnapshot> {
        debug_assert!(self.dirty.is_empty());
        Box::new(Frozen {
            header,
            next_id: self.ids.next_id(),
            keys: self.keys.clone(),
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
        self.timers.clear();
        self.dirty.clear();
        let n = dec.len(2)?;
        for _ in 0..n {
            let id = dec.varint()?;
            let key = get_key(dec, r.key_len)?;
            let count = dec.len(3)?;
            let mut list: Vec<Session> = Vec::with_capacity(count);
            for _ in 0..count {
                let (start, end) = (dec.zigzag()?, dec.zigzag()?);
                let flags = dec.u8()?;
                if start >= end || flags > 3 || list.last().is_some_and(|p| p.end >= start) {
                    return Err(bad("sessions of a key"));
                }
                let fired = flags & 1 == 1;
                let due = if fired {
                    cleanup_time(end, self.lateness)
                } else {
                    fire_time(end)
                };
                self.timers.insert((due, id, end));
                list.push(Session {
                    start,
                    end,
                    accs: get_accs(dec, r.like)?,
                    fired,
                    dirty: flags & 2 == 2,
                });
            }
            if !self.ids.restore(key.clone(), id) || self.keys.contains(id) {
                return Err(bad("key ids"));
            }
            self.keys.insert(id, KeySessions { key, list });
        }
        Ok(())
    }

    /// Keeps only the keys whose group `keep` accepts.
    pub(crate) fn retain_groups(&mut self, keep: impl Fn(KeyGroup) -> bool) {
        let dropped = self.ids.retain(&mut self.keys, |ks| &ks.key, keep);
        if dropped.is_empty() {
            // Entries of keys already gone stay, as they would have.
            return;
        }
        self.timers.retain(|(_, id, _)| !dropped.contains(id));
    }

    /// Stored sessions.
    pub(crate) fn stored(&self) -> usize {
        self.keys.iter().map(|(_, k)| k.list.len()).sum()
    }
}

/// Sessions frozen at a barrier: shared shards, written out later.
struct Frozen {
    header: snapshot::Header,
    next_id: u64,
    keys: Sharded<KeySessions>,
}

impl TableSnapshot for Frozen {
    /// Writes the keys by id with their sessions.
    fn write(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new();
        self.header.begin(&mut enc);
        enc.varint(self.next_id);
        let keys = self.keys.sorted();
        enc.varint(keys.len() as u64);
        for (id, ks) in keys {
            enc.varint(id);
            put_key(&mut enc, &ks.key);
            enc.varint(ks.list.len() as u64);
            for s in &ks.list {
                enc.zigzag(s.start);
                enc.zigzag(s.end);
                enc.u8(u8::from(s.fired) | u8::from(s.dirty) << 1);
                put_accs(&mut enc, &s.accs);
            }
        }
        out.extend_from_slice(&snapshot::seal(enc));
    }

    fn len(&self) -> usize {
        self.keys.iter().map(|(_, k)| k.list.len()).sum()
    }
}
