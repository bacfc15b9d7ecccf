//! Per-key timers on one clock, kept in an ordered index per key group.
//!
//! A timer is (time, key): registering one twice keeps one. When the clock
//! advances, [`TimerTable::due`] pops every timer at or before `now` in
//! (time, key bytes, key group) order, whichever group it is in, so firing
//! order depends only on the timers. A timer registered while firing
//! others, at or before `now`, fires on the next call to `due`; the runtime
//! calls it until it returns nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use eddy_core::Timestamp;

use crate::error::StateError;
use crate::groups::{kind, Groups};
use crate::key::{GroupRange, KeyGroup};
use eddy_core::state::{StateTable, TableSnapshot, TimeDomain, Timer, Timers};

/// The times registered for one key, as snapshots store them.
#[derive(Clone, Debug, Default)]
struct Times(BTreeSet<Timestamp>);

impl Encode for Times {
    fn encode(&self, enc: &mut Encoder) {
        enc.varint(self.0.len() as u64);
        // Deltas from the previous time: timers of a key are close together.
        let mut prev = 0i64;
        for &t in &self.0 {
            enc.zigzag(t.wrapping_sub(prev));
            prev = t;
        }
    }
}

impl Decode for Times {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let n = dec.len(1)?;
        let mut set = BTreeSet::new();
        let mut prev = 0i64;
        for _ in 0..n {
            prev = prev.wrapping_add(dec.zigzag()?);
            set.insert(prev);
        }
        Ok(Times(set))
    }
}

/// A key group's timers ordered by (time, key).
type TimeIndex = BTreeSet<(Timestamp, Box<[u8]>)>;

/// Per-key timers on one clock.
pub struct TimerTable {
    domain: TimeDomain,
    /// Times per key: what snapshots hold and restores rebuild from.
    by_key: Groups<Times>,
    /// (time, key) per key group, for popping in order; rebuilt on restore.
    by_time: Vec<Arc<TimeIndex>>,
    /// Registered timers, so that finding none due costs nothing (the
    /// runtime asks at every watermark of every operator).
    count: usize,
}

impl TimerTable {
    /// No timers yet.
    pub fn new(domain: TimeDomain) -> TimerTable {
        TimerTable {
            domain,
            by_key: Groups::new(None),
            by_time: KeyGroup::all().map(|_| Arc::default()).collect(),
            count: 0,
        }
    }

    /// The clock these timers run on.
    pub fn domain(&self) -> TimeDomain {
        self.domain
    }

    /// The times registered for `key`, in order.
    pub fn times(&self, g: KeyGroup, key: &[u8]) -> impl Iterator<Item = Timestamp> + '_ {
        self.by_key
            .get(g, key, 0)
            .into_iter()
            .flat_map(|t| t.0.iter().copied())
    }

    /// Registered timers.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rebuild_index(&mut self, range: &GroupRange) {
        for g in KeyGroup::all().filter(|g| range.contains(*g)) {
            let index = self
                .by_key
                .iter_group(g, 0)
                .flat_map(|(key, times)| times.0.iter().map(move |&t| (t, Box::from(key))))
                .collect();
            self.by_time[g.index()] = Arc::new(index);
        }
        self.count = self.by_time.iter().map(|s| s.len()).sum();
    }
}

struct FrozenTimers(crate::groups::GroupsSnapshot<Times>);

impl TableSnapshot for FrozenTimers {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(kind::TIMERS, out);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl StateTable for TimerTable {
    fn snapshot(&self) -> Box<dyn TableSnapshot> {
        Box::new(FrozenTimers(self.by_key.snapshot()))
    }

    fn restore(&mut self, bytes: &[u8], groups: &GroupRange) -> Result<usize, StateError> {
        let n = self.by_key.restore(kind::TIMERS, bytes, groups)?;
        self.rebuild_index(groups);
        Ok(n)
    }

    fn clear(&mut self, groups: &GroupRange) {
        self.by_key.clear(groups);
        self.rebuild_index(groups);
    }

    fn stored(&self) -> usize {
        self.len()
    }
}

impl Timers for TimerTable {
    /// Registers a timer for `key` at `time`; returns false if it existed.
    fn register(&mut self, g: KeyGroup, key: &[u8], time: Timestamp) -> bool {
        let fresh = self.by_key.upsert(g, key, 0, Times::default).0.insert(time);
        if fresh {
            self.count += 1;
            Arc::make_mut(&mut self.by_time[g.index()]).insert((time, key.into()));
        }
        fresh
    }

    /// Deletes the timer for `key` at `time`; returns whether it existed.
    fn delete(&mut self, g: KeyGroup, key: &[u8], time: Timestamp) -> bool {
        let Some(times) = self.by_key.get_mut(g, key, 0) else {
            return false;
        };
        if !times.0.remove(&time) {
            return false;
        }
        if times.0.is_empty() {
            self.by_key.remove(g, key, 0);
        }
        Arc::make_mut(&mut self.by_time[g.index()]).remove(&(time, key.into()));
        self.count -= 1;
        true
    }

    /// The earliest registered time, if any.
    fn next_time(&self) -> Option<Timestamp> {
        self.by_time
            .iter()
            .filter_map(|s| s.first().map(|(t, _)| *t))
            .min()
    }

    /// Removes and returns every timer due at `now` (time <= now), ordered by
    /// (time, key, group).
    fn due(&mut self, now: Timestamp) -> Vec<Timer> {
        let mut fired = Vec::new();
        if self.count == 0 {
            return fired;
        }
        for (i, set) in self.by_time.iter_mut().enumerate() {
            if set.first().is_none_or(|(t, _)| *t > now) {
                continue;
            }
            let Some(group) = u32::try_from(i).ok().and_then(KeyGroup::new) else {
                continue;
            };
            let set = Arc::make_mut(set);
            while let Some((time, key)) = set.pop_first() {
                if time > now {
                    set.insert((time, key));
                    break;
                }
                fired.push(Timer { time, key, group });
            }
        }
        for timer in &fired {
            if let Some(times) = self.by_key.get_mut(timer.group, &timer.key, 0) {
                times.0.remove(&timer.time);
                if times.0.is_empty() {
                    self.by_key.remove(timer.group, &timer.key, 0);
                }
            }
        }
        self.count -= fired.len();
        fired.sort_unstable_by(|a, b| (a.time, &a.key, a.group).cmp(&(b.time, &b.key, b.group)));
        fired
    }
}
