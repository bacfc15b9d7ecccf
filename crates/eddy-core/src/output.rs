//! Named outputs: what a node declares it can emit, and the small ids the
//! runtime routes by.
//!
//! Every node has two outputs without declaring them: `main`, addressed by
//! the node's name alone, and `dead_letters` (`NAME.dead_letters`), because
//! any node can meet input it cannot process and must not lose it. A
//! transform declares any further outputs in
//! [`TransformFactory::outputs`](crate::component::TransformFactory::outputs)
//! (`late`, `timeout`, `overflow`, `incidents`, …); downstream nodes address
//! them as `NAME.<output>`.
//!
//! Names are resolved once, when the plan is compiled: an [`Output`] is an
//! index into the node's [`Outputs`], so emitting an event is an array index
//! in the collector, routing and metrics, never a string lookup.
//!
//! ```
//! use eddy_core::output::{Output, OutputSpec, Outputs};
//!
//! let outputs = Outputs::declare(&[OutputSpec::new("late", "events after their window closed")])
//!     .unwrap();
//! assert_eq!(outputs.get("main"), Some(Output::MAIN));
//! assert_eq!(outputs.get("dead_letters"), Some(Output::DEAD_LETTERS));
//! let late = outputs.get("late").unwrap();
//! assert_eq!(outputs.name(late), Some("late"));
//! assert_eq!(outputs.len(), 3);
//! ```

use std::fmt;

/// The id of one of a node's outputs: an index into its [`Outputs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Output(usize);

impl Output {
    /// The main output, addressed by the node's name alone.
    pub const MAIN: Output = Output(0);
    /// Events the node could not process, with a reason (`NAME.dead_letters`).
    pub const DEAD_LETTERS: Output = Output(1);

    /// The output at `index` in its node's [`Outputs`] (the runtime walks
    /// a collector's buffers by index).
    #[inline]
    pub fn from_index(index: usize) -> Output {
        Output(index)
    }

    /// The output's index in its node's [`Outputs`].
    #[inline]
    pub fn index(self) -> usize {
        self.0
    }
}

/// The name of the main output (also what `NAME` alone addresses).
pub const MAIN: &str = "main";
/// The name of the dead-letter output.
pub const DEAD_LETTERS: &str = "dead_letters";

/// One output a transform declares besides `main` and `dead_letters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    /// The suffix that addresses it: `NAME.<name>`.
    pub name: String,
    /// What it carries, for listings and diagnostics.
    pub doc: &'static str,
}

impl OutputSpec {
    /// An output called `name` carrying what `doc` says.
    pub fn new(name: impl Into<String>, doc: &'static str) -> OutputSpec {
        OutputSpec {
            name: name.into(),
            doc,
        }
    }
}

/// Why a declaration of outputs is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// The name is declared twice, or is one every node has already.
    #[error("output `{0}` is declared twice (`main` and `dead_letters` are implicit)")]
    Duplicate(String),
    /// The name cannot be written after a dot in `inputs`.
    #[error("output name `{0}` must be non-empty letters, digits and `_`")]
    InvalidName(String),
}

/// A node's outputs in id order: `main`, `dead_letters`, then the declared
/// ones in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    names: Vec<String>,
}

impl Default for Outputs {
    /// Only the implicit `main` and `dead_letters`.
    fn default() -> Outputs {
        Outputs {
            names: vec![MAIN.to_string(), DEAD_LETTERS.to_string()],
        }
    }
}

impl Outputs {
    /// `main`, `dead_letters`, then `declared`, each getting the next id.
    pub fn declare(declared: &[OutputSpec]) -> Result<Outputs, OutputError> {
        let mut outputs = Outputs::default();
        for spec in declared {
            let name = &spec.name;
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(OutputError::InvalidName(name.clone()));
            }
            if outputs.names.contains(name) {
                return Err(OutputError::Duplicate(name.clone()));
            }
            outputs.names.push(name.clone());
        }
        Ok(outputs)
    }

    /// The id of the output called `name`.
    pub fn get(&self, name: &str) -> Option<Output> {
        self.names.iter().position(|n| n == name).map(Output)
    }

    /// The name of output `id`.
    pub fn name(&self, id: Output) -> Option<&str> {
        self.names.get(id.0).map(String::as_str)
    }

    /// Number of outputs (ids are `0..len()`).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: `main` and `dead_letters` are always there.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every output with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (Output, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (Output(i), n.as_str()))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "output #{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_outputs_follow_the_implicit_ones_in_order() {
        let outputs =
            Outputs::declare(&[OutputSpec::new("late", ""), OutputSpec::new("timeout", "")])
                .unwrap();
        let names: Vec<_> = outputs.iter().map(|(id, n)| (id.index(), n)).collect();
        assert_eq!(
            names,
            [
                (0, "main"),
                (1, "dead_letters"),
                (2, "late"),
                (3, "timeout")
            ]
        );
        assert_eq!(outputs.get("overflow"), None);
        assert_eq!(outputs.name(Output(9)), None);
    }

    #[test]
    fn duplicate_and_unaddressable_names_are_refused() {
        for bad in ["main", "dead_letters"] {
            assert_eq!(
                Outputs::declare(&[OutputSpec::new(bad, "")]),
                Err(OutputError::Duplicate(bad.into()))
            );
        }
        assert_eq!(
            Outputs::declare(&[OutputSpec::new("x", ""), OutputSpec::new("x", "")]),
            Err(OutputError::Duplicate("x".into()))
        );
        for bad in ["", "a.b", "a b"] {
            assert_eq!(
                Outputs::declare(&[OutputSpec::new(bad, "")]),
                Err(OutputError::InvalidName(bad.into()))
            );
        }
    }
}
