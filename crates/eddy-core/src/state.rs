//! The state contract between operators and the runtime: key groups, the
//! [`StateTable`] interface every table kind implements, timers, and the
//! errors of state.
//!
//! Operators keep per-key state in tables (the kinds live in the
//! `eddy-state` crate) and list them in [`crate::Operator::tables`]; the
//! runtime snapshots them at checkpoint barriers, writes the snapshots out
//! on another thread and restores them before the operator's first call.
//! State is partitioned into [`KEY_GROUPS`] key groups, the unit in which it
//! is snapshotted and handed between workers.

use std::hash::{BuildHasher, Hash};
use std::ops::Range;
use std::path::PathBuf;

use rustc_hash::FxBuildHasher;

use crate::codec::DecodeError;
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

/// A key group, `0..KEY_GROUPS`: the unit in which state is partitioned,
/// snapshotted and moved between workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyGroup(u16);

impl KeyGroup {
    /// The first key group.
    pub const MIN: KeyGroup = KeyGroup(0);

    /// Key group `g`, or `None` past [`KEY_GROUPS`].
    pub fn new(g: u32) -> Option<KeyGroup> {
        (g < KEY_GROUPS).then_some(KeyGroup(g as u16))
    }

    /// The key group of a key, as the runtime's partitioning computes it
    /// (the same hash of the same value routes the key to its owner).
    pub fn of<K: Hash + ?Sized>(key: &K) -> KeyGroup {
        KeyGroup(key_group(key) as u16)
    }

    /// The group's number.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    /// The group's number as an index into per-group arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// Every key group.
    pub fn all() -> impl Iterator<Item = KeyGroup> {
        (0..KEY_GROUPS as u16).map(KeyGroup)
    }
}

/// Key groups `start..end` (clamped to `0..KEY_GROUPS`): what one operator
/// instance owns, and what a restore may select.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRange(Range<u32>);

impl GroupRange {
    /// Groups `start..end`, clamped to the valid groups.
    pub fn new(range: Range<u32>) -> GroupRange {
        GroupRange(range.start.min(KEY_GROUPS)..range.end.min(KEY_GROUPS))
    }

    /// Every key group.
    pub fn all() -> GroupRange {
        GroupRange(0..KEY_GROUPS)
    }

    /// Whether `g` is in the range.
    pub fn contains(&self, g: KeyGroup) -> bool {
        self.0.contains(&g.get())
    }

    /// The first group.
    pub fn start(&self) -> u32 {
        self.0.start
    }

    /// One past the last group.
    pub fn end(&self) -> u32 {
        self.0.end
    }
}

/// The clock a table's TTL and a timer run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Event time: `now` is the operator's watermark, so expiry and firing
    /// depend only on the input (deterministic on replay).
    EventTime,
    /// Processing time: `now` is the wall clock in ms.
    ProcessingTime,
}

/// A table's state frozen at a checkpoint barrier: taking it is cheap (the
/// synchronous part), writing it out runs on the checkpoint writer's thread.
pub trait TableSnapshot: Send + Sync {
    /// Appends the snapshot's bytes to `out`.
    fn write(&self, out: &mut Vec<u8>);
    /// Stored entries (expired ones not yet removed included).
    fn len(&self) -> usize;
    /// Whether it holds no entries.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the runtime does with any state table, whatever its kind.
pub trait StateTable: Send {
    /// A consistent view of the table now; later writes do not change it.
    fn snapshot(&self) -> Box<dyn TableSnapshot>;
    /// Replaces the key groups in `groups` that `bytes` (a snapshot of a
    /// table of the same kind) holds; returns how many entries came back.
    /// On an error the table is unchanged. Bytes that do not decode are a
    /// [`StateError`], never a panic.
    fn restore(&mut self, bytes: &[u8], groups: &GroupRange) -> Result<usize, StateError>;
    /// The clock of the table's TTL, if it has one: the runtime removes
    /// expired entries before each snapshot with `now` read from it.
    fn ttl_domain(&self) -> Option<TimeDomain> {
        None
    }
    /// Removes every entry expired at `now`; returns how many.
    fn expire(&mut self, _now: Timestamp) -> usize {
        0
    }
    /// Drops the key groups in `groups` (state handed to another instance).
    fn clear(&mut self, groups: &GroupRange);
    /// Stored entries (expired ones not yet removed included).
    fn stored(&self) -> usize;
}

/// A timer that fired.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    /// When it was due.
    pub time: Timestamp,
    /// The key it was registered for.
    pub key: Box<[u8]>,
    /// The key's group.
    pub group: KeyGroup,
}

