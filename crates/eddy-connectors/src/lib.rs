//! Eddy's connectors: sources that read or generate events and sinks that
//! write results.
//!
//! Sources: [`sources::NexmarkConfig`] (`nexmark`),
//! [`sources::SimulatorConfig`] (`simulator`), [`sources::FileSourceConfig`]
//! (`file`), [`sources::StdinConfig`] (`stdin`). Sinks:
//! [`sinks::StdoutConfig`] (`stdout`), [`sinks::FileSinkConfig`] (`file`,
//! optionally rotating) and, with the cargo feature `parquet` (on by
//! default), `sinks::parquet::ParquetConfig` (`parquet`: Arrow/Parquet files
//! in a local directory or through `object_store`).
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod sinks;
pub mod sources;
mod util;
