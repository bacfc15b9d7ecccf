//! `type = "file"`: appends each event as one JSON line to a file.
//!
//! ```toml
//! [sinks.archive]
//! type = "file"
//! inputs = ["orders"]
//! path = "out/orders.ndjson"
//! truncate = false
//! ```
//!
//! All worker instances of one sink share a single buffered writer; each
//! batch is encoded outside the lock and written under it in one piece, so
//! lines never interleave. Parent directories are created as needed.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use eddy_core::component::{BuildContext, BuildError, SinkFactory};
use eddy_core::{Event, Sink, SinkError};
use serde::Deserialize;

use super::stdout::encode_ndjson;
use crate::sources::file::RecordFormat;

/// Capacity of the shared write buffer.
const WRITE_CAPACITY: usize = 1 << 20;

type Writer = Arc<Mutex<BufWriter<File>>>;

/// Configuration of the `file` sink.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to write. Parent directories are created.
    pub path: PathBuf,
    /// The output format. Only `"json"` (one JSON object per line) is
    /// supported.
    #[serde(default)]
    pub format: RecordFormat,
    /// Empty the file when the pipeline starts (default `true`); `false`
    /// appends to what is already there.
    #[serde(default = "default_true")]
    pub truncate: bool,
    /// The writer shared by this sink's worker instances, opened by the first
    /// `build`.
    #[serde(skip)]
    shared: SharedWriter,
}

fn default_true() -> bool {
    true
}

/// The lazily opened writer (or the error opening it) shared by instances.
#[derive(Clone, Default)]
struct SharedWriter(Arc<OnceLock<Result<Writer, String>>>);

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "opened"
        } else {
            "not opened"
        })
    }
}

impl PartialEq for SharedWriter {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl FileSinkConfig {
    /// A config writing to `path` with the defaults.
    pub fn new(path: impl Into<PathBuf>) -> FileSinkConfig {
        FileSinkConfig {
            path: path.into(),
            format: RecordFormat::Json,
            truncate: true,
            shared: SharedWriter::default(),
        }
    }

    fn open(&self) -> Result<Writer, String> {
        let display = self.path.display();
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create directory {}: {e}", parent.display()))?;
        }
        let mut options = OpenOptions::new();
        if self.truncate {
            options.write(true).create(true).truncate(true);
        } else {
            options.append(true).create(true);
        }
        let file = options
            .open(&self.path)
            .map_err(|e| format!("cannot open {display} for writing: {e}"))?;
        Ok(Arc::new(Mutex::new(BufWriter::with_capacity(
            WRITE_CAPACITY,
            file,
        ))))
    }
}

impl SinkFactory for FileSinkConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let writer = self
            .shared
            .0
            .get_or_init(|| self.open())
            .clone()
            .map_err(|e| BuildError::new(format!("sink `{}`: {e}", cx.name)))?;
        Ok(Box::new(FileSink {
            path: self.path.display().to_string(),
            writer,
            buf: Vec::with_capacity(64 * 1024),
        }))
    }
}

/// A running `file` sink instance.
pub struct FileSink {
    path: String,
    writer: Writer,
    buf: Vec<u8>,
}

impl FileSink {
    fn with_writer(
        &self,
        f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
    ) -> Result<(), SinkError> {
        let mut guard = self.writer.lock().map_err(|_| SinkError::Rejected {
            message: format!(
                "file {}: writer unusable after a panic in another worker",
                self.path
            ),
            retryable: false,
        })?;
        f(&mut guard).map_err(|source| SinkError::Io {
            context: format!("file {}", self.path),
            source,
        })
    }
}

impl Sink for FileSink {
    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        encode_ndjson(&mut buf, events);
        let result = self.with_writer(|w| w.write_all(&buf));
        if buf.capacity() <= 16 << 20 {
            self.buf = buf;
        }
        result
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.with_writer(|w| w.flush())
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
        let mut sink = cfg.build(&BuildContext::single("out")).unwrap();
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
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let mut cx = BuildContext::single("out");
                cx.worker = w;
                cx.workers = 4;
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
        let mut sink = append.build(&BuildContext::single("out")).unwrap();
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
        let err = match cfg.build(&BuildContext::single("out")) {
            Err(e) => e.message,
            Ok(_) => panic!("a path under a regular file cannot be created"),
        };
        assert!(err.contains(&blocker.display().to_string()), "{err}");
    }
}