/// Per-key timers on one clock, kept by the runtime for an operator (see
/// [`crate::OperatorContext::timers`]).
pub trait Timers: StateTable {
    /// Registers a timer for `key` at `time`; returns false if it existed.
    fn register(&mut self, g: KeyGroup, key: &[u8], time: Timestamp) -> bool;
    /// Deletes the timer for `key` at `time`; returns whether it existed.
    fn delete(&mut self, g: KeyGroup, key: &[u8], time: Timestamp) -> bool;
    /// Removes and returns every timer due at `now` (time <= now), ordered
    /// by (time, key, group).
    fn due(&mut self, now: Timestamp) -> Vec<Timer>;
    /// The earliest registered time, if any.
    fn next_time(&self) -> Option<Timestamp>;
}

/// Why state could not be read, written or restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A snapshot's bytes are not a snapshot of this kind of table, or
    /// contradict themselves.
    #[error("state snapshot is unreadable: {0}")]
    Corrupt(String),
    /// A snapshot's records could not be decoded.
    #[error("state snapshot is unreadable: {0}")]
    Decode(#[from] DecodeError),
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The spill store failed.
    #[error("spill store: {0}")]
    Spill(String),
    /// A name that cannot be a checkpoint file name.
    #[error("{0:?} is not a valid checkpoint file name (letters, digits, '-', '_', '.'; not starting with '_' or '.')")]
    FileName(String),
}

impl StateError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.into(),
            source,
        }
    }
}

impl crate::error::Classify for StateError {
    fn domain(&self) -> crate::error::Domain {
        crate::error::Domain::State
    }

    fn retryable(&self) -> bool {
        matches!(self, StateError::Io { .. })
    }
}

/// What a scan of a [`SpillStore`] calls with each entry (key, value); an
/// error ends the scan with it.
pub type SpillVisit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StateError> + 'a;

/// Where an operator instance keeps state beyond its memory budget
/// (`[pipeline] state_memory`): an embedded store on local disk, one
/// keyspace of byte keys and values per instance, empty when the instance
/// starts. It is a cache of state, not a durable copy: checkpoints hold
/// the spilled entries too, and a restore starts from an empty store.
///
/// Implemented by `eddy-state` (feature `spill`); an operator reaches it
/// through [`Spill`] in its build context.
pub trait SpillStore: Send + Sync {
    /// Writes `entries` (key, value), replacing values of existing keys.
    fn put(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StateError>;
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Calls `f` with every entry whose key starts with `prefix`, in key
    /// order.
    fn scan(&self, prefix: &[u8], f: &mut SpillVisit<'_>) -> Result<(), StateError>;
    /// Deletes every entry whose key starts with `prefix`.
    fn remove_prefix(&self, prefix: &[u8]) -> Result<(), StateError>;
    /// The store as it is now, for a checkpoint's write-out while writes
    /// go on (a consistent read view).
    fn freeze(&self) -> Box<dyn SpillView>;
}

/// A read view of a [`SpillStore`] taken at a barrier.
pub trait SpillView: Send + Sync {
    /// As [`SpillStore::scan`], on the view.
    fn scan(&self, prefix: &[u8], f: &mut SpillVisit<'_>) -> Result<(), StateError>;
}

/// Opens the spill stores of a run's operator instances.
pub trait SpillSpace: Send + Sync {
    /// The empty store of the instance named `instance` (unique in the run).
    fn open(&self, instance: &str) -> Result<std::sync::Arc<dyn SpillStore>, StateError>;
}

/// A run's spilling: each operator instance keeps about `budget` bytes of
/// state in memory and spills the rest to a store from `space`.
#[derive(Clone)]
pub struct Spill {
    /// Bytes of state an operator instance keeps in memory.
    pub budget: u64,
    /// Where the stores come from.
    pub space: std::sync::Arc<dyn SpillSpace>,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("budget", &self.budget)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_spread_over_workers() {
        let mut seen = [0usize; 3];
        for i in 0..3_000 {
            seen[owner_of(key_group(&i), 3)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 600), "{seen:?}");
        assert_eq!(owner_of(KEY_GROUPS - 1, 3), 2);
        assert_eq!(KeyGroup::of(&7).get(), key_group(&7));
        assert_eq!(KeyGroup::new(KEY_GROUPS), None);
    }
}
