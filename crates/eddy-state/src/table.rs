//! The three table kinds operators declare (value, list, map) and the
//! [`StateTable`] interface (from the operator contract in
//! [`eddy_core::state`]) the runtime snapshots and restores them through.
//!
//! Every call names the key's [`KeyGroup`] and its encoded key bytes, and
//! passes `now` on the table's TTL clock ([`crate::TimeDomain`]); without a
//! TTL `now` is ignored. A write restarts an entry's TTL; an expired entry is
//! invisible at once and removed when next written or by
//! [`StateTable::expire`]. For list and map tables the TTL covers the key's
//! whole list or map.

use std::collections::BTreeMap;

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use eddy_core::state::{StateTable, TableSnapshot, TimeDomain};
use eddy_core::Timestamp;

use crate::error::StateError;
use crate::groups::{kind, Groups, GroupsSnapshot};
use crate::key::{GroupRange, KeyGroup};
use crate::ttl::Ttl;

struct Frozen<S> {
    kind: u8,
    groups: GroupsSnapshot<S>,
}

impl<S: Encode + Send + Sync> TableSnapshot for Frozen<S> {
    fn write(&self, out: &mut Vec<u8>) {
        self.groups.write(self.kind, out);
    }
    fn len(&self) -> usize {
        self.groups.len()
    }
}

macro_rules! state_table {
    ($table:ident, $state:ty, $kind:expr) => {
        impl<V: Clone + Encode + Decode + Send + Sync + 'static> StateTable for $table<V> {
            fn snapshot(&self) -> Box<dyn TableSnapshot> {
                Box::new(Frozen {
                    kind: $kind,
                    groups: self.groups.snapshot(),
                })
            }
            fn restore(&mut self, bytes: &[u8], groups: &GroupRange) -> Result<usize, StateError> {
                self.groups.restore($kind, bytes, groups)
            }
            fn ttl_domain(&self) -> Option<TimeDomain> {
                self.groups.ttl.map(|t| t.domain)
            }
            fn expire(&mut self, now: Timestamp) -> usize {
                self.groups.expire(now)
            }
            fn clear(&mut self, groups: &GroupRange) {
                self.groups.clear(groups)
            }
            fn stored(&self) -> usize {
                self.groups.stored()
            }
        }
    };
}

/// One value per key (an accumulator, a last-seen record).
pub struct ValueTable<V> {
    groups: Groups<V>,
}

impl<V: Clone> ValueTable<V> {
    /// An empty table whose entries live for `ttl` after their last write.
    pub fn new(ttl: Option<Ttl>) -> Self {
        ValueTable {
            groups: Groups::new(ttl),
        }
    }

    /// The value of `key`, if present and not expired.
    pub fn get(&self, g: KeyGroup, key: &[u8], now: Timestamp) -> Option<&V> {
        self.groups.get(g, key, now)
    }

    /// Sets the value of `key`.
    pub fn put(&mut self, g: KeyGroup, key: &[u8], value: V, now: Timestamp) {
        self.groups.put(g, key, value, now);
    }

    /// The value of `key` to change in place, created with `init` if absent.
    pub fn update(
        &mut self,
        g: KeyGroup,
        key: &[u8],
        now: Timestamp,
        init: impl FnOnce() -> V,
    ) -> &mut V {
        self.groups.upsert(g, key, now, init)
    }

    /// Removes `key`, returning its value if it was visible.
    pub fn remove(&mut self, g: KeyGroup, key: &[u8], now: Timestamp) -> Option<V> {
        self.groups.remove(g, key, now)
    }

    /// The visible entries of one key group, in key order.
    pub fn iter_group(&self, g: KeyGroup, now: Timestamp) -> impl Iterator<Item = (&[u8], &V)> {
        self.groups.iter_group(g, now)
    }
}
state_table!(ValueTable, V, kind::VALUE);

/// A list per key (buffered events of a window, a pattern's partial match).
pub struct ListTable<V> {
    groups: Groups<Vec<V>>,
}

impl<V: Clone> ListTable<V> {
    /// An empty table whose lists live for `ttl` after their last write.
    pub fn new(ttl: Option<Ttl>) -> Self {
        ListTable {
            groups: Groups::new(ttl),
        }
    }

