//! Eddy's operators: stateless transforms (`filter`, `map`, `flat_map`),
//! windows and the aggregates they compute.
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod aggregate;
pub mod transforms;

#[cfg(test)]
mod test_util;
