//! `type = "file"`: reads newline-delimited JSON from a file, optionally
//! following it as lines are appended (like `tail -f`).
//!
//! ```toml
//! [sources.orders]
//! type = "file"
//! path = "data/orders.ndjson"
//! event_time = { field = "ts", max_out_of_orderness = "5s" }
//! follow = true
//! start_at = "end"
//! ```
//!
//! Malformed lines (invalid JSON, not an object, invalid UTF-8, a missing or
//! unparsable time field, lines over 1 MiB) become dead letters with
//! `source` = the source name and `position` = `PATH:LINE`; reading goes on.
//! Blank lines are skipped, and so is a UTF-8 byte-order mark at the very
//! start of the file (positions still count its three bytes).
//!
//! The file is read by worker 0; the other workers' instances finish at once.
//! Checkpoint positions are partition 0 = byte offset of the next line and
//! partition 1 = the number of the next line.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use eddy_core::component::{BuildContext, BuildError, PathUse, SourceFactory, WatermarkSpec};
use eddy_core::source::{EventTimeConfig, SourcePosition, TimestampAssigner};
use eddy_core::time::now_ms;
use eddy_core::{Source, SourceBatch, SourceError, SourcePoll};
use serde::Deserialize;

use super::lines::{Line, LineReader, NdjsonDecoder};

/// Read buffer size: large reads keep system calls rare.
const READ_CAPACITY: usize = 1 << 20;

/// Configuration of the `file` source.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to read, one JSON object per line.
    pub path: PathBuf,
    /// The record format. Only `"json"` (newline-delimited JSON objects) is
    /// supported.
    #[serde(default)]
    pub format: RecordFormat,
    /// How event time is found: `"ingestion"` (the default: the time each
    /// line is read) or `{ field = "ts", format = "auto", max_out_of_orderness
    /// = "5s", idle_timeout = "1m" }`.
    #[serde(default)]
    pub event_time: Option<EventTimeConfig>,
    /// Keep reading lines appended to the file after reaching its end, like
    /// `tail -f`. The source then never finishes. A file that shrinks is
    /// read again from the start.
    #[serde(default)]
    pub follow: bool,
    /// Where to start reading: `"beginning"` (default) or `"end"` (only lines
    /// appended later; useful with `follow = true`).
    #[serde(default)]
    pub start_at: StartAt,
}

/// A record format of file-like sources and sinks.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// One JSON object per line (NDJSON).
    #[default]
    Json,
}

/// Where a `file` source starts reading.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// At the first line.
    #[default]
    Beginning,
    /// At the current end of the file.
    End,
}

impl SourceFactory for FileSourceConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let assigner = TimestampAssigner::from_config(self.event_time.as_ref());
        if cx.worker != 0 {
            return Ok(Box::new(Finished));
        }
        FileSource::open(self, &cx.name, assigner, cx.limits.max_line_bytes)
            .map(|mut s| {
                s.decoder = s.decoder.project(cx.projection.as_deref());
                Box::new(s) as Box<dyn Source>
            })
            .map_err(|e| BuildError::Input(format!("source `{}`: {e}", cx.name)))
    }

    fn watermarks(&self) -> WatermarkSpec {
        TimestampAssigner::from_config(self.event_time.as_ref()).watermarks()
    }

    fn reads(&self) -> Vec<PathUse> {
        vec![PathUse::file(&self.path)]
    }
}

/// The instance of workers other than 0: finishes immediately.
struct Finished;

impl Source for Finished {
    fn poll(&mut self, _max: usize) -> Result<SourcePoll, SourceError> {
        Ok(SourcePoll::Finished)
    }
}

/// A running `file` source.
pub struct FileSource {
    path: PathBuf,
    reader: LineReader<BufReader<File>>,
    decoder: NdjsonDecoder,
    follow: bool,
    max_line: usize,
    done: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> SourceError {
    SourceError::Io {
        context: format!("file {}", path.display()),
        source,
    }
}

impl FileSource {
    /// Opens the configured file; `name` is the source's name for dead
    /// letters, lines longer than `max_line` bytes become dead letters.
    pub fn open(
        cfg: &FileSourceConfig,
        name: &str,
        assigner: TimestampAssigner,
        max_line: usize,
    ) -> Result<FileSource, SourceError> {
        let path = cfg.path.clone();
        let mut file = File::open(&path).map_err(|e| io_err(&path, e))?;
        let (offset, line_no) = match cfg.start_at {
            StartAt::Beginning => (0, 1),
            StartAt::End => {
                let end = file.seek(SeekFrom::End(0)).map_err(|e| io_err(&path, e))?;
                let lines = count_lines(&path, end)?;
                (end, lines + 1)
            }
        };
        let label = path.display().to_string();
        Ok(FileSource {
            reader: LineReader::new(
                BufReader::with_capacity(READ_CAPACITY, file),
                offset,
                line_no,
                cfg.follow,
            )
            .max_line(max_line),
            decoder: NdjsonDecoder::new(assigner, name.to_string(), label),
            path,
            follow: cfg.follow,
            max_line,
            done: false,
        })
    }

