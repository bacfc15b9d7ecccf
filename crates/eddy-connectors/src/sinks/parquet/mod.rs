//! `type = "parquet"`: writes events as Parquet files, to a local directory
//! or (through `object_store`) an object-storage URL.
//!
//! ```toml
//! [sinks.lake]
//! type = "parquet"
//! inputs = ["per_merchant"]
//! path = "data/lake/merchant_stats"
//! partition_by = "window_start"
//! compression = "zstd"
//! schema = { window_start = "timestamp_ms", merchant = "string", n = "int64", total = "float64" }
//! ```
//!
//! Each worker instance writes its own files, `part-<worker>-<seq>.parquet`,
//! and closes them on every checkpoint (`pre_commit`) and at the end of the
//! run, so a completed checkpoint leaves only complete, readable files. A
//! file becomes visible under its name only once complete: until then the
//! local store writes it as `NAME#N` beside that name and renames it. Sequence numbers continue after
//! the largest one already in the directory, so a rerun never overwrites.
//! With `partition_by`, files go to Hive-style directories
//! `day=YYYY-MM-DD/hour=HH/` (UTC) by that field's time.
//!
//! Columns and the rules for values that do not fit them are in
//! [`ColumnType`]; a rejected event goes to `NAME.dead_letters`.

mod schema;
mod sink;
mod store;

use std::path::PathBuf;

use eddy_core::component::{BuildContext, BuildError, PathUse, SinkFactory};
use eddy_core::{Sink, Sym};
use indexmap::IndexMap;
use serde::Deserialize;

pub use schema::{ColumnType, ENCODING_KEY};
pub use sink::ParquetSink;
use store::Target;

/// Rows per row group unless `row_group_size` says otherwise.
const DEFAULT_ROW_GROUP_SIZE: usize = 100_000;

/// The `parquet` sink's options as written in its `[sinks.NAME]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParquetOptions {
    /// A local directory to write into (created if missing). Give either
    /// `path` or `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An object-storage URL to write under. `file:///abs/dir` (a local
    /// directory through object_store's file-system store) is supported;
    /// `s3://bucket/prefix` and the like need a build with that store.
    #[serde(default)]
    pub url: Option<String>,
    /// Column name → type, in column order: `"int64"`, `"float64"`,
    /// `"string"`, `"bool"`, `"timestamp_ms"` or `"json"`. Fields not listed
    /// are not written. Default: inferred from the first batch's fields.
    #[serde(default)]
    pub schema: Option<IndexMap<String, ColumnType>>,
    /// A time field (epoch milliseconds or RFC 3339 text) whose UTC day and
    /// hour place each event's file under `day=YYYY-MM-DD/hour=HH/`. An event
    /// without a usable time there is a dead letter. Default: no partitions.
    #[serde(default)]
    pub partition_by: Option<String>,
    /// Most rows in one row group (default 100000).
    #[serde(default = "default_row_group_size")]
    pub row_group_size: usize,
    /// Column compression: `"zstd"` (default), `"snappy"` or `"none"`.
    #[serde(default)]
    pub compression: Compression,
}

fn default_row_group_size() -> usize {
    DEFAULT_ROW_GROUP_SIZE
}

/// How column chunks are compressed.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Zstandard at its default level: small files, fast to read.
    #[default]
    Zstd,
    /// Snappy: faster to write, larger files.
    Snappy,
    /// Uncompressed.
    None,
}

/// Configuration of the `parquet` sink: its [`ParquetOptions`], checked.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "ParquetOptions")]
pub struct ParquetConfig {
    options: ParquetOptions,
    target: Target,
    partition_by: Option<Sym>,
}

impl TryFrom<ParquetOptions> for ParquetConfig {
    type Error = String;

    fn try_from(options: ParquetOptions) -> Result<ParquetConfig, String> {
        let target = match (&options.path, &options.url) {
            (Some(path), None) => Target::Local(path.clone()),
            (None, Some(url)) => Target::parse_url(url)?,
            (Some(_), Some(_)) => {
                return Err("give either `path` (a local directory) or `url`, not both".into())
            }
            (None, None) => {
                return Err(
                    "the parquet sink needs `path` (a local directory) or `url` \
                     (e.g. \"file:///data/lake\")"
                        .into(),
                )
            }
        };
        if options.row_group_size == 0 {
            return Err("`row_group_size` must be at least 1".into());
        }
        if options.schema.as_ref().is_some_and(IndexMap::is_empty) {
            return Err("`schema` needs at least one column; leave it out to infer one".into());
        }
        let partition_by = match options.partition_by.as_deref() {
            None => None,
            Some("") => return Err("`partition_by` names a field and cannot be empty".into()),
            Some(name) => Some(Sym::intern(name)),
        };
        Ok(ParquetConfig {
            options,
            target,
            partition_by,
        })
    }
}

impl ParquetConfig {
    /// A config writing to the local directory `dir` with the defaults.
    pub fn new(dir: impl Into<PathBuf>) -> ParquetConfig {
        let dir = dir.into();
        ParquetConfig {
            target: Target::Local(dir.clone()),
            options: ParquetOptions {
                path: Some(dir),
                url: None,
                schema: None,
                partition_by: None,
                row_group_size: DEFAULT_ROW_GROUP_SIZE,
                compression: Compression::Zstd,
            },
            partition_by: None,
        }
    }

    /// The options as written.
    pub fn options(&self) -> &ParquetOptions {
        &self.options
    }
}

impl SinkFactory for ParquetConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let sink = ParquetSink::new(self, cx).map_err(|e| BuildError::Sink {
            message: format!("sink `{}`: {e}", cx.name),
            retryable: false,
        })?;
        Ok(Box::new(sink))
    }

    fn writes(&self) -> Vec<PathUse> {
        match &self.target {
            Target::Local(dir) => vec![PathUse::directory(dir)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParquetConfig, String> {
        toml::from_str::<ParquetConfig>(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn options_are_checked() {
        let cfg = parse(
            "path = \"out\"\nschema = { a = \"int64\", b = \"timestamp_ms\" }\n\
             compression = \"snappy\"\nrow_group_size = 10\npartition_by = \"b\"",
        )
        .unwrap();
        let schema = cfg.options().schema.as_ref().unwrap();
        assert_eq!(
            schema
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            vec![("a", ColumnType::Int64), ("b", ColumnType::TimestampMs)]
        );
        assert_eq!(cfg.options().compression, Compression::Snappy);
        assert!(parse("url = \"file:///tmp/lake\"").is_ok());

        for (text, needle) in [
            ("", "needs `path`"),
            ("path = \"a\"\nurl = \"file:///b\"", "not both"),
            ("path = \"a\"\nrow_group_size = 0", "at least 1"),
            ("path = \"a\"\nschema = {}", "at least one column"),
            ("path = \"a\"\nschema = { a = \"int\" }", "unknown variant"),
            ("path = \"a\"\ncompression = \"lz4\"", "unknown variant"),
            ("path = \"a\"\npartition_by = \"\"", "cannot be empty"),
            ("path = \"a\"\nbucket = \"b\"", "unknown field"),
            ("url = \"s3://bucket/prefix\"", "s3"),
            ("url = \"/no/scheme\"", "not a URL"),
        ] {
            let err = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text:?}"));
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
