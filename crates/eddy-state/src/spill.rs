//! The spill store (feature `spill`): state beyond an operator instance's
//! memory budget, in fjall, an embedded log-structured store (chosen over
//! redb and sled in `scripts/store-bench`: it writes eight times faster
//! than redb on this workload, and a spill store is written on every
//! eviction but read only for cold keys).
//!
//! One keyspace per run under `DIR` (emptied when the run starts and
//! removed when it ends), one partition per operator instance. Writes skip
//! the journal's fsync: spilled state is a cache that checkpoints make
//! durable, and a restarted run starts from an empty store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_core::state::{SpillSpace, SpillStore, SpillView, SpillVisit, StateError};
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle};

/// Block cache of the whole keyspace: reads of spilled state are rare.
const CACHE_BYTES: u64 = 8 << 20;
/// Memtables of all partitions together, before they are flushed to disk.
const WRITE_BUFFER_BYTES: u64 = 16 << 20;
/// One partition's memtable.
const MEMTABLE_BYTES: u32 = 4 << 20;
/// Deletions written at once when a prefix is removed.
const REMOVALS_PER_BATCH: usize = 16_384;

fn fail(e: impl std::fmt::Display) -> StateError {
    StateError::Spill(e.to_string())
}

/// A run's spill stores, all in one keyspace.
pub struct FjallSpace {
    /// Taken when the space is dropped, so its background work stops
    /// before the files go.
    keyspace: Option<Keyspace>,
    dir: PathBuf,
}

impl FjallSpace {
    /// Opens an empty keyspace in `dir`, deleting what a previous run left.
    pub fn create(dir: &Path) -> Result<FjallSpace, StateError> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io(dir, e)),
        }
        std::fs::create_dir_all(dir).map_err(|e| StateError::io(dir, e))?;
        let keyspace = Config::new(dir)
            .cache_size(CACHE_BYTES)
            .max_write_buffer_size(WRITE_BUFFER_BYTES)
            .manual_journal_persist(true)
            .open()
            .map_err(fail)?;
        Ok(FjallSpace {
            keyspace: Some(keyspace),
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for FjallSpace {
    fn drop(&mut self) {
        // The keyspace's flush and compaction threads may still write a
        // file while the directory is removed: close it first, and try
        // again a few times if a late write got in between. (Stores still
        // open elsewhere keep their files until they close.)
        drop(self.keyspace.take());
        for _ in 0..20 {
            match std::fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ if self.dir.exists() => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => return,
            }
        }
    }
}

impl SpillSpace for FjallSpace {
    fn open(&self, instance: &str) -> Result<Arc<dyn SpillStore>, StateError> {
        // Partition names allow letters, digits and `_-#$`: a hex name is
        // safe for any instance name.
        let name: String = instance.bytes().map(|b| format!("{b:02x}")).collect();
        let options = PartitionCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
        let keyspace = self
            .keyspace
            .as_ref()
            .ok_or_else(|| StateError::Spill("the spill space is closed".into()))?;
        let partition = keyspace.open_partition(&name, options).map_err(fail)?;
        Ok(Arc::new(FjallStore {
            keyspace: keyspace.clone(),
            partition,
        }))
    }
}

/// One operator instance's spill store.
struct FjallStore {
    keyspace: Keyspace,
    partition: PartitionHandle,
}

impl SpillStore for FjallStore {
    fn put(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StateError> {
        let mut batch = self.keyspace.batch();
        for (k, v) in entries {
            batch.insert(&self.partition, k, v);
        }
        batch.commit().map_err(fail)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.partition.get(key).map_err(fail)?.map(|v| v.to_vec()))
    }

    fn scan(&self, prefix: &[u8], f: &mut SpillVisit<'_>) -> Result<(), StateError> {
        for item in self.partition.prefix(prefix) {
            let (k, v) = item.map_err(fail)?;
            f(&k, &v)?;
        }
        Ok(())
    }

    /// In batches of [`REMOVALS_PER_BATCH`]: one batch for a fired window
    /// of millions of spilled keys would hold them all in memory.
    fn remove_prefix(&self, prefix: &[u8]) -> Result<(), StateError> {
        let mut batch = self.keyspace.batch();
        let mut queued = 0;
        for key in self.partition.snapshot().prefix(prefix) {
            let (k, _) = key.map_err(fail)?;
            batch.remove(&self.partition, k);
            queued += 1;
            if queued == REMOVALS_PER_BATCH {
                std::mem::replace(&mut batch, self.keyspace.batch())
                    .commit()
                    .map_err(fail)?;
                queued = 0;
            }
        }
        batch.commit().map_err(fail)
    }

    fn freeze(&self) -> Box<dyn SpillView> {
        Box::new(FjallView(self.partition.snapshot()))
    }
}

/// A consistent read view of one store.
struct FjallView(fjall::Snapshot);

impl SpillView for FjallView {
    fn scan(&self, prefix: &[u8], f: &mut SpillVisit<'_>) -> Result<(), StateError> {
        for item in self.0.prefix(prefix) {
            let (k, v) = item.map_err(fail)?;
            f(&k, &v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_put_read_scanned_frozen_and_removed_by_prefix() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|e| StateError::io("tmp", e))?;
        let space = FjallSpace::create(&dir.path().join("spill"))?;
        let a = space.open("window/0")?;
        let b = space.open("window/1")?;
        a.put(vec![
            (b"w1k1".to_vec(), b"1".to_vec()),
            (b"w1k2".to_vec(), b"2".to_vec()),
            (b"w2k1".to_vec(), b"3".to_vec()),
        ])?;
        b.put(vec![(b"w1k1".to_vec(), b"other".to_vec())])?;
        assert_eq!(a.get(b"w1k2")?, Some(b"2".to_vec()));
        assert_eq!(a.get(b"w1k3")?, None);
        let frozen = a.freeze();
        a.put(vec![(b"w1k1".to_vec(), b"9".to_vec())])?;
        a.remove_prefix(b"w1")?;
        let mut seen = Vec::new();
        a.scan(b"", &mut |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        assert_eq!(seen, [(b"w2k1".to_vec(), b"3".to_vec())]);
        let mut then = Vec::new();
        frozen.scan(b"w1", &mut |k, v| {
            then.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        assert_eq!(
            then,
            [
                (b"w1k1".to_vec(), b"1".to_vec()),
                (b"w1k2".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(b.get(b"w1k1")?, Some(b"other".to_vec()));
        // A new run starts empty.
        drop((a, b, frozen, space));
        let space = FjallSpace::create(&dir.path().join("spill"))?;
        assert_eq!(space.open("window/0")?.get(b"w2k1")?, None);
        Ok(())
    }
}
