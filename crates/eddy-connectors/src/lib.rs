//! Eddy's connectors: sources that read or generate events and sinks that
//! write results.
//!
//! Sources: [`sources::NexmarkConfig`] (`nexmark`),
//! [`sources::SimulatorConfig`] (`simulator`), [`sources::FileSourceConfig`]
//! (`file`), [`sources::StdinConfig`] (`stdin`). Sinks:
//! [`sinks::StdoutConfig`] (`stdout`), [`sinks::FileSinkConfig`] (`file`).
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod sinks;
pub mod sources;
mod util;
