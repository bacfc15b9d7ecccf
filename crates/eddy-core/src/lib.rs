//! Eddy's core: the event model, time and watermarks, CEL expressions, the
//! pipeline configuration format and the interfaces that sources, operators
//! and sinks implement.
//!
//! ```
//! use eddy_core::{Event, Expression, Fields, Sym, Value};
//!
//! let mut fields = Fields::default();
//! fields.push(Sym::intern("amount"), Value::Int(12_000));
//! let event = Event::new(0, fields);
//! let big = Expression::compile("amount > 10000").unwrap();
//! assert_eq!(big.eval_bool(&event), Ok(true));
//! ```
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod codec;
pub mod component;
pub mod config;
pub mod error;
pub mod event;
pub mod expr;
#[cfg(test)]
mod fuzz_tests;
pub mod ingest;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod operator;
pub mod operator_state;
pub mod output;
pub mod prefetch;
pub mod sink;
pub mod source;
pub mod state;
mod symbol;
pub mod time;

pub use error::{Classify, Domain};
pub use event::{Batch, Event, Fields, Str, Value};
pub use expr::{EvalError, ExprError, Expression};
pub use operator::{Collector, NamedTable, Operator, OperatorContext};
pub use output::{Output, OutputSpec, Outputs};
pub use sink::{Sink, SinkError};
pub use source::{Source, SourceBatch, SourceError, SourcePoll};
pub use symbol::{Sym, MAX_SYMBOLS};
pub use time::Timestamp;
