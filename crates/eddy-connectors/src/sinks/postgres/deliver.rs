//! Sending batches: the connections, the table's schema, `COPY` for append
//! and `COPY` into a staging table plus `INSERT ... ON CONFLICT` for upsert.
//! With `pool_size` > 1 a large batch is split over the connections and the
//! parts are written concurrently (by key hash for upsert, so all events of
//! a key stay in one part and the last one still wins).
//!
//! tokio-postgres is asynchronous while [`Deliver`] is called on the sink's
//! own thread, so each instance owns a current-thread tokio runtime and
//! blocks on it for each batch. Between batches nothing runs, which is fine:
//! the connection only has work while a batch is in flight.

use std::hash::{Hash, Hasher};
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use eddy_core::metrics::Gauge;
use eddy_core::Event;
use futures_util::future::join_all;
use futures_util::SinkExt;
use tokio_postgres::{Client, CopyInSink, NoTls};

use super::config::Mode;
use super::copy::{Encoded, Target};
use super::schema::{
    columns_from_catalog, columns_to_create, create_table_sql, quote, Column, TableName,
    COLUMNS_SQL,
};
use super::stage::{self, Publishing, Staging, Tag};
use super::types::PgType;
use crate::sinks::delivery::{Deliver, Delivered, DeliveryError};

/// The staging table of upserts; temporary tables are per session, so one
/// name serves every connection.
const STAGE: &str = "pg_temp.eddy_stage";

/// What one writer needs to know, resolved from the config.
#[derive(Clone)]
pub struct Settings {
    /// Connection parameters.
    pub pg: tokio_postgres::Config,
    /// TLS connector, when `tls = true`.
    pub tls: Option<postgres_native_tls::MakeTlsConnector>,
    /// The target table.
    pub table: TableName,
    /// Append or upsert.
    pub mode: Mode,
    /// Key columns.
    pub key: Vec<String>,
    /// Configured columns and their types, when given.
    pub declared: Option<Vec<(String, PgType)>>,
    /// Create the table when missing.
    pub create_table: bool,
    /// Limit for connecting and for one batch.
    pub timeout: Duration,
    /// Connections; a large batch is split over them.
    pub pool: usize,
    /// Exactly-once: stage batches for commit instead of writing the
    /// target (see [`super::stage`]).
    pub staging: Option<Staging>,
}

/// A connection and whether its staging table exists.
struct Conn {
    client: Client,
    staged: bool,
}

/// The state a batch works on (apart from the runtime, which drives it).
struct State {
    settings: Settings,
    /// Open connections: none, or `settings.pool`.
    conns: Vec<Conn>,
    /// The resolved columns; `None` until read from the catalog, or when
    /// the table does not exist yet.
    target: Option<Target>,
    /// The reusable `COPY` buffer.
    buf: Vec<u8>,
    connected: Gauge,
    /// The checkpoint and batch number of the next staged batch.
    tag: Tag,
    /// Whether the staging table is known to exist.
    stage_ready: bool,
}

/// Writes batches to one PostgreSQL table over one connection.
pub struct PgWriter {
    rt: tokio::runtime::Runtime,
    state: State,
}

impl PgWriter {
    /// A writer; it connects on first use (or [`PgWriter::prepare`]).
    pub fn new(settings: Settings, connected: Gauge) -> std::io::Result<PgWriter> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(PgWriter {
            rt,
            state: State {
                settings,
                conns: Vec::new(),
                target: None,
                buf: Vec::new(),
                connected,
                tag: Tag::default(),
                stage_ready: false,
            },
        })
    }

    /// Connects and reads the table's columns now, so that a wrong table or
    /// column is reported when the pipeline starts.
    pub fn prepare(&mut self) -> Result<(), DeliveryError> {
        let timeout = self.state.settings.timeout;
        let state = &mut self.state;
        let result = self
            .rt
            .block_on(async { limit(timeout, state.ready()).await });
        state.after(result)
    }

    /// The tag new staged rows get.
    pub fn tag(&self) -> Tag {
        self.state.tag
    }

    /// Sets the tag of the next staged batches (at a barrier or recovery).
    pub fn set_tag(&mut self, tag: Tag) {
        self.state.tag = tag;
    }

    /// Publishes or discards this instance's staged rows.
    pub fn publish(&mut self, what: Publishing) -> Result<(), DeliveryError> {
        let timeout = self.state.settings.timeout;
        let state = &mut self.state;
        let result = self
            .rt
            .block_on(async { limit(timeout, state.publish(what)).await });
        state.after(result)
    }
}

