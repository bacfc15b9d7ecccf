//! `eddy topics apply FILE`: creates or updates topics from `[topics.NAME]`
//! tables and reports what changed.
//!
//! ```toml
//! brokers = "127.0.0.1:9092"       # optional; --brokers wins
//!
//! [topics.payments]
//! partitions = 12
//! replication_factor = 1
//! retention = "7d"
//! compression = "zstd"
//! cleanup_policy = "delete"        # delete | compact | "compact,delete"
//! config = { "segment.bytes" = "1073741824" }
//! ```
//!
//! Missing topics are created; existing ones get more partitions when asked
//! for (Kafka cannot remove partitions, so fewer is an error) and their
//! configuration entries altered where they differ.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use eddy_core::config::Duration as ConfigDuration;
use indexmap::IndexMap;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Deserialize;

use super::client::Connection;
use super::sink::Compression;

/// One `[topics.NAME]` table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Number of partitions.
    pub partitions: i32,
    /// Copies of each partition (default 1).
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// How long records are kept (`retention.ms`).
    #[serde(default)]
    pub retention: Option<ConfigDuration>,
    /// Compression the broker stores batches with (`compression.type`).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// `delete`, `compact` or `compact,delete` (`cleanup.policy`).
    #[serde(default)]
    pub cleanup_policy: Option<String>,
    /// Further topic configuration entries.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

fn default_replication() -> i32 {
    1
}

impl TopicSpec {
    /// The topic configuration entries this spec sets.
    pub fn entries(&self) -> BTreeMap<String, String> {
        let mut c = self.config.clone();
        if let Some(r) = self.retention {
            c.insert("retention.ms".into(), r.ms().to_string());
        }
        if let Some(z) = self.compression {
            let name = if z == Compression::None {
                "uncompressed"
            } else {
                z.name()
            };
            c.insert("compression.type".into(), name.into());
        }
        if let Some(p) = &self.cleanup_policy {
            c.insert("cleanup.policy".into(), p.clone());
        }
        c
    }
}

/// A topics file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicsFile {
    /// Brokers, unless given on the command line.
    #[serde(default)]
    pub brokers: Option<String>,
    /// The topics, in file order.
    #[serde(default)]
    pub topics: IndexMap<String, TopicSpec>,
}

impl TopicsFile {
    /// Parses a topics file; errors name `path`, the line and the column.
    pub fn parse(path: &str, text: &str) -> Result<TopicsFile, String> {
        toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| eddy_core::config::line_col(text, s.start))
                .unwrap_or((1, 1));
            format!("{path}:{line}:{col}: {}", e.message())
        })
    }
}

/// What `apply` did to one topic.
#[derive(Clone, Debug, PartialEq)]
pub enum TopicChange {
    /// Created with this many partitions.
    Created {
        /// Topic.
        topic: String,
        /// Partitions.
        partitions: i32,
    },
    /// Partitions added.
    PartitionsAdded {
        /// Topic.
        topic: String,
        /// Count before.
        from: i32,
        /// Count now.
        to: i32,
    },
    /// A configuration entry set to a new value.
    ConfigChanged {
        /// Topic.
        topic: String,
        /// Entry name.
        key: String,
        /// Previous value, if known.
        from: Option<String>,
        /// New value.
        to: String,
    },
    /// Already as specified.
    Unchanged {
        /// Topic.
        topic: String,
    },
    /// Could not be brought to the spec.
    Failed {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for TopicChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicChange::Created { topic, partitions } => {
                write!(f, "created  {topic} ({partitions} partitions)")
            }
            TopicChange::PartitionsAdded { topic, from, to } => {
                write!(f, "altered  {topic}: partitions {from} -> {to}")
            }
            TopicChange::ConfigChanged {
                topic,
                key,
                from,
                to,
            } => write!(
                f,
                "altered  {topic}: {key} {} -> {to}",
                from.as_deref().unwrap_or("(default)")
            ),
            TopicChange::Unchanged { topic } => write!(f, "ok       {topic}"),
            TopicChange::Failed { topic, reason } => write!(f, "FAILED   {topic}: {reason}"),
        }
    }
}

