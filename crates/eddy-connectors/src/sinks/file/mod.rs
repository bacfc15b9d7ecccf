//! `type = "file"`: appends each event as one JSON line to a file, or to a
//! series of rotated files.
//!
//! ```toml
//! [sinks.archive]
//! type = "file"
//! inputs = ["orders"]
//! path = "out/orders.ndjson"
//! truncate = false
//! rotate = { max_bytes = 104857600, interval = "1h" }
//! ```
//!
//! All worker instances of one sink share a single buffered writer per run
//! (`prepare` makes its holder, the first `build` opens it, so a pipeline
//! that fails to build an earlier node leaves the file untouched); each batch is encoded outside the lock and
//! written under it in one piece, so lines never interleave. Parent
//! directories are created as needed.
//!
//! With `rotate`, output goes to `out/orders-20240501T120000-000000.ndjson`,
//! `out/orders-20240501T120000-000001.ndjson`, … (UTC creation time, then a
//! sequence number that continues after the files already there), so the
//! names sort in write order. A file is created on
//! the first line written to it, never replaces an existing file, and is
//! closed once it holds `max_bytes` or is `interval` old. Files are cut only
//! between lines, so their concatenation in name order is exactly the
//! unrotated output.
//!
//! With `[checkpoint]` the sink is exactly-once (see [`staged`]): lines
//! are staged per instance and checkpoint beside the output and published
//! when the checkpoint is stored, so after a crash and restart the output
//! holds exactly what one uninterrupted run writes. Output then appears at
//! each completed checkpoint; `truncate` applies when a run starts afresh,
//! not when it resumes. After a restart, rotation starts a new file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use eddy_core::component::{
    BuildContext, BuildError, NodeContext, PathScope, PathUse, Prepared, SinkFactory,
};
use eddy_core::config::Duration;
use eddy_core::time::{now_ms, UtcDateTime};
use eddy_core::{Event, Sink, SinkError, Timestamp};
use serde::Deserialize;

use super::stdout::encode_ndjson;
use crate::sources::file::RecordFormat;

mod staged;

use staged::{Record, Staging};

/// Capacity of the shared write buffer.
const WRITE_CAPACITY: usize = 1 << 20;

type Writer = Arc<Mutex<Output>>;

/// Configuration of the `file` sink.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to write. Parent directories are created. With `rotate`,
    /// its directory, stem and extension name the rotated files.
    pub path: PathBuf,
    /// The output format. Only `"json"` (one JSON object per line) is
    /// supported.
    #[serde(default)]
    pub format: RecordFormat,
    /// Empty the file when the pipeline starts (default `true`); `false`
    /// appends to what is already there. Rotated files are always new, so
    /// this only applies without `rotate`.
    #[serde(default = "default_true")]
    pub truncate: bool,
    /// Start a new file once the current one holds `max_bytes` bytes or is
    /// `interval` old: `{ max_bytes = 104857600, interval = "1h" }` (either
    /// or both). A single line longer than `max_bytes` gets a file of its
    /// own. Default: one file, `path`.
    #[serde(default)]
    pub rotate: Option<Rotate>,
}

fn default_true() -> bool {
    true
}

/// When the `file` sink starts a new file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "RawRotate")]
pub struct Rotate {
    /// Largest file size in bytes.
    pub max_bytes: Option<u64>,
    /// Longest time (wall clock) a file stays open, from its first line.
    pub interval: Option<Duration>,
}

/// The `rotate = { ... }` table as written, before its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotate {
    max_bytes: Option<u64>,
    interval: Option<Duration>,
}

impl TryFrom<RawRotate> for Rotate {
    type Error = String;

    fn try_from(raw: RawRotate) -> Result<Rotate, String> {
        match (raw.max_bytes, raw.interval) {
            (None, None) => Err("`rotate` needs `max_bytes`, `interval` or both, e.g. \
                 `{ max_bytes = 104857600, interval = \"1h\" }`"
                .into()),
            (Some(0), _) => Err("`rotate.max_bytes` must be at least 1".into()),
            (max_bytes, interval) => Ok(Rotate {
                max_bytes,
                interval,
            }),
        }
    }
}

impl FileSinkConfig {
    /// A config writing to `path` with the defaults.
    pub fn new(path: impl Into<PathBuf>) -> FileSinkConfig {
        FileSinkConfig {
            path: path.into(),
            format: RecordFormat::Json,
            truncate: true,
            rotate: None,
        }
    }