impl Deliver for PgWriter {
    fn deliver(
        &mut self,
        events: &[Event],
        _key: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        let timeout = self.state.settings.timeout;
        let state = &mut self.state;
        let result = self
            .rt
            .block_on(async { limit(timeout, state.deliver(events)).await });
        state.after(result)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// Runs `f` with a time limit; expiry is transient.
async fn limit<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, DeliveryError>>,
) -> Result<T, DeliveryError> {
    tokio::time::timeout(timeout, f).await.unwrap_or_else(|_| {
        Err(DeliveryError::Transient(format!(
            "no answer within {} ms",
            timeout.as_millis()
        )))
    })
}

impl State {
    /// After a transient failure the connection may be broken, or the
    /// server restarted (temporary tables gone): start afresh next time.
    fn after<T>(&mut self, result: Result<T, DeliveryError>) -> Result<T, DeliveryError> {
        if matches!(result, Err(DeliveryError::Transient(_))) {
            self.disconnect();
        }
        result
    }

    fn disconnect(&mut self) {
        self.connected.add(-(self.conns.len() as i64));
        self.conns.clear();
        self.target = None;
    }

    /// Connects if needed and loads the table's columns.
    async fn ready(&mut self) -> Result<(), DeliveryError> {
        while self.conns.len() < self.settings.pool.max(1) {
            // Each connection future drives its socket whenever the runtime
            // runs (during batches).
            let client = match &self.settings.tls {
                Some(tls) => {
                    let (client, connection) = self
                        .settings
                        .pg
                        .connect(tls.clone())
                        .await
                        .map_err(classify)?;
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    client
                }
                None => {
                    let (client, connection) =
                        self.settings.pg.connect(NoTls).await.map_err(classify)?;
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    client
                }
            };
            self.conns.push(Conn {
                client,
                staged: false,
            });
            self.connected.add(1);
        }
        if self.target.is_none() {
            self.target = self.load_target().await?;
        }
        Ok(())
    }

    fn client(&mut self) -> Result<&mut Conn, DeliveryError> {
        self.conns
            .first_mut()
            .ok_or_else(|| DeliveryError::Transient("not connected".into()))
    }

    /// The target's columns from the catalog; `None` when the table does
    /// not exist and may be created.
    async fn load_target(&mut self) -> Result<Option<Target>, DeliveryError> {
        let table_sql = self.settings.table.sql();
        let rows = self
            .client()?
            .client
            .query(COLUMNS_SQL, &[&table_sql])
            .await
            .map_err(classify)?;
        let mut catalog = Vec::with_capacity(rows.len());
        for row in rows {
            let read = (row.try_get(0), row.try_get(1), row.try_get(2));
            match read {
                (Ok(name), Ok(ty), Ok(generated)) => catalog.push((name, ty, generated)),
                _ => {
                    return Err(DeliveryError::Permanent(format!(
                        "unexpected catalog row for table {table_sql}"
                    )))
                }
            }
        }
        if catalog.is_empty() {
            if self.settings.create_table {
                return Ok(None);
            }
            return Err(DeliveryError::Permanent(format!(
                "table {table_sql} does not exist (create it, or set create_table = true)"
            )));
        }
        let table_columns = columns_from_catalog(catalog);
        let (columns, explicit) = match &self.settings.declared {
            Some(declared) => {
                let mut picked: Vec<Column> = Vec::with_capacity(declared.len());
                for (name, _) in declared {
                    match table_columns.iter().find(|c| &c.name == name) {
                        Some(c) => picked.push(c.clone()),
                        None => {
                            return Err(DeliveryError::Permanent(format!(
                                "column `{name}` does not exist in table {table_sql}"
                            )))
                        }
                    }
                }
                (picked, true)
            }
            None => (table_columns, false),
        };
        let mut key = Vec::with_capacity(self.settings.key.len());
        for k in &self.settings.key {
            match columns.iter().position(|c| &c.name == k) {
                Some(i) => key.push(i),
                None => {
                    return Err(DeliveryError::Permanent(format!(
                        "key column `{k}` does not exist in table {table_sql}"
                    )))
                }
            }
        }
        Ok(Some(Target {
            columns,
            explicit,
            key,
            table: table_sql,
        }))
    }