/// Runs a future to completion on this thread. librdkafka resolves admin
/// futures from its own threads, so no async runtime is needed.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Brings every topic in `file` to its spec; one change line per topic
/// and entry. Fails only when the cluster cannot be reached at all.
pub fn apply_topics(conn: &Connection, file: &TopicsFile) -> Result<Vec<TopicChange>, String> {
    let mut cc = conn.client_config();
    conn.apply_overrides(&mut cc);
    let admin: AdminClient<DefaultClientContext> = cc
        .create()
        .map_err(|e| format!("cannot create an admin client: {e}"))?;
    let meta_client: BaseConsumer = cc
        .create()
        .map_err(|e| format!("cannot create a client: {e}"))?;
    let timeout = Duration::from_secs(30);
    let meta = meta_client
        .fetch_metadata(None, timeout)
        .map_err(|e| format!("cannot reach {}: {e}", conn.brokers))?;
    let existing: BTreeMap<String, i32> = meta
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let mut changes = Vec::new();
    for (name, spec) in &file.topics {
        let entries = spec.entries();
        match existing.get(name) {
            None => {
                let config: Vec<(&str, &str)> = entries
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let new = NewTopic {
                    name,
                    num_partitions: spec.partitions,
                    replication: TopicReplication::Fixed(spec.replication_factor),
                    config,
                };
                let result = block_on(admin.create_topics([&new], &opts));
                changes.push(
                    match first_error(
                        result.map(|r| r.into_iter().map(|x| x.map(|_| ())).collect()),
                    ) {
                        None => TopicChange::Created {
                            topic: name.clone(),
                            partitions: spec.partitions,
                        },
                        Some(reason) => TopicChange::Failed {
                            topic: name.clone(),
                            reason: format!("create: {reason}"),
                        },
                    },
                );
            }
            Some(&have) => {
                let before = changes.len();
                if spec.partitions < have {
                    changes.push(TopicChange::Failed {
                        topic: name.clone(),
                        reason: format!(
                            "has {have} partitions; Kafka cannot reduce them to {}",
                            spec.partitions
                        ),
                    });
                } else if spec.partitions > have {
                    let np = NewPartitions::new(name, spec.partitions as usize);
                    let result = block_on(admin.create_partitions([&np], &opts));
                    changes.push(
                        match first_error(
                            result.map(|r| r.into_iter().map(|x| x.map(|_| ())).collect()),
                        ) {
                            None => TopicChange::PartitionsAdded {
                                topic: name.clone(),
                                from: have,
                                to: spec.partitions,
                            },
                            Some(reason) => TopicChange::Failed {
                                topic: name.clone(),
                                reason: format!("add partitions: {reason}"),
                            },
                        },
                    );
                }
                changes.extend(alter_configs(&admin, &opts, name, &entries));
                if changes.len() == before {
                    changes.push(TopicChange::Unchanged {
                        topic: name.clone(),
                    });
                }
            }
        }
    }
    Ok(changes)
}

type AdminResults =
    rdkafka::error::KafkaResult<Vec<Result<(), (String, rdkafka::types::RDKafkaErrorCode)>>>;

fn first_error(result: AdminResults) -> Option<String> {
    match result {
        Err(e) => Some(e.to_string()),
        Ok(rs) => rs
            .into_iter()
            .find_map(|r| r.err())
            .map(|(_, code)| code.to_string()),
    }
}

/// Alters the entries of `topic` that differ from `wanted`.
fn alter_configs(
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    topic: &str,
    wanted: &BTreeMap<String, String>,
) -> Vec<TopicChange> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let current: BTreeMap<String, String> =
        match block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], opts)) {
            Ok(rs) => rs
                .into_iter()
                .flatten()
                .flat_map(|r| r.entries)
                .filter_map(|e| e.value.map(|v| (e.name, v)))
                .collect(),
            Err(e) => {
                return vec![TopicChange::Failed {
                    topic: topic.to_string(),
                    reason: format!("describe configs: {e}"),
                }]
            }
        };
    let differing: Vec<(&String, &String)> = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .collect();
    if differing.is_empty() {
        return Vec::new();
    }
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
    // AlterConfigs replaces the whole set: keep what is there, change ours.
    let mut all = current.clone();
    for (k, v) in &differing {
        all.insert((*k).clone(), (*v).clone());
    }
    for (k, v) in &all {
        alter = alter.set(k, v);
    }
    match block_on(admin.alter_configs([&alter], opts)) {
        Ok(rs) if rs.iter().all(Result::is_ok) => differing
            .into_iter()
            .map(|(k, v)| TopicChange::ConfigChanged {
                topic: topic.to_string(),
                key: k.clone(),
                from: current.get(k).cloned(),
                to: v.clone(),
            })
            .collect(),
        Ok(rs) => {
            let reason = rs
                .into_iter()
                .find_map(|r| r.err())
                .map(|(_, code)| code.to_string())
                .unwrap_or_default();
            vec![TopicChange::Failed {
                topic: topic.to_string(),
                reason: format!("alter configs: {reason}"),
            }]
        }
        Err(e) => vec![TopicChange::Failed {
            topic: topic.to_string(),
            reason: format!("alter configs: {e}"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_maps_entries() {
        let f = TopicsFile::parse(
            "t.toml",
            r#"
brokers = "b:1"
[topics.payments]
partitions = 12
retention = "7d"
compression = "zstd"
cleanup_policy = "compact,delete"
"#,
        )
        .unwrap();
        let spec = &f.topics["payments"];
        assert_eq!(spec.replication_factor, 1);
        let e = spec.entries();
        assert_eq!(e["retention.ms"], "604800000");
        assert_eq!(e["compression.type"], "zstd");
        assert_eq!(e["cleanup.policy"], "compact,delete");
    }

    #[test]
    fn the_example_topic_sets_parse() {
        let platform = include_str!("../../../../examples/topics/platform.toml");
        let business = include_str!("../../../../examples/topics/business.toml");
        let p = TopicsFile::parse("platform.toml", platform).unwrap();
        let b = TopicsFile::parse("business.toml", business).unwrap();
        assert_eq!(p.topics.len(), 8);
        assert_eq!(b.topics.len(), 7);
        assert_eq!(p.topics["nexus-code-changes"].partitions, 12);
        assert_eq!(
            p.topics["nexus-system-metrics"].entries()["retention.ms"],
            "259200000"
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = TopicsFile::parse("t.toml", "[topics.a]\npartitions = 3\nretension = \"1d\"\n")
            .unwrap_err();
        assert!(err.starts_with("t.toml:3:1: "), "{err}");
        assert!(err.contains("retention"), "{err}");
    }
}
