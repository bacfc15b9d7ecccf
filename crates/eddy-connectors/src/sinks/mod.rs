//! Sinks, one module per `type`.

pub mod delivery;
pub mod file;
pub mod stdout;

pub use file::FileSinkConfig;
pub use stdout::StdoutConfig;
