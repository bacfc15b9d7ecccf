//! `type = "postgres"`: writes events as rows of a PostgreSQL table.
//!
//! ```toml
//! [sinks.db]
//! type = "postgres"
//! inputs = ["per_user"]
//! url = "postgres://eddy@127.0.0.1:5432/analytics"
//! table = "user_minutes"
//! mode = "upsert"
//! key = ["window_start", "user"]
//! create_table = true
//! ```
//!
//! Each event field goes to the column of the same name, converted to the
//! column's type (read from the catalog at start). `append` streams each
//! batch with binary `COPY`; `upsert` copies it into a temporary table and
//! merges it with `INSERT ... ON CONFLICT (key) DO UPDATE` in one
//! transaction, keeping only the last event per key of the batch.
//!
//! Delivery goes through [`crate::sinks::delivery`]: batching, retries,
//! circuit breaker, dead letters. Without durable checkpoints the guarantee
//! is at-least-once; in upsert mode a replayed batch rewrites the same rows
//! with the same values, so the effect is exactly-once. With durable
//! checkpoints (`exactly_once`) batches go to a staging table and are
//! published when their checkpoint completes: see `stage`.
//!
//! Modules: `config` (options), `types` (column types and their binary
//! encoding), `copy` (a batch as a `COPY` stream), `schema` (table name,
//! catalog, `CREATE TABLE`), `deliver` (connection and statements), `stage`
//! (exactly-once through a staging table).

mod config;
mod copy;
mod deliver;
mod schema;
mod stage;
mod types;

#[cfg(test)]
mod tests;

use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, SinkFactory, ValidateContext};
use eddy_core::config::Diagnostic;
use eddy_core::Sink;

pub use config::{Mode, PostgresConfig};
use deliver::{PgWriter, Settings};
use schema::TableName;
use stage::{StagedSink, Staging};
use types::PgType;

use super::delivery::{Delivery, DeliveryError, DeliveryOptions};

/// Default events per `COPY`: large batches amortise the round trips.
const DEFAULT_BATCH: usize = 10_000;
/// Default wait for a partial batch.
const DEFAULT_LINGER: Duration = Duration::from_millis(500);
/// Default batches buffered in front of the sink's thread.
const DEFAULT_BUFFER: usize = 8;
/// Default limit for connecting and for one batch.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl PostgresConfig {
    /// The writer's settings, or why the config is unusable.
    fn settings(&self) -> Result<Settings, String> {
        if let Some(d) = self.problems().first() {
            return Err(d.message.clone());
        }
        let timeout = self.timeout.map_or(DEFAULT_TIMEOUT, |d| {
            Duration::from_millis(d.ms().max(1) as u64)
        });
        let mut pg: tokio_postgres::Config = self
            .url
            .get_ref()
            .parse()
            .map_err(|e| format!("invalid PostgreSQL url: {e}"))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(timeout);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("eddy");
        }
        let declared = match &self.columns {
            Some(cols) => Some(
                cols.iter()
                    .map(|(name, ty)| {
                        PgType::parse(ty)
                            .map(|t| (name.clone(), t))
                            .ok_or_else(|| format!("column `{name}`: unsupported type `{ty}`"))
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            ),
            None => None,
        };
        let tls = if self.tls {
            // The server must speak TLS: no silent fall-back to clear text.
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let mut builder = native_tls::TlsConnector::builder();
            if let Some(ca) = &self.tls_ca {
                let pem = std::fs::read(ca)
                    .map_err(|e| format!("cannot read tls_ca {}: {e}", ca.display()))?;
                let cert = native_tls::Certificate::from_pem(&pem)
                    .map_err(|e| format!("tls_ca {}: {e}", ca.display()))?;
                builder.add_root_certificate(cert);
            }
            let connector = builder
                .build()
                .map_err(|e| format!("cannot set up TLS: {e}"))?;
            Some(postgres_native_tls::MakeTlsConnector::new(connector))
        } else {
            None
        };
        Ok(Settings {
            pg,
            tls,
            table: TableName::parse(self.table.get_ref())?,
            mode: self.mode(),
            key: self.key.clone(),
            declared,
            create_table: self.create_table,
            timeout,
            pool: self.pool_size.unwrap_or(1).max(1),
            staging: None,
        })
    }
}

impl SinkFactory for PostgresConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let config = |e: String| BuildError::Config(format!("sink `{}`: {e}", cx.name));
        let sink = |e: String| BuildError::Sink {
            message: format!("sink `{}`: {e}", cx.name),
            retryable: false,
        };
        let mut settings = self.settings().map_err(config)?;
        if cx.exactly_once {
            settings.staging = Some(Staging {
                sink: format!("{}/{}", cx.pipeline, cx.name),
                worker: i32::try_from(cx.worker).map_err(|_| config("too many workers".into()))?,
                workers: i32::try_from(cx.workers)
                    .map_err(|_| config("too many workers".into()))?,
            });
        }
        let connected = cx.metrics.gauge("connected", &[]);
        let mut writer = PgWriter::new(settings, connected)
            .map_err(|e| sink(format!("cannot start the PostgreSQL client runtime: {e}")))?;
        // A wrong table or column stops the pipeline at start; an outage
        // does not: the first batch retries it.
        match writer.prepare() {
            Err(DeliveryError::Permanent(m)) => return Err(sink(m)),
            Err(DeliveryError::Transient(m)) => {
                tracing::warn!(sink = %cx.name, reason = %m, "PostgreSQL not reachable yet");
            }
            Ok(()) => {}
        }
        let opts = DeliveryOptions::new(
            self.batch_size,
            self.linger,
            self.retry,
            self.circuit_breaker,
            (DEFAULT_BATCH, DEFAULT_LINGER),
        );
        let delivery = Delivery::new(writer, &cx.name, opts, &cx.metrics);
        if cx.exactly_once {
            return Ok(Box::new(StagedSink::new(delivery, self.retry)));
        }
        Ok(Box::new(delivery))
    }

    fn buffer(&self) -> Option<usize> {
        Some(self.buffer.unwrap_or(DEFAULT_BUFFER).max(1))
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        self.problems()
    }
}
