//! Exactly-once output of the `file` sink (with `[checkpoint]`).
//!
//! Each instance appends its lines to its own in-progress file in a
//! staging directory beside the output, `.<file name>.eddy/`. At a
//! checkpoint's barrier (`pre_commit(n)`) it syncs that file and renames it
//! `pending-<n>-w<worker>`. When checkpoint `n` is stored (`commit(n)`), the
//! pending files up to `n` are appended to the real output in (checkpoint,
//! worker) order, under the shared writer's lock, and deleted.
//!
//! Publishing is redone, never doubled, after a crash: a small commit
//! record (`_committed`, replaced atomically) says up to which checkpoint
//! the output is published and where it then ended (file and length).
//! Before appending, the output is cut back to that end, so a publish
//! interrupted half-way starts again from the same place; pending files of
//! checkpoints the record already covers are only deleted. On start,
//! `recover(c)` drops in-progress files, publishes what was pending up to
//! `c` and deletes what was staged after it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use eddy_core::SinkError;

/// The staging directory of one sink and its commit record.
#[derive(Clone, Debug)]
pub(super) struct Staging {
    dir: PathBuf,
}

/// Where published output ended after the last publish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Record {
    /// The last checkpoint published (0: none).
    pub id: u64,
    /// The output file written last (rotation: the newest rotated file;
    /// `None`: none yet).
    pub file: Option<String>,
    /// Its length then.
    pub len: u64,
}

const RECORD: &str = "_committed";
const RECORD_TMP: &str = "_committed.tmp";

fn io(context: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        context: format!("file {}", context.display()),
        source,
    }
}

impl Staging {
    /// The staging directory for output `path`: `.<name>.eddy` beside it.
    pub fn for_output(path: &Path) -> Staging {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Staging {
            dir: parent.join(format!(".{name}.eddy")),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory if needed.
    pub fn create(&self) -> Result<(), SinkError> {
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))
    }

    /// The in-progress file of `worker`.
    pub fn in_progress(&self, worker: usize) -> PathBuf {
        self.dir.join(format!("inprogress-w{worker}"))
    }

    /// Opens `worker`'s in-progress file afresh.
    pub fn open_in_progress(&self, worker: usize) -> Result<BufWriter<File>, SinkError> {
        let path = self.in_progress(worker);
        let file = File::create(&path).map_err(io(&path))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    }

    /// Syncs `worker`'s in-progress file and seals it as checkpoint `id`'s.
    pub fn seal(&self, mut file: BufWriter<File>, worker: usize, id: u64) -> Result<(), SinkError> {
        let path = self.in_progress(worker);
        file.flush().map_err(io(&path))?;
        file.get_ref().sync_data().map_err(io(&path))?;
        let pending = self.dir.join(format!("pending-{id:020}-w{worker}"));
        fs::rename(&path, &pending).map_err(io(&pending))?;
        self.sync()
    }

    fn sync(&self) -> Result<(), SinkError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    /// Pending files, as (checkpoint, worker, path), in publish order.
    pub fn pending(&self) -> Result<Vec<(u64, usize, PathBuf)>, SinkError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((id, worker)) = name
                .strip_prefix("pending-")
                .and_then(|rest| rest.split_once("-w"))
            else {
                continue;
            };
            if let (Ok(id), Ok(worker)) = (id.parse(), worker.parse()) {
                out.push((id, worker, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes `worker`'s in-progress file and every pending file of a
    /// checkpoint after `after`.
    pub fn discard(&self, worker: usize, after: u64) -> Result<(), SinkError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == format!("inprogress-w{worker}") {
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        for (id, _, path) in self.pending()? {
            if id > after {
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }

    /// The commit record, if one was written.
    pub fn record(&self) -> Result<Option<Record>, SinkError> {
        let path = self.dir.join(RECORD);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let corrupt = || SinkError::Rejected {
            message: format!(
                "{} is damaged; remove the directory {} to start the output afresh",
                path.display(),
                self.dir.display()
            ),
            retryable: false,
        };
        let mut lines = text.lines();
        let mut field = |key: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .map(str::to_string)
                .ok_or_else(corrupt)
        };
        let id = field("id ")?.parse().map_err(|_| corrupt())?;
        let len = field("len ")?.parse().map_err(|_| corrupt())?;
        let file = field("file ")?;
        Ok(Some(Record {
            id,
            len,
            file: (!file.is_empty()).then_some(file),
        }))
    }

    /// Replaces the commit record atomically.
    pub fn write_record(&self, record: &Record) -> Result<(), SinkError> {
        let tmp = self.dir.join(RECORD_TMP);
        let text = format!(
            "id {}\nlen {}\nfile {}\n",
            record.id,
            record.len,
            record.file.as_deref().unwrap_or("")
        );
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        let path = self.dir.join(RECORD);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        self.sync()
    }
}

/// Truncates `path` to `len` bytes (a file that is shorter or absent is
/// left alone: nothing of it was published after the record).
pub(super) fn cut_back(path: &Path, len: u64) -> Result<(), SinkError> {
    match OpenOptions::new().write(true).open(path) {
        Ok(file) => {
            let now = file.metadata().map_err(io(path))?.len();
            if now > len {
                file.set_len(len).map_err(io(path))?;
                file.sync_all().map_err(io(path))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Reads a pending file whole (it is one checkpoint's worth of one
/// worker's lines).
pub(super) fn read(path: &Path) -> Result<Vec<u8>, SinkError> {
    fs::read(path).map_err(io(path))
}

/// Deletes published pending files.
pub(super) fn remove(paths: &[PathBuf]) -> Result<(), SinkError> {
    for p in paths {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(p)(e)),
        }
    }
    Ok(())
}
