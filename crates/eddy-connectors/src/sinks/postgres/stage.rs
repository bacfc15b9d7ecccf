//! Exactly-once delivery through a staging table.
//!
//! With durable checkpoints ([`eddy_core::component::NodeContext::exactly_once`])
//! batches do not go to the target but to `<table>__eddy_stage`, a table
//! next to it with the target's columns (and defaults) plus
//! `eddy_sink text, eddy_worker integer, eddy_checkpoint bigint,
//! eddy_seq bigint`: the sink (`<pipeline>/<node>`), the instance, the
//! checkpoint the row belongs to and the batch it came in. Barriers arrive
//! in id order and none is skipped, so rows written after `pre_commit(n -
//! 1)` (or `recover(Some(n - 1))`) belong to checkpoint `n`.
//!
//! - `pre_commit(n)` flushes the delivery layer: every row of checkpoint `n`
//!   is then committed in the staging table (retries and dead letters work
//!   as without exactly-once).
//! - `commit(n)` moves this instance's staged rows with checkpoint `<= n`
//!   into the target, in (checkpoint, seq) order (upsert: the last row per
//!   key wins), deleting them from staging in the same statement: running
//!   it twice, even concurrently, publishes nothing twice.
//! - `recover(Some(c))` does the same for `<= c` and deletes the rest of
//!   this instance's rows (written after the checkpoint the run resumed
//!   from); `recover(None)` deletes them all. Worker 0 also takes care of
//!   rows of workers that no longer exist (a run with fewer workers).
//!
//! A staged batch is written in one transaction that first deletes the rows
//! of the same (sink, worker, checkpoint, seq), so a batch retried after an
//! unclear failure (the commit's answer lost, one of several parts failed)
//! is staged once.
//!
//! Why a staging table: PostgreSQL's two-phase commit (`PREPARE
//! TRANSACTION`) would keep a transaction open per checkpoint and needs
//! `max_prepared_transactions > 0`, which default servers lack; prepared
//! transactions left behind by a crash also hold locks until someone
//! resolves them. A dedupe key in the target (a unique index on checkpoint
//! and sequence columns) would change the user's table and still expose
//! rows before their checkpoint completed. Staging needs only `CREATE
//! TABLE` rights, keeps the target's schema, and makes rows visible
//! atomically when their checkpoint completes.

use eddy_core::{Event, Sink, SinkError};

use super::deliver::PgWriter;
use super::schema::{quote, TableName};
use crate::sinks::delivery::{Delivery, DeliveryError, RetryConfig};

/// Which staged rows an instance owns.
#[derive(Clone, Debug)]
pub struct Staging {
    /// `<pipeline>/<node>`.
    pub sink: String,
    /// This instance's worker index.
    pub worker: i32,
    /// Workers in this run; worker 0 also owns rows of workers `>=` this.
    pub workers: i32,
}

/// The checkpoint and batch number new staged rows get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The checkpoint the rows belong to.
    pub checkpoint: i64,
    /// Batches staged so far in this checkpoint.
    pub batch: i64,
}

impl Default for Tag {
    fn default() -> Tag {
        Tag {
            checkpoint: 1,
            batch: 0,
        }
    }
}

/// The staging table's name: the target's, suffixed, in the same schema.
pub fn stage_name(table: &TableName) -> TableName {
    TableName {
        schema: table.schema.clone(),
        name: format!("{}__eddy_stage", table.name),
    }
}

/// Creates the staging table (and its index) unless it exists.
pub fn create_sql(table: &TableName) -> String {
    let stage = stage_name(table);
    let index = quote(&format!("{}__eddy_stage_idx", table.name));
    format!(
        "CREATE TABLE IF NOT EXISTS {s} (LIKE {t} INCLUDING DEFAULTS);\n\
         ALTER TABLE {s} ADD COLUMN IF NOT EXISTS eddy_sink text, \
         ADD COLUMN IF NOT EXISTS eddy_worker integer, \
         ADD COLUMN IF NOT EXISTS eddy_checkpoint bigint, \
         ADD COLUMN IF NOT EXISTS eddy_seq bigint;\n\
         CREATE INDEX IF NOT EXISTS {index} ON {s} \
         (eddy_sink, eddy_worker, eddy_checkpoint, eddy_seq)",
        s = stage.sql(),
        t = table.sql(),
    )
}

/// Rows of one instance: `$1` sink, `$2` worker, `$4` workers.
const OWNED: &str = "eddy_sink = $1 AND (eddy_worker = $2 OR ($2 = 0 AND eddy_worker >= $4))";

/// The statements that publish staged rows.
pub struct Publish {
    /// Moves owned rows with `eddy_checkpoint <= $3` into the target: one
    /// statement that deletes them from staging and inserts what it
    /// deleted. A second publisher of the same rows (a retry after a lost
    /// answer, or the next process while a killed one's commit is still
    /// running on the server) blocks on the rows and then finds them gone,
    /// so nothing is inserted twice, which an `INSERT ... SELECT` followed
    /// by a `DELETE` would do.
    pub moved: String,
    /// Deletes every owned row (`$3` is unused but bound).
    pub all: String,
}

