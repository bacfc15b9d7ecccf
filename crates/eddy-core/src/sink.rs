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
}
