//! Tumbling and sliding window state beyond the operator's memory budget
//! (`[pipeline] state_memory`): whole key-group shards of a window are
//! evicted to the run's spill store, and a key is read back alone when an
//! event needs it.
//!
//! An entry of the store is one (window, key): its key is the window start
//! (8 bytes, big-endian with the sign bit flipped, so windows sort by
//! start), the key group (1 byte) and the key as snapshots write it; its
//! value is the accumulators as snapshots write them. A key read back stays
//! in the store too: memory holds the newer copy, and whatever reads both
//! (firing, snapshots) prefers memory.
//!
//! Memory is estimated, not measured: per resident entry, the sizes of its
//! map slot, key and accumulators plus the bytes they encode to (a proxy
//! for what they own on the heap), averaged over what was evicted.

use std::sync::Arc;

use eddy_core::codec::{Decoder, Encoder};
use eddy_core::metrics::Counter;
use eddy_core::state::{KeyGroup, Spill, SpillStore, SpillView, SpillVisit, StateError};
use eddy_core::{Timestamp, Value};

use super::common::Key;
use super::snapshot::{get_accs, get_key, put_accs, put_key};
use crate::aggregate::Accumulator;

/// Encoded bytes assumed per entry until an eviction measures them.
const FIRST_GUESS: u64 = 32;

/// The prefix of a window's entries.
fn window_prefix(start: Timestamp) -> [u8; 8] {
    ((start as u64) ^ (1 << 63)).to_be_bytes()
}

/// The prefix of a window's entries of one key group (not to be confused
/// with `snapshot::group_prefix`, a key's sort prefix).
fn entry_prefix(start: Timestamp, g: KeyGroup) -> [u8; 9] {
    let mut p = [0; 9];
    p[..8].copy_from_slice(&window_prefix(start));
    // Key groups are below 128: one byte.
    p[8] = g.index() as u8;
    p
}

/// A store failure: the local disk under the spill store failed, so the
/// operator's state is no longer whole. The run stops (a restart resumes
/// from the last checkpoint) rather than emit wrong results.
#[allow(clippy::panic)]
pub(crate) fn fatal(e: StateError) -> ! {
    panic!("window state: {e}; stopping (a restart resumes from the last checkpoint)")
}

/// A window operator's spilling.
pub(crate) struct Spiller {
    store: Arc<dyn SpillStore>,
    budget: u64,
    /// In-memory bytes of an entry apart from what it encodes to.
    fixed: u64,
    /// Average encoded bytes of an evicted entry.
    encoded: u64,
    /// Entries in memory.
    pub(crate) resident: u64,
    /// The key group eviction starts from next (it goes round).
    cursor: usize,
    /// Entries written to the store.
    spilled: Counter,
    /// The instance's name, for the log line of its first spill.
    instance: Option<String>,
    buf: Encoder,
    /// Number of key values.
    key_len: usize,
    /// Fresh accumulators of the specs, for decoding.
    like: Vec<Accumulator>,
}

impl Spiller {
    /// Spilling to a store from `spill`, for the instance named `instance`,
    /// of entries with `key_len` key values and accumulators like `like`
    /// whose in-memory slot (key pointer and slot) takes `slot_bytes`.
    pub(crate) fn open(
        spill: &Spill,
        instance: &str,
        (key_len, like, slot_bytes): (usize, Vec<Accumulator>, usize),
        spilled: Counter,
    ) -> Result<Spiller, StateError> {
        let accs = like.len();
        // A hash map slot (at 7/8 load), the key's shared allocation and
        // the accumulators' vector.
        let fixed = slot_bytes * 8 / 7
            + 16
            + key_len * std::mem::size_of::<Value>()
            + accs * std::mem::size_of::<Accumulator>();
        Ok(Spiller {
            store: spill.space.open(instance)?,
            budget: spill.budget,
            fixed: fixed as u64,
            encoded: FIRST_GUESS,
            resident: 0,
            cursor: 0,
            spilled,
            instance: Some(instance.to_string()),
            buf: Encoder::new(),
            key_len,
            like,
        })
    }

    /// Whether memory is over the budget.
    pub(crate) fn over(&self) -> bool {
        self.resident * (self.fixed + self.encoded) > self.budget
    }

    /// Whether eviction may stop: a quarter below the budget, so evictions
    /// come in batches.
    pub(crate) fn relieved(&self) -> bool {
        self.resident * (self.fixed + self.encoded) <= self.budget / 4 * 3
    }

    /// The key group to evict next; moves the cursor on.
    pub(crate) fn next_group(&mut self) -> KeyGroup {
        let g = KeyGroup::all().nth(self.cursor).unwrap_or(KeyGroup::MIN);
        self.cursor = (self.cursor + 1) % eddy_core::state::KEY_GROUPS as usize;
        g
    }

