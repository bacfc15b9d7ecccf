//! Sources, one module per `type`.

pub mod file;
pub mod http;
mod lines;
pub mod nexmark;
pub mod simulator;
pub mod stdin;

pub use file::FileSourceConfig;
pub use http::HttpSourceConfig;
pub use nexmark::NexmarkConfig;
pub use simulator::SimulatorConfig;
pub use stdin::StdinConfig;
