//! Sinks, one module per `type`.

pub mod delivery;
pub mod file;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
pub mod stdout;
pub mod template;

#[cfg(feature = "redis")]
pub use self::redis::RedisSinkConfig;
pub use file::FileSinkConfig;
#[cfg(feature = "http")]
pub use http::HttpSinkConfig;
#[cfg(feature = "parquet")]
pub use parquet::ParquetConfig;
#[cfg(feature = "postgres")]
pub use postgres::PostgresConfig;
pub use stdout::StdoutConfig;
