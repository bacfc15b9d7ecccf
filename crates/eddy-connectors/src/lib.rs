//! Eddy's connectors: sources that read or generate events and sinks that
//! write results.
#![warn(missing_docs)]

pub mod sinks;
pub mod sources;
