//! Aggregates computed by windows.
//!
//! An aggregate is written as a function call over CEL expressions, e.g.
//! `count()`, `sum(amount)`, `quantile(amount, 0.99)`, `top_k(country, 5)`,
//! `count_distinct(user.id)`, `ewma(latency, "1m")` or
//! `max_by(auction, price)`. [`AggregateSpec::parse`] checks the call once,
//! when the pipeline is compiled; [`AggregateSpec::observe`] evaluates its
//! arguments on an event, and an [`Accumulator`] folds those
//! [`Observation`]s incrementally. Accumulators of the same spec merge, so
//! partial results (sliding panes, merged sessions, parallel workers)
//! combine into the result a single pass would give (exactly, or within the
//! documented error of the sketches).
//!
//! Null values are skipped by every aggregate except `count()`. A value of
//! the wrong type (a string given to `sum`) is rejected by
//! [`AggregateSpec::observe`] with [`AggregateError::WrongType`]; the window
//! operator turns that into a dead letter for the whole event, so an event
//! either updates all aggregates or none. Likewise a `sum`, `avg`,
//! variance-family or `ewma` update (or merge) whose float result would
//! leave the finite range is refused with [`NonFinite`] and the event
//! becomes a dead letter: results are never infinite or NaN.

mod accumulator;
mod distinct;
mod ewma;
mod exact;
mod moments;
mod order;
mod quantile;
mod spec;
mod sum;
mod top_k;

pub use accumulator::{admit_all, fold_all, Accumulator, NonFinite, Observation};
pub use distinct::{DistinctCount, DISTINCT_PRECISION};
pub use ewma::Ewma;
pub use exact::ExactSum;
pub use moments::Moments;
pub use order::{value_order, value_order_loose};
pub use quantile::{QuantileSketch, QUANTILE_RELATIVE_ACCURACY};
pub use spec::{AggregateError, AggregateSpec, Function, FUNCTIONS};
pub use sum::NumericSum;
pub use top_k::SpaceSaving;
