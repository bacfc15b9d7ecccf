//! Streaming anomaly detectors: one pass, per key, bounded memory, each
//! giving every value an anomaly score in [0, 1] with an explanation, and
//! the Numenta Anomaly Benchmark (NAB) corpus runner and scorer that
//! measure them.
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod detectors;
pub mod nab;
pub mod stats;

pub use detectors::{Assessment, KeyState, Method, Model, Params, Verdict};
