//! The `lookup` transform: joins each event with a row of reference data
//! (a dimension table) found by a key.
//!
//! ```toml
//! [transforms.merchant]
//! type = "lookup"
//! inputs = ["payments"]
//! key = "merchant_id"                 # CEL: the event's key
//! file = "reference/merchants.csv"    # CSV with a header, or .ndjson
//! column = "id"                       # the table's key column
//! target = "merchant"                 # default: the node's name
//! on_miss = "keep"                    # keep | default | dead_letter
//! ```
//!
//! or, from PostgreSQL, refreshed on an interval:
//!
//! ```toml
//! postgres = { url = "postgres://eddy@127.0.0.1/ref", query = "SELECT id, name, risk FROM merchants", refresh = "1m", max_stale = "10m" }
//! ```
//!
//! The whole table is held in memory, so a lookup costs one hash probe and
//! never waits for I/O: a background thread reloads a file when it changes
//! (atomically: events see the old table or the new one) and re-runs the
//! query every `refresh`. The first load happens before the run starts; a
//! table that cannot be loaded then stops it with the reason. A later
//! failed load keeps the previous table; with `max_stale`, once the table
//! is older than that, events go to `NAME.dead_letters` saying so rather
//! than being joined with outdated data.
//!
//! Keys match by their text: `7`, `7.0` and `"7"` find the same row. CSV
//! cells are typed (integers, decimals, `true`/`false`, empty → null,
//! codes with leading zeros stay text); NDJSON rows keep their JSON types;
//! database cells are typed as CSV cells. When the key column repeats a
//! key, the first row wins (the others are counted in the load's log line).
//!
//! A miss (no row, or no key in the event) is handled by `on_miss`: `keep`
//! passes the event unchanged, `default` sets `target` to the `default`
//! CEL expression (`default = "{'name': 'unknown', 'risk': 1.0}"`; it may
//! read the event), `dead_letter` sends it to `NAME.dead_letters`.

#[cfg(feature = "postgres")]
mod postgres;
pub mod table;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eddy_core::component::{
    BuildContext, BuildError, NodeContext, Prepared, TransformFactory, ValidateContext,
};
use eddy_core::config::{Diagnostic, Duration as ConfigDuration, Spanned};
use eddy_core::{Batch, Collector, Expression, Operator, OperatorContext, Value};
use eddy_ops::transforms::map::FieldPath;
use serde::Deserialize;

use crate::reload::{interval, Reloading, WatchedFile};
use table::{key_text, Table};

/// Configuration of a `lookup` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// The event's key (CEL).
    pub key: Expression,
    /// The table's key column.
    pub column: Spanned<String>,
    /// A CSV or NDJSON file holding the table.
    pub file: Option<PathBuf>,
    /// How often `file` is checked for a new version (default `5s`).
    pub check_every: Option<ConfigDuration>,
    /// A PostgreSQL query giving the table.
    pub postgres: Option<PostgresTable>,
    /// Where the row goes (default: the node's name).
    pub target: Option<FieldPath>,
    /// What a miss does (default `keep`).
    #[serde(default)]
    pub on_miss: OnMiss,
    /// With `on_miss = "default"`: the value a miss gets (CEL).
    pub default: Option<Expression>,
}

/// A table read from PostgreSQL.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTable {
    /// Where to connect (`postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`).
    pub url: String,
    /// The query whose rows make the table (every column is kept).
    pub query: String,
    /// How often the query runs again (default `1m`).
    pub refresh: Option<ConfigDuration>,
    /// How old the table may get (when refreshes fail) before events are
    /// dead-lettered instead of joined (default: no limit).
    pub max_stale: Option<ConfigDuration>,
}

/// What happens to an event whose key finds no row.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum OnMiss {
    /// The event passes unchanged.
    #[default]
    Keep,
    /// `target` gets the `default` expression's value.
    Default,
    /// The event goes to the dead letters.
    DeadLetter,
}

/// The table shared by a run's instances.
type Shared = Arc<Reloading<Table>>;

impl LookupConfig {
    /// The first problem with the combination of settings, if any.
    fn check(&self) -> Result<(), String> {
        match (&self.file, &self.postgres) {
            (None, None) => {
                return Err("a lookup needs its table: set `file` or `postgres`".into());
            }
            (Some(_), Some(_)) => {
                return Err("set one of `file` and `postgres`, not both".into());
            }
            _ => {}
        }
        match (self.on_miss, &self.default) {
            (OnMiss::Default, None) => {
                Err("on_miss = \"default\" needs `default`, the value a miss gets (CEL)".into())
            }
            (OnMiss::Keep | OnMiss::DeadLetter, Some(_)) => {
                Err("`default` is used only with on_miss = \"default\"".into())
            }
            _ => Ok(()),
        }
    }

