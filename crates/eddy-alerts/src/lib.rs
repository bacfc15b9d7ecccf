//! Alerting. An alert rule (`[alerts.NAME]`) watches any stream (window
//! results, anomaly scores, raw events) with a CEL condition and turns it
//! into alerts with an identity, a severity, labels and annotations, and a
//! lifecycle: pending while the condition has held for less than `for`,
//! firing, resolved once no event has met it for `resolve_after`. Every
//! transition leaves the rule as an alert event that any sink can take.
//!
//! The data flow: rules ([`rule`]) → a `notify` node ([`notify`]: routing
//! tree, groups, inhibition, silences, acknowledgements, escalation) →
//! receivers ([`receivers`]: webhook, Slack, PagerDuty, Teams, e-mail).
#![warn(missing_docs)]
// Input-derived data must never panic a pipeline; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod notify;
pub mod receivers;
pub mod rule;