    /// Creates the table from the configured columns or `events`' fields.
    async fn create(&mut self, events: &[Event]) -> Result<(), DeliveryError> {
        let columns = columns_to_create(self.settings.declared.as_deref(), events);
        for k in &self.settings.key {
            if !columns.iter().any(|(c, _)| c == k) {
                return Err(DeliveryError::Permanent(format!(
                    "cannot create table {}: key column `{k}` is not a field of the events",
                    self.settings.table.sql()
                )));
            }
        }
        let sql = create_table_sql(&self.settings.table, &columns, &self.settings.key);
        self.ddl(&sql).await?;
        tracing::info!(table = %self.settings.table.sql(), "postgres: created table");
        self.target = self.load_target().await?;
        Ok(())
    }

    /// Creates the staging table unless known to exist.
    async fn ensure_stage(&mut self) -> Result<(), DeliveryError> {
        if self.stage_ready || self.settings.staging.is_none() {
            return Ok(());
        }
        let sql = stage::create_sql(&self.settings.table);
        self.ddl(&sql).await?;
        self.stage_ready = true;
        Ok(())
    }

    /// Runs `IF NOT EXISTS` DDL for the target table under a transaction
    /// lock on its name. Unserialized, two instances creating the same
    /// table both find it missing and one fails on the catalog
    /// ("type ... already exists"); serialized, the second finds it.
    async fn ddl(&mut self, sql: &str) -> Result<(), DeliveryError> {
        let lock = ddl_lock(&self.settings.table.sql());
        let conn = self.client()?;
        let tx = conn.client.transaction().await.map_err(classify)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
            .await
            .map_err(classify)?;
        tx.batch_execute(sql).await.map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// Publishes or discards the staged rows this instance owns, in one
    /// transaction.
    async fn publish(&mut self, what: Publishing) -> Result<(), DeliveryError> {
        let Some(staging) = self.settings.staging.clone() else {
            return Ok(());
        };
        self.ready().await?;
        let Some(target) = &self.target else {
            // No target yet (create_table), so nothing was ever staged.
            return Ok(());
        };
        let columns: Vec<String> = target.columns.iter().map(|c| quote(&c.name)).collect();
        let key: Option<Vec<String>> = (self.settings.mode == Mode::Upsert).then(|| {
            target
                .key
                .iter()
                .map(|&i| quote(&target.columns[i].name))
                .collect()
        });
        let sql = stage::publish_sql(&self.settings.table, &columns, key.as_deref());
        self.ensure_stage().await?;
        let (upto, drop_later) = match what {
            Publishing::Commit(n) => (Some(n), false),
            Publishing::Recover(n) => (Some(n), true),
            Publishing::Discard => (None, true),
        };
        let conn = self.client()?;
        let tx = conn.client.transaction().await.map_err(classify)?;
        let (s, w, ws) = (staging.sink.clone(), staging.worker, staging.workers);
        if let Some(n) = upto {
            tx.execute(&sql.moved, &[&s, &w, &n, &ws])
                .await
                .map_err(classify)?;
        }
        if drop_later {
            let n = upto.unwrap_or(0);
            tx.execute(&sql.all, &[&s, &w, &n, &ws])
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn deliver(&mut self, events: &[Event]) -> Result<Delivered, DeliveryError> {
        self.ready().await?;
        if self.target.is_none() {
            self.create(events).await?;
        }
        self.ensure_stage().await?;
        let upsert = self.settings.mode == Mode::Upsert;
        let target = self
            .target
            .as_ref()
            .ok_or_else(|| DeliveryError::Transient("table not ready".into()))?;
        let parts = split(target, events, self.conns.len(), upsert);
        let tag = self.tag;
        let mut bytes = 0;
        let mut rejected = Vec::new();
        let mut jobs = Vec::with_capacity(parts.len());
        let mut buf = std::mem::take(&mut self.buf);
        for (p, part) in parts.iter().enumerate() {
            let encoded = target.encode(part.events(events), upsert, std::mem::take(&mut buf))?;
            bytes += encoded.data.len() as u64;
            rejected.extend(
                encoded
                    .rejected
                    .iter()
                    .map(|(i, r)| (part.origin(*i), r.clone())),
            );
            let job = (encoded.rows > 0).then(|| {
                // Parts of one batch get consecutive seqs, batches keep
                // room for every connection.
                let seq = tag.batch * self.settings.pool as i64 + p as i64;
                (
                    self.statements(target, &encoded, tag.checkpoint, seq),
                    Bytes::copy_from_slice(&encoded.data),
                )
            });
            if self.buf.is_empty() {
                self.buf = encoded.data;
            }
            jobs.push(job);
        }
        let writes = self
            .conns
            .iter_mut()
            .zip(jobs)
            .filter_map(|(conn, job)| job.map(|(sql, data)| write(conn, sql, data)));
        // Parts go out concurrently, one per connection, each in its own
        // transaction: a failure retries the whole batch (at-least-once).
        for result in join_all(writes).await {
            result?;
        }
        self.tag.batch += 1;
        Ok(Delivered { bytes, rejected })
    }

    /// The SQL for a batch filling `encoded.columns`.
    fn statements(
        &self,
        target: &Target,
        encoded: &Encoded,
        checkpoint: i64,
        seq: i64,
    ) -> Statements {
        let names: Vec<String> = encoded
            .columns
            .iter()
            .map(|&i| quote(&target.columns[i].name))
            .collect();
        let list = names.join(", ");
        let table = &target.table;
        let temp = format!(
            "CREATE TEMP TABLE IF NOT EXISTS eddy_stage ON COMMIT DELETE ROWS \
             AS SELECT * FROM {table} WITH NO DATA"
        );
        if let Some(staging) = &self.settings.staging {
            let (clear, insert) = stage::stage_sql(&self.settings.table, &list, STAGE);
            return Statements::Staged {
                stage: temp,
                copy: format!("COPY {STAGE} ({list}) FROM STDIN (FORMAT binary)"),
                clear,
                insert,
                tag: (staging.sink.clone(), staging.worker, checkpoint, seq),
            };
        }
        if self.settings.mode == Mode::Append {
            return Statements::Append {
                copy: format!("COPY {table} ({list}) FROM STDIN (FORMAT binary)"),
            };
        }
        let key: Vec<String> = target
            .key
            .iter()
            .map(|&i| quote(&target.columns[i].name))
            .collect();
        let updates: Vec<String> = names
            .iter()
            .filter(|n| !key.contains(n))
            .map(|n| format!("{n} = EXCLUDED.{n}"))
            .collect();
        let action = if updates.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        };
        Statements::Upsert {
            // Without constraints or defaults, so any subset of columns can
            // be copied in; emptied by every commit.
            stage: temp,
            copy: format!("COPY {STAGE} ({list}) FROM STDIN (FORMAT binary)"),
            insert: format!(
                "INSERT INTO {table} ({list}) SELECT {list} FROM {STAGE} \
                 ON CONFLICT ({}) DO {action}",
                key.join(", ")
            ),
        }
    }
}

/// The statements for one batch.
enum Statements {
    Append {
        copy: String,
    },
    Upsert {
        stage: String,
        copy: String,
        insert: String,
    },
    /// Exactly-once: into the session's temporary table, then replacing
    /// this batch part's rows in the staging table.
    Staged {
        stage: String,
        copy: String,
        clear: String,
        insert: String,
        /// Sink, worker, checkpoint, seq.
        tag: (String, i32, i64, i64),
    },
}

/// Fewest events worth a connection of their own.
const MIN_PART: usize = 1000;

/// A share of a batch for one connection.
enum Part {
    /// `len` events from `start` (append: order does not matter).
    Range { start: usize, len: usize },
    /// Events picked by key hash (upsert: all events of a key in one part,
    /// so the last one wins), cloned in order, with their batch indexes.
    Picked {
        events: Vec<Event>,
        index: Vec<usize>,
    },
}

impl Part {
    fn events<'a>(&'a self, batch: &'a [Event]) -> &'a [Event] {
        match self {
            Part::Range { start, len } => &batch[*start..*start + *len],
            Part::Picked { events, .. } => events,
        }
    }

    /// The batch index of the part's event `i`.
    fn origin(&self, i: usize) -> usize {
        match self {
            Part::Range { start, .. } => start + i,
            Part::Picked { index, .. } => index.get(i).copied().unwrap_or(i),
        }
    }
}

/// Splits a batch over up to `conns` connections, keeping parts of at
/// least [`MIN_PART`] events.
fn split(target: &Target, events: &[Event], conns: usize, upsert: bool) -> Vec<Part> {
    let n = conns.min(events.len() / MIN_PART).max(1);
    if n == 1 {
        return vec![Part::Range {
            start: 0,
            len: events.len(),
        }];
    }
    if !upsert {
        let size = events.len().div_ceil(n);
        return (0..events.len())
            .step_by(size)
            .map(|start| Part::Range {
                start,
                len: size.min(events.len() - start),
            })
            .collect();
    }
    let mut parts: Vec<(Vec<Event>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); n];
    for (i, e) in events.iter().enumerate() {
        let mut h = std::hash::DefaultHasher::new();
        for &k in &target.key {
            let sym = target.columns[k].sym;
            e.fields.get(sym).hash(&mut h);
        }
        let p = &mut parts[(h.finish() % n as u64) as usize];
        p.0.push(e.clone());
        p.1.push(i);
    }
    parts
        .into_iter()
        .map(|(events, index)| Part::Picked { events, index })
        .collect()
}

/// Sends one part on `conn`.
async fn write(conn: &mut Conn, sql: Statements, data: Bytes) -> Result<(), DeliveryError> {
    match sql {
        Statements::Append { copy } => {
            let sink = conn.client.copy_in(&copy).await.map_err(classify)?;
            send_copy(sink, data).await
        }
        Statements::Upsert {
            stage,
            copy,
            insert,
        } => {
            if !conn.staged {
                conn.client.batch_execute(&stage).await.map_err(classify)?;
                conn.staged = true;
            }
            let tx = conn.client.transaction().await.map_err(classify)?;
            let sink = tx.copy_in(&copy).await.map_err(classify)?;
            send_copy(sink, data).await?;
            tx.batch_execute(&insert).await.map_err(classify)?;
            tx.commit().await.map_err(classify)
        }
        Statements::Staged {
            stage,
            copy,
            clear,
            insert,
            tag: (s, w, c, q),
        } => {
            if !conn.staged {
                conn.client.batch_execute(&stage).await.map_err(classify)?;
                conn.staged = true;
            }
            let tx = conn.client.transaction().await.map_err(classify)?;
            let sink = tx.copy_in(&copy).await.map_err(classify)?;
            send_copy(sink, data).await?;
            tx.execute(&clear, &[&s, &w, &c, &q])
                .await
                .map_err(classify)?;
            tx.execute(&insert, &[&s, &w, &c, &q])
                .await
                .map_err(classify)?;
            tx.commit().await.map_err(classify)
        }
    }
}

/// Streams `data` into a started `COPY ... FROM STDIN`.
async fn send_copy(sink: CopyInSink<Bytes>, data: Bytes) -> Result<(), DeliveryError> {
    let mut sink = pin!(sink);
    sink.send(data).await.map_err(classify)?;
    sink.as_mut().finish().await.map_err(classify)?;
    Ok(())
}

/// The advisory lock key of DDL on `table` (its quoted name): FNV-1a, so
/// every process and version computes the same key.
fn ddl_lock(table: &str) -> i64 {
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash as i64
}

/// Sorts a driver error into transient (retry, reconnect) or permanent
/// (dead-letter), by SQLSTATE class: connection exceptions (08), operator
/// intervention such as admin shutdown (57), insufficient resources (53),
/// system errors (58), serialization failures and deadlocks (40001,
/// 40P01), lock timeouts (55P03) and the race of two clients creating
/// the same table (23505 on `pg_type`, 42P07, 42710; Eddy's own instances
/// take a lock first, see `ddl`) may pass; data and schema
/// errors will not. Errors without a SQLSTATE are I/O or protocol failures.
fn classify(e: tokio_postgres::Error) -> DeliveryError {
    let Some(db) = e.as_db_error() else {
        return DeliveryError::Transient(format!("postgres: {e}"));
    };
    let code = db.code().code();
    let mut message = format!("postgres: {} ({code})", db.message());
    if let Some(detail) = db.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    let transient = ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
        || matches!(code, "40001" | "40P01" | "55P03" | "42P07" | "42710")
        || (code == "23505" && db.constraint().is_some_and(|c| c.starts_with("pg_")));
    if transient {
        DeliveryError::Transient(message)
    } else {
        DeliveryError::Permanent(message)
    }
}
