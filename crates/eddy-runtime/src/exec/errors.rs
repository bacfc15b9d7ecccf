//! Typed errors of a run: why it could not start ([`RunError`]) and what
//! failed while it ran ([`Failure`], collected in an [`ErrorLog`] with a
//! bounded number kept and every one counted).

use eddy_core::component::BuildError;
use eddy_core::error::{Classify, Domain};
use eddy_core::state::StateError;
use eddy_core::{SinkError, SourceError};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A component could not be prepared or built.
    #[error("cannot build `{node}`: {error}")]
    Build {
        /// The component.
        node: String,
        /// Why.
        error: BuildError,
    },
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    /// The run options break a `[pipeline.limits]` bound.
    #[error("{0}")]
    Limit(String),
    /// The checkpoint to resume from cannot be read or does not fit the
    /// pipeline (see [`super::recovery`]).
    #[error("cannot resume from {path}: {reason}")]
    Restore {
        /// The checkpoint directory (or the store, when none was usable).
        path: std::path::PathBuf,
        /// Why, with what to do about it.
        reason: String,
    },
    /// The spill store for `[pipeline] state_memory` cannot be created.
    #[error("cannot create the spill store in {dir}: {source}")]
    Spill {
        /// Its directory.
        dir: std::path::PathBuf,
        /// Why.
        source: eddy_core::state::StateError,
    },
}

impl Classify for RunError {
    fn domain(&self) -> Domain {
        match self {
            RunError::Build { error, .. } => error.domain(),
            RunError::Thread(_) => Domain::Internal,
            RunError::Limit(_) => Domain::Config,
            RunError::Restore { .. } | RunError::Spill { .. } => Domain::State,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            RunError::Build { error, .. } => error.retryable(),
            // The machine may have threads to spare later.
            RunError::Thread(_) => true,
            RunError::Limit(_) | RunError::Restore { .. } => false,
            RunError::Spill { source, .. } => source.retryable(),
        }
    }
}

