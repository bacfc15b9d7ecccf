//! End-to-end tests of the runtime: validation diagnostics and whole runs.

mod golden;
mod run;
#[cfg(feature = "parquet")]
mod sinks;
mod validate;
