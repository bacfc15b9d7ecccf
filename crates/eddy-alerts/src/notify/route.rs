//! The routing tree: which receivers an alert goes to, and how it is
//! grouped there, with Alertmanager's semantics.
//!
//! An alert enters at the root (which matches every alert) and descends:
//! the first child whose matchers all hold takes it, recursively; with
//! `continue = true` on that child, later siblings are tried too. A route
//! none of whose children took the alert keeps it. Unset settings are
//! inherited from the parent.

use std::collections::BTreeMap;

use eddy_core::config::{Delay, Duration};
use serde::Deserialize;

use super::escalate::LevelConfig;

/// Default `group_wait`: 30 s.
const GROUP_WAIT_MS: i64 = 30_000;
/// Default `group_interval`: 5 min.
const GROUP_INTERVAL_MS: i64 = 5 * 60_000;
/// Default `repeat_interval`: 4 h.
const REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// A route as configured (`routes = [{ ... }]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Where its alerts go (inherited when unset).
    #[serde(default)]
    pub receiver: Option<String>,
    /// `label = "value"`, `!=`, `=~ "regex"`, `!~`; all must hold.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Try later siblings too after this route took an alert.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Label names that group alerts into one notification; `["..."]`
    /// groups by every label (each alert alone).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// How long a new group waits for more alerts before its first
    /// notification (`"0s"`: none).
    #[serde(default)]
    pub group_wait: Option<Delay>,
    /// How long a group waits before notifying about changes.
    #[serde(default)]
    pub group_interval: Option<Duration>,
    /// How long before an unchanged, still firing group is notified again.
    #[serde(default)]
    pub repeat_interval: Option<Duration>,
    /// At most `count` notifications per group in any `per` (inherited);
    /// what a group would say meanwhile waits for the next allowed one.
    #[serde(default)]
    pub max_notifications: Option<Limit>,
    /// Receivers told when an alert of this route still fires, and is not
    /// acknowledged, that long after its first notification (not
    /// inherited).
    #[serde(default)]
    pub escalate: Vec<LevelConfig>,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `max_notifications = { count = 3, per = "1h" }`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Notifications allowed...
    pub count: u32,
    /// ...in any window this long.
    pub per: Duration,
}

/// How alerts are grouped on a route.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    /// By these label names (none: one group for all the route's alerts).
    Labels(Vec<String>),
    /// By every label: each alert is a group of its own.
    All,
}

/// One label test.
#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    test: Test,
}

#[derive(Clone, Debug)]
enum Test {
    Equal(String),
    NotEqual(String),
    Regex(regex::Regex),
    NotRegex(regex::Regex),
}

impl Matcher {
    /// Parses `name = "value"` (or `!=`, `=~`, `!~`); the value may be
    /// bare. A regex matches the whole value.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let bad = || {
            format!(
                "bad matcher `{text}`: write `label = \"value\"` (or `!=`, `=~ \"regex\"`, `!~`)"
            )
        };
        let at = text.find(['=', '!']).ok_or_else(bad)?;
        let name = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
            .ok_or_else(bad)?;
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(bad());
        }
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => inner.replace("\\\"", "\""),
            None => value.to_string(),
        };
        let regex = || {
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("bad regex in matcher `{text}`: {e}"))
        };
        let test = match op {
            "=" => Test::Equal(value),
            "!=" => Test::NotEqual(value),
            "=~" => Test::Regex(regex()?),
            _ => Test::NotRegex(regex()?),
        };
        Ok(Matcher {
            name: name.to_string(),
            test,
        })
    }

    /// Whether `labels` pass; a missing label is the empty string.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        match &self.test {
            Test::Equal(v) => value == v,
            Test::NotEqual(v) => value != v,
            Test::Regex(r) => r.is_match(value),
            Test::NotRegex(r) => !r.is_match(value),
        }
    }
}

/// A route with its inherited settings resolved.
#[derive(Clone, Debug)]
pub struct Route {
    /// Its place in a depth-first walk of the tree (the root is 0): part
    /// of its groups' keys.
    pub id: u32,
    /// Where its alerts go.
    pub receiver: String,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    /// How its alerts are grouped.
    pub group_by: GroupBy,
    /// `group_wait` in ms.
    pub group_wait: i64,
    /// `group_interval` in ms.
    pub group_interval: i64,
    /// `repeat_interval` in ms.
    pub repeat_interval: i64,
    /// At most this many notifications per group in any window of this
    /// many ms.
    pub max_notifications: Option<(u32, i64)>,
    /// Escalation rungs: (ms after the first notification, receiver).
    pub escalate: Vec<(i64, String)>,
    children: Vec<Route>,
}

impl Route {
    /// Compiles the tree under a root with `root`'s settings.
    pub fn tree(root: &RouteConfig) -> Result<Route, String> {
        let mut next = 0;
        Route::compile(root, None, &mut next)
    }

