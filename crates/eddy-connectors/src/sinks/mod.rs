//! Sinks, one module per `type`.

pub mod file;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod stdout;

pub use file::FileSinkConfig;
#[cfg(feature = "parquet")]
pub use parquet::ParquetConfig;
pub use stdout::StdoutConfig;
