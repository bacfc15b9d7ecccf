//! The `notify` node's configuration: the root route, inhibit rules, and
//! the run's [`AlertControl`] made in `prepare`.

use std::collections::BTreeMap;

use eddy_core::component::{
    BuildContext, BuildError, NodeContext, Partitioning, Prepared, TransformFactory,
    ValidateContext,
};
use eddy_core::config::{Delay, Diagnostic, Duration};
use eddy_core::{Operator, OutputSpec};
use serde::Deserialize;

use super::control::AlertControl;
use super::escalate::LevelConfig;
use super::inhibit::{InhibitConfig, Inhibitor};
use super::operator::NotifyOperator;
use super::route::{Limit, Route, RouteConfig};

/// Configuration of a `notify` node: the root route (see the module
/// documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where alerts go unless a child route takes them.
    pub receiver: String,
    /// Label names that group alerts; `["..."]`: every label.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Wait of a new group before its first notification (default 30 s;
    /// `"0s"`: at once).
    #[serde(default)]
    pub group_wait: Option<Delay>,
    /// Wait between notifications about a group's changes (default 5 min).
    #[serde(default)]
    pub group_interval: Option<Duration>,
    /// Wait before an unchanged firing group is notified again (default 4 h).
    #[serde(default)]
    pub repeat_interval: Option<Duration>,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Inhibit rules: firing source alerts mute matching targets.
    #[serde(default)]
    pub inhibit: Vec<InhibitConfig>,
    /// The root route's escalation rungs.
    #[serde(default)]
    pub escalate: Vec<LevelConfig>,
    /// At most so many notifications per group in a window (inherited).
    #[serde(default)]
    pub max_notifications: Option<Limit>,
}

impl NotifyConfig {
    fn root(&self) -> RouteConfig {
        RouteConfig {
            receiver: Some(self.receiver.clone()),
            matchers: Vec::new(),
            continue_matching: false,
            group_by: self.group_by.clone(),
            group_wait: self.group_wait,
            group_interval: self.group_interval,
            repeat_interval: self.repeat_interval,
            escalate: self.escalate.clone(),
            max_notifications: self.max_notifications,
            routes: self.routes.clone(),
        }
    }

    /// The receivers the tree names, each once, in tree order.
    fn receivers(&self) -> Vec<String> {
        let Ok(tree) = Route::tree(&self.root()) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for r in tree.all() {
            let rungs = r.escalate.iter().map(|(_, receiver)| receiver);
            for receiver in std::iter::once(&r.receiver).chain(rungs) {
                if !out.contains(receiver) {
                    out.push(receiver.clone());
                }
            }
        }
        out
    }
}

impl NotifyConfig {
    /// The operator for the node `cx` describes.
    pub fn operator(&self, cx: &BuildContext) -> Result<NotifyOperator, BuildError> {
        let tree = Route::tree(&self.root()).map_err(BuildError::Config)?;
        let mut outputs = BTreeMap::new();
        for receiver in self.receivers() {
            let output = cx.output(&receiver)?;
            outputs.insert(receiver, output);
        }
        let inhibitor = Inhibitor::new(&self.inhibit).map_err(BuildError::Config)?;
        Ok(NotifyOperator::new(&cx.name, tree, outputs)
            .inhibited_by(inhibitor)
            .controlled_by(cx.prepared::<AlertControl>().ok()))
    }
}

impl TransformFactory for NotifyConfig {
    /// The run's acknowledgements and silences, shared with the server.
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(Some(Prepared::new(AlertControl::default())))
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(self.operator(cx)?))
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let tree = Route::tree(&self.root()).err();
        let inhibit = Inhibitor::new(&self.inhibit).err();
        tree.into_iter()
            .chain(inhibit)
            .map(|e| Diagnostic::new(0..0, e))
            .collect()
    }

    fn outputs(&self) -> Vec<OutputSpec> {
        self.receivers()
            .into_iter()
            .map(|r| OutputSpec::new(r, "notifications for this receiver"))
            .collect()
    }

    /// Every alert reaches the one instance that holds the groups.
    fn partitioning(&self, _input: usize) -> Partitioning {
        Partitioning::Single
    }
}
