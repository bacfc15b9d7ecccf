//! End-to-end tests of the runtime: validation diagnostics and whole runs.

mod run;
mod validate;