/// Something that failed while the run went on.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A source could not read.
    #[error("{0}")]
    Source(#[from] SourceError),
    /// A sink could not write or flush.
    #[error("{0}")]
    Sink(#[from] SinkError),
    /// An operator could not snapshot its state.
    #[error("{0}")]
    State(#[from] StateError),
    /// A node could not take part in a checkpoint, so it never completes.
    #[error("checkpoint {id} declined: {cause}")]
    Declined {
        /// The checkpoint.
        id: u64,
        /// Why.
        cause: Box<Failure>,
    },
    /// A completed checkpoint could not be committed by a node.
    #[error("commit of checkpoint {id}: {cause}")]
    Commit {
        /// The checkpoint.
        id: u64,
        /// Why.
        cause: Box<Failure>,
    },
    /// A source could not acknowledge its final positions.
    #[error("final commit: {0}")]
    FinalCommit(SourceError),
    /// A sink failed its final flush, so sources kept their positions.
    #[error("a sink failed to flush; final positions not committed")]
    FinalFlush,
    /// The final checkpoint of an exactly-once run did not complete: the
    /// last output stays staged, and the next run resumes from the last
    /// completed checkpoint.
    #[error("the final checkpoint did not complete; the next run resumes from the last one")]
    FinalCheckpoint,
    /// A downstream instance stopped taking messages.
    #[error("`{node}` worker {worker} stopped receiving")]
    Disconnected {
        /// The node whose instance stopped.
        node: String,
        /// Its worker.
        worker: usize,
    },
    /// A worker thread panicked.
    #[error("a worker thread panicked")]
    Panicked,
    /// Parts of the engine disagree: a bug in Eddy.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for Failure {
    fn domain(&self) -> Domain {
        match self {
            Failure::Source(e) => e.domain(),
            Failure::Sink(e) => e.domain(),
            Failure::State(e) => e.domain(),
            Failure::Declined { cause, .. } | Failure::Commit { cause, .. } => cause.domain(),
            Failure::FinalCommit(e) => e.domain(),
            Failure::FinalFlush => Domain::Sink,
            Failure::FinalCheckpoint => Domain::State,
            Failure::Disconnected { .. } | Failure::Panicked | Failure::Internal(_) => {
                Domain::Internal
            }
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Failure::Source(e) | Failure::FinalCommit(e) => e.retryable(),
            Failure::Sink(e) => e.retryable(),
            Failure::State(e) => e.retryable(),
            Failure::Declined { cause, .. } | Failure::Commit { cause, .. } => cause.retryable(),
            Failure::FinalFlush
            | Failure::FinalCheckpoint
            | Failure::Disconnected { .. }
            | Failure::Panicked
            | Failure::Internal(_) => false,
        }
    }
}

/// A [`Failure`] with the node it happened at.
#[derive(Debug, thiserror::Error)]
#[error("{}{failure}", at.as_ref().map(|(kind, name)| format!("{kind} `{name}`: ")).unwrap_or_default())]
pub struct ReportedError {
    /// The node's type and name, when the failure belongs to one node.
    pub at: Option<(String, String)>,
    /// What failed.
    pub failure: Failure,
}

impl Classify for ReportedError {
    fn domain(&self) -> Domain {
        self.failure.domain()
    }

    fn retryable(&self) -> bool {
        self.failure.retryable()
    }
}

/// The errors of a run: every one counted, the first `capacity` kept.
#[derive(Debug)]
pub struct ErrorLog {
    total: u64,
    kept: Vec<ReportedError>,
    capacity: usize,
}

impl Default for ErrorLog {
    fn default() -> ErrorLog {
        ErrorLog::with_capacity(ErrorLog::KEPT)
    }
}

impl ErrorLog {
    /// How many errors a run report keeps.
    pub const KEPT: usize = 100;

    /// An empty log keeping at most `capacity` errors.
    pub fn with_capacity(capacity: usize) -> ErrorLog {
        ErrorLog {
            total: 0,
            kept: Vec::new(),
            capacity,
        }
    }

    /// Counts `error`, keeping it while there is room.
    pub fn push(&mut self, error: ReportedError) {
        self.total += 1;
        if self.kept.len() < self.capacity {
            self.kept.push(error);
        }
    }

    /// Counts and keeps (while there is room) every error of `other`.
    pub fn merge(&mut self, other: ErrorLog) {
        let uncounted = other.total.saturating_sub(other.kept.len() as u64);
        for e in other.kept {
            self.push(e);
        }
        self.total += uncounted;
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Every error counted, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Errors counted but not kept.
    pub fn dropped(&self) -> u64 {
        self.total - self.kept.len() as u64
    }

    /// The first error.
    pub fn first(&self) -> Option<&ReportedError> {
        self.kept.first()
    }

    /// The kept errors, in the order they were counted.
    pub fn iter(&self) -> std::slice::Iter<'_, ReportedError> {
        self.kept.iter()
    }
}

impl<'a> IntoIterator for &'a ErrorLog {
    type Item = &'a ReportedError;
    type IntoIter = std::slice::Iter<'a, ReportedError>;

    fn into_iter(self) -> Self::IntoIter {
        self.kept.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink_failure(retryable: bool) -> ReportedError {
        ReportedError {
            at: Some(("http".into(), "hook".into())),
            failure: Failure::Sink(SinkError::Rejected {
                message: "503".into(),
                retryable,
            }),
        }
    }

    #[test]
    fn reports_name_the_node_and_keep_the_domain() {
        let e = sink_failure(true);
        assert_eq!(e.to_string(), "http `hook`: 503");
        assert_eq!((e.domain(), e.retryable()), (Domain::Sink, true));
        let declined = Failure::Declined {
            id: 3,
            cause: Box::new(Failure::State(StateError::Corrupt("bad".into()))),
        };
        assert_eq!(
            declined.to_string(),
            "checkpoint 3 declined: state snapshot is unreadable: bad"
        );
        assert_eq!(
            (declined.domain(), declined.retryable()),
            (Domain::State, false)
        );
        let bare = ReportedError {
            at: None,
            failure: Failure::Panicked,
        };
        assert_eq!(bare.to_string(), "a worker thread panicked");
        assert_eq!(bare.domain(), Domain::Internal);
    }

    #[test]
    fn the_log_counts_everything_and_keeps_the_first() {
        let mut a = ErrorLog::with_capacity(2);
        for _ in 0..5 {
            a.push(sink_failure(false));
        }
        assert_eq!((a.total(), a.iter().count(), a.dropped()), (5, 2, 3));
        let mut all = ErrorLog::with_capacity(3);
        all.push(sink_failure(true));
        all.merge(a);
        assert_eq!((all.total(), all.iter().count(), all.dropped()), (6, 3, 3));
        assert!(all.first().is_some_and(|e| e.retryable()));
        assert!(!all.is_empty() && ErrorLog::default().is_empty());
    }
}
