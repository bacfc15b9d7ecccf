//! Writing, listing, verifying and pruning checkpoint directories.

use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StateError;
use crate::key::GroupRange;

use super::manifest::{self, FileEntry};

const MANIFEST: &str = "_manifest";
const MANIFEST_TMP: &str = "_manifest.tmp";
const PREFIX: &str = "chk-";
/// The file holding source positions.
pub const SOURCES_FILE: &str = "sources";

/// The file name for an operator's state in key groups `range`:
/// `op-<operator>-kg-<start>-<end>`, with characters outside
/// `[A-Za-z0-9_-]` in the operator name written as `~HH` (hex of each byte).
pub fn state_file_name(operator: &str, range: &GroupRange) -> String {
    let mut name = String::from("op-");
    for b in operator.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(b as char);
        } else {
            name.push_str(&format!("~{b:02x}"));
        }
    }
    name.push_str(&format!("-kg-{}-{}", range.start(), range.end()));
    name
}

fn check_file_name(name: &str) -> Result<(), StateError> {
    let valid = !name.is_empty()
        && !name.starts_with(['.', '_'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(StateError::FileName(name.to_owned()))
    }
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(dir, e))
}

/// Checkpoints under one directory.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

/// A checkpoint being written; nothing of it counts until [`Self::commit`].
#[derive(Debug)]
pub struct CheckpointWriter {
    id: u64,
    dir: PathBuf,
    files: Vec<FileEntry>,
}

/// A complete, verified checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Its id.
    pub id: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// Its files, as the manifest lists them.
    pub files: Vec<FileEntry>,
}

/// What is wrong with a checkpoint that listing skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No `_manifest`: it was never completed.
    MissingManifest,
    /// The manifest cannot be read or does not check out.
    BadManifest(String),
    /// A file the manifest lists is absent.
    MissingFile(String),
    /// A file's size differs from the manifest's.
    WrongSize {
        /// The file.
        name: String,
        /// Size in the manifest.
        expected: u64,
        /// Size on disk.
        found: u64,
    },
    /// A file's checksum differs from the manifest's.
    WrongChecksum(String),
    /// A file could not be read.
    Unreadable(String, String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingManifest => write!(f, "no {MANIFEST} (never completed)"),
            Problem::BadManifest(why) => write!(f, "{why}"),
            Problem::MissingFile(name) => write!(f, "file {name} is missing"),
            Problem::WrongSize {
                name,
                expected,
                found,
            } => write!(
                f,
                "file {name} has {found} bytes, the manifest says {expected}"
            ),
            Problem::WrongChecksum(name) => write!(f, "file {name} does not match its checksum"),
            Problem::Unreadable(name, why) => write!(f, "file {name} cannot be read: {why}"),
        }
    }
}

/// A checkpoint that listing skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointProblem {
    /// Its id.
    pub id: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skipping checkpoint {} ({}): {}",
            self.id,
            self.dir.display(),
            self.problem
        )
    }
}

/// The checkpoints of a store, newest first.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete, verified checkpoints.
    pub complete: Vec<Checkpoint>,
    /// Checkpoints skipped, each with its reason (warn about these).
    pub problems: Vec<CheckpointProblem>,
}