    fn load(&self) -> Result<Shared, String> {
        let column = self.column.get_ref().clone();
        if let Some(path) = &self.file {
            let every = interval(self.check_every, Duration::from_secs(5));
            let read = move |path: &Path| {
                let table = Table::read(path, &column)?;
                log_load(&path.display().to_string(), &table);
                Ok(table)
            };
            return Reloading::start(WatchedFile::new(path.clone(), read), every);
        }
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.postgres {
            let every = interval(pg.refresh, Duration::from_secs(60));
            return Reloading::start(postgres::PgTable::new(pg, column)?, every);
        }
        Err("this build of eddy has no PostgreSQL support (feature `postgres`)".into())
    }
}

/// Says what a load found that the user may want to fix.
fn log_load(source: &str, table: &Table) {
    if table.duplicates > 0 || table.keyless > 0 {
        tracing::warn!(
            "{source}: {} rows loaded; {} repeated a key (the first row is kept), {} had no key",
            table.len(),
            table.duplicates,
            table.keyless
        );
    }
}

impl TransformFactory for LookupConfig {
    fn prepare(&self, cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        let fail = |e: String| BuildError::Config(format!("{}: {e}", cx.name));
        self.check().map_err(fail)?;
        let shared = self
            .load()
            .map_err(|e| fail(format!("cannot load the lookup table: {e}")))?;
        Ok(Some(Prepared::new(shared)))
    }

    /// The combination of settings is checked before the run, where the
    /// error can name the line (the table itself is loaded by `prepare`).
    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        match self.check() {
            Ok(()) => Vec::new(),
            Err(e) => vec![Diagnostic::new(self.column.span(), e)],
        }
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        let target = match &self.target {
            Some(t) => t.clone(),
            None => FieldPath::parse(&cx.name).map_err(BuildError::Config)?,
        };
        let max_stale = self
            .postgres
            .as_ref()
            .and_then(|p| p.max_stale)
            .map(|d| interval(Some(d), Duration::ZERO));
        Ok(Box::new(LookupOperator {
            name: cx.name.clone(),
            key: self.key.clone(),
            target,
            on_miss: self.on_miss,
            default: self.default.clone(),
            table: Arc::clone(&*cx.prepared::<Shared>()?),
            max_stale,
        }))
    }
}

/// The `lookup` operator.
pub struct LookupOperator {
    name: String,
    key: Expression,
    target: FieldPath,
    on_miss: OnMiss,
    default: Option<Expression>,
    table: Shared,
    max_stale: Option<Duration>,
}

impl Operator for LookupOperator {
    fn process(
        &mut self,
        _input: usize,
        mut batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let table = self.table.get();
        let stale = self.max_stale.and_then(|limit| {
            let age = self.table.age();
            (age > limit).then(|| {
                format!(
                    "the lookup table is {}s old, older than max_stale ({}s): its refreshes fail",
                    age.as_secs(),
                    limit.as_secs()
                )
            })
        });
        batch.events.retain_mut(|event| {
            if let Some(reason) = &stale {
                out.dead_letter(&self.name, reason.clone(), event);
                return false;
            }
            let key = self.key.eval(event).ok();
            let row = match key.as_ref() {
                Some(Value::Str(s)) => table.get(s),
                Some(other) => key_text(other).and_then(|k| table.get(&k)),
                None => None,
            };
            let value = match (row, self.on_miss) {
                (Some(row), _) => row.clone(),
                (None, OnMiss::Keep) => return true,
                (None, OnMiss::Default) => match self.default.as_ref().map(|d| d.eval(event)) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        out.dead_letter(&self.name, format!("`default` failed: {e}"), event);
                        return false;
                    }
                    None => return true,
                },
                (None, OnMiss::DeadLetter) => {
                    let reason = match key {
                        Some(k) if !k.is_null() => format!("no row for key {k}"),
                        _ => "the event has no key".to_string(),
                    };
                    out.dead_letter(&self.name, reason, event);
                    return false;
                }
            };
            event.fields.insert_path(self.target.syms(), value);
            true
        });
        if !batch.events.is_empty() {
            out.emit_batch(batch);
        }
    }
}

#[cfg(test)]
mod tests;
