//! Reference data that follows its source: a file read again when it
//! changes, a database table refreshed on an interval.
//!
//! A [`Reloading`] holds the current version behind an `Arc`; readers take
//! it once per batch and never wait on I/O. A background thread polls the
//! source and swaps a new version in only once it loaded completely, so a
//! reader sees the old data or the new, never a mix. A load that fails
//! keeps the old version (with a warning) and is tried again at the next
//! poll. The thread ends at its next poll after the last reader is dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::thread;
use std::time::{Duration, SystemTime};

/// A configured interval, or `default`; at least a millisecond, so a
/// poll never spins.
pub fn interval(d: Option<eddy_core::config::Duration>, default: Duration) -> Duration {
    d.map_or(default, |d| Duration::from_millis(d.ms().max(1) as u64))
}

/// Where a [`Reloading`] value comes from.
pub trait Origin: Send + 'static {
    /// What is loaded.
    type Data: Send + Sync + 'static;

    /// Whether it is worth loading again now (a file whose size or
    /// modification time changed; a table whose refresh interval passed).
    fn changed(&mut self) -> bool;

    /// Loads the whole value.
    fn load(&mut self) -> Result<Self::Data, String>;

    /// Names the source in log messages.
    fn describe(&self) -> String;
}

/// A value reloaded in the background from its [`Origin`].
pub struct Reloading<T> {
    current: RwLock<Version<T>>,
}

struct Version<T> {
    data: Arc<T>,
    /// How many times it was replaced.
    generation: u64,
    /// When the data was last loaded or confirmed.
    loaded_at: SystemTime,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Loads `origin` once (an error here is the caller's: a run must not
    /// start without its reference data) and polls it every `every`.
    pub fn start<O: Origin<Data = T>>(
        mut origin: O,
        every: Duration,
    ) -> Result<Arc<Reloading<T>>, String> {
        let data = origin.load()?;
        let this = Arc::new(Reloading {
            current: RwLock::new(Version {
                data: Arc::new(data),
                generation: 0,
                loaded_at: SystemTime::now(),
            }),
        });
        let weak = Arc::downgrade(&this);
        thread::Builder::new()
            .name("eddy-reload".into())
            .spawn(move || poll(origin, weak, every))
            .map_err(|e| format!("cannot start the reload thread: {e}"))?;
        Ok(this)
    }

    /// The current version.
    pub fn get(&self) -> Arc<T> {
        self.read(|v| v.data.clone())
    }

    /// How many times the value was replaced since the start.
    pub fn generation(&self) -> u64 {
        self.read(|v| v.generation)
    }

    /// How long ago the current value was loaded.
    pub fn age(&self) -> Duration {
        let at = self.read(|v| v.loaded_at);
        SystemTime::now().duration_since(at).unwrap_or_default()
    }

    fn read<R>(&self, f: impl FnOnce(&Version<T>) -> R) -> R {
        // A writer that panicked left a whole version behind: the swap is
        // one assignment, so the poisoned value is still consistent.
        f(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}

fn poll<O: Origin>(mut origin: O, cell: Weak<Reloading<O::Data>>, every: Duration) {
    loop {
        thread::sleep(every);
        if cell.strong_count() == 0 {
            return;
        }
        if !origin.changed() {
            continue;
        }
        let loaded = origin.load();
        let Some(cell) = cell.upgrade() else { return };
        match loaded {
            Ok(data) => {
                let mut v = cell.current.write().unwrap_or_else(|p| p.into_inner());
                v.data = Arc::new(data);
                v.generation += 1;
                v.loaded_at = SystemTime::now();
                tracing::info!("reloaded {}", origin.describe());
            }
            Err(e) => tracing::warn!(
                "cannot reload {}: {e}; keeping the data loaded before",
                origin.describe()
            ),
        }
    }
}

/// A file's identity for change detection: its length and modification time.
type Signature = Option<(u64, SystemTime)>;

fn signature(path: &Path) -> Signature {
    let meta = fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Parses a file's content.
type Read<T> = Box<dyn FnMut(&Path) -> Result<T, String> + Send>;

/// A file read again when it changes. A change is acted on once the file
/// looked the same at two polls in a row, so a file still being written in
/// place is not read half-way (replacing it by a rename is atomic anyway).
/// A version that failed to load is not tried again until it changes.
pub struct WatchedFile<T> {
    path: PathBuf,
    read: Read<T>,
    loaded: Signature,
    seen: Signature,
    failed: Signature,
}

impl<T> WatchedFile<T> {
    /// Watches `path`, parsed by `read`.
    pub fn new(
        path: PathBuf,
        read: impl FnMut(&Path) -> Result<T, String> + Send + 'static,
    ) -> WatchedFile<T> {
        WatchedFile {
            path,
            read: Box::new(read),
            loaded: None,
            seen: None,
            failed: None,
        }
    }
}

impl<T: Send + Sync + 'static> Origin for WatchedFile<T> {
    type Data = T;

    fn changed(&mut self) -> bool {
        let now = signature(&self.path);
        let settled = now == self.seen;
        self.seen = now;
        now.is_some() && settled && now != self.loaded && now != self.failed
    }

    fn load(&mut self) -> Result<T, String> {
        let before = signature(&self.path);
        self.seen = before;
        match (self.read)(&self.path) {
            Ok(data) => {
                self.loaded = before;
                Ok(data)
            }
            Err(e) => {
                self.failed = before;
                Err(format!("{}: {e}", self.path.display()))
            }
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_number(path: &Path) -> Result<u64, String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim().parse().map_err(|e| format!("{e}"))
    }

    fn wait_for(cell: &Reloading<u64>, generation: u64) {
        for _ in 0..500 {
            if cell.generation() >= generation {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("no reload to generation {generation}");
    }

    #[test]
    fn a_replaced_file_is_picked_up_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.txt");
        fs::write(&path, "1").unwrap();
        let cell = Reloading::start(
            WatchedFile::new(path.clone(), read_number),
            Duration::from_millis(5),
        )
        .unwrap();
        assert_eq!(*cell.get(), 1);

        let tmp = dir.path().join("n.tmp");
        fs::write(&tmp, "22").unwrap();
        fs::rename(&tmp, &path).unwrap();
        wait_for(&cell, 1);
        assert_eq!(*cell.get(), 22);

        fs::write(&path, "not a number, and longer").unwrap();
        thread::sleep(Duration::from_millis(100));
        assert_eq!(*cell.get(), 22, "a broken file keeps the old data");
        assert_eq!(cell.generation(), 1);

        fs::write(&path, "333").unwrap();
        wait_for(&cell, 2);
        assert_eq!(*cell.get(), 333);
        assert!(cell.age() < Duration::from_secs(5));
    }

    #[test]
    fn a_source_that_cannot_be_loaded_at_the_start_is_an_error() {
        let err = Reloading::start(
            WatchedFile::new("/nonexistent/n.txt".into(), read_number),
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(err.starts_with("/nonexistent/n.txt: "), "{err}");
    }
}
