//! Write-ahead staging: exactly-once output to receivers that drop a batch
//! whose key they have seen (HTTP `Idempotency-Key`, Redis guard keys).
//!
//! With checkpoints on, a delivering sink holds what it receives between
//! two barriers. At the barrier of checkpoint `n` the held events are
//! written to `n.stage` (fsynced, then renamed into place) and so become
//! part of the checkpoint; once `n` completes they are sent in batches
//! keyed `pipeline/node/worker/n/batch` and the file is removed. A process
//! that dies while sending, or before, finds the file on restart and sends
//! the same batches under the same keys again: the staged events are fixed
//! at the barrier, so the batches and their keys are too, and a receiver
//! that drops repeated keys sees each batch once. Files of checkpoints that
//! never completed are discarded, since the restored run produces their
//! events again. The price is latency: output waits for its checkpoint.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use eddy_core::codec::{decode_from, encode_to_vec};
use eddy_core::component::BuildContext;
use eddy_core::{Event, SinkError};

const SUFFIX: &str = ".stage";

/// One sink instance's staged events, by checkpoint.
pub struct Staging {
    dir: PathBuf,
    key_prefix: String,
    /// Received since the last barrier.
    open: Vec<Event>,
    /// Sealed at a barrier, waiting for their checkpoint to complete.
    sealed: BTreeMap<u64, Vec<Event>>,
}

/// `name` with every character that is not safe in a file name replaced.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> SinkError {
    move |source| SinkError::Io { context, source }
}

impl Staging {
    /// Staging for this instance, under `DATA_DIR/staging/PIPELINE/NODE-WORKER`.
    pub fn new(cx: &BuildContext) -> Staging {
        let dir = cx
            .data_dir
            .join("staging")
            .join(file_safe(&cx.pipeline))
            .join(format!("{}-{}", file_safe(&cx.name), cx.worker));
        Staging {
            dir,
            key_prefix: format!("{}/{}/{}", cx.pipeline, cx.name, cx.worker),
            open: Vec::new(),
            sealed: BTreeMap::new(),
        }
    }

    /// The key of batch `batch` of checkpoint `checkpoint`.
    pub fn key(&self, checkpoint: u64, batch: usize) -> String {
        format!("{}/{checkpoint}/{batch}", self.key_prefix)
    }

    /// Holds events until the next barrier.
    pub fn stage(&mut self, events: &[Event]) {
        self.open.extend_from_slice(events);
    }

    /// Events held, sealed or not.
    pub fn held(&self) -> usize {
        self.open.len() + self.sealed.values().map(Vec::len).sum::<usize>()
    }

    fn path(&self, checkpoint: u64) -> PathBuf {
        self.dir.join(format!("{checkpoint}{SUFFIX}"))
    }

    /// The barrier of `checkpoint`: what was held since the last one
    /// becomes durable, as part of that checkpoint.
    pub fn seal(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        let events = std::mem::take(&mut self.open);
        if events.is_empty() {
            return Ok(());
        }
        let path = self.path(checkpoint);
        write_durably(&self.dir, &path, &encode_to_vec(&events))?;
        self.sealed.entry(checkpoint).or_default().extend(events);
        Ok(())
    }

    /// Sealed checkpoints up to `checkpoint`, oldest first, to be sent.
    pub fn completed(&mut self, checkpoint: u64) -> Vec<(u64, Vec<Event>)> {
        let later = self.sealed.split_off(&(checkpoint + 1));
        std::mem::replace(&mut self.sealed, later)
            .into_iter()
            .collect()
    }