    /// The list of `key` (empty if absent or expired).
    pub fn get(&self, g: KeyGroup, key: &[u8], now: Timestamp) -> &[V] {
        self.groups.get(g, key, now).map_or(&[], Vec::as_slice)
    }

    /// Appends to the list of `key`.
    pub fn push(&mut self, g: KeyGroup, key: &[u8], value: V, now: Timestamp) {
        self.groups.upsert(g, key, now, Vec::new).push(value);
    }

    /// The list of `key` to change in place.
    pub fn update(&mut self, g: KeyGroup, key: &[u8], now: Timestamp) -> &mut Vec<V> {
        self.groups.upsert(g, key, now, Vec::new)
    }

    /// Removes the list of `key`, returning it if it was visible.
    pub fn remove(&mut self, g: KeyGroup, key: &[u8], now: Timestamp) -> Option<Vec<V>> {
        self.groups.remove(g, key, now)
    }

    /// The visible lists of one key group, in key order.
    pub fn iter_group(&self, g: KeyGroup, now: Timestamp) -> impl Iterator<Item = (&[u8], &[V])> {
        self.groups
            .iter_group(g, now)
            .map(|(k, v)| (k, v.as_slice()))
    }
}
state_table!(ListTable, Vec<V>, kind::LIST);

/// A map per key, ordered by its own keys (sessions of a user, counts per
/// window of a key).
#[derive(Clone, Debug, PartialEq)]
pub struct MapState<V>(pub BTreeMap<Box<[u8]>, V>);

impl<V> Default for MapState<V> {
    fn default() -> Self {
        MapState(BTreeMap::new())
    }
}

impl<V: Encode> Encode for MapState<V> {
    fn encode(&self, enc: &mut Encoder) {
        enc.varint(self.0.len() as u64);
        for (k, v) in &self.0 {
            enc.bytes_field(k);
            v.encode(enc);
        }
    }
}

impl<V: Decode> Decode for MapState<V> {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let n = dec.len(2)?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let k: Box<[u8]> = dec.bytes_field()?.into();
            let v = dec.nested(V::decode)?;
            map.insert(k, v);
        }
        Ok(MapState(map))
    }
}

/// A map per key.
pub struct MapTable<V> {
    groups: Groups<MapState<V>>,
}

impl<V: Clone> MapTable<V> {
    /// An empty table whose maps live for `ttl` after their last write.
    pub fn new(ttl: Option<Ttl>) -> Self {
        MapTable {
            groups: Groups::new(ttl),
        }
    }

    /// The value under `user_key` in the map of `key`.
    pub fn get(&self, g: KeyGroup, key: &[u8], user_key: &[u8], now: Timestamp) -> Option<&V> {
        self.groups.get(g, key, now)?.0.get(user_key)
    }

    /// Sets `user_key` in the map of `key`.
    pub fn put(&mut self, g: KeyGroup, key: &[u8], user_key: &[u8], value: V, now: Timestamp) {
        self.groups
            .upsert(g, key, now, MapState::default)
            .0
            .insert(user_key.into(), value);
    }

    /// Removes `user_key` from the map of `key`; a map left empty is removed.
    pub fn remove(
        &mut self,
        g: KeyGroup,
        key: &[u8],
        user_key: &[u8],
        now: Timestamp,
    ) -> Option<V> {
        let map = self.groups.get_mut(g, key, now)?;
        let out = map.0.remove(user_key);
        if map.0.is_empty() {
            self.groups.remove(g, key, now);
        }
        out
    }

    /// The entries of the map of `key`, in order of their keys.
    pub fn entries(
        &self,
        g: KeyGroup,
        key: &[u8],
        now: Timestamp,
    ) -> impl Iterator<Item = (&[u8], &V)> {
        self.groups
            .get(g, key, now)
            .into_iter()
            .flat_map(|m| m.0.iter().map(|(k, v)| (&**k, v)))
    }

    /// Removes the whole map of `key`.
    pub fn remove_all(&mut self, g: KeyGroup, key: &[u8], now: Timestamp) -> Option<MapState<V>> {
        self.groups.remove(g, key, now)
    }

    /// The visible maps of one key group, in key order.
    pub fn iter_group(
        &self,
        g: KeyGroup,
        now: Timestamp,
    ) -> impl Iterator<Item = (&[u8], &MapState<V>)> {
        self.groups.iter_group(g, now)
    }
}
state_table!(MapTable, MapState<V>, kind::MAP);
