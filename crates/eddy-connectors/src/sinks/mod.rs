//! Sinks, one module per `type`.

pub mod delivery;
pub mod file;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod stdout;

pub use file::FileSinkConfig;
#[cfg(feature = "postgres")]
pub use postgres::PostgresConfig;
pub use stdout::StdoutConfig;