    fn open(&self, exactly_once: bool) -> Result<Writer, String> {
        let parent = self.path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create directory {}: {e}", parent.display()))?;
        }
        let output = match self.rotate {
            Some(limits) => Output::Rotating(Rotating::new(&self.path, limits)),
            None => Output::Single {
                path: self.path.display().to_string(),
                writer: self.open_single(exactly_once)?,
            },
        };
        Ok(Arc::new(Mutex::new(output)))
    }

    /// Opens the single output file. Exactly-once output keeps what is
    /// there: recovery decides what of it stays.
    fn open_single(&self, exactly_once: bool) -> Result<BufWriter<File>, String> {
        let mut options = OpenOptions::new();
        if self.truncate && !exactly_once {
            options.write(true).create(true).truncate(true);
        } else {
            options.append(true).create(true);
        }
        let file = options
            .open(&self.path)
            .map_err(|e| format!("cannot open {} for writing: {e}", self.path.display()))?;
        Ok(BufWriter::with_capacity(WRITE_CAPACITY, file))
    }
}

impl SinkFactory for FileSinkConfig {
    /// The holder of this run's writer: the run's instances share it, and
    /// the next run opens (and truncates) its own.
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(Some(Prepared::new(RunWriter::default())))
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let writer = cx
            .prepared::<RunWriter>()?
            .0
            .get_or_init(|| self.open(cx.exactly_once))
            .clone()
            .map_err(|e| BuildError::Sink {
                message: format!("sink `{}`: {e}", cx.name),
                retryable: false,
            })?;
        let staged = cx.exactly_once.then(|| Staged {
            staging: Staging::for_output(&self.path),
            worker: cx.worker,
            in_progress: None,
            truncate: self.truncate,
        });
        Ok(Box::new(FileSink {
            path: self.path.display().to_string(),
            writer,
            buf: Vec::with_capacity(64 * 1024),
            staged,
        }))
    }

    fn writes(&self) -> Vec<PathUse> {
        let staging = PathUse {
            path: Staging::for_output(&self.path).dir().to_path_buf(),
            scope: PathScope::Directory,
        };
        if self.rotate.is_none() {
            return vec![PathUse::file(&self.path), staging];
        }
        // Rotated files are `STEM-<time>-<seq>.EXT` beside `path`.
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        vec![
            PathUse {
                path: self.path.with_file_name(format!("{stem}-")),
                scope: PathScope::Prefix,
            },
            staging,
        ]
    }
}

/// One run's writer (or why it could not be opened), opened by the first
/// instance built.
#[derive(Default)]
struct RunWriter(OnceLock<Result<Writer, String>>);

/// Where the shared writer's bytes go.
enum Output {
    /// Everything to one file.
    Single {
        path: String,
        writer: BufWriter<File>,
    },
    /// A series of files, see the module docs.
    Rotating(Rotating),
}

impl Output {
    fn write(&mut self, lines: &[u8], now: Timestamp) -> Result<(), SinkError> {
        match self {
            Output::Single { path, writer } => writer.write_all(lines).map_err(io_error(path)),
            Output::Rotating(r) => r.write(lines, now),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Output::Single { path, writer } => writer.flush().map_err(io_error(path)),
            Output::Rotating(r) => r.flush(),
        }
    }

    fn on_tick(&mut self, now: Timestamp) -> Result<(), SinkError> {
        match self {
            Output::Single { .. } => Ok(()),
            Output::Rotating(r) => r.close_if_expired(now),
        }
    }

    /// Where the output ends now: the file written last and its length.
    fn end(&mut self) -> Result<(String, u64), SinkError> {
        self.flush()?;
        match self {
            Output::Single { path, writer } => {
                let len = writer.get_ref().metadata().map_err(io_error(path))?.len();
                Ok((path.clone(), len))
            }
            Output::Rotating(r) => Ok(r.last_written()),
        }
    }

    /// Cuts the output back to where `record` says it ended: a publish
    /// that a crash interrupted is undone before it is redone.
    fn cut_back(&mut self, record: &Record) -> Result<(), SinkError> {
        self.flush()?;
        match self {
            Output::Single { path, .. } => staged::cut_back(Path::new(path), record.len),
            Output::Rotating(r) => r.cut_back(record),
        }
    }

