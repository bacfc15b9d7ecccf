//! End-to-end tests of the runtime: validation diagnostics and whole runs.

mod blocking;
#[cfg(feature = "parquet")]
mod files;
mod golden;
mod no_loss;
mod partitioning;
#[cfg(feature = "postgres")]
mod postgres;
mod projection;
mod recovery;
mod run;
#[cfg(all(feature = "redis", feature = "http"))]
mod sinks;
mod validate;
