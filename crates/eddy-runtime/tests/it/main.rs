//! End-to-end tests of the runtime: validation diagnostics and whole runs.

mod golden;
#[cfg(feature = "postgres")]
mod postgres;
mod run;
#[cfg(all(feature = "redis", feature = "http"))]
mod sinks;
mod validate;