impl CheckpointStore {
    /// The store under `dir`, created if absent.
    pub fn open(dir: impl Into<PathBuf>) -> Result<CheckpointStore, StateError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| StateError::io(&dir, e))?;
        Ok(CheckpointStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{id}"))
    }

    /// Starts checkpoint `id`; what an earlier, unfinished attempt at the
    /// same id left behind is removed.
    pub fn begin(&self, id: u64) -> Result<CheckpointWriter, StateError> {
        let dir = self.path_of(id);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| StateError::io(&dir, e))?;
        }
        fs::create_dir(&dir).map_err(|e| StateError::io(&dir, e))?;
        sync_dir(&self.dir)?;
        Ok(CheckpointWriter {
            id,
            dir,
            files: Vec::new(),
        })
    }

    /// Ids of the `chk-<id>` directories, newest first.
    fn ids(&self) -> Result<Vec<u64>, StateError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| StateError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| StateError::io(&self.dir, e))?;
            let name = entry.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Reads and verifies checkpoint `id` (every file's size and checksum).
    pub fn verify(&self, id: u64) -> Result<Checkpoint, CheckpointProblem> {
        let dir = self.path_of(id);
        let problem = |problem| CheckpointProblem {
            id,
            dir: dir.clone(),
            problem,
        };
        let text = match fs::read(dir.join(MANIFEST)) {
            Ok(bytes) => String::from_utf8(bytes)
                .map_err(|_| problem(Problem::BadManifest("manifest is not text".into())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(problem(Problem::MissingManifest))
            }
            Err(e) => return Err(problem(Problem::BadManifest(e.to_string()))),
        };
        let (found_id, files) =
            manifest::parse(&text).map_err(|why| problem(Problem::BadManifest(why)))?;
        if found_id != id {
            return Err(problem(Problem::BadManifest(format!(
                "manifest is of checkpoint {found_id}"
            ))));
        }
        for f in &files {
            let bytes = match fs::read(dir.join(&f.name)) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(problem(Problem::MissingFile(f.name.clone())))
                }
                Err(e) => return Err(problem(Problem::Unreadable(f.name.clone(), e.to_string()))),
            };
            if bytes.len() as u64 != f.size {
                return Err(problem(Problem::WrongSize {
                    name: f.name.clone(),
                    expected: f.size,
                    found: bytes.len() as u64,
                }));
            }
            if crc32fast::hash(&bytes) != f.crc32 {
                return Err(problem(Problem::WrongChecksum(f.name.clone())));
            }
        }
        Ok(Checkpoint { id, dir, files })
    }

    /// Every checkpoint, verified, newest first (reads every file).
    pub fn list(&self) -> Result<Listing, StateError> {
        let mut listing = Listing::default();
        for id in self.ids()? {
            match self.verify(id) {
                Ok(c) => listing.complete.push(c),
                Err(p) => listing.problems.push(p),
            }
        }
        Ok(listing)
    }

    /// The newest complete checkpoint, and every newer one skipped with its
    /// reason (the caller warns about each, naming it).
    pub fn latest_complete(
        &self,
    ) -> Result<(Option<Checkpoint>, Vec<CheckpointProblem>), StateError> {
        let mut problems = Vec::new();
        for id in self.ids()? {
            match self.verify(id) {
                Ok(c) => return Ok((Some(c), problems)),
                Err(p) => problems.push(p),
            }
        }
        Ok((None, problems))
    }

    /// Keeps the newest `keep` complete checkpoints (at least one) and
    /// deletes every checkpoint older than the oldest kept, complete or not;
    /// newer incomplete ones may still be in progress and stay. Returns the
    /// deleted ids.
    pub fn retain(&self, keep: usize) -> Result<Vec<u64>, StateError> {
        let ids = self.ids()?;
        let kept: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&id| self.verify(id).is_ok())
            .take(keep.max(1))
            .collect();
        let Some(&oldest_kept) = kept.last() else {
            return Ok(Vec::new());
        };
        let mut deleted = Vec::new();
        for id in ids.into_iter().filter(|&id| id < oldest_kept) {
            let dir = self.path_of(id);
            fs::remove_dir_all(&dir).map_err(|e| StateError::io(&dir, e))?;
            deleted.push(id);
        }
        if !deleted.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(deleted)
    }
}

impl CheckpointWriter {
    /// The checkpoint's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Writes one file of the checkpoint and syncs it.
    pub fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        check_file_name(name)?;
        if self.files.iter().any(|f| f.name == name) {
            return Err(StateError::FileName(format!("{name} (written twice)")));
        }
        let path = self.dir.join(name);
        let mut file = File::create(&path).map_err(|e| StateError::io(&path, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| StateError::io(&path, e))?;
        self.files.push(FileEntry {
            name: name.to_owned(),
            size: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        });
        Ok(())
    }