    /// Writes `entries` of window `start`, group `g` to the store; returns
    /// how many were not there before.
    pub(crate) fn evict<'a>(
        &mut self,
        start: Timestamp,
        g: KeyGroup,
        entries: impl Iterator<Item = (&'a Key, &'a [Accumulator], bool)>,
    ) -> u64 {
        let prefix = entry_prefix(start, g);
        let mut batch = Vec::new();
        let (mut new, mut bytes) = (0, 0);
        for (key, accs, on_disk) in entries {
            // Each key and value decodes alone: no names shared with
            // earlier entries.
            self.buf.take_bytes();
            self.buf.reset_names();
            put_key(&mut self.buf, key);
            let mut k = Vec::with_capacity(prefix.len() + self.buf.bytes().len());
            k.extend_from_slice(&prefix);
            k.extend_from_slice(&self.buf.take_bytes());
            self.buf.reset_names();
            put_accs(&mut self.buf, accs);
            let v = self.buf.take_bytes();
            bytes += (k.len() - prefix.len() + v.len()) as u64;
            batch.push((k, v));
            new += u64::from(!on_disk);
        }
        let n = batch.len() as u64;
        if n == 0 {
            return 0;
        }
        self.store.put(batch).unwrap_or_else(|e| fatal(e));
        self.spilled.add(n);
        // Said once per instance and run: from here on its state lives
        // partly on disk.
        if let Some(instance) = self.instance.take() {
            tracing::info!(
                "{instance}: window state beyond `state_memory` ({} bytes) spills to disk",
                self.budget
            );
        }
        // A running average that follows the state's shape as it changes.
        self.encoded = (self.encoded * 3 + bytes / n) / 4;
        self.resident = self.resident.saturating_sub(n);
        new
    }

    /// The accumulators of `key` in window `start` from the store.
    pub(crate) fn load(
        &self,
        start: Timestamp,
        g: KeyGroup,
        key: &[Value],
    ) -> Option<Vec<Accumulator>> {
        self.try_load(start, g, key).unwrap_or_else(|e| fatal(e))
    }

    fn try_load(
        &self,
        start: Timestamp,
        g: KeyGroup,
        key: &[Value],
    ) -> Result<Option<Vec<Accumulator>>, StateError> {
        let mut enc = Encoder::new();
        put_key(&mut enc, key);
        let mut k = entry_prefix(start, g).to_vec();
        k.extend_from_slice(enc.bytes());
        match self.store.get(&k)? {
            Some(v) => {
                let mut dec = Decoder::new(&v);
                let accs = get_accs(&mut dec, &self.like)?;
                dec.finish()?;
                Ok(Some(accs))
            }
            None => Ok(None),
        }
    }

    /// Calls `f` with each entry of window `start` in the store, decoded.
    pub(crate) fn scan(
        &self,
        start: Timestamp,
        f: &mut dyn FnMut(KeyGroup, Key, Vec<Accumulator>),
    ) {
        scan_entries(
            &|prefix, g| self.store.scan(prefix, g),
            &window_prefix(start),
            (self.key_len, &self.like),
            f,
        )
        .unwrap_or_else(|e| fatal(e));
    }

    /// Calls `f` with each spilled entry of window `start` in group `g`.
    pub(crate) fn scan_group(
        &self,
        start: Timestamp,
        g: KeyGroup,
        f: &mut dyn FnMut(KeyGroup, Key, Vec<Accumulator>),
    ) {
        scan_entries(
            &|prefix, g| self.store.scan(prefix, g),
            &entry_prefix(start, g),
            (self.key_len, &self.like),
            f,
        )
        .unwrap_or_else(|e| fatal(e));
    }

    /// Deletes window `start`'s entries (of group `g` only, if given).
    pub(crate) fn remove(&self, start: Timestamp, g: Option<KeyGroup>) {
        let result = match g {
            Some(g) => self.store.remove_prefix(&entry_prefix(start, g)),
            None => self.store.remove_prefix(&window_prefix(start)),
        };
        result.unwrap_or_else(|e| fatal(e));
    }

    /// Deletes every entry (a restore starts afresh).
    pub(crate) fn clear(&mut self) {
        self.store.remove_prefix(&[]).unwrap_or_else(|e| fatal(e));
        self.resident = 0;
    }

    /// The store as it is now, for a snapshot.
    pub(crate) fn freeze(&self) -> Frozen {
        Frozen {
            view: self.store.freeze(),
            key_len: self.key_len,
            like: self.like.clone(),
        }
    }
}

/// A spill store frozen at a barrier, with what decoding it needs.
pub(crate) struct Frozen {
    view: Box<dyn SpillView>,
    key_len: usize,
    like: Vec<Accumulator>,
}

impl Frozen {
    /// As [`Spiller::scan`], on the frozen view.
    pub(crate) fn scan(
        &self,
        start: Timestamp,
        f: &mut dyn FnMut(KeyGroup, Key, Vec<Accumulator>),
    ) {
        scan_entries(
            &|prefix, g| self.view.scan(prefix, g),
            &window_prefix(start),
            (self.key_len, &self.like),
            f,
        )
        .unwrap_or_else(|e| fatal(e));
    }
}

/// A scan of a store or a frozen view: `(prefix, callback)`.
type Scan<'a> = dyn Fn(&[u8], &mut SpillVisit<'_>) -> Result<(), StateError> + 'a;

/// Calls `f` with each entry under `prefix` (a window's, or a window's
/// group's) that `scan` finds, decoded.
fn scan_entries(
    scan: &Scan<'_>,
    prefix: &[u8],
    (key_len, like): (usize, &[Accumulator]),
    f: &mut dyn FnMut(KeyGroup, Key, Vec<Accumulator>),
) -> Result<(), StateError> {
    scan(prefix, &mut |k, v| {
        let bad = || StateError::Corrupt("a spilled window entry".into());
        let g = k
            .get(8)
            .and_then(|&g| KeyGroup::new(u32::from(g)))
            .ok_or_else(bad)?;
        let mut dec = Decoder::new(k.get(9..).ok_or_else(bad)?);
        let key = get_key(&mut dec, key_len)?;
        dec.finish()?;
        let mut dec = Decoder::new(v);
        let accs = get_accs(&mut dec, like)?;
        dec.finish()?;
        f(g, key, accs);
        Ok(())
    })
}
