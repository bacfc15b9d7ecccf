//! Eddy's operators: stateless transforms (`filter`, `map`, `flat_map`),
//! windows and the aggregates they compute.
#![warn(missing_docs)]

pub mod aggregate;
pub mod transforms;
