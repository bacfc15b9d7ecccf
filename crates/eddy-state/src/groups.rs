//! The storage every table kind shares: one ordered map per key group,
//! each behind an `Arc` so a snapshot is a copy of 128 pointers.
//!
//! Copy-on-write: after a snapshot, the first write to a key group copies
//! that group's map (only while the snapshot is still alive, that is while it
//! is being serialised); groups nobody writes are never copied. Ordered maps
//! make a snapshot's bytes a function of the state alone.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_core::codec::{Decode, Decoder, Encode, Encoder};
use eddy_core::state::KEY_GROUPS;
use eddy_core::Timestamp;

use crate::error::StateError;
use crate::key::{GroupRange, KeyGroup};
use crate::ttl::{Ttl, NEVER};

/// One entry: the state of a key and when it stops being visible.
#[derive(Clone, Debug)]
pub(crate) struct Slot<S> {
    pub state: S,
    pub expires_at: Timestamp,
}

// Keys are shared, so copying a group on write copies no key bytes.
type Group<S> = BTreeMap<Arc<[u8]>, Slot<S>>;

/// Per-key-group ordered maps with TTL.
pub(crate) struct Groups<S> {
    groups: Vec<Arc<Group<S>>>,
    pub ttl: Option<Ttl>,
}

impl<S: Clone> Groups<S> {
    pub fn new(ttl: Option<Ttl>) -> Self {
        Groups {
            groups: (0..KEY_GROUPS).map(|_| Arc::new(BTreeMap::new())).collect(),
            ttl,
        }
    }

    fn group(&self, g: KeyGroup) -> &Group<S> {
        &self.groups[g.index()]
    }

    fn group_mut(&mut self, g: KeyGroup) -> &mut Group<S> {
        Arc::make_mut(&mut self.groups[g.index()])
    }

    pub fn get(&self, g: KeyGroup, key: &[u8], now: Timestamp) -> Option<&S> {
        self.group(g)
            .get(key)
            .filter(|s| now < s.expires_at)
            .map(|s| &s.state)
    }

    /// The state of `key` for writing, created with `init` if absent or
    /// expired; the write restarts its TTL.
    pub fn upsert(
        &mut self,
        g: KeyGroup,
        key: &[u8],
        now: Timestamp,
        init: impl FnOnce() -> S,
    ) -> &mut S {
        let expires_at = Ttl::expiry(self.ttl, now);
        // The borrow checker cannot return a `get_mut` borrow on one path
        // and insert on the other, so this copies the key on every call.
        match self.group_mut(g).entry(key.into()) {
            Entry::Vacant(v) => {
                &mut v
                    .insert(Slot {
                        state: init(),
                        expires_at,
                    })
                    .state
            }
            Entry::Occupied(o) => {
                let slot = o.into_mut();
                if now >= slot.expires_at {
                    slot.state = init();
                }
                slot.expires_at = expires_at;
                &mut slot.state
            }
        }
    }

    /// Sets the state of `key`; the write restarts its TTL.
    pub fn put(&mut self, g: KeyGroup, key: &[u8], state: S, now: Timestamp) {
        let expires_at = Ttl::expiry(self.ttl, now);
        let slot = Slot { state, expires_at };
        match self.group_mut(g).entry(key.into()) {
            Entry::Vacant(v) => {
                v.insert(slot);
            }
            Entry::Occupied(mut o) => {
                o.insert(slot);
            }
        }
    }

    /// The visible state of `key` for writing, if any; the write restarts its
    /// TTL. An expired entry is removed.
    pub fn get_mut(&mut self, g: KeyGroup, key: &[u8], now: Timestamp) -> Option<&mut S> {
        let live = self.group(g).get(key).map(|s| now < s.expires_at)?;
        if !live {
            self.group_mut(g).remove(key);
            return None;
        }
        let expires_at = Ttl::expiry(self.ttl, now);
        let slot = self.group_mut(g).get_mut(key)?;
        slot.expires_at = expires_at;
        Some(&mut slot.state)
    }

    pub fn remove(&mut self, g: KeyGroup, key: &[u8], now: Timestamp) -> Option<S> {
        self.group(g).get(key)?;
        self.group_mut(g)
            .remove(key)
            .filter(|s| now < s.expires_at)
            .map(|s| s.state)
    }

    /// Removes every expired entry; returns how many. Groups with nothing
    /// expired are left alone (and so not copied while a snapshot lives).
    pub fn expire(&mut self, now: Timestamp) -> usize {
        if self.ttl.is_none() {
            return 0;
        }
        let mut removed = 0;
        for g in &mut self.groups {
            if g.values().any(|s| now >= s.expires_at) {
                let group = Arc::make_mut(g);
                let before = group.len();
                group.retain(|_, s| now < s.expires_at);
                removed += before - group.len();
            }
        }
        removed
    }

