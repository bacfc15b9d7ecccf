//! Alert rules: `[alerts.NAME]`.
//!
//! ```toml
//! [alerts.budget_critical]
//! inputs = ["department_kpis"]
//! condition = "max_utilization >= 90.0"
//! key = "department"                 # one alert per department
//! severity = "critical"              # critical | high | medium | low | info
//! for = "1m"                         # must hold this long (event time)
//! resolve_after = "5m"               # resolved when no event met it this long
//! labels = { team = "finance-{department}" }
//! annotations = { summary = "budget of {department} at {max_utilization}%", runbook = "https://runbooks/budget" }
//! ```
//!
//! Each alert instance is one value of `key` (all events share one
//! without it). Events wait for the watermark and each instance sees its
//! own in event-time order (equal times ordered by their fields), so the
//! alerts depend only on the input; events behind the watermark go to
//! `NAME.late`. An event meeting the condition makes its instance
//! pending (with `for`) or firing (without); a pending instance fires
//! when it has been pending for `for` with no event failing the condition
//! in between, checked by an event-time timer, so a rule over sparse
//! events still fires on time. An event failing the condition cancels a
//! pending instance; a firing one resolves once no event has met the
//! condition for `resolve_after` (default 5 minutes) of event time, and at
//! the end of input.
//!
//! Every transition emits an alert event: `alertname`, `status`
//! (`pending`, `firing`, `resolved`), `severity`, `fingerprint` (16 hex
//! digits of a stable hash of the labels, which include `alertname` and
//! `severity`), `labels`, `annotations` (both rendered from the event that
//! last met the condition), `starts_at`, `ends_at` (when resolved) and
//! `cause` (what made the transition). Its event time is the transition's.
//! Labels should depend on `key` only: an instance's identity is its key.
//!
//! People may resolve an open alert by hand through the [`RuleControl`]
//! the node prepares per run (`POST /api/v1/alerts/{fingerprint}/resolve`,
//! `eddy alerts resolve`): a firing instance is `resolved` (a pending one
//! `inactive`) at the current watermark, with `cause` naming who did it.
//! An event meeting the condition afterwards starts a new instance, as it
//! would after any resolution.

mod config;
mod control;
mod operator;
#[cfg(test)]
mod tests;

pub use config::{AlertRuleConfig, Severity, LATE};
pub use control::{Resolution, RuleControl};
pub use operator::AlertRuleOperator;
