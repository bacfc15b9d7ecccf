//! The `[alerts.NAME]` table.

use std::collections::BTreeMap;

use eddy_connectors::sinks::template::Template;
use eddy_core::component::{
    BuildContext, BuildError, NodeContext, Partitioning, Prepared, TransformFactory,
    ValidateContext,
};
use eddy_core::config::{Diagnostic, Duration};
use eddy_core::{Expression, Operator, OutputSpec};
use eddy_ops::transforms::ordered::late_output;
pub use eddy_ops::transforms::ordered::LATE;
use eddy_ops::transforms::window::KeyExprs;
use serde::Deserialize;

use super::control::RuleControl;
use super::operator::AlertRuleOperator;

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now.
    Critical,
    /// Act soon.
    High,
    /// Look today.
    #[default]
    Medium,
    /// Worth knowing.
    Low,
    /// For the record.
    Info,
}

impl Severity {
    /// The name used in configurations and alert events.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// Configuration of an alert rule (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleConfig {
    /// When the alert's condition holds: a CEL boolean over the input event.
    pub condition: Expression,
    /// What one alert instance is per: CEL expression(s); one instance
    /// for all events without it.
    #[serde(default)]
    pub key: KeyExprs,
    /// The alert's severity (default `medium`).
    #[serde(default)]
    pub severity: Severity,
    /// Extra labels, name → template (`"{department}"`).
    #[serde(default)]
    pub labels: BTreeMap<String, Template>,
    /// Annotations, name → template: `summary`, `description`, `runbook`...
    #[serde(default)]
    pub annotations: BTreeMap<String, Template>,
    /// How long the condition must hold before the alert fires (default 0).
    #[serde(rename = "for", default)]
    pub hold: Option<Duration>,
    /// How long without an event meeting the condition resolves a firing
    /// alert (default 5 minutes).
    #[serde(default)]
    pub resolve_after: Option<Duration>,
}

/// `resolve_after` when not given: 5 minutes.
pub(super) const DEFAULT_RESOLVE_AFTER_MS: i64 = 5 * 60 * 1000;

impl TransformFactory for AlertRuleConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        let operator = AlertRuleOperator::new(self, &cx.name, cx.output(LATE)?);
        Ok(Box::new(
            operator.controlled_by(cx.prepared::<RuleControl>().ok()),
        ))
    }

    /// The run's [`RuleControl`], for resolving alerts by hand.
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(Some(Prepared::new(RuleControl::default())))
    }

    /// Labels may not redefine the two every alert gets.
    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        ["alertname", "severity"]
            .iter()
            .filter(|reserved| self.labels.contains_key(**reserved))
            .map(|reserved| {
                Diagnostic::new(0..0, format!("label `{reserved}` is set by the rule itself"))
                    .hint(format!(
                        "remove `{reserved}` from `labels`: alertname is the rule's name, severity its `severity`"
                    ))
            })
            .collect()
    }

    fn outputs(&self) -> Vec<OutputSpec> {
        vec![late_output()]
    }

    fn partitioning(&self, _input: usize) -> Partitioning {
        self.key.partitioning()
    }
}