    /// Writes the source positions.
    pub fn write_sources(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        self.write_file(SOURCES_FILE, bytes)
    }

    /// Completes the checkpoint: writes the manifest atomically (temporary
    /// file, sync, rename, sync of the directory).
    pub fn commit(mut self) -> Result<Checkpoint, StateError> {
        self.files.sort_by(|a, b| a.name.cmp(&b.name));
        let text = manifest::render(self.id, &self.files);
        let tmp = self.dir.join(MANIFEST_TMP);
        let mut file = File::create(&tmp).map_err(|e| StateError::io(&tmp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| StateError::io(&tmp, e))?;
        let path = self.dir.join(MANIFEST);
        fs::rename(&tmp, &path).map_err(|e| StateError::io(&path, e))?;
        sync_dir(&self.dir)?;
        Ok(Checkpoint {
            id: self.id,
            dir: self.dir,
            files: self.files,
        })
    }
}

impl Checkpoint {
    /// Reads one of its files, checking size and checksum again.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, StateError> {
        let entry = self.files.iter().find(|f| f.name == name).ok_or_else(|| {
            StateError::Corrupt(format!("checkpoint {} has no file {name}", self.id))
        })?;
        let path = self.dir.join(name);
        let bytes = fs::read(&path).map_err(|e| StateError::io(&path, e))?;
        if bytes.len() as u64 != entry.size || crc32fast::hash(&bytes) != entry.crc32 {
            return Err(StateError::Corrupt(format!(
                "{} does not match the manifest of checkpoint {}",
                path.display(),
                self.id
            )));
        }
        Ok(bytes)
    }

    /// The state files of `operator`, with the key-group range each covers.
    pub fn state_files(&self, operator: &str) -> Vec<(String, GroupRange)> {
        let prefix = state_file_name(operator, &GroupRange::new(0..0));
        let prefix = prefix.trim_end_matches("0-0");
        self.files
            .iter()
            .filter_map(|f| {
                let rest = f.name.strip_prefix(prefix)?;
                let (start, end) = rest.split_once('-')?;
                Some((
                    f.name.clone(),
                    GroupRange::new(start.parse().ok()?..end.parse().ok()?),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with complete checkpoints 1..=n, each with a state file and
    /// source positions whose bytes name the checkpoint.
    fn store_with(n: u64) -> (tempfile::TempDir, CheckpointStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path().join("checkpoints")).unwrap();
        for id in 1..=n {
            let mut w = store.begin(id).unwrap();
            let name = state_file_name("per merchant", &GroupRange::new(0..64));
            w.write_file(&name, format!("state of {id}").as_bytes())
                .unwrap();
            w.write_sources(format!("offsets of {id}").as_bytes())
                .unwrap();
            w.commit().unwrap();
        }
        (dir, store)
    }

    fn state_path(store: &CheckpointStore, id: u64) -> PathBuf {
        store
            .path_of(id)
            .join(state_file_name("per merchant", &GroupRange::new(0..64)))
    }

    fn assert_falls_back(store: &CheckpointStore, problem: Problem) {
        let (latest, skipped) = store.latest_complete().unwrap();
        assert_eq!(latest.map(|c| c.id), Some(2), "the previous complete one");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].id, 3);
        assert_eq!(skipped[0].problem, problem);
        let warning = skipped[0].to_string();
        assert!(
            warning.contains("checkpoint 3") && warning.contains("chk-3"),
            "{warning}"
        );
        let listing = store.list().unwrap();
        assert_eq!(
            listing.complete.iter().map(|c| c.id).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(listing.problems, skipped);
    }

    #[test]
    fn complete_checkpoints_read_back() {
        let (_dir, store) = store_with(2);
        let (latest, skipped) = store.latest_complete().unwrap();
        let latest = latest.unwrap();
        assert!(skipped.is_empty());
        assert_eq!(latest.read(SOURCES_FILE).unwrap(), b"offsets of 2");
        let files = latest.state_files("per merchant");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].1, GroupRange::new(0..64));
        assert_eq!(latest.read(&files[0].0).unwrap(), b"state of 2");
        assert!(
            latest.state_files("per").is_empty(),
            "prefixes of names do not match"
        );
    }

    #[test]
    fn a_truncated_file_is_skipped_with_a_warning() {
        let (_dir, store) = store_with(3);
        let path = state_path(&store, 3);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert_falls_back(
            &store,
            Problem::WrongSize {
                name,
                expected: bytes.len() as u64,
                found: bytes.len() as u64 - 2,
            },
        );
    }

    #[test]
    fn a_flipped_byte_is_skipped_with_a_warning() {
        let (_dir, store) = store_with(3);
        let path = state_path(&store, 3);
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] ^= 0x20;
        fs::write(&path, &bytes).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert_falls_back(&store, Problem::WrongChecksum(name));
    }

