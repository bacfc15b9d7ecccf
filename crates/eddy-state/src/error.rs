//! The state crate's errors.

use std::path::PathBuf;

use eddy_core::codec::DecodeError;

/// Why state could not be read, written or restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A snapshot's bytes are not a snapshot of this kind of table.
    #[error("state snapshot is unreadable: {0}")]
    Corrupt(String),
    /// A snapshot's records could not be decoded.
    #[error("state snapshot is unreadable: {0}")]
    Decode(#[from] DecodeError),
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A name that cannot be a checkpoint file name.
    #[error("{0:?} is not a valid checkpoint file name (letters, digits, '-', '_', '.'; not starting with '_' or '.')")]
    FileName(String),
}

impl StateError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.into(),
            source,
        }
    }
}
