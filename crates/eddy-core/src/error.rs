//! What every error of the engine says besides its message: which part of
//! the system it belongs to (its [`Domain`]) and whether trying again can
//! help. The runtime decides with these between dead-lettering an event,
//! retrying, and stopping a node; the CLI adds context for people.
//!
//! ```
//! use eddy_core::error::{Classify, Domain};
//! use eddy_core::component::BuildError;
//!
//! let e = BuildError::Config("sink `out`: bad url `x`".into());
//! assert_eq!(e.domain(), Domain::Config);
//! assert!(!e.retryable());
//! ```

use std::fmt;

/// The part of the system an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// The pipeline's settings cannot work as written; fix the file.
    Config,
    /// Reading or decoding input failed (a source, an unreadable record).
    Input,
    /// Keeping or restoring operator state failed.
    State,
    /// Writing output failed (a sink or the system behind it).
    Sink,
    /// A bug in Eddy: parts of the engine disagree.
    Internal,
}

impl Domain {
    /// The lower-case name used in reports and logs.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Config => "config",
            Domain::Input => "input",
            Domain::State => "state",
            Domain::Sink => "sink",
            Domain::Internal => "internal",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error that knows its [`Domain`] and whether a retry can help.
pub trait Classify {
    /// The part of the system the error belongs to.
    fn domain(&self) -> Domain;

    /// Whether doing the same again later may succeed (an outage, a busy
    /// server), as opposed to failing the same way (bad settings, a bad
    /// record, a bug).
    fn retryable(&self) -> bool;
}