    #[test]
    fn a_missing_manifest_is_skipped_with_a_warning() {
        let (_dir, store) = store_with(3);
        fs::remove_file(store.path_of(3).join(MANIFEST)).unwrap();
        assert_falls_back(&store, Problem::MissingManifest);
    }

    #[test]
    fn a_missing_file_or_damaged_manifest_is_skipped() {
        let (_dir, store) = store_with(3);
        fs::remove_file(store.path_of(3).join(SOURCES_FILE)).unwrap();
        assert_falls_back(&store, Problem::MissingFile(SOURCES_FILE.into()));
        let (_dir, store) = store_with(3);
        let manifest = store.path_of(3).join(MANIFEST);
        let text = fs::read_to_string(&manifest).unwrap();
        fs::write(&manifest, text.replacen("file 10", "file 11", 1)).unwrap();
        assert_falls_back(
            &store,
            Problem::BadManifest("manifest checksum does not match".into()),
        );
    }

    #[test]
    fn an_unfinished_checkpoint_leaves_no_manifest() {
        let (_dir, store) = store_with(2);
        let mut w = store.begin(3).unwrap();
        w.write_file("op-x-kg-0-128", b"half").unwrap();
        drop(w);
        assert_falls_back(&store, Problem::MissingManifest);
    }

    #[test]
    fn retain_keeps_the_newest_complete_and_newer_unfinished() {
        let (_dir, store) = store_with(5);
        fs::remove_file(store.path_of(4).join(MANIFEST)).unwrap();
        store.begin(6).unwrap(); // in progress
        assert_eq!(store.retain(2).unwrap(), [2, 1]);
        let (latest, skipped) = store.latest_complete().unwrap();
        assert_eq!(latest.map(|c| c.id), Some(5));
        assert_eq!(skipped.iter().map(|p| p.id).collect::<Vec<_>>(), [6]);
        assert_eq!(store.ids().unwrap(), [6, 5, 4, 3]);
        assert_eq!(store.retain(0).unwrap(), [4, 3], "at least one is kept");
    }

    #[test]
    fn file_names_are_checked_and_operator_names_escaped() {
        let (_dir, store) = store_with(0);
        let mut w = store.begin(1).unwrap();
        for bad in ["", "_manifest", ".x", "a/b", "..", "a b"] {
            assert!(
                matches!(w.write_file(bad, b""), Err(StateError::FileName(_))),
                "{bad:?}"
            );
        }
        w.write_file("ok", b"").unwrap();
        assert!(w.write_file("ok", b"").is_err(), "written twice");
        assert_eq!(
            state_file_name("a b/é", &GroupRange::new(3..9)),
            "op-a~20b~2f~c3~a9-kg-3-9"
        );
    }
}
