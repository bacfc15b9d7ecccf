//! The running `parquet` sink: one open file per partition, closed on every
//! flush.
//!
//! With `[checkpoint]` (exactly-once), a file is written under a hidden
//! name `.pending-<checkpoint>-part-<worker>-<seq>.parquet`, where
//! `<checkpoint>` is the checkpoint its rows belong to; the barrier closes
//! it, and once that checkpoint is stored `commit` renames it to
//! `part-<worker>-<seq>.parquet`. A rename already done is simply not found
//! again, so a commit redone after a crash does nothing twice; on restart,
//! pending files of checkpoints after the restored one are deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use eddy_core::component::BuildContext;
use eddy_core::metrics::Counter;
use eddy_core::operator::dead_letter;
use eddy_core::time::{parse_rfc3339, UtcDateTime};
use eddy_core::{Event, Sink, SinkError, Sym, Value};
use parquet::arrow::ArrowWriter;
use parquet::basic::ZstdLevel;
use parquet::file::properties::WriterProperties;

use super::schema::{RowBuffer, TableSchema};
use object_store::path::Path as ObjectPath;

use super::store::{Store, Upload};
use super::{Compression, ParquetConfig};

/// Rows collected before they are encoded into the open row group; bounds
/// the memory of rows held as Arrow builders.
const ENCODE_ROWS: usize = 8_192;

/// Most files one instance keeps open: late data can touch many hourly
/// partitions, and each open file holds a row group in memory. Past this,
/// the file of the earliest hour is closed.
const MAX_OPEN_FILES: usize = 16;

const HOUR_MS: i64 = 3_600_000;

/// A partition: the UTC hour (since the epoch) of the `partition_by` field,
/// or `None` without partitioning.
type Partition = Option<i64>;

/// A running `parquet` sink instance.
pub struct ParquetSink {
    stage: String,
    worker: usize,
    store: Store,
    /// The configured columns, or `None` until the first batch is seen.
    schema: Option<Arc<TableSchema>>,
    partition_by: Option<Sym>,
    properties: WriterProperties,
    open: BTreeMap<Partition, PartFile>,
    /// Partitions whose directory was scanned for existing sequence numbers.
    scanned: BTreeSet<Partition>,
    next_seq: u64,
    /// Exactly-once: the checkpoint the rows written now belong to (files
    /// are pending until it is stored); `None` without `[checkpoint]`.
    pending_for: Option<u64>,
    dead: Vec<Event>,
    files_written: Counter,
    records_out: Counter,
    bytes_out: Counter,
}

/// A file being written.
struct PartFile {
    writer: ArrowWriter<Upload>,
    rows: RowBuffer,
    records: u64,
}

