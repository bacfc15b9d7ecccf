//! The `anomaly` transform: scores every event's value against what its
//! key's history makes likely, with one of the streaming detectors of
//! [`eddy_anomaly`], and marks the anomalies.
//!
//! ```toml
//! [transforms.spend_anomalies]
//! type = "anomaly"
//! inputs = ["spend_per_minute"]      # e.g. a window's results
//! key = "merchant"                   # one detector state per merchant
//! field = "total"                    # a CEL expression giving a number
//! method = "ensemble"                # see below
//! threshold = 0.5                    # score at which a value is an anomaly
//! mute_after_alert = "10m"           # one incident, one anomaly
//! ```
//!
//! Every event leaves with three more fields: `anomaly_score` (in [0, 1);
//! 0.5 is a deviation as unlikely as 3.9 standard deviations of a normal),
//! `is_anomaly`, and `anomaly`, the explanation: `{method, value,
//! expected, low, high, deviation}` (the normal range the value left, and
//! its distance from the expectation). With `emit = "anomalies"` only the
//! anomalies leave.
//!
//! Methods: `zscore` (rolling window of `window` values), `ewma`
//! (exponentially weighted, `half_life` values), `iqr` and `mad` (robust,
//! rolling window), `seasonal` (a profile per hour of the day, or of the
//! week with `season = "week"`), `cusum` and `page-hinkley` (level shifts),
//! `bocpd` (Bayesian online change points), `hst` (half-space trees, for
//! one or several `fields = [..]` together), `density` (rarity of levels
//! and moves) and `ensemble` (the rarity of the level with the hour-of-day
//! profile, calibrated; the default). `range = [low, high]` gives `density`
//! and `ensemble` the values' range up front.
//!
//! Ordering: with `order = "event_time"` (the default) events wait until
//! the watermark passes them and each key's detector sees them in event
//! time order (equal times ordered by their fields' names and values), so the
//! scores are the same whatever the worker count, batch cuts or restarts;
//! events that arrive behind the watermark go to `NAME.late`. With
//! `order = "arrival"` events are scored at once, in the order they arrive
//! (lowest latency; deterministic only when each key's events come from
//! one ordered source partition). Events whose value is missing, not a
//! number or not finite go to `NAME.dead_letters` with the reason.
//! Detector state is keyed state: checkpointed, restored and, with `ttl`,
//! dropped for keys idle that long in event time.

mod config;
mod operator;
#[cfg(test)]
mod tests;

pub use config::{AnomalyConfig, Emit, Order, LATE};
pub use operator::AnomalyOperator;
