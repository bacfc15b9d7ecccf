//! Notification routing: `[alerts.NAME]` with `type = "notify"` takes the
//! alert events of rules, routes them through a tree to receivers, groups
//! them and decides when a group is worth a notification, as
//! Alertmanager's dispatcher does.
//!
//! ```toml
//! [alerts.notify]
//! type = "notify"
//! inputs = ["budget_critical", "cpu_high"]
//! receiver = "oncall"                   # the root route's receiver
//! group_by = ["alertname", "department"]
//! group_wait = "30s"                    # a new group waits for company
//! group_interval = "5m"                 # then speaks about changes this often
//! repeat_interval = "4h"                # and repeats an unchanged firing group
//! routes = [
//!   { matchers = ['severity = "critical"'], receiver = "pager", continue = true },
//!   { matchers = ['team =~ "finance-.*"'], receiver = "finance", group_wait = "10s" },
//! ]
//! inhibit = [                           # a firing critical mutes the rest of its department
//!   { source_matchers = ['severity = "critical"'], target_matchers = ['severity != "critical"'], equal = ["department"] },
//! ]
//!
//! [receivers.oncall]
//! type = "webhook"
//! url = "https://hooks.example.com/alerts"
//! ```
//!
//! Each receiver named in the tree is an output of the node
//! (`notify.pager`); a `[receivers.NAME]` without `inputs` reads its
//! output from every `notify` node. A notification is one event shaped
//! like Alertmanager's webhook payload (version 4): `receiver`, `status`,
//! `alerts`, `groupLabels`, `commonLabels`, `commonAnnotations`,
//! `groupKey`, ... Only `firing` and `resolved` alert events count
//! (`pending` ones are not routed); an event without `fingerprint` or
//! `labels` is dead-lettered.
//!
//! Timing is on processing time, with the groups and their timers in
//! checkpointed state: after a restart a group speaks on time, and a
//! notification is not repeated early. All groups live on one worker.

mod config;
mod control;
mod escalate;
mod group;
mod inhibit;
mod operator;
mod route;
#[cfg(test)]
mod tests;

pub use config::NotifyConfig;
pub use control::{Ack, AlertControl, ControlState, Silence, Silencer, Suppression};
pub use escalate::{Escalation, LevelConfig};
pub use group::Group;
pub use inhibit::{InhibitConfig, Inhibitor};
pub use operator::NotifyOperator;
pub use route::{GroupBy, Limit, Matcher, Route, RouteConfig};