impl ParquetSink {
    /// The instance for worker `cx.worker`; opens (creates) the target.
    pub fn new(config: &ParquetConfig, cx: &BuildContext) -> Result<ParquetSink, String> {
        let options = config.options();
        let store = Store::open(&config.target)?;
        let compression = match options.compression {
            Compression::Zstd => parquet::basic::Compression::ZSTD(ZstdLevel::default()),
            Compression::Snappy => parquet::basic::Compression::SNAPPY,
            Compression::None => parquet::basic::Compression::UNCOMPRESSED,
        };
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(options.row_group_size))
            .build();
        Ok(ParquetSink {
            stage: cx.name.clone(),
            worker: cx.worker,
            store,
            schema: options
                .schema
                .as_ref()
                .map(|s| Arc::new(TableSchema::declared(s))),
            partition_by: config.partition_by,
            properties,
            open: BTreeMap::new(),
            scanned: BTreeSet::new(),
            next_seq: 0,
            pending_for: cx.exactly_once.then_some(1),
            dead: Vec::new(),
            files_written: cx.metrics.counter("files_written", &[]),
            records_out: cx.metrics.counter("records_out", &[]),
            bytes_out: cx.metrics.counter("bytes_out", &[]),
        })
    }

    fn reject(&mut self, event: &Event, reason: String) {
        self.dead.push(dead_letter(
            &self.stage,
            reason,
            Value::Map(Arc::new(event.fields.clone())),
            event.time,
        ));
    }

    /// The partition of `event`, or why it has none.
    fn partition(&self, event: &Event) -> Result<Partition, String> {
        let Some(field) = self.partition_by else {
            return Ok(None);
        };
        let ms = match event.fields.get(field) {
            Some(Value::Int(ms)) => Some(*ms),
            Some(Value::Str(s)) => parse_rfc3339(s),
            _ => None,
        };
        ms.map(|ms| Some(ms.div_euclid(HOUR_MS))).ok_or_else(|| {
            format!(
                "`partition_by` field `{field}` is missing or not a time \
                 (epoch milliseconds or RFC 3339 text)"
            )
        })
    }

    /// The directory names of `partition`.
    fn directories(partition: Partition) -> Vec<String> {
        match partition {
            None => Vec::new(),
            Some(hour) => {
                let t = UtcDateTime::from_timestamp(hour.saturating_mul(HOUR_MS));
                vec![
                    format!("day={:04}-{:02}-{:02}", t.year, t.month, t.day),
                    format!("hour={:02}", t.hour),
                ]
            }
        }
    }

    /// Opens the next file of `partition`; its sequence number is past any
    /// this worker already has in that directory, so nothing is overwritten.
    fn open_file(&mut self, partition: Partition, schema: &TableSchema) -> Result<(), SinkError> {
        let dirs = Self::directories(partition);
        if self.scanned.insert(partition) {
            let dir = self.store.location(dirs.iter().map(String::as_str));
            let prefix = format!("part-{}-", self.worker);
            let existing = self
                .store
                .file_names(&dir)?
                .iter()
                .map(|name| pending_of(name).map_or(name.as_str(), |(_, final_name)| final_name))
                .filter_map(|name| name.strip_prefix(&prefix)?.strip_suffix(".parquet"))
                .filter_map(|seq| seq.parse::<u64>().ok())
                .max();
            if let Some(max) = existing {
                self.next_seq = self.next_seq.max(max.saturating_add(1));
            }
        }
        let mut name = format!("part-{}-{}.parquet", self.worker, self.next_seq);
        if let Some(id) = self.pending_for {
            name = format!(".pending-{id:020}-{name}");
        }
        self.next_seq += 1;
        let location = self
            .store
            .location(dirs.iter().map(String::as_str).chain([name.as_str()]));
        let upload = self.store.create(location)?;
        let writer = ArrowWriter::try_new(
            upload,
            schema.arrow().clone(),
            Some(self.properties.clone()),
        )
        .map_err(|e| encode_error(&e))?;
        self.open.insert(
            partition,
            PartFile {
                writer,
                rows: RowBuffer::new(schema),
                records: 0,
            },
        );
        if self.open.len() > MAX_OPEN_FILES {
            if let Some((_, file)) = self.open.pop_first() {
                self.close(file, schema)?;
            }
        }
        Ok(())
    }

    /// Encodes `file`'s collected rows into its row group.
    fn encode(file: &mut PartFile, schema: &TableSchema) -> Result<(), SinkError> {
        if file.rows.rows() == 0 {
            return Ok(());
        }
        let batch = file.rows.take_batch(schema).map_err(|e| encode_error(&e))?;
        file.records += batch.num_rows() as u64;
        file.writer.write(&batch).map_err(|e| encode_error(&e))
    }

    /// Finishes `file` and makes it visible.
    fn close(&mut self, mut file: PartFile, schema: &TableSchema) -> Result<(), SinkError> {
        Self::encode(&mut file, schema)?;
        file.writer.finish().map_err(|e| encode_error(&e))?;
        file.writer.inner_mut().complete()?;
        self.files_written.inc();
        self.records_out.add(file.records);
        self.bytes_out.add(file.writer.bytes_written() as u64);
        Ok(())
    }
}

