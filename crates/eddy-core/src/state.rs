//! Keyed state and checkpoint snapshots (the seam that checkpoints and
//! exactly-once recovery build on).
//!
//! Operators keep their per-key state in a [`KeyedState`], which knows each
//! entry's key group and last access, so the runtime can expire entries by
//! TTL, snapshot them per key group at a checkpoint barrier, and hand a key
//! group to another worker or process when ownership moves.

use std::hash::{BuildHasher, Hash};

use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::time::Timestamp;

/// Number of key groups: the unit of state ownership and rescaling. Fixed per
/// pipeline, like Flink's max parallelism.
pub const KEY_GROUPS: u32 = 128;

/// The key group of a key.
pub fn key_group<K: Hash + ?Sized>(key: &K) -> u32 {
    (FxBuildHasher.hash_one(key) % KEY_GROUPS as u64) as u32
}

/// The worker that owns a key group when `workers` workers share the groups
/// in contiguous ranges.
pub fn owner_of(group: u32, workers: usize) -> usize {
    (group as usize * workers) / KEY_GROUPS as usize
}

/// Serialised operator state for one checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateSnapshot {
    /// The bytes, in the operator's own format.
    pub bytes: Vec<u8>,
}

/// Why state could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The snapshot is corrupt or of another operator version.
    #[error("state snapshot is unreadable: {0}")]
    Corrupt(String),
    /// The backend failed.
    #[error("state backend failed: {0}")]
    Backend(String),
}

impl crate::error::Classify for StateError {
    fn domain(&self) -> crate::error::Domain {
        crate::error::Domain::State
    }

    fn retryable(&self) -> bool {
        matches!(self, StateError::Backend(_))
    }
}

struct Entry<V> {
    value: V,
    touched: Timestamp,
}

/// A map from key to value with per-entry TTL, the one API operators use for
/// keyed state.
pub struct KeyedState<K, V> {
    entries: FxHashMap<K, Entry<V>>,
    ttl: Option<i64>,
}

impl<K: Hash + Eq + Clone, V> KeyedState<K, V> {
    /// Empty state; entries not touched for `ttl` ms are expired by
    /// [`KeyedState::expire`].
    pub fn new(ttl: Option<i64>) -> Self {
        KeyedState {
            entries: FxHashMap::default(),
            ttl,
        }
    }

    /// The value for `key`, created with `init` if absent; marks it touched at `now`.
    pub fn get_or_insert_with(
        &mut self,
        key: &K,
        now: Timestamp,
        init: impl FnOnce() -> V,
    ) -> &mut V {
        let e = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            value: init(),
            touched: now,
        });
        e.touched = e.touched.max(now);
        &mut e.value
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|e| e.value)
    }

    /// Drops entries idle for longer than the TTL; returns how many.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let Some(ttl) = self.ttl else { return 0 };
        let before = self.entries.len();
        self.entries
            .retain(|_, e| now.saturating_sub(e.touched) < ttl);
        before - self.entries.len()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates entries whose key falls in key group `group` (snapshot per group).
    pub fn iter_group(&self, group: u32) -> impl Iterator<Item = (&K, &V)> {
        self.entries
            .iter()
            .filter(move |(k, _)| key_group(*k) == group)
            .map(|(k, e)| (k, &e.value))
    }

    /// Iterates all entries.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, e)| (k, &e.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_expires_idle_keys_only() {
        let mut s: KeyedState<String, i32> = KeyedState::new(Some(1_000));
        *s.get_or_insert_with(&"a".into(), 0, || 0) += 1;
        *s.get_or_insert_with(&"b".into(), 900, || 0) += 1;
        assert_eq!(s.expire(1_500), 1);
        assert!(s.get(&"a".to_string()).is_none());
        assert_eq!(s.get(&"b".to_string()), Some(&1));
    }

    #[test]
    fn key_groups_spread_over_workers() {
        let mut seen = [0usize; 3];
        for i in 0..3_000 {
            seen[owner_of(key_group(&i), 3)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 600), "{seen:?}");
        assert_eq!(owner_of(KEY_GROUPS - 1, 3), 2);
        let mut s: KeyedState<i32, i32> = KeyedState::new(None);
        for k in 0..100 {
            s.get_or_insert_with(&k, 0, || k);
        }
        let per_group: usize = (0..KEY_GROUPS).map(|g| s.iter_group(g).count()).sum();
        assert_eq!(per_group, 100, "every key is in exactly one group");
    }
}