    /// Checkpoint `checkpoint`'s events were all sent: forget them.
    pub fn sent(&self, checkpoint: u64) -> Result<(), SinkError> {
        let path = self.path(checkpoint);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("remove {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// A run starts from checkpoint `restored`: returns the staged events
    /// of checkpoints up to it that may not all have been sent, oldest
    /// first, and discards those of later checkpoints.
    pub fn recover(&mut self, restored: Option<u64>) -> Result<Vec<(u64, Vec<Event>)>, SinkError> {
        self.open.clear();
        self.sealed.clear();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("read {}", self.dir.display()))(e)),
        };
        let mut found = BTreeMap::new();
        for entry in entries {
            let path = entry
                .map_err(io(format!("read {}", self.dir.display())))?
                .path();
            let Some(id) = checkpoint_of(&path) else {
                continue;
            };
            if restored.is_some_and(|r| id <= r) {
                found.insert(id, path);
            } else {
                std::fs::remove_file(&path).map_err(io(format!("remove {}", path.display())))?;
            }
        }
        let mut out = Vec::new();
        for (id, path) in found {
            let bytes = std::fs::read(&path).map_err(io(format!("read {}", path.display())))?;
            let events: Vec<Event> = decode_from(&bytes).map_err(|e| SinkError::Rejected {
                message: format!("staged output {} is damaged: {e}", path.display()),
                retryable: false,
            })?;
            out.push((id, events));
        }
        Ok(out)
    }
}

/// The checkpoint id of a `N.stage` file.
fn checkpoint_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// Writes `bytes` to `path` so that after a crash it is either absent or
/// whole: a temporary file, fsynced, renamed, and the directory fsynced.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let tmp = path.with_extension("tmp");
    let context = || format!("write {}", tmp.display());
    let mut file = std::fs::File::create(&tmp).map_err(io(context()))?;
    file.write_all(bytes).map_err(io(context()))?;
    file.sync_all().map_err(io(context()))?;
    std::fs::rename(&tmp, path).map_err(io(format!("rename to {}", path.display())))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("sync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use eddy_core::{Fields, Sym, Value};

    use super::*;

    fn event(n: i64) -> Event {
        let mut f = Fields::default();
        f.push(Sym::intern("n"), Value::Int(n));
        Event::new(n, f)
    }

    fn staging(dir: &Path) -> Staging {
        let mut cx = BuildContext::single("hook");
        cx.data_dir = dir.to_path_buf();
        cx.pipeline = "orders/eu".into();
        cx.worker = 1;
        Staging::new(&cx)
    }

    #[test]
    fn sealed_checkpoints_survive_a_restart_and_later_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = staging(dir.path());
        s.stage(&[event(1), event(2)]);
        s.seal(1).unwrap();
        s.seal(2).unwrap(); // nothing held: no file
        s.stage(&[event(3)]);
        s.seal(3).unwrap();
        s.stage(&[event(4)]);
        assert_eq!(s.held(), 4);
        assert_eq!(s.key(3, 0), "orders/eu/hook/1/3/0");

        // Checkpoint 1 completed and was sent; the process dies with 3
        // sealed and 4 held, and restarts from checkpoint 3.
        let done = s.completed(1);
        assert_eq!(done.len(), 1);
        s.sent(1).unwrap();
        let mut again = staging(dir.path());
        let resend = again.recover(Some(3)).unwrap();
        assert_eq!(resend.len(), 1);
        assert_eq!(resend[0].0, 3);
        assert_eq!(resend[0].1, vec![event(3)]);

        // Restarting from checkpoint 2 instead drops 3: its events come again.
        let mut s = staging(dir.path());
        s.stage(&[event(5)]);
        s.seal(4).unwrap();
        let mut again = staging(dir.path());
        assert_eq!(again.recover(Some(2)).unwrap().len(), 0);
        assert_eq!(again.recover(Some(9)).unwrap().len(), 0);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = staging(dir.path());
        s.stage(&[event(1)]);
        s.seal(1).unwrap();
        let path = s.path(1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&path, bytes).unwrap();
        let e = staging(dir.path()).recover(Some(1)).unwrap_err();
        assert!(e.to_string().contains("1.stage"), "{e}");
    }
}