    fn compile(c: &RouteConfig, parent: Option<&Route>, next: &mut u32) -> Result<Route, String> {
        let ms = |d: Option<Duration>, inherited: Option<i64>, default: i64| {
            d.map(|d| d.ms().max(0)).or(inherited).unwrap_or(default)
        };
        let receiver = c
            .receiver
            .clone()
            .or_else(|| parent.map(|p| p.receiver.clone()))
            .ok_or("the root route needs a `receiver`")?;
        let group_by = match &c.group_by {
            Some(names) if names.iter().any(|n| n == "...") => GroupBy::All,
            Some(names) => {
                let mut names = names.clone();
                names.sort();
                names.dedup();
                GroupBy::Labels(names)
            }
            None => parent.map_or(GroupBy::Labels(Vec::new()), |p| p.group_by.clone()),
        };
        let mut route = Route {
            id: *next,
            receiver,
            matchers: c
                .matchers
                .iter()
                .map(|m| Matcher::parse(m))
                .collect::<Result<_, _>>()?,
            continue_matching: c.continue_matching,
            group_by,
            group_wait: ms(
                c.group_wait.map(|d| Duration::from_ms(d.ms())),
                parent.map(|p| p.group_wait),
                GROUP_WAIT_MS,
            ),
            group_interval: ms(
                c.group_interval,
                parent.map(|p| p.group_interval),
                GROUP_INTERVAL_MS,
            ),
            repeat_interval: ms(
                c.repeat_interval,
                parent.map(|p| p.repeat_interval),
                REPEAT_INTERVAL_MS,
            ),
            max_notifications: c
                .max_notifications
                .map(|l| (l.count, l.per.ms().max(1)))
                .or_else(|| parent.and_then(|p| p.max_notifications)),
            escalate: c
                .escalate
                .iter()
                .map(|l| (l.after.ms().max(0), l.receiver.clone()))
                .collect(),
            children: Vec::new(),
        };
        if route.escalate.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err("`escalate` rungs must come in the order of their `after`".into());
        }
        *next += 1;
        let mut children = Vec::with_capacity(c.routes.len());
        for child in &c.routes {
            children.push(Route::compile(child, Some(&route), next)?);
        }
        route.children = children;
        Ok(route)
    }

    /// The routes that take an alert with `labels`, in tree order.
    pub fn matching(&self, labels: &BTreeMap<String, String>) -> Vec<&Route> {
        let mut out = Vec::new();
        self.collect(labels, &mut out);
        out
    }

    /// Adds the routes under `self` that take the alert; whether `self`
    /// matched at all.
    fn collect<'a>(&'a self, labels: &BTreeMap<String, String>, out: &mut Vec<&'a Route>) -> bool {
        if !self.matchers.iter().all(|m| m.matches(labels)) {
            return false;
        }
        let before = out.len();
        for child in &self.children {
            if child.collect(labels, out) && !child.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }

    /// Every route of the tree, depth first.
    pub fn all(&self) -> Vec<&Route> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.all());
        }
        out
    }

    /// The route with id `id` (looked up on every group timer, so without
    /// collecting the tree).
    pub fn find(&self, id: u32) -> Option<&Route> {
        if self.id == id {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(id))
    }

    /// The labels an alert's group on this route is known by.
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
        match &self.group_by {
            GroupBy::All => labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tree(text: &str) -> Route {
        let c: RouteConfig = toml::from_str(text).unwrap();
        Route::tree(&c).unwrap()
    }

    #[test]
    fn matchers_parse_and_match() {
        let l = labels(&[("severity", "critical"), ("team", "finance-eu")]);
        for (m, want) in [
            ("severity = \"critical\"", true),
            ("severity=critical", true),
            ("severity != \"critical\"", false),
            ("team =~ \"finance-.*\"", true),
            ("team =~ \"finance\"", false),
            ("team !~ \"ops|sre\"", true),
            ("missing = \"\"", true),
            ("missing != \"\"", false),
        ] {
            assert_eq!(Matcher::parse(m).unwrap().matches(&l), want, "{m}");
        }
        for bad in ["severity", "= x", "a b = c", "team =~ \"(\""] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_matching_child_takes_an_alert_unless_it_continues() {
        let t = tree(
            r#"
receiver = "default"
group_by = ["alertname"]
group_wait = "10s"
routes = [
  { matchers = ['severity = "critical"'], receiver = "pager", continue = true, group_wait = "1s" },
  { matchers = ['team =~ "finance-.*"'], receiver = "finance", routes = [
      { matchers = ['region = "eu"'], receiver = "finance-eu", group_by = ["..."] },
  ] },
  { matchers = ['team =~ "finance-.*"'], receiver = "never" },
]
"#,
        );
        let names = |l: &[(&str, &str)]| -> Vec<String> {
            t.matching(&labels(l))
                .iter()
                .map(|r| r.receiver.clone())
                .collect()
        };
        assert_eq!(names(&[("severity", "low")]), ["default"]);
        assert_eq!(
            names(&[("severity", "critical"), ("team", "finance-x")]),
            ["pager", "finance"]
        );
        assert_eq!(
            names(&[("team", "finance-x"), ("region", "eu")]),
            ["finance-eu"]
        );
        // Inheritance: group_wait and group_by come from the parent unless set.
        let eu = t
            .matching(&labels(&[("team", "finance-x"), ("region", "eu")]))
            .remove(0);
        assert_eq!(eu.group_wait, 10_000);
        assert_eq!(eu.group_by, GroupBy::All);
        let pager = t.matching(&labels(&[("severity", "critical")])).remove(0);
        assert_eq!((pager.group_wait, pager.group_interval), (1_000, 300_000));
        assert_eq!(pager.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(
            t.all().iter().map(|r| r.id).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn the_root_needs_a_receiver() {
        let c: RouteConfig = toml::from_str("group_by = [\"a\"]").unwrap();
        assert!(Route::tree(&c).unwrap_err().contains("receiver"));
    }
}
