//! The sink interface, with the pre-commit/commit steps that checkpoints use
//! for exactly-once delivery.

use crate::event::Event;

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// An I/O failure, with the path or address it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being written.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The external system rejected the write; `retryable` says whether a
    /// retry may succeed (outage) or not (bad record).
    #[error("{message}")]
    Rejected {
        /// What went wrong.
        message: String,
        /// Whether retrying can succeed.
        retryable: bool,
    },
}

impl crate::error::Classify for SinkError {
    fn domain(&self) -> crate::error::Domain {
        crate::error::Domain::Sink
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            SinkError::Rejected {
                retryable: true,
                ..
            }
        )
    }
}

/// A sink instance; one runs per worker.
///
/// **Exactly-once protocol** (when [`crate::component::NodeContext::exactly_once`]
/// is set; otherwise only `write`, `flush` and `on_tick` matter):
///
/// 1. [`Sink::recover`] is called once per instance before anything else,
///    with the id of the checkpoint the run resumed from (`None`: a fresh
///    start). The sink publishes what it had pre-committed for checkpoints
///    up to that id and discards everything it staged after it.
/// 2. [`Sink::write`] stages events; nothing is visible to readers yet.
/// 3. [`Sink::pre_commit`]`(n)`: the barrier of checkpoint `n` arrived;
///    everything written since the previous barrier belongs to checkpoint
///    `n` and must now survive a crash (sealed, fsynced, or written to a
///    staging table).
/// 4. [`Sink::commit`]`(n)`: checkpoint `n` is stored durably; publish what
///    was pre-committed for every checkpoint up to `n`. Must be idempotent:
///    after a crash, `recover` may publish the same checkpoint again.
///
/// Barriers reach every instance in increasing id order, one id after
/// another: after a fresh start 1, 2, 3, …; after resuming from checkpoint
/// `c`, from the id after the newest checkpoint stored (at least `c + 1`:
/// a checkpoint begun but never completed keeps its id). So what is
/// written after `pre_commit(n - 1)` belongs to checkpoint `n`, and after
/// `recover` to the first barrier that follows; a sink that tags staged
/// data as it writes may use "the previous id + 1", since `commit(n)`
/// publishes everything up to `n`. A checkpoint may fail and never be
/// committed; its data is then published by the next `commit` (whose id
/// is larger). At the end of bounded input the runtime calls
/// `flush`, then `pre_commit` and `commit` of a final checkpoint.
pub trait Sink: Send {
    /// Writes a batch. Buffers are allowed; [`Sink::flush`] makes them durable.
    fn write(&mut self, events: &[Event]) -> Result<(), SinkError>;

    /// Makes everything written so far durable or visible.
    fn flush(&mut self) -> Result<(), SinkError>;

    /// Called periodically, for time-based batching (`linger`).
    fn on_tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Events the sink gave up on (rejected records, or batches it could not
    /// deliver), as dead-letter events; the runtime sends them to
    /// `NAME.dead_letters`.
    fn take_dead_letters(&mut self) -> Vec<Event> {
        Vec::new()
    }

    /// Checkpoint `id`'s barrier reached the sink: prepare everything written
    /// before it for commit (flush; open a transaction's commit).
    fn pre_commit(&mut self, _checkpoint: u64) -> Result<(), SinkError> {
        self.flush()
    }

    /// Checkpoint `id` completed everywhere: commit what was pre-committed.
    fn commit(&mut self, _checkpoint: u64) -> Result<(), SinkError> {
        Ok(())
    }

    /// The run starts from checkpoint `restored` (`None`: from the
    /// beginning): publish what was pre-committed up to it, discard what
    /// was staged after it. Called once per instance before any write.
    fn recover(&mut self, _restored: Option<u64>) -> Result<(), SinkError> {
        Ok(())
    }
}
