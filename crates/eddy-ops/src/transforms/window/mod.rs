//! The `window` transform: per-key windows and their aggregates.
//!
//! ```toml
//! [transforms.per_merchant]
//! type = "window"
//! inputs = ["tx"]
//! key = "merchant"                            # or ["merchant", "user.country"]
//! window = { sliding = "5m", every = "1m" }   # tumbling | sliding | session | global
//! allowed_lateness = "30s"
//! aggregates = { n = "count()", total = "sum(amount)", p99 = "quantile(amount, 0.99)",
//!                buyers = "count_distinct(user.id)", top = "top_k(country, 5)" }
//! ```
//!
//! Event-time semantics follow Flink. An event at `t` belongs to the
//! tumbling window `[⌊t/size⌋·size, +size)`, or to every sliding window
//! `[k·every, k·every + size)` containing it (aligned to the epoch). A window
//! `[start, end)` **fires when the watermark reaches its last instant**,
//! `watermark >= end - 1`, emitting one result per key. Its state is kept
//! until `watermark >= end - 1 + allowed_lateness`; an event arriving in
//! between updates it and the window's result is emitted again (once per
//! batch per updated window and key). An event all of whose windows are past
//! that point goes to `NAME.late`, unchanged. Sessions open `[t, t + gap)`
//! per event and merge when they overlap or touch; they fire and expire by
//! the same rules. Events whose key or aggregate input cannot be evaluated
//! (or whose aggregate input has the wrong type) go to `NAME.dead_letters`
//! and update nothing. At the end of input every open window is emitted.
//!
//! Each result holds `window_start` and `window_end` (RFC 3339), the key
//! fields (named after the key's last path segment, e.g. `user.id` → `id`,
//! otherwise `key`, `key_1`, …) and the aggregates in config order; its
//! event time is `window_end - 1`. Global windows report the earliest event
//! time as `window_start` and the trigger time as `window_end` (see
//! *Global windows* below).
//!
//! # Global windows
//!
//! `{ global = true, count = N }` emits and clears a key's window at its
//! N-th event (`window_end` = latest event time + 1);
//! `{ global = true, every = "10s" }` emits running totals at the
//! boundaries `k·every` of event time (or of the wall clock, with
//! `time = "processing"`): the result at boundary `b` covers exactly the
//! key's events before `b`, independent of batching, with `emit` choosing
//! changed keys or all keys, and late events handled as for tumbling
//! windows of size `every`. Without `ttl` at most `max_keys` keys are kept.
//! See the `global` module for the details.
//!
//! # State
//!
//! The open windows, keys and accumulators are one state table, `windows`,
//! that the runtime checkpoints with the context's watermark (lateness after
//! a restore is judged exactly as it would have been). Tumbling and sliding
//! windows keep each window's keys per key group behind shared pointers,
//! session and global windows their keys in shards by key id, so the
//! snapshot at a barrier is copy-on-write: microseconds, whatever the
//! state's size. With a memory budget (`[pipeline] state_memory`),
//! tumbling and sliding windows spill key groups beyond it to disk (see
//! `spill`).

mod aligned;
mod common;
mod config;
mod global;
#[cfg(test)]
mod global_tests;
mod merge;
mod operator;
mod output;
mod session;
mod snapshot;
#[cfg(test)]
mod snapshot_tests;
mod spill;
#[cfg(test)]
mod spill_tests;
#[cfg(test)]
mod tests;

pub use config::{Aggregates, Emit, KeyExprs, TimeDomain, WindowConfig, WindowKind, LATE};
pub use operator::WindowOperator;
pub use output::key_field_names;
