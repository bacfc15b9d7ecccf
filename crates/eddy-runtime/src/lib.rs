//! Eddy's runtime: compiles a pipeline file into a validated [`Plan`] and
//! runs it on worker threads with keyed shuffles, watermarks, backpressure
//! and clean shutdown.
//!
//! ```no_run
//! use eddy_runtime::{Plan, RunOptions};
//!
//! let text = std::fs::read_to_string("pipeline.toml").unwrap();
//! let plan = Plan::compile("pipeline.toml", &text, &[]).map_err(|d| d.to_string()).unwrap();
//! let report = eddy_runtime::run(&plan, RunOptions::default()).unwrap();
//! println!("{:?}", report.elapsed);
//! ```
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod blackhole;
pub mod exec;
pub mod health;
pub mod metrics;
pub mod plan;
pub mod registry;

pub use exec::{
    run, start, CheckpointMeta, ErrorLog, Failure, InstanceMeta, NodeMeta, Publisher,
    ReportedError, Restore, RunError, RunOptions, RunReport, Running,
};
pub use metrics::Metrics;
pub use plan::Plan;