    /// Visible entries of one key group, in key order.
    pub fn iter_group(
        &self,
        g: KeyGroup,
        now: Timestamp,
    ) -> impl Iterator<Item = (&[u8], &S)> + '_ {
        self.group(g)
            .iter()
            .filter(move |(_, s)| now < s.expires_at)
            .map(|(k, s)| (&**k, &s.state))
    }

    /// Stored entries, expired ones not yet removed included.
    pub fn stored(&self) -> usize {
        self.groups.iter().map(|g| g.len()).sum()
    }

    pub fn snapshot(&self) -> GroupsSnapshot<S> {
        GroupsSnapshot {
            groups: self.groups.clone(),
        }
    }

    /// Drops every entry of the groups in `range`.
    pub fn clear(&mut self, range: &GroupRange) {
        for g in KeyGroup::all().filter(|g| range.contains(*g)) {
            self.groups[g.index()] = Arc::new(BTreeMap::new());
        }
    }
}

/// A consistent, immutable view of a table's entries at one moment.
pub(crate) struct GroupsSnapshot<S> {
    groups: Vec<Arc<Group<S>>>,
}

/// First bytes of every table snapshot, then a format version.
const MAGIC: &[u8; 4] = b"EDST";
const VERSION: u8 = 1;

impl<S: Encode> GroupsSnapshot<S> {
    /// Appends the snapshot: header, then one length-prefixed section per
    /// non-empty key group, each with its own field-name dictionary so a
    /// restore can skip the groups it does not own.
    pub fn write(&self, kind: u8, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(kind);
        let mut head = Encoder::new();
        let non_empty = self.groups.iter().filter(|g| !g.is_empty()).count();
        head.varint(non_empty as u64);
        out.extend_from_slice(head.bytes());
        let mut section = Encoder::new();
        for (i, group) in self.groups.iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            section.reset_names();
            section.varint(group.len() as u64);
            for (key, slot) in group.iter() {
                section.bytes_field(key);
                // Stored as "expires" + 1 so NEVER (i64::MAX) costs one byte.
                section.varint(if slot.expires_at == NEVER {
                    0
                } else {
                    (slot.expires_at as u64).wrapping_add(1)
                });
                slot.state.encode(&mut section);
            }
            let body = section.take_bytes();
            let mut head = Encoder::new();
            head.varint(i as u64);
            head.varint(body.len() as u64);
            out.extend_from_slice(head.bytes());
            out.extend_from_slice(&body);
        }
    }

    /// Stored entries.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.len()).sum()
    }
}

impl<S: Decode + Clone> Groups<S> {
    /// Replaces the groups in `range` that the snapshot holds with its
    /// entries; returns how many entries were restored.
    pub fn restore(
        &mut self,
        kind: u8,
        bytes: &[u8],
        range: &GroupRange,
    ) -> Result<usize, StateError> {
        let mut dec = Decoder::new(bytes);
        if dec.take(4)? != MAGIC {
            return Err(StateError::Corrupt("not a table snapshot".into()));
        }
        let version = dec.u8()?;
        if version != VERSION {
            return Err(StateError::Corrupt(format!(
                "snapshot format version {version} is not {VERSION}"
            )));
        }
        let found = dec.u8()?;
        if found != kind {
            return Err(StateError::Corrupt(format!(
                "a snapshot of a {} table, not of a {} table",
                kind_name(found),
                kind_name(kind)
            )));
        }
        // Decode everything first so a corrupt snapshot changes nothing.
        let sections = dec.len(2)?;
        let mut restored = Vec::new();
        for _ in 0..sections {
            let g = dec.varint()?;
            let g = u32::try_from(g)
                .ok()
                .and_then(KeyGroup::new)
                .ok_or_else(|| StateError::Corrupt(format!("key group {g} out of range")))?;
            let body_len = dec.len(1)?;
            let body = dec.take(body_len)?;
            if !range.contains(g) {
                continue;
            }
            restored.push((g, decode_group::<S>(body)?));
        }
        dec.finish()?;
        let mut count = 0;
        for (g, group) in restored {
            count += group.len();
            self.groups[g.index()] = Arc::new(group);
        }
        Ok(count)
    }
}

fn decode_group<S: Decode>(body: &[u8]) -> Result<Group<S>, StateError> {
    let mut dec = Decoder::new(body);
    // An entry takes at least a key length, an expiry and a state byte.
    let n = dec.len(3)?;
    let mut group = BTreeMap::new();
    for _ in 0..n {
        let key: Arc<[u8]> = dec.bytes_field()?.into();
        let expires_at = match dec.varint()? {
            0 => NEVER,
            e => e.wrapping_sub(1) as Timestamp,
        };
        let state = S::decode(&mut dec)?;
        group.insert(key, Slot { state, expires_at });
    }
    dec.finish()?;
    Ok(group)
}

/// Table kinds as written in snapshots.
pub(crate) mod kind {
    pub const VALUE: u8 = 1;
    pub const LIST: u8 = 2;
    pub const MAP: u8 = 3;
    pub const TIMERS: u8 = 4;
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        kind::VALUE => "value",
        kind::LIST => "list",
        kind::MAP => "map",
        kind::TIMERS => "timer",
        _ => "unknown",
    }
}