/// The publishing statements for `table` with `columns` (quoted) and, for
/// upsert, `key` (quoted, a subset of `columns`).
pub fn publish_sql(table: &TableName, columns: &[String], key: Option<&[String]>) -> Publish {
    let stage = stage_name(table).sql();
    let target = table.sql();
    let list = columns.join(", ");
    let taken = format!(
        "WITH moved AS (DELETE FROM {stage} WHERE {OWNED} AND eddy_checkpoint <= $3 \
         RETURNING {list}, eddy_checkpoint, eddy_seq) "
    );
    let moved = match key {
        None => format!(
            "{taken}INSERT INTO {target} ({list}) SELECT {list} FROM moved \
             ORDER BY eddy_checkpoint, eddy_seq"
        ),
        Some(key) => {
            let keys = key.join(", ");
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            let action = if updates.is_empty() {
                "NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            };
            // One row per key, so ON CONFLICT never meets a key twice in
            // the statement: the latest checkpoint's last batch wins.
            format!(
                "{taken}INSERT INTO {target} ({list}) SELECT DISTINCT ON ({keys}) {list} FROM moved \
                 ORDER BY {keys}, eddy_checkpoint DESC, eddy_seq DESC \
                 ON CONFLICT ({keys}) DO {action}"
            )
        }
    };
    Publish {
        moved,
        all: format!("DELETE FROM {stage} WHERE {OWNED} AND $3::bigint IS NOT NULL"),
    }
}

/// Copies a batch from the session's temporary table into staging: `$1`
/// sink, `$2` worker, `$3` checkpoint, `$4` seq.
pub fn stage_sql(table: &TableName, list: &str, temp: &str) -> (String, String) {
    let stage = stage_name(table).sql();
    (
        format!(
            "DELETE FROM {stage} WHERE eddy_sink = $1 AND eddy_worker = $2 \
             AND eddy_checkpoint = $3 AND eddy_seq = $4"
        ),
        format!(
            "INSERT INTO {stage} ({list}, eddy_sink, eddy_worker, eddy_checkpoint, eddy_seq) \
             SELECT {list}, $1, $2, $3, $4 FROM {temp}"
        ),
    )
}

/// What `recover` and `commit` do with the owned staged rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publishing {
    /// Publish rows up to the checkpoint, delete them.
    Commit(i64),
    /// Publish rows up to the checkpoint, delete all.
    Recover(i64),
    /// Delete all.
    Discard,
}

/// The exactly-once PostgreSQL sink: delivery into staging, publishing on
/// commit.
pub struct StagedSink {
    delivery: Delivery<PgWriter>,
    retry: RetryConfig,
}

impl StagedSink {
    /// Wraps a delivery whose writer stages (see [`PgWriter::new`]).
    pub fn new(delivery: Delivery<PgWriter>, retry: RetryConfig) -> StagedSink {
        StagedSink { delivery, retry }
    }

    /// Runs `what`, retrying transient failures under the retry policy.
    fn publish(&mut self, what: Publishing) -> Result<(), SinkError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.delivery.writer_mut().publish(what) {
                Ok(()) => return Ok(()),
                Err(DeliveryError::Transient(m)) if self.retry.may_retry(attempt) => {
                    tracing::warn!(reason = %m, attempt, "postgres: publishing staged rows failed, retrying");
                    std::thread::sleep(self.retry.backoff(attempt));
                }
                Err(e) => {
                    return Err(SinkError::Rejected {
                        retryable: matches!(e, DeliveryError::Transient(_)),
                        message: format!("postgres: cannot publish staged rows: {e}"),
                    })
                }
            }
        }
    }
}

/// A checkpoint id as PostgreSQL's `bigint`.
fn id(checkpoint: u64) -> Result<i64, SinkError> {
    i64::try_from(checkpoint).map_err(|_| SinkError::Rejected {
        message: format!("checkpoint id {checkpoint} exceeds bigint"),
        retryable: false,
    })
}

impl Sink for StagedSink {
    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.delivery.write(events)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.delivery.flush()
    }

    fn on_tick(&mut self) -> Result<(), SinkError> {
        self.delivery.on_tick()
    }

    fn take_dead_letters(&mut self) -> Vec<Event> {
        self.delivery.take_dead_letters()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        let n = id(checkpoint)?;
        // Rows may be tagged below `n`: after a restore from checkpoint `c`
        // they are tagged `c + 1`, while the next barrier's id also skips
        // the ids of checkpoints that never completed. Publishing is by
        // `<=`, so they belong to this checkpoint all the same.
        let tagged = self.delivery.writer().tag().checkpoint;
        self.delivery.flush()?;
        self.delivery.writer_mut().set_tag(Tag {
            checkpoint: n.max(tagged) + 1,
            batch: 0,
        });
        Ok(())
    }

    fn commit(&mut self, checkpoint: u64) -> Result<(), SinkError> {
        self.publish(Publishing::Commit(id(checkpoint)?))
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<(), SinkError> {
        let (what, next) = match restored {
            Some(c) => (Publishing::Recover(id(c)?), id(c)? + 1),
            None => (Publishing::Discard, 1),
        };
        self.publish(what)?;
        self.delivery.writer_mut().set_tag(Tag {
            checkpoint: next,
            batch: 0,
        });
        Ok(())
    }
}
