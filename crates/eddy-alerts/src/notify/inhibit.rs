//! Inhibition: a firing source alert mutes target alerts that share the
//! values of its `equal` labels, as Alertmanager's inhibit rules do
//! (`severity = "critical"` muting the `warning` of the same cluster).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::route::Matcher;

/// `inhibit = [{ source_matchers = [...], target_matchers = [...], equal = [...] }]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InhibitConfig {
    /// What a muting alert matches.
    pub source_matchers: Vec<String>,
    /// What a muted alert matches.
    pub target_matchers: Vec<String>,
    /// Labels whose values source and target must share (a label missing
    /// on both counts as shared).
    #[serde(default)]
    pub equal: Vec<String>,
}

struct Rule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

/// The inhibit rules of one `notify` node.
#[derive(Default)]
pub struct Inhibitor {
    rules: Vec<Rule>,
}

fn all(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

impl Inhibitor {
    /// Compiles the rules; an error names the bad matcher.
    pub fn new(configs: &[InhibitConfig]) -> Result<Inhibitor, String> {
        let parse = |list: &[String]| -> Result<Vec<Matcher>, String> {
            list.iter().map(|m| Matcher::parse(m)).collect()
        };
        let mut rules = Vec::with_capacity(configs.len());
        for c in configs {
            if c.source_matchers.is_empty() || c.target_matchers.is_empty() {
                return Err("an inhibit rule needs `source_matchers` and `target_matchers`".into());
            }
            rules.push(Rule {
                source: parse(&c.source_matchers)?,
                target: parse(&c.target_matchers)?,
                equal: c.equal.clone(),
            });
        }
        Ok(Inhibitor { rules })
    }

    /// Whether there are no rules (then nothing is ever muted).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether an alert with `labels` can mute others (so its firing is
    /// worth remembering).
    pub fn is_source(&self, labels: &BTreeMap<String, String>) -> bool {
        self.rules.iter().any(|r| all(&r.source, labels))
    }

    /// The firing source (of `sources`: fingerprint, labels) that mutes
    /// the alert `fingerprint` with `labels`, if one does; an alert never
    /// mutes itself.
    pub fn muted_by<'a>(
        &self,
        fingerprint: &str,
        labels: &BTreeMap<String, String>,
        sources: impl Iterator<Item = (&'a str, &'a BTreeMap<String, String>)> + Clone,
    ) -> Option<&'a str> {
        self.rules
            .iter()
            .filter(|r| all(&r.target, labels))
            .find_map(|r| {
                sources.clone().find_map(|(fp, source)| {
                    let mutes = fp != fingerprint
                        && all(&r.source, source)
                        && r.equal.iter().all(|l| source.get(l) == labels.get(l));
                    mutes.then_some(fp)
                })
            })
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

    #[test]
    fn a_critical_mutes_the_warnings_of_its_cluster_only() {
        let i = Inhibitor::new(&[InhibitConfig {
            source_matchers: vec!["severity = \"critical\"".into()],
            target_matchers: vec!["severity =~ \"high|medium\"".into()],
            equal: vec!["cluster".into()],
        }])
        .unwrap();
        let critical = labels(&[("severity", "critical"), ("cluster", "eu")]);
        let sources = [("c1", &critical)];
        let warning_eu = labels(&[("severity", "high"), ("cluster", "eu")]);
        let warning_us = labels(&[("severity", "high"), ("cluster", "us")]);
        let info_eu = labels(&[("severity", "info"), ("cluster", "eu")]);
        assert!(i.is_source(&critical) && !i.is_source(&warning_eu));
        let by = |fp, l| i.muted_by(fp, l, sources.iter().copied());
        assert_eq!(by("w1", &warning_eu), Some("c1"));
        assert_eq!(by("w2", &warning_us), None);
        assert_eq!(by("i1", &info_eu), None);
        assert_eq!(i.muted_by("w1", &warning_eu, std::iter::empty()), None);
        assert!(Inhibitor::new(&[InhibitConfig {
            source_matchers: vec![],
            target_matchers: vec!["a = b".into()],
            equal: vec![],
        }])
        .is_err());
    }
}