    /// Restarts reading at `offset` (line number `line_no`).
    fn reposition(&mut self, offset: u64, line_no: u64) -> Result<(), SourceError> {
        let mut file = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_err(&self.path, e))?;
        self.reader = LineReader::new(
            BufReader::with_capacity(READ_CAPACITY, file),
            offset,
            line_no,
            self.follow,
        )
        .max_line(self.max_line);
        self.done = false;
        Ok(())
    }

    /// In follow mode at EOF: starts over when the file was truncated.
    fn check_truncation(&mut self) -> Result<(), SourceError> {
        let len = std::fs::metadata(&self.path)
            .map_err(|e| io_err(&self.path, e))?
            .len();
        if len < self.reader.read_offset() {
            self.reposition(0, 1)?;
        }
        Ok(())
    }
}

/// Counts the newlines in the first `end` bytes of `path`.
fn count_lines(path: &Path, end: u64) -> Result<u64, SourceError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut reader = BufReader::with_capacity(READ_CAPACITY, file).take(end);
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

impl Source for FileSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, SourceError> {
        if self.done {
            return Ok(SourcePoll::Finished);
        }
        let now = now_ms();
        let mut batch = SourceBatch::default();
        let max = max.max(1);
        while batch.events.len() < max && batch.dead_letters.len() < max {
            match self.reader.next_line().map_err(|e| io_err(&self.path, e))? {
                Line::Eof => {
                    if self.follow {
                        if batch.events.is_empty() && batch.dead_letters.is_empty() {
                            self.check_truncation()?;
                            return Ok(SourcePoll::Pending);
                        }
                    } else {
                        self.done = true;
                        if batch.events.is_empty() && batch.dead_letters.is_empty() {
                            return Ok(SourcePoll::Finished);
                        }
                    }
                    break;
                }
                outcome => {
                    let line_no = self.reader.last_line_no();
                    self.decoder.decode(
                        &self.reader.line,
                        &outcome,
                        line_no,
                        now,
                        &mut batch.events,
                        &mut batch.dead_letters,
                    );
                }
            }
        }
        Ok(SourcePoll::Ready(batch))
    }

    fn positions(&self) -> Vec<SourcePosition> {
        vec![
            SourcePosition {
                partition: 0,
                offset: self.reader.resume_offset(),
            },
            SourcePosition {
                partition: 1,
                offset: self.reader.line_no,
            },
        ]
    }

    fn seek(&mut self, positions: &[SourcePosition]) -> Result<(), SourceError> {
        let Some(offset) = positions
            .iter()
            .find(|p| p.partition == 0)
            .map(|p| p.offset)
        else {
            return Ok(());
        };
        let line_no = match positions.iter().find(|p| p.partition == 1) {
            Some(p) => p.offset,
            None => count_lines(&self.path, offset)? + 1,
        };
        self.reposition(offset, line_no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Sym, Value};
    use std::io::Write;

    fn cfg(path: &Path) -> FileSourceConfig {
        toml::from_str(&format!(
            "path = {:?}\nevent_time = {{ field = \"ts\" }}",
            path.display().to_string()
        ))
        .unwrap()
    }

    fn drain(src: &mut dyn Source) -> (Vec<eddy_core::Event>, Vec<eddy_core::Event>) {
        let (mut ev, mut dl) = (Vec::new(), Vec::new());
        loop {
            match src.poll(2).unwrap() {
                SourcePoll::Ready(b) => {
                    ev.extend(b.events);
                    dl.extend(b.dead_letters);
                }
                SourcePoll::Pending | SourcePoll::Finished => return (ev, dl),
            }
        }
    }

    fn s(v: &str) -> Sym {
        Sym::intern(v)
    }

    #[test]
    fn reads_events_with_time_and_skips_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        std::fs::write(
            &path,
            "{\"ts\":1000,\"a\":1}\n\n{\"ts\":\"1970-01-01T00:00:02Z\",\"a\":2}\r\n{\"ts\":3000,\"a\":3}",
        )
        .unwrap();
        let mut src = cfg(&path).build(&BuildContext::single("in")).unwrap();
        let (ev, dl) = drain(src.as_mut());
        assert!(dl.is_empty());
        let times: Vec<i64> = ev.iter().map(|e| e.time).collect();
        assert_eq!(times, vec![1_000_000, 2_000, 3_000_000]);
        assert_eq!(ev[2].get(s("a")), Some(&Value::Int(3)));
        assert!(matches!(src.poll(10).unwrap(), SourcePoll::Finished));
    }

    #[test]
    fn the_line_length_limit_comes_from_the_pipeline_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.ndjson");
        let long = format!("{{\"ts\":1,\"pad\":\"{}\"}}", "x".repeat(100));
        std::fs::write(&path, format!("{long}\n{{\"ts\":2}}\n")).unwrap();
        let mut cx = BuildContext::single("orders");
        cx.limits.max_line_bytes = 64;
        let (ev, dl) = drain(cfg(&path).build(&cx).unwrap().as_mut());
        assert_eq!(ev.len(), 1);
        assert_eq!(
            dl[0].get(Sym::intern("reason")),
            Some(&Value::str(&format!(
                "line is {} bytes long; the limit is 64 (`[pipeline.limits] max_line_bytes`)",
                long.len()
            )))
        );
        cx.limits.max_line_bytes = long.len();
        let (ev, dl) = drain(cfg(&path).build(&cx).unwrap().as_mut());
        assert_eq!((ev.len(), dl.len()), (2, 0));
    }

    #[test]
    fn malformed_lines_become_dead_letters_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.ndjson");
        let mut data = Vec::new();
        data.extend_from_slice(b"{\"ts\":1}\n");
        data.extend_from_slice(b"{not json\n");
        data.extend_from_slice(b"[1,2]\n");
        data.extend_from_slice(b"{\"ts\":\"\xff\xfe\"}\n");
        data.extend_from_slice(b"{\"no_ts\":1}\n");
        data.extend_from_slice(b"{\"ts\":\"yesterday\"}\n");
        data.extend(std::iter::repeat_n(
            b'x',
            eddy_core::limits::DEFAULT_MAX_LINE_BYTES + 1,
        ));
        data.extend_from_slice(b"\n{\"ts\":2}\n");
        std::fs::write(&path, &data).unwrap();
        let mut src = cfg(&path).build(&BuildContext::single("orders")).unwrap();
        let (ev, dl) = drain(src.as_mut());
        assert_eq!(ev.len(), 2);
        let p = path.display().to_string();
        let positions: Vec<String> = dl
            .iter()
            .map(|d| d.get(s("position")).unwrap().to_string())
            .collect();
        assert_eq!(
            positions,
            (2..=7).map(|l| format!("{p}:{l}")).collect::<Vec<_>>()
        );
        let reason = |i: usize| dl[i].get(s("reason")).unwrap().to_string();
        assert!(reason(0).starts_with("invalid JSON"), "{}", reason(0));
        assert!(reason(1).contains("expected a JSON object"));
        assert!(reason(2).contains("UTF-8"));
        assert!(reason(3).contains("missing time field `ts`"));
        assert!(reason(4).contains("unparsable"));
        assert!(reason(5).contains("limit"));
        for d in &dl {
            assert_eq!(d.get(s("source")), Some(&Value::str("orders")));
            assert!(matches!(d.get(s("event")), Some(Value::Str(_))));
        }
        assert_eq!(dl[0].get(s("event")), Some(&Value::str("{not json")));
    }

    #[test]
    fn byte_order_mark_at_the_start_is_skipped_and_positions_count_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bom.ndjson");
        let data = b"\xEF\xBB\xBF{\"ts\":1}\n{\"ts\":2}\n{\"ts\":3}\n";
        std::fs::write(&path, data).unwrap();
        let c = cfg(&path);
        let mut src = c.build(&BuildContext::single("bom")).unwrap();
        let SourcePoll::Ready(first) = src.poll(1).unwrap() else {
            panic!("expected a batch");
        };
        assert!(first.dead_letters.is_empty(), "{:?}", first.dead_letters);
        assert_eq!(first.events[0].time, 1_000);
        let pos = src.positions();
        // The offset of line 2 in the file, mark included.
        assert_eq!(pos[0].offset, 3 + 9);
        let (ev, dl) = drain(src.as_mut());
        assert!(dl.is_empty());
        assert_eq!(ev.len(), 2);
        assert_eq!(src.positions()[0].offset, data.len() as u64);
        // Resuming from the checkpoint reads exactly the remaining lines.
        let mut again = c.build(&BuildContext::single("bom")).unwrap();
        again.seek(&pos).unwrap();
        let (ev, dl) = drain(again.as_mut());
        assert!(dl.is_empty());
        assert_eq!(
            ev.iter().map(|e| e.time).collect::<Vec<_>>(),
            vec![2_000, 3_000]
        );
    }

    #[test]
    fn follow_mode_reads_appended_lines_including_split_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tail.ndjson");
        std::fs::write(&path, "{\"ts\":1}\n").unwrap();
        let mut c = cfg(&path);
        c.follow = true;
        let mut src = c.build(&BuildContext::single("tail")).unwrap();
        assert_eq!(drain(src.as_mut()).0.len(), 1);
        assert!(matches!(src.poll(10).unwrap(), SourcePoll::Pending));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"ts\":2}\n{\"ts\"").unwrap();
        f.flush().unwrap();
        let (ev, _) = drain(src.as_mut());
        assert_eq!(ev.iter().map(|e| e.time).collect::<Vec<_>>(), vec![2_000]);
        f.write_all(b":3}\n").unwrap();
        f.flush().unwrap();
        let (ev, dl) = drain(src.as_mut());
        assert!(dl.is_empty());
        assert_eq!(ev.iter().map(|e| e.time).collect::<Vec<_>>(), vec![3_000]);
        assert_eq!(
            src.positions()[0].offset,
            std::fs::metadata(&path).unwrap().len()
        );
    }

    #[test]
    fn start_at_end_skips_existing_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("end.ndjson");
        std::fs::write(&path, "{\"ts\":1}\n{\"ts\":2}\n").unwrap();
        let mut c = cfg(&path);
        c.follow = true;
        c.start_at = StartAt::End;
        let mut src = c.build(&BuildContext::single("end")).unwrap();
        assert!(matches!(src.poll(10).unwrap(), SourcePoll::Pending));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"oops\n").unwrap();
        let (ev, dl) = drain(src.as_mut());
        assert!(ev.is_empty());
        let expected = format!("{}:3", path.display());
        assert_eq!(dl[0].get(s("position")), Some(&Value::str(&expected)));
    }

    #[test]
    fn seek_resumes_from_a_checkpointed_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seek.ndjson");
        let text: String = (1..=5).map(|i| format!("{{\"ts\":{i}}}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let c = cfg(&path);
        let mut src = c.build(&BuildContext::single("s")).unwrap();
        let SourcePoll::Ready(first) = src.poll(2).unwrap() else {
            panic!("expected a batch");
        };
        assert_eq!(first.events.len(), 2);
        let pos = src.positions();
        assert_eq!(pos[1].offset, 3);
        let mut again = c.build(&BuildContext::single("s")).unwrap();
        again.seek(&pos).unwrap();
        let (ev, _) = drain(again.as_mut());
        assert_eq!(
            ev.iter().map(|e| e.time).collect::<Vec<_>>(),
            vec![3_000, 4_000, 5_000]
        );
        // Without a line number, it is recomputed from the offset.
        let mut third = c.build(&BuildContext::single("s")).unwrap();
        third.seek(&pos[..1]).unwrap();
        assert_eq!(third.positions()[1].offset, 3);
    }

    #[test]
    fn missing_file_and_bad_format_are_reported() {
        let err =
            match cfg(Path::new("/nonexistent/eddy/x.ndjson")).build(&BuildContext::single("x")) {
                Err(e) => e,
                Ok(_) => panic!("opening a missing file must fail"),
            };
        assert!(
            err.to_string().contains("/nonexistent/eddy/x.ndjson"),
            "{err}"
        );
        let bad = toml::from_str::<FileSourceConfig>("path = \"a\"\nformat = \"csv\"")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("unknown variant `csv`"), "{bad}");
    }

    #[test]
    fn other_workers_finish_immediately() {
        let mut cx = BuildContext::single("x");
        cx.worker = 1;
        cx.workers = 2;
        let mut src = cfg(Path::new("/nonexistent")).build(&cx).unwrap();
        assert!(matches!(src.poll(1).unwrap(), SourcePoll::Finished));
    }
}
