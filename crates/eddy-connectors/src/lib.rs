//! Eddy's connectors: sources that read or generate events and sinks that
//! write results.
//!
//! Sources: [`sources::NexmarkConfig`] (`nexmark`),
//! [`sources::SimulatorConfig`] (`simulator`), [`sources::FileSourceConfig`]
//! (`file`), [`sources::StdinConfig`] (`stdin`). Sinks:
//! [`sinks::StdoutConfig`] (`stdout`), [`sinks::FileSinkConfig`] (`file`),
//! `sinks::PostgresConfig` (`postgres`, cargo feature `postgres`, on by
//! default).
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod sinks;
pub mod sources;
mod util;
