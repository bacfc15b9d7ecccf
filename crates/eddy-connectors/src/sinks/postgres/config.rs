//! The `postgres` sink's configuration and its checks.

use eddy_core::config::{Diagnostic, Duration as ConfigDuration, Spanned};
use indexmap::IndexMap;
use serde::Deserialize;

use super::schema::TableName;
use super::types::PgType;
use crate::sinks::delivery::{CircuitConfig, RetryConfig};

/// How rows reach the table.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every event becomes a new row (binary `COPY`).
    #[default]
    Append,
    /// Events replace the row with the same `key` (`COPY` into a temporary
    /// table, then `INSERT ... ON CONFLICT (key) DO UPDATE`). Replays are
    /// idempotent.
    Upsert,
}

/// Configuration of the `postgres` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Where to connect: `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`
    /// (any libpq-style URL or `key=value` string tokio-postgres accepts).
    pub url: Spanned<String>,
    /// The table to write, optionally schema-qualified (`analytics.results`);
    /// unquoted names fold to lower case as in SQL.
    pub table: Spanned<String>,
    /// `"append"` (default) or `"upsert"`.
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// The columns identifying a row: required for `upsert` (they need a
    /// unique index or primary key) and the primary key of a created table.
    #[serde(default)]
    pub key: Vec<String>,
    /// Which fields to write, as `{ column = "type" }`; each column takes the
    /// event field of the same name, other fields are ignored. Without it,
    /// every column of the table is a target and an event field the table
    /// lacks is an error. The types are used by `create_table`; values are
    /// always encoded for the table's actual column types.
    #[serde(default)]
    pub columns: Option<IndexMap<String, String>>,
    /// Create the table when it does not exist, from `columns` or else from
    /// the first batch's fields (int → bigint, double → double precision,
    /// bool → boolean, string → text, lists and maps → jsonb; strings in
    /// `window_start`, `window_end`, `time`, `timestamp` and `*_at` fields
    /// holding RFC 3339 times → timestamptz), with `key` as primary key.
    #[serde(default)]
    pub create_table: bool,
    /// Connect with TLS (OpenSSL), verifying the server's certificate
    /// against the system's roots and `tls_ca`; a server without TLS is
    /// refused rather than sent data in clear text.
    #[serde(default)]
    pub tls: bool,
    /// A CA certificate (PEM) to trust besides the system's, e.g. the
    /// server's own self-signed one.
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Connections per worker instance (default 1). With more, each batch is
    /// split and its parts are written concurrently (in separate
    /// transactions).
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// Limit for connecting and for writing one batch (default `30s`); on
    /// expiry the connection is dropped and the batch retried.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Events per `COPY` (default 10000).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// How long a partial batch may wait (default `500ms`).
    #[serde(default)]
    pub linger: Option<ConfigDuration>,
    /// Batches buffered between the pipeline and this sink's thread
    /// (default 8); when full, backpressure reaches the sources.
    #[serde(default)]
    pub buffer: Option<usize>,
    /// Retries of failed batches:
    /// `{ attempts = 10, initial_backoff = "100ms", max_backoff = "10s" }`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When to pause sending: `{ failure_threshold = 5, reset_timeout = "10s" }`.
    #[serde(default)]
    pub circuit_breaker: CircuitConfig,
}

impl PostgresConfig {
    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.mode.as_ref().map(|m| *m.get_ref()).unwrap_or_default()
    }

    /// Every problem deserialisation could not catch, with its span.
    pub(super) fn problems(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if let Err(e) = self.url.get_ref().parse::<tokio_postgres::Config>() {
            out.push(
                Diagnostic::new(self.url.span(), format!("invalid PostgreSQL url: {e}"))
                    .hint("e.g. url = \"postgres://eddy@127.0.0.1:5432/analytics\""),
            );
        }
        if let Err(e) = TableName::parse(self.table.get_ref()) {
            out.push(Diagnostic::new(self.table.span(), e));
        }
        if let Some(mode) = &self.mode {
            if *mode.get_ref() == Mode::Upsert && self.key.is_empty() {
                out.push(Diagnostic::new(mode.span(), "upsert needs `key`").hint(
                    "key = [\"window_start\", \"user\"] names the columns of a unique index",
                ));
            }
        }
        if let Some(ca) = &self.tls_ca {
            if !self.tls {
                out.push(
                    Diagnostic::new(self.url.span(), "`tls_ca` is set but `tls` is not")
                        .hint("set tls = true to connect with TLS"),
                );
            } else if let Err(e) = std::fs::read(ca) {
                out.push(Diagnostic::new(
                    self.url.span(),
                    format!("cannot read tls_ca {}: {e}", ca.display()),
                ));
            }
        }
        if self.pool_size == Some(0) {
            out.push(Diagnostic::new(
                self.table.span(),
                "pool_size must be at least 1",
            ));
        }
        if let Some(columns) = &self.columns {
            for (name, ty) in columns {
                if PgType::parse(ty).is_none() {
                    out.push(
                        Diagnostic::new(
                            self.table.span(),
                            format!("column `{name}`: type `{ty}` is not supported"),
                        )
                        .hint(PgType::SUPPORTED),
                    );
                }
            }
            for k in &self.key {
                if !columns.contains_key(k) {
                    out.push(Diagnostic::new(
                        self.table.span(),
                        format!("key column `{k}` is not in `columns`"),
                    ));
                }
            }
        }
        out
    }
}
