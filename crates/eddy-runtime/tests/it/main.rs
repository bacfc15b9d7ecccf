//! End-to-end tests of the runtime: validation diagnostics and whole runs.

mod golden;
mod run;
mod validate;