    /// Forces what was written to disk.
    fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        match self {
            Output::Single { path, writer } => writer.get_ref().sync_data().map_err(io_error(path)),
            Output::Rotating(r) => r.sync(),
        }
    }

    /// Publishes the pending files of checkpoints up to `upto`, in
    /// (checkpoint, worker) order, exactly once (see [`staged`]).
    fn publish(&mut self, staging: &Staging, upto: u64, now: Timestamp) -> Result<(), SinkError> {
        let pending: Vec<_> = staging
            .pending()?
            .into_iter()
            .filter(|(id, _, _)| *id <= upto)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let record = match staging.record()? {
            Some(r) => r,
            None => self.fresh_record()?,
        };
        let (done, fresh): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(id, _, _)| *id <= record.id);
        let done: Vec<PathBuf> = done.into_iter().map(|(_, _, p)| p).collect();
        if fresh.is_empty() {
            return staged::remove(&done);
        }
        self.cut_back(&record)?;
        let mut last = record.id;
        for (id, _, path) in &fresh {
            self.write(&staged::read(path)?, now)?;
            last = last.max(*id);
        }
        self.sync()?;
        let (file, len) = self.end()?;
        staging.write_record(&Record {
            id: last,
            file: Some(file),
            len,
        })?;
        staged::remove(&done)?;
        staged::remove(&fresh.into_iter().map(|(_, _, p)| p).collect::<Vec<_>>())
    }

    /// The record of an output nothing was published to yet: it ends where
    /// it ends now.
    fn fresh_record(&mut self) -> Result<Record, SinkError> {
        let (file, len) = self.end()?;
        Ok(Record {
            id: 0,
            file: Some(file),
            len,
        })
    }

    /// Starts afresh: empties a single file when `truncate`, and records
    /// where the output ends.
    fn reset(&mut self, staging: &Staging, truncate: bool) -> Result<(), SinkError> {
        if let (Output::Single { path, .. }, true) = (&mut *self, truncate) {
            staged::cut_back(Path::new(path), 0)?;
        }
        let record = self.fresh_record()?;
        staging.write_record(&record)
    }
}

fn io_error(context: &str) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        context: format!("file {context}"),
        source,
    }
}

/// A series of files `DIR/STEM-<UTC yyyymmddTHHMMSS>-<seq>.EXT`.
struct Rotating {
    dir: PathBuf,
    stem: String,
    extension: String,
    limits: Rotate,
    /// The next sequence number to try.
    seq: u64,
    /// The open file, if a line was written since the last rotation.
    current: Option<RotatedFile>,
    /// The file written last and its length (exactly-once bookkeeping).
    last: Option<(String, u64)>,
    /// Files written since the last `sync`.
    unsynced: Vec<String>,
}

struct RotatedFile {
    path: String,
    writer: BufWriter<File>,
    bytes: u64,
    opened_at: Timestamp,
}

impl Rotating {
    fn new(path: &Path, limits: Rotate) -> Rotating {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let extension = path
            .extension()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ndjson".into());
        Rotating {
            dir,
            stem,
            extension,
            limits,
            seq: 0,
            current: None,
            last: None,
            unsynced: Vec::new(),
        }
    }

    /// The file written last and its length; before any, the newest
    /// rotated file already there (or none, as an empty name).
    fn last_written(&self) -> (String, u64) {
        if let Some(last) = &self.last {
            return last.clone();
        }
        let newest = self.existing().into_iter().max();
        match newest {
            Some(path) => {
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                (path, len)
            }
            None => (String::new(), 0),
        }
    }

    /// The sequence number in a rotated file's path.
    fn seq_of(&self, path: &str) -> Option<u64> {
        let name = Path::new(path).file_name()?.to_str()?;
        let inner = name
            .strip_prefix(&format!("{}-", self.stem))?
            .strip_suffix(&format!(".{}", self.extension))?;
        inner.rsplit_once('-')?.1.parse().ok()
    }

