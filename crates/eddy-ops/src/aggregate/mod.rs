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
//!
//! # Determinism
//!
//! Every result depends only on the multiset of (event time, value) folded
//! or merged in: never on arrival order, batching, worker count or the
//! merge tree of partial accumulators, bit for bit. One rule per aggregate:
//!
//! - `count`, integer `sum`: exact integers (an `i128` for sums).
//! - `sum` of doubles: the exact sum ([`ExactSum`]), rounded once to the
//!   nearest double, ties to even. `avg`: that rounded sum divided by the
//!   count.
//! - `variance`, `stddev`, `var_pop`, `stddev_pop`: `n·Σx² − (Σx)²`
//!   evaluated exactly from exact Σx and Σx², rounded once, then divided
//!   ([`Moments`]).
//! - `ewma`: exact sums of the weighted values and of the weights, per block
//!   of 64 half-lives; blocks more than 2,240 half-lives older than the
//!   newest are dropped ([`Ewma`]).
//! - `min`, `max`: the smallest / largest value in the value order
//!   ([`value_order`]: [`Value::total_cmp`](eddy_core::Value::total_cmp)
//!   made strict, so `1` sorts before `1.0` and maps are told apart).
//! - `max_by`, `min_by`: the `x` of the largest / smallest `by`; among equal
//!   `by` values (numbers equal in value count as equal, `10` and `10.0`:
//!   [`value_order_loose`]) the smallest `x` in the value order. Ties of
//!   `x` too are the same value, so the result is that value either way.
//! - `first`, `last`: by event time; among equal event times the smallest
//!   (`first`) / largest (`last`) `x` in the value order. Arrival order
//!   cannot be reproduced across workers, so it never decides.
//! - `top_k`: count descending, then value ascending. Exact and
//!   order-independent while the distinct values do not exceed the
//!   capacity; above it Space-Saving depends on arrival and merge order
//!   (the N/capacity error bound holds for every order) and breaks
//!   eviction ties by value, so a given order is reproducible
//!   ([`SpaceSaving`]).
//! - `count_distinct` (HyperLogLog registers take maxima) and `quantile`
//!   (DDSketch bins count) are order-independent by construction.
//!
//! Only the finite-range refusal can depend on order, and only near
//! ±1.8e308: the check looks at the state before each update, so values
//! that overflow in one order (1e308, 1e308, then −1e308) may pass in
//! another (1e308, −1e308, 1e308).

mod accumulator;
mod codec;
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
