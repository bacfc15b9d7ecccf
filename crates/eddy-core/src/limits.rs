//! Resource bounds that keep one line of configuration from taking the
//! whole machine: each is checked when a pipeline is validated (or, for
//! per-key state, when a new key arrives) and each can be raised in the
//! `[pipeline.limits]` table where a pipeline really needs more.
//!
//! ```toml
//! [pipeline.limits]
//! max_workers = 512
//! max_windows_per_event = 50000
//! ```

use serde::Deserialize;

/// Pipeline-wide resource bounds, from `[pipeline.limits]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most worker threads per group (`[pipeline] workers`, `--workers`).
    /// Every worker runs one thread per group of fused nodes with its own
    /// channel buffers, so a mistyped `workers = 100000` would exhaust memory.
    pub max_workers: usize,
    /// Most windows one event may fall into: a sliding window's
    /// `sliding / every` (one accumulator per window and key).
    pub max_windows_per_event: u64,
    /// Most keys one instance of an operator keeps without a `ttl` (global
    /// windows): an event with a new key beyond this goes to the operator's
    /// dead letters with a reason instead of growing state without bound.
    pub max_keys: u64,
    /// Longest input line (bytes) of the `file` and `stdin` sources; longer
    /// lines go to dead letters with their length.
    pub max_line_bytes: usize,
}

/// Default of [`Limits::max_workers`].
pub const DEFAULT_MAX_WORKERS: usize = 256;
/// Default of [`Limits::max_windows_per_event`].
pub const DEFAULT_MAX_WINDOWS_PER_EVENT: u64 = 10_000;
/// Default of [`Limits::max_keys`].
pub const DEFAULT_MAX_KEYS: u64 = 1_000_000;
/// Default of [`Limits::max_line_bytes`].
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_workers: DEFAULT_MAX_WORKERS,
            max_windows_per_event: DEFAULT_MAX_WINDOWS_PER_EVENT,
            max_keys: DEFAULT_MAX_KEYS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl Limits {
    /// The hint a diagnostic gives when `key` is exceeded.
    pub fn raise_hint(key: &str) -> String {
        format!("if this is intended, raise it with `[pipeline.limits] {key} = ...`")
    }
}