    /// The rotated files of this sink now on disk.
    fn existing(&self) -> Vec<String> {
        let prefix = format!("{}-", self.stem);
        let suffix = format!(".{}", self.extension);
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name.starts_with(&prefix) && name.ends_with(&suffix))
                    .then(|| e.path().display().to_string())
            })
            .collect()
    }

    /// Removes the files written after the record's and cuts that one back
    /// to its recorded length; the next line opens a new file.
    fn cut_back(&mut self, record: &Record) -> Result<(), SinkError> {
        let kept = record.file.clone().unwrap_or_default();
        if let Some(f) = self.current.take() {
            close(f)?;
        }
        for path in self.existing() {
            if path > kept {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            }
        }
        if !kept.is_empty() {
            staged::cut_back(Path::new(&kept), record.len)?;
        }
        self.last = None;
        Ok(())
    }

    /// Forces every file written since the last call to disk.
    fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        for path in std::mem::take(&mut self.unsynced) {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_error(&path))?;
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&self.dir.display().to_string()))
    }

    /// Creates the next file. `create_new` makes an existing name (an
    /// earlier run in the same second) move on to the next number instead
    /// of being overwritten.
    fn open_next(&mut self, now: Timestamp) -> Result<RotatedFile, SinkError> {
        if self.seq == 0 {
            // Continue after the files already there (an earlier run, or
            // this one before a restart), so a new file in the same second
            // still sorts after them.
            self.seq = self
                .existing()
                .iter()
                .filter_map(|p| self.seq_of(p))
                .max()
                .map_or(0, |s| s + 1);
        }
        let t = UtcDateTime::from_timestamp(now);
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        );
        loop {
            let name = format!("{}-{stamp}-{:06}.{}", self.stem, self.seq, self.extension);
            let path = self.dir.join(name);
            self.seq += 1;
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    self.unsynced.push(path.display().to_string());
                    return Ok(RotatedFile {
                        path: path.display().to_string(),
                        writer: BufWriter::with_capacity(WRITE_CAPACITY, file),
                        bytes: 0,
                        opened_at: now,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(SinkError::Io {
                        context: format!("cannot create {}", path.display()),
                        source,
                    })
                }
            }
        }
    }

    /// Writes whole lines, closing files as they fill up.
    fn write(&mut self, mut lines: &[u8], now: Timestamp) -> Result<(), SinkError> {
        self.close_if_expired(now)?;
        while !lines.is_empty() {
            let mut file = match self.current.take() {
                Some(f) => f,
                None => self.open_next(now)?,
            };
            let take = match self.limits.max_bytes {
                None => lines.len(),
                Some(max) => {
                    let room = max.saturating_sub(file.bytes);
                    match whole_lines_within(lines, room) {
                        0 if file.bytes > 0 => {
                            close(file)?;
                            continue;
                        }
                        0 => first_line_len(lines),
                        n => n,
                    }
                }
            };
            let (now_lines, rest) = lines.split_at(take);
            file.writer
                .write_all(now_lines)
                .map_err(io_error(&file.path))?;
            file.bytes += take as u64;
            self.last = Some((file.path.clone(), file.bytes));
            lines = rest;
            if self.limits.max_bytes.is_some_and(|max| file.bytes >= max) {
                close(file)?;
            } else {
                self.current = Some(file);
            }
        }
        Ok(())
    }

    fn close_if_expired(&mut self, now: Timestamp) -> Result<(), SinkError> {
        let expired = match (&self.current, self.limits.interval) {
            (Some(f), Some(interval)) => now.saturating_sub(f.opened_at) >= interval.ms(),
            _ => false,
        };
        match self.current.take() {
            Some(f) if expired => close(f),
            other => {
                self.current = other;
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.current {
            Some(f) => f.writer.flush().map_err(io_error(&f.path)),
            None => Ok(()),
        }
    }
}

fn close(mut file: RotatedFile) -> Result<(), SinkError> {
    file.writer.flush().map_err(io_error(&file.path))
}

/// The length of the longest prefix of `lines` (complete lines, each ending
/// in `\n`) that is at most `room` bytes and ends at a line end.
fn whole_lines_within(lines: &[u8], room: u64) -> usize {
    let limit = usize::try_from(room).unwrap_or(usize::MAX).min(lines.len());
    if limit == lines.len() {
        return limit;
    }
    memchr::memrchr(b'\n', &lines[..limit]).map_or(0, |i| i + 1)
}

fn first_line_len(lines: &[u8]) -> usize {
    memchr::memchr(b'\n', lines).map_or(lines.len(), |i| i + 1)
}

/// A running `file` sink instance.
pub struct FileSink {
    path: String,
    writer: Writer,
    buf: Vec<u8>,
    /// Exactly-once staging, with `[checkpoint]`.
    staged: Option<Staged>,
}

/// One instance's exactly-once state.
struct Staged {
    staging: Staging,
    worker: usize,
    /// This instance's lines since the last barrier.
    in_progress: Option<BufWriter<File>>,
    truncate: bool,
}

impl FileSink {
    fn with_output(
        &self,
        f: impl FnOnce(&mut Output) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let mut guard = self.writer.lock().map_err(|_| SinkError::Rejected {
            message: format!(
                "file {}: writer unusable after a panic in another worker",
                self.path
            ),
            retryable: false,
        })?;
        f(&mut guard)
    }
}

impl Sink for FileSink {
    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        encode_ndjson(&mut buf, events);
        let result = match &mut self.staged {
            Some(staged) => staged.write(&buf),
            None => self.with_output(|out| out.write(&buf, now_ms())),
        };
        if buf.capacity() <= 16 << 20 {
            self.buf = buf;
        }
        result
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.staged {
            Some(staged) => match &mut staged.in_progress {
                Some(f) => f
                    .flush()
                    .map_err(io_error(&staged.staging.dir().display().to_string())),
                None => Ok(()),
            },
            None => self.with_output(Output::flush),
        }
    }

    fn on_tick(&mut self) -> Result<(), SinkError> {
        match self.staged {
            // Rotation by time happens as checkpoints are published.
            Some(_) => Ok(()),
            None => self.with_output(|out| out.on_tick(now_ms())),
        }
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        let Some(staged) = &mut self.staged else {
            return self.flush();
        };
        match staged.in_progress.take() {
            Some(file) => staged.staging.seal(file, staged.worker, checkpoint),
            None => Ok(()),
        }
    }

    fn commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        let Some(staging) = self.staged.as_ref().map(|s| s.staging.clone()) else {
            return Ok(());
        };
        self.with_output(|out| out.publish(&staging, checkpoint, now_ms()))
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<(), SinkError> {
        let Some(staged) = &mut self.staged else {
            return Ok(());
        };
        staged.in_progress = None;
        let (staging, truncate, worker) = (staged.staging.clone(), staged.truncate, staged.worker);
        staging.create()?;
        // Only this instance's in-progress file: another instance may
        // already be running and staging. No checkpoint is taken before
        // every instance recovered, so no pending file is new.
        self.with_output(|out| match restored {
            None => {
                staging.discard(worker, 0)?;
                out.reset(&staging, truncate)
            }
            Some(id) => {
                match staging.record()? {
                    // Undo whatever a crash left after the published end.
                    Some(record) => out.cut_back(&record)?,
                    // A sink new in this run: nothing of it to keep.
                    None => out.reset(&staging, truncate)?,
                }
                out.publish(&staging, id, now_ms())?;
                staging.discard(worker, id)
            }
        })
    }
}