/// A pending file's checkpoint and final name.
fn pending_of(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix(".pending-")?;
    let (id, final_name) = rest.split_once('-')?;
    Some((id.parse().ok()?, final_name))
}

impl ParquetSink {
    /// This worker's pending files: (checkpoint, location, final location).
    fn pending(&self) -> Result<Vec<(u64, ObjectPath, ObjectPath)>, SinkError> {
        let mine = format!("part-{}-", self.worker);
        let mut out = Vec::new();
        for location in self.store.all_files()? {
            let Some(name) = location.filename() else {
                continue;
            };
            if let Some((id, final_name)) = pending_of(name) {
                if final_name.starts_with(&mine) {
                    let parts: Vec<_> = location.parts().collect();
                    let dir = parts[..parts.len().saturating_sub(1)].iter().cloned();
                    let target = dir.chain([final_name.into()]).collect::<ObjectPath>();
                    out.push((id, location.clone(), target));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Makes this worker's files of checkpoints up to `upto` visible and,
    /// with `discard_later`, deletes those of later checkpoints.
    fn publish(&self, upto: u64, discard_later: bool) -> Result<(), SinkError> {
        for (id, pending, target) in self.pending()? {
            if id <= upto {
                self.store.rename(&pending, &target)?;
            } else if discard_later {
                self.store.delete(&pending)?;
            }
        }
        Ok(())
    }
}

fn encode_error(e: &dyn std::fmt::Display) -> SinkError {
    SinkError::Rejected {
        message: format!("parquet encoding failed: {e}"),
        retryable: false,
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => match TableSchema::infer(events) {
                Some(s) => self.schema.insert(Arc::new(s)).clone(),
                None => {
                    for e in events {
                        self.reject(e, "an event without fields makes no Parquet row".into());
                    }
                    return Ok(());
                }
            },
        };
        for event in events {
            let partition = match self.partition(event).and_then(|p| {
                schema.check(event)?;
                Ok(p)
            }) {
                Ok(p) => p,
                Err(reason) => {
                    self.reject(event, reason);
                    continue;
                }
            };
            if !self.open.contains_key(&partition) {
                self.open_file(partition, &schema)?;
            }
            if let Some(file) = self.open.get_mut(&partition) {
                file.rows.push(&schema, event);
                if file.rows.rows() >= ENCODE_ROWS {
                    Self::encode(file, &schema)?;
                }
            }
        }
        Ok(())
    }

    /// Closes every open file: after a flush (end of run, checkpoint)
    /// everything written so far is in complete files.
    fn flush(&mut self) -> Result<(), SinkError> {
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        let mut first_error = None;
        for (_, file) in std::mem::take(&mut self.open) {
            if let Err(e) = self.close(file, &schema) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn take_dead_letters(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.dead)
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        self.flush()?;
        if let Some(next) = &mut self.pending_for {
            *next = checkpoint + 1;
        }
        Ok(())
    }

    fn commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        match self.pending_for {
            Some(_) => self.publish(checkpoint, false),
            None => Ok(()),
        }
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<(), SinkError> {
        if self.pending_for.is_none() {
            return Ok(());
        }
        let restored = restored.unwrap_or(0);
        self.pending_for = Some(restored + 1);
        self.publish(restored, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::parquet::ColumnType;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use eddy_core::component::SinkFactory;
    use eddy_core::metrics::ComponentMetrics;
    use eddy_core::Fields;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::path::{Path, PathBuf};

    fn event(fields: &[(&str, Value)]) -> Event {
        let mut f = Fields::default();
        for (k, v) in fields {
            f.push(Sym::intern(k), v.clone());
        }
        Event::new(7, f)
    }

    /// Every complete `.parquet` file under `dir` (not the staging files of
    /// open ones), relative, sorted.
    fn files(dir: &Path) -> Vec<PathBuf> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else if path.extension().is_some_and(|e| e == "parquet") {
                    out.push(path.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    /// The `n` column of a file, with its row-group count.
    fn read_n(path: &Path) -> (Vec<i64>, usize) {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
        let groups = builder.metadata().num_row_groups();
        let mut out = Vec::new();
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let col = batch
                .column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>();
            out.extend(col.iter().map(|v| v.unwrap()));
        }
        (out, groups)
    }

    fn with_options(dir: &Path, extra: &str) -> ParquetConfig {
        toml::from_str(&format!("path = {:?}\n{extra}", dir.display().to_string())).unwrap()
    }

    #[test]
    fn writes_part_files_per_flush_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = with_options(dir.path(), "row_group_size = 4\ncompression = \"snappy\"");
        let mut cx = BuildContext::single("lake");
        cx.worker = 3;
        cx.metrics = Arc::new(ComponentMetrics::default());
        let mut sink = cfg.build(&cx).unwrap();
        let batch: Vec<Event> = (0..10).map(|n| event(&[("n", Value::Int(n))])).collect();
        sink.write(&batch).unwrap();
        sink.pre_commit(1).unwrap();
        sink.write(&batch[..3]).unwrap();
        sink.flush().unwrap();
        sink.flush().unwrap();
        assert_eq!(
            files(dir.path()),
            vec![PathBuf::from("part-3-0.parquet"), "part-3-1.parquet".into()]
        );
        assert_eq!(
            read_n(&dir.path().join("part-3-0.parquet")),
            ((0..10).collect(), 3)
        );
        assert_eq!(
            read_n(&dir.path().join("part-3-1.parquet")).0,
            vec![0, 1, 2]
        );
        assert_eq!(cx.metrics.total("files_written"), 2);
        assert_eq!(cx.metrics.total("records_out"), 13);
        let bytes: u64 = files(dir.path())
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
            .sum();
        assert_eq!(cx.metrics.total("bytes_out"), bytes as i64);

        // A new run continues the numbering.
        let mut again = cfg.build(&cx).unwrap();
        again.write(&batch[..1]).unwrap();
        again.flush().unwrap();
        assert_eq!(files(dir.path()).len(), 3);
        assert!(dir.path().join("part-3-2.parquet").exists());
    }

    #[test]
    fn partitions_by_hour_and_dead_letters_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = with_options(
            dir.path(),
            "partition_by = \"window_start\"\n\
             schema = { window_start = \"timestamp_ms\", n = \"int64\" }",
        );
        assert_eq!(
            cfg.options().schema.as_ref().unwrap().get("n"),
            Some(&ColumnType::Int64)
        );
        let mut sink = cfg.build(&BuildContext::single("lake")).unwrap();
        let at = |t: &str, n: i64| event(&[("window_start", Value::str(t)), ("n", Value::Int(n))]);
        sink.write(&[
            at("2024-05-01T23:59:59.999Z", 1),
            at("2024-05-02T00:00:00Z", 2),
            event(&[
                ("window_start", Value::Int(1_714_608_000_000)),
                ("n", Value::Int(3)),
            ]),
            event(&[("n", Value::Int(4))]),
            at("2024-05-02T00:10:00Z", 5),
            event(&[
                ("window_start", Value::str("2024-05-02T00:00:00Z")),
                ("n", Value::str("six")),
            ]),
        ])
        .unwrap();
        let dead = sink.take_dead_letters();
        assert_eq!(dead.len(), 2);
        assert!(sink.take_dead_letters().is_empty());
        let reason = |e: &Event| e.fields.get(Sym::intern("reason")).unwrap().to_string();
        assert!(reason(&dead[0]).contains("`partition_by` field `window_start`"));
        assert!(
            reason(&dead[1]).contains("`n` is string"),
            "{}",
            reason(&dead[1])
        );
        assert_eq!(
            dead[1].fields.get(Sym::intern("stage")),
            Some(&Value::str("lake"))
        );
        assert_eq!(dead[1].time, 7);
        sink.flush().unwrap();
        assert_eq!(
            files(dir.path()),
            vec![
                PathBuf::from("day=2024-05-01/hour=23/part-0-0.parquet"),
                "day=2024-05-02/hour=00/part-0-1.parquet".into(),
            ]
        );
        assert_eq!(
            read_n(&dir.path().join("day=2024-05-02/hour=00/part-0-1.parquet")).0,
            vec![2, 3, 5]
        );
    }

    #[test]
    fn keeps_a_bounded_number_of_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = with_options(dir.path(), "partition_by = \"t\"");
        let mut sink = cfg.build(&BuildContext::single("lake")).unwrap();
        let hours = MAX_OPEN_FILES as i64 + 4;
        let batch: Vec<Event> = (0..hours)
            .map(|h| event(&[("t", Value::Int(h * HOUR_MS)), ("n", Value::Int(h))]))
            .collect();
        sink.write(&batch).unwrap();
        // The earliest hours were closed to make room.
        assert_eq!(files(dir.path()).len(), 4);
        sink.flush().unwrap();
        let all = files(dir.path());
        assert_eq!(all.len(), hours as usize);
        let mut n: Vec<i64> = all
            .iter()
            .flat_map(|f| read_n(&dir.path().join(f)).0)
            .collect();
        n.sort_unstable();
        assert_eq!(n, (0..hours).collect::<Vec<_>>());
    }

    #[test]
    fn events_without_fields_are_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = with_options(dir.path(), "")
            .build(&BuildContext::single("lake"))
            .unwrap();
        sink.write(&[event(&[])]).unwrap();
        assert_eq!(sink.take_dead_letters().len(), 1);
        sink.flush().unwrap();
        assert!(files(dir.path()).is_empty());
    }

    /// Exactly-once: files appear only when their checkpoint is committed;
    /// after a crash, the restored checkpoint's files are published and
    /// later ones deleted; a redone commit changes nothing.
    #[test]
    fn exactly_once_files_appear_at_commit_and_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = with_options(dir.path(), "partition_by = \"t\"");
        let mut cx = BuildContext::single("lake");
        cx.node.exactly_once = true;
        cx.metrics = Arc::new(ComponentMetrics::default());
        let rows = |from: i64, n: i64| -> Vec<Event> {
            (from..from + n)
                .map(|i| event(&[("n", Value::Int(i)), ("t", Value::Int(i * 1_800_000))]))
                .collect()
        };
        let visible = |dir: &Path| -> Vec<i64> {
            let mut all: Vec<i64> = files(dir)
                .iter()
                .filter(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'))
                .flat_map(|f| read_n(&dir.join(f)).0)
                .collect();
            all.sort();
            all
        };
        let mut sink = cfg.build(&cx).unwrap();
        sink.recover(None).unwrap();
        sink.write(&rows(0, 4)).unwrap();
        sink.pre_commit(1).unwrap();
        assert!(visible(dir.path()).is_empty(), "nothing before the commit");
        sink.write(&rows(4, 4)).unwrap();
        sink.commit(1).unwrap();
        sink.commit(1).unwrap();
        assert_eq!(visible(dir.path()), (0..4).collect::<Vec<_>>());
        sink.pre_commit(2).unwrap();
        sink.write(&rows(8, 4)).unwrap();
        sink.pre_commit(3).unwrap();
        drop(sink);

        // Checkpoint 2 was stored, 3 was not: 4..8 appear, 8..12 never.
        let mut again = cfg.build(&cx).unwrap();
        again.recover(Some(2)).unwrap();
        assert_eq!(visible(dir.path()), (0..8).collect::<Vec<_>>());
        again.write(&rows(8, 2)).unwrap();
        again.pre_commit(3).unwrap();
        again.commit(3).unwrap();
        assert_eq!(visible(dir.path()), (0..10).collect::<Vec<_>>());
        assert!(
            files(dir.path()).iter().all(|f| !f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with('.')),
            "no pending file is left: {:?}",
            files(dir.path())
        );
    }
}
