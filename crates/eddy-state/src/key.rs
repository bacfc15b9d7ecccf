//! Key groups as a checked type, and ranges of them.

use std::hash::Hash;
use std::ops::Range;

use eddy_core::state::{key_group, KEY_GROUPS};

/// A key group, `0..KEY_GROUPS`: the unit in which state is partitioned,
/// snapshotted and moved between workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyGroup(u16);

impl KeyGroup {
    /// Key group `g`, or `None` past [`KEY_GROUPS`].
    pub fn new(g: u32) -> Option<KeyGroup> {
        (g < KEY_GROUPS).then_some(KeyGroup(g as u16))
    }

    /// The key group of a key, as the runtime's partitioning computes it.
    pub fn of<K: Hash + ?Sized>(key: &K) -> KeyGroup {
        KeyGroup((key_group(key) % KEY_GROUPS) as u16)
    }

    /// The group's number.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    pub(crate) fn index(self) -> usize {
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