impl Staged {
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        let file = match &mut self.in_progress {
            Some(f) => f,
            None => self
                .in_progress
                .insert(self.staging.open_in_progress(self.worker)?),
        };
        file.write_all(lines)
            .map_err(io_error(&self.staging.dir().display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::FileSourceConfig;
    use eddy_core::component::SourceFactory;
    use eddy_core::{Fields, SourcePoll, Sym, Value};

    fn event(i: i64) -> Event {
        let mut f = Fields::default();
        f.push(Sym::intern("ts"), Value::Int(1_700_000_000_000 + i));
        f.push(Sym::intern("n"), Value::Int(i));
        f.push(Sym::intern("name"), Value::str("quote \" and \\ slash"));
        f.push(Sym::intern("score"), Value::Float(0.5));
        Event::new(1_700_000_000_000 + i, f)
    }

    /// Prepares `cfg` for a run and builds the instance `cx` describes.
    fn build(cfg: &FileSinkConfig, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let prepared = cfg.prepare(&cx.node())?;
        cfg.build(&cx.clone().with_prepared(prepared))
    }

    fn read_back(path: &std::path::Path) -> Vec<Event> {
        let src_cfg: FileSourceConfig = toml::from_str(&format!(
            "path = {:?}\nevent_time = {{ field = \"ts\", format = \"epoch_ms\" }}",
            path.display().to_string()
        ))
        .unwrap();
        let mut src = src_cfg.build(&BuildContext::single("back")).unwrap();
        let mut out = Vec::new();
        while let SourcePoll::Ready(b) = src.poll(100).unwrap() {
            assert!(b.dead_letters.is_empty());
            out.extend(b.events);
        }
        out
    }

    #[test]
    fn round_trips_through_the_file_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/out.ndjson");
        let cfg = FileSinkConfig::new(&path);
        let mut sink = build(&cfg, &BuildContext::single("out")).unwrap();
        let events: Vec<Event> = (0..10).map(event).collect();
        sink.write(&events[..4]).unwrap();
        sink.write(&events[4..]).unwrap();
        sink.flush().unwrap();
        assert_eq!(read_back(&path), events);
    }

    #[test]
    fn workers_share_one_writer_and_truncate_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.ndjson");
        std::fs::write(&path, "old line\n").unwrap();
        let cfg = FileSinkConfig::new(&path);
        let mut cx = BuildContext::single("out");
        cx.workers = 4;
        let prepared = cfg.prepare(&cx.node()).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let mut cx = cx.clone().with_prepared(prepared.clone());
                cx.worker = w;
                let mut sink = cfg.build(&cx).unwrap();
                std::thread::spawn(move || {
                    for b in 0..50 {
                        let batch: Vec<Event> = (0..20)
                            .map(|i| event((w * 1000 + b * 20 + i) as i64))
                            .collect();
                        sink.write(&batch).unwrap();
                    }
                    sink.flush().unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut got: Vec<i64> = read_back(&path)
            .iter()
            .map(|e| e.get(Sym::intern("n")).and_then(Value::as_i64).unwrap())
            .collect();
        got.sort_unstable();
        let mut want: Vec<i64> = (0..4)
            .flat_map(|w| (0..1000).map(move |i| w * 1000 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);

        // truncate = false appends.
        let mut append: FileSinkConfig = toml::from_str(&format!(
            "path = {:?}\ntruncate = false",
            path.display().to_string()
        ))
        .unwrap();
        append.format = RecordFormat::Json;
        let mut sink = build(&append, &BuildContext::single("out")).unwrap();
        sink.write(&[event(99_999)]).unwrap();
        sink.flush().unwrap();
        assert_eq!(read_back(&path).len(), 4001);
    }

    #[test]
    fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let cfg = FileSinkConfig::new(blocker.join("sub/out.ndjson"));
        let err = match build(&cfg, &BuildContext::single("out")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a path under a regular file cannot be created"),
        };
        assert!(err.contains(&blocker.display().to_string()), "{err}");
    }

    /// The rotated files in `dir`, in name order, with their contents.
    fn rotated(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    fn rotating(dir: &std::path::Path, rotate: &str) -> FileSinkConfig {
        toml::from_str(&format!(
            "path = {:?}\nrotate = {rotate}",
            dir.join("out.ndjson").display().to_string()
        ))
        .unwrap()
    }

    #[test]
    fn size_rotation_cuts_between_lines_and_concatenates_to_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.ndjson");
        let rotated_dir = dir.path().join("rotated");
        let plain = FileSinkConfig::new(&whole);
        let cfg = rotating(&rotated_dir, "{ max_bytes = 300 }");
        let mut a = build(&plain, &BuildContext::single("a")).unwrap();
        let mut b = build(&cfg, &BuildContext::single("b")).unwrap();
        for chunk in (0..40).map(event).collect::<Vec<_>>().chunks(7) {
            a.write(chunk).unwrap();
            b.write(chunk).unwrap();
        }
        a.flush().unwrap();
        b.flush().unwrap();
        let files = rotated(&rotated_dir);
        assert!(files.len() > 5, "{} files", files.len());
        for (i, (name, bytes)) in files.iter().enumerate() {
            assert!(bytes.len() <= 300 && bytes.ends_with(b"\n"), "{name}");
            let (stem, rest) = name.split_once('-').unwrap();
            assert_eq!(stem, "out");
            assert_eq!(rest.len(), "20240501T120000-000000.ndjson".len(), "{name}");
            assert!(rest.ends_with(&format!("-{i:06}.ndjson")), "{name}");
        }
        let joined: Vec<u8> = files.into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(joined, std::fs::read(&whole).unwrap());
    }

    #[test]
    fn interval_rotation_on_tick() {
        let lines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count();
        let dir = tempfile::tempdir().unwrap();
        let cfg = rotating(dir.path(), "{ interval = \"200ms\" }");
        let mut sink = build(&cfg, &BuildContext::single("out")).unwrap();
        sink.on_tick().unwrap();
        assert!(rotated(dir.path()).is_empty(), "no line, no file");
        sink.write(&[event(1)]).unwrap();
        sink.on_tick().unwrap();
        sink.write(&[event(2)]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        sink.on_tick().unwrap();
        // The tick closed (and so flushed) the file: one file, or two if
        // this thread stalled for a whole interval between the writes.
        let closed = rotated(dir.path());
        assert!((1..=2).contains(&closed.len()), "{} files", closed.len());
        assert_eq!(closed.iter().map(|(_, b)| lines(b)).sum::<usize>(), 2);
        sink.write(&[event(3)]).unwrap();
        sink.flush().unwrap();
        let all = rotated(dir.path());
        assert_eq!(all.len(), closed.len() + 1);
        assert_eq!(all[..closed.len()], closed[..]);
        assert_eq!(lines(&all[closed.len()].1), 1);
    }

    #[test]
    fn rotation_never_overwrites_and_gives_long_lines_their_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join("log-19700101T000000-000000.txt");
        std::fs::write(&taken, "keep\n").unwrap();
        let limits = Rotate {
            max_bytes: Some(10),
            interval: Some(Duration::from_ms(1_000)),
        };
        let mut r = Rotating::new(&dir.path().join("log.txt"), limits);
        r.write(b"0123456789abcdef\nab\n", 0).unwrap();
        r.write(b"cd\n", 999).unwrap();
        r.write(b"ef\n", 1_000).unwrap();
        r.flush().unwrap();
        let names: Vec<(String, String)> = rotated(dir.path())
            .into_iter()
            .map(|(n, b)| (n, String::from_utf8(b).unwrap()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("log-19700101T000000-000000.txt".into(), "keep\n".into()),
                (
                    "log-19700101T000000-000001.txt".into(),
                    "0123456789abcdef\n".into()
                ),
                ("log-19700101T000000-000002.txt".into(), "ab\ncd\n".into()),
                ("log-19700101T000001-000003.txt".into(), "ef\n".into()),
            ]
        );
    }

    #[test]
    fn rotate_needs_a_limit() {
        for (text, needle) in [
            ("{}", "needs `max_bytes`, `interval`"),
            ("{ max_bytes = 0 }", "at least 1"),
            ("{ interval = \"0s\" }", "must be positive"),
            ("{ max_bytes = 5, size = 3 }", "unknown field"),
        ] {
            let err = toml::from_str::<FileSinkConfig>(&format!("path = \"x\"\nrotate = {text}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Whatever the line lengths and the limit, files hold whole lines,
        /// none is over the limit unless it is a single longer line, and in
        /// name order they spell out everything written.
        #[test]
        fn rotated_files_partition_the_output(
            writes in proptest::collection::vec(
                proptest::collection::vec(0usize..40, 0..6), 1..8),
            max_bytes in 1u64..120,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let limits = Rotate { max_bytes: Some(max_bytes), interval: None };
            let mut r = Rotating::new(&dir.path().join("p.ndjson"), limits);
            let mut all = Vec::new();
            for (w, lens) in writes.iter().enumerate() {
                let mut chunk = Vec::new();
                for (i, len) in lens.iter().enumerate() {
                    chunk.extend(std::iter::repeat_n(b'a' + (w + i) as u8 % 26, *len));
                    chunk.push(b'\n');
                }
                r.write(&chunk, 0).unwrap();
                all.extend(chunk);
            }
            r.flush().unwrap();
            let files = rotated(dir.path());
            for (name, bytes) in &files {
                proptest::prop_assert!(bytes.ends_with(b"\n"), "{}", name);
                let lines = bytes.iter().filter(|&&b| b == b'\n').count();
                proptest::prop_assert!(bytes.len() as u64 <= max_bytes || lines == 1, "{}", name);
            }
            let joined: Vec<u8> = files.into_iter().flat_map(|(_, b)| b).collect();
            proptest::prop_assert_eq!(joined, all);
        }
    }

    /// What a test does to exactly-once sinks.
    #[derive(Clone, Debug)]
    enum Step {
        /// Worker `w` writes `n` events.
        Write(usize, usize),
        /// The next checkpoint's barrier reaches every worker.
        Barrier,
        /// The latest barrier's checkpoint is stored (it may be committed).
        Stored,
        /// Every worker commits the latest stored checkpoint.
        Commit,
        /// The process dies in the middle of a publish (junk after the
        /// published output) and restarts.
        Torn,
        /// The process dies and restarts from the latest stored checkpoint.
        Crash,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..2usize, 1..20usize).prop_map(|(w, n)| Step::Write(w, n)),
            2 => Just(Step::Barrier),
            2 => Just(Step::Stored),
            2 => Just(Step::Commit),
            1 => Just(Step::Torn),
            1 => Just(Step::Crash),
        ]
    }

    /// Exactly-once sinks of two workers, rebuilt after each crash.
    struct Run {
        sinks: Vec<Box<dyn Sink>>,
    }

    impl Run {
        fn start(cfg: &FileSinkConfig, restored: Option<u64>) -> Run {
            let mut cx = BuildContext::single("eo");
            cx.node.workers = 2;
            cx.node.exactly_once = true;
            let prepared = cfg.prepare(&cx.node()).unwrap();
            let sinks = (0..2)
                .map(|w| {
                    let mut cx = cx.clone().with_prepared(prepared.clone());
                    cx.worker = w;
                    let mut sink = cfg.build(&cx).unwrap();
                    sink.recover(restored).unwrap();
                    sink
                })
                .collect();
            Run { sinks }
        }
    }

    /// Runs `steps` and checks the output is exactly the events of the
    /// checkpoints that were stored, in (checkpoint, worker) order, and
    /// then, after a last checkpoint, everything still live.
    fn check_exactly_once(steps: &[Step], rotate: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = FileSinkConfig::new(dir.path().join("out.ndjson"));
        if rotate {
            cfg.rotate = Some(Rotate {
                max_bytes: Some(700),
                interval: None,
            });
        }
        let mut run = Run::start(&cfg, None);
        // Per checkpoint id, per worker: the event numbers staged for it;
        // what is written goes to checkpoint `barrier + 1`.
        let mut staged: Vec<[Vec<i64>; 2]> = Vec::new();
        let (mut barrier, mut stored, mut next) = (0u64, 0u64, 0i64);
        let mut published: Vec<i64> = Vec::new();
        let mut upto = 0u64;
        let publish =
            |published: &mut Vec<i64>, staged: &[[Vec<i64>; 2]], to: u64, upto: &mut u64| {
                while *upto < to {
                    *upto += 1;
                    if let Some(slot) = staged.get(*upto as usize) {
                        published.extend(slot.iter().flatten());
                    }
                }
            };
        let slot = |staged: &mut Vec<[Vec<i64>; 2]>, id: u64| {
            while staged.len() <= id as usize {
                staged.push(Default::default());
            }
        };
        for s in steps {
            match s {
                Step::Write(w, n) => {
                    let events: Vec<Event> = (next..next + *n as i64).map(event).collect();
                    run.sinks[*w].write(&events).unwrap();
                    slot(&mut staged, barrier + 1);
                    staged[barrier as usize + 1][*w].extend(next..next + *n as i64);
                    next += *n as i64;
                }
                Step::Barrier => {
                    barrier += 1;
                    for sink in &mut run.sinks {
                        sink.pre_commit(barrier).unwrap();
                    }
                }
                Step::Stored => stored = barrier,
                Step::Commit => {
                    for sink in &mut run.sinks {
                        sink.commit(stored).unwrap();
                    }
                    publish(&mut published, &staged, stored, &mut upto);
                }
                Step::Torn | Step::Crash => {
                    // A publish happens only once a checkpoint is stored:
                    // only then can one be cut short.
                    if matches!(s, Step::Torn) && stored > 0 {
                        // Bytes of a publish that did not finish.
                        let junk = if rotate {
                            dir.path().join("out-99991231T235959-000000.ndjson")
                        } else {
                            dir.path().join("out.ndjson")
                        };
                        let mut f = OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(&junk)
                            .unwrap();
                        f.write_all(b"{\"torn\":").unwrap();
                    }
                    let restored = (stored > 0).then_some(stored);
                    drop(std::mem::replace(&mut run, Run::start(&cfg, restored)));
                    publish(&mut published, &staged, stored, &mut upto);
                    // What was staged after the stored checkpoint is gone
                    // (the source replays it); ids go on from there.
                    staged.truncate(stored as usize + 1);
                    barrier = stored;
                }
            }
        }
        let lines = |dir: &Path| -> Vec<i64> {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "ndjson"))
                .collect();
            names.sort();
            names
                .iter()
                .flat_map(|p| read_back(p))
                .map(|e| match e.fields.get(Sym::intern("n")) {
                    Some(Value::Int(n)) => *n,
                    other => panic!("not an event of this test: {other:?}"),
                })
                .collect()
        };
        // What is visible now: exactly the committed checkpoints.
        assert_eq!(lines(dir.path()), published, "after {steps:?}");
        // A last checkpoint publishes the rest.
        for sink in &mut run.sinks {
            sink.pre_commit(barrier + 1).unwrap();
        }
        for sink in &mut run.sinks {
            sink.commit(barrier + 1).unwrap();
        }
        publish(&mut published, &staged, barrier + 1, &mut upto);
        assert_eq!(lines(dir.path()), published, "at the end of {steps:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn exactly_once_output_survives_crashes(
            steps in proptest::collection::vec(step(), 0..40),
            rotate in proptest::bool::ANY,
        ) {
            check_exactly_once(&steps, rotate);
        }
    }
}
