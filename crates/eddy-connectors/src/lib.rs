//! Eddy's connectors: sources that read or generate events and sinks that
//! write results.
//!
//! Sources: [`sources::NexmarkConfig`] (`nexmark`),
//! [`sources::SimulatorConfig`] (`simulator`), [`sources::FileSourceConfig`]
//! (`file`), [`sources::StdinConfig`] (`stdin`). Sinks:
//! [`sinks::StdoutConfig`] (`stdout`), [`sinks::FileSinkConfig`] (`file`),
//! and the network sinks built on [`sinks::delivery`] (see the table), plus
//! the `kafka` source and sink.
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `redis` (default) | the `redis` sink: streams, hashes, sorted sets, pub/sub |
//! | `http` (default) | the `http` webhook sink |
//! | `postgres` (default) | the `postgres` sink: binary COPY, upserts |
//! | `kafka` (default) | the `kafka` source and sink, topic administration; implies `schema` |
//! | `schema` | record schemas: JSON Schema validation, Avro and Confluent Avro payloads ([`schema`]) |
//! | `parquet` (default) | the `parquet` sink: Arrow/Parquet files, locally or through `object_store` |
//! | `tls` | `rediss://` and `https://` through rustls (compiles rustls and ring) |
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "schema")]
pub mod schema;
pub mod sinks;
pub mod sources;
mod util;
