//! `type = "kafka"` source: a consumer-group member per worker.
//!
//! ```toml
//! [sources.payments]
//! type = "kafka"
//! brokers = "127.0.0.1:9092"
//! topics = ["payments"]            # or topic_pattern = "^payments-.*"
//! group = "eddy-payments"
//! start = "committed"              # earliest | latest | committed | an RFC 3339 time
//! metadata = true                  # adds a `kafka` field: topic, partition, offset, timestamp, key, headers
//! event_time = { field = "ts", max_out_of_orderness = "5s", idle_timeout = "30s" }
//! schema = { json_schema = "schemas/payment.json" }   # records must satisfy it
//! ```
//!
//! `format = "avro"` with `schema = { avro = "payment.avsc" }` reads plain
//! Avro binary datums; `format = "confluent_avro"` with `schema = {
//! registry_dir = "dir" }` reads the Confluent wire format with schemas from
//! `dir/<id>.avsc` (see [`crate::schema`]).
//!
//! Each worker instance joins the consumer group, so partitions are spread
//! over the workers of this process and over every other process using the
//! same group. Records are JSON objects (or NDJSON: one object per line, or
//! Avro); records that cannot be decoded, violate the schema, are larger
//! than `max_record_bytes` or fail the time assignment go to
//! `NAME.dead_letters` with the reason and their topic, partition and
//! offset (an Avro record's bytes as base64). Watermarks are per partition,
//! and an idle partition stops holding them back after `idle_timeout`.
//!
//! Offsets are committed to the group only when a checkpoint completes, that
//! is after every event read before it has reached the sinks, and once more
//! when the run ends after the sinks flushed: at-least-once delivery.

mod config;
mod records;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_core::component::BuildContext;
use eddy_core::metrics::{ComponentMetrics, Counter, Gauge};
use eddy_core::source::{SourcePosition, TimestampAssigner};
use eddy_core::time::now_ms;
use eddy_core::{Event, Source, SourceBatch, SourceError, SourcePoll};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{Offset, TopicPartitionList};

use super::client::MetricsContext;
use config::DEFAULT_MAX_RECORD_BYTES;
pub use config::{KafkaSourceConfig, PayloadFormat, StartPosition};
use records::{PayloadDecoder, Records};

/// One consumer-group member.
pub struct KafkaSource {
    consumer: BaseConsumer<SourceContext>,
    start: StartPosition,
    /// Partitions whose start position was applied.
    started: std::collections::HashSet<u32>,
    /// A decoded record of another partition than the batch being built.
    stash: Option<(u32, Vec<Event>, Vec<Event>)>,
    /// Bounded mode: the offset each partition id ends at.
    end_offsets: Option<HashMap<u32, i64>>,
    records: Records,
    commits: Counter,
    commit_failures: Counter,
}

/// Small ids for (topic, partition) pairs: the runtime's partition ids.
#[derive(Default)]
struct PartitionIds {
    pairs: Vec<(Arc<str>, i32)>,
    /// Per topic, partition → id; looked up by `&str` so a record costs
    /// no allocation.
    ids: HashMap<Arc<str>, HashMap<i32, u32>>,
}

impl PartitionIds {
    fn id(&mut self, topic: &str, partition: i32) -> u32 {
        if let Some(&id) = self.ids.get(topic).and_then(|p| p.get(&partition)) {
            return id;
        }
        let id = self.pairs.len() as u32;
        let topic: Arc<str> = Arc::from(topic);
        self.pairs.push((topic.clone(), partition));
        self.ids.entry(topic).or_default().insert(partition, id);
        id
    }

    fn get(&self, id: u32) -> Option<&(Arc<str>, i32)> {
        self.pairs.get(id as usize)
    }
}

/// The consumer's context: client errors and per-partition lag (from
/// librdkafka's statistics) into metrics.
pub struct SourceContext {
    client: MetricsContext,
    metrics: Arc<ComponentMetrics>,
    lag: std::sync::Mutex<HashMap<(String, i32), Gauge>>,
    /// Set by every rebalance (or the bounded assignment) until the
    /// source reports the new assignment to the runtime.
    assignment_changed: std::sync::atomic::AtomicBool,
}

impl rdkafka::client::ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.client.error(error, reason);
    }

    fn stats(&self, stats: rdkafka::Statistics) {
        self.client.observe(&stats);
        let Ok(mut lag) = self.lag.lock() else { return };
        for (topic, t) in &stats.topics {
            for (&partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal unassigned queue;
                // lag -1 means not known yet.
                if partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                lag.entry((topic.clone(), partition))
                    .or_insert_with(|| {
                        self.metrics.gauge(
                            "consumer_lag",
                            &[("topic", topic), ("partition", &partition.to_string())],
                        )
                    })
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        self.assignment_changed
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

impl KafkaSource {
    fn new(cfg: &KafkaSourceConfig, cx: &BuildContext) -> Result<KafkaSource, String> {
        let conn = cfg.connection();
        let mut cc = conn.client_config();
        cc.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                if cfg.start == StartPosition::Latest {
                    "latest"
                } else {
                    "earliest"
                },
            )
            .set("client.id", format!("eddy-{}-{}", cx.name, cx.worker))
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "1000");
        for (k, v) in super::client::CONSUMER_FETCH_DEFAULTS {
            cc.set(*k, *v);
        }
        conn.apply_overrides(&mut cc);
        let consumer: BaseConsumer<SourceContext> = cc
            .create_with_context(SourceContext {
                client: MetricsContext::new(&cx.metrics),
                metrics: cx.metrics.clone(),
                lag: std::sync::Mutex::new(HashMap::new()),
                assignment_changed: std::sync::atomic::AtomicBool::new(false),
            })
            .map_err(|e| format!("cannot create a consumer for {}: {e}", cfg.brokers))?;
        if !cfg.bounded {
            let topics = cfg.subscription();
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&refs)
                .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
        }
        let m = &cx.metrics;
        let mut source = KafkaSource {
            consumer,
            start: cfg.start.clone(),
            started: std::collections::HashSet::new(),
            stash: None,
            end_offsets: None,
            records: Records {
                name: cx.name.clone(),
                format: cfg.format,
                metadata: cfg.metadata,
                max_record_bytes: cfg.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
                decoder: PayloadDecoder::new(cfg.format, &cfg.schema)?,
                assigner: TimestampAssigner::from_config(cfg.event_time.as_ref()),
                partitions: PartitionIds::default(),
                next_offset: HashMap::new(),
                records_in: m.counter("records_in", &[]),
                bytes_in: m.counter("bytes_in", &[]),
                dead_letters: m.counter("dead_letters", &[]),
            },
            commits: m.counter("commits", &[]),
            commit_failures: m.counter("commit_failures", &[]),
        };
        if cfg.bounded {
            source.assign_bounded(&cfg.topics, cx.worker, cx.workers)?;
        }
        Ok(source)
    }

    /// Bounded mode: assigns this worker's partitions from their start
    /// (committed, earliest, latest or a time) and records where they end.
    fn assign_bounded(
        &mut self,
        topics: &[String],
        worker: usize,
        workers: usize,
    ) -> Result<(), String> {
        let timeout = Duration::from_secs(30);
        let mut wanted = TopicPartitionList::new();
        for topic in topics {
            let meta = self
                .consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| format!("cannot read the metadata of `{topic}`: {e}"))?;
            let Some(t) = meta.topics().first() else {
                return Err(format!("topic `{topic}` does not exist"));
            };
            if let Some(e) = t.error() {
                return Err(format!(
                    "topic `{topic}`: {}",
                    rdkafka::error::RDKafkaErrorCode::from(e)
                ));
            }
            for p in t.partitions() {
                if p.id() as usize % workers.max(1) == worker {
                    wanted.add_partition(topic, p.id());
                }
            }
        }
        let committed = self
            .consumer
            .committed_offsets(wanted.clone(), timeout)
            .map_err(|e| format!("cannot read committed offsets: {e}"))?;
        let mut assign = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for e in wanted.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(e.topic(), e.partition(), timeout)
                .map_err(|err| format!("cannot read the offsets of `{}`: {err}", e.topic()))?;
            let start = match self.start {
                StartPosition::Earliest => low,
                StartPosition::Latest => high,
                StartPosition::Time(t) => {
                    let mut q = TopicPartitionList::new();
                    let _ = q.add_partition_offset(e.topic(), e.partition(), Offset::Offset(t));
                    self.consumer
                        .offsets_for_times(q, timeout)
                        .ok()
                        .and_then(|r| r.elements().first().map(|x| x.offset()))
                        .and_then(|o| o.to_raw())
                        .map_or(high, |o| if o < 0 { high } else { o })
                }
                StartPosition::Committed => committed
                    .find_partition(e.topic(), e.partition())
                    .and_then(|x| x.offset().to_raw())
                    .filter(|&o| o >= 0)
                    .unwrap_or(low),
            };
            let id = self.records.partitions.id(e.topic(), e.partition());
            self.started.insert(id);
            if start < high {
                ends.insert(id, high);
                let _ =
                    assign.add_partition_offset(e.topic(), e.partition(), Offset::Offset(start));
            }
        }
        self.consumer
            .assign(&assign)
            .map_err(|e| format!("cannot assign partitions: {e}"))?;
        self.end_offsets = Some(ends);
        self.consumer
            .context()
            .assignment_changed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Bounded mode: whether every partition reached its end offset.
    fn reached_end(&self) -> bool {
        self.end_offsets.as_ref().is_some_and(|ends| {
            ends.iter()
                .all(|(id, end)| self.records.next_offset.get(id).is_some_and(|n| n >= end))
        })
    }

    /// Applies `start` to partitions assigned for the first time.
    fn apply_start(&mut self) {
        if self.start == StartPosition::Committed || self.start == StartPosition::Latest {
            return;
        }
        let Ok(assigned) = self.consumer.assignment() else {
            return;
        };
        let mut seek = TopicPartitionList::new();
        for e in assigned.elements() {
            let id = self.records.partitions.id(e.topic(), e.partition());
            if self.started.insert(id) {
                let offset = match self.start {
                    StartPosition::Time(t) => Offset::Offset(t),
                    _ => Offset::Beginning,
                };
                let _ = seek.add_partition_offset(e.topic(), e.partition(), offset);
            }
        }
        if seek.count() == 0 {
            return;
        }
        let timeout = Duration::from_secs(10);
        let target = match self.start {
            StartPosition::Time(_) => match self.consumer.offsets_for_times(seek, timeout) {
                Ok(t) => t,
                Err(_) => return,
            },
            _ => seek,
        };
        let _ = self.consumer.seek_partitions(target, timeout);
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, SourceError> {
        if self.end_offsets.is_none() {
            self.apply_start();
        }
        let mut batch = SourceBatch::default();
        let mut partition: Option<u32> = None;
        if let Some((id, events, dead)) = self.stash.take() {
            partition = Some(id);
            batch.events = events;
            batch.dead_letters = dead;
        }
        let mut wait = if partition.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(10)
        };
        let now = now_ms();
        while batch.events.len() + batch.dead_letters.len() < max {
            let decoded = match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    if batch.events.is_empty() && batch.dead_letters.is_empty() {
                        return Err(SourceError::Other {
                            message: format!("consume: {e}"),
                            retryable: true,
                        });
                    }
                    break;
                }
                Some(Ok(msg)) => {
                    self.consumer.context().client.reachable();
                    self.records.decode(&msg, now)
                }
            };
            wait = Duration::ZERO;
            match partition {
                Some(p) if p != decoded.0 => {
                    self.stash = Some(decoded);
                    break;
                }
                _ => {
                    partition = Some(decoded.0);
                    batch.events.extend(decoded.1);
                    batch.dead_letters.extend(decoded.2);
                }
            }
        }
        let Some(p) = partition else {
            if self.reached_end() {
                return Ok(SourcePoll::Finished);
            }
            return Ok(SourcePoll::Pending);
        };
        self.records
            .dead_letters
            .add(batch.dead_letters.len() as u64);
        batch.partition = p;
        Ok(SourcePoll::Ready(batch))
    }

    fn assignment_changed(&mut self) -> Option<Vec<u32>> {
        let changed = &self.consumer.context().assignment_changed;
        if !changed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        let assigned = self.consumer.assignment().ok()?;
        Some(
            assigned
                .elements()
                .iter()
                .map(|e| self.records.partitions.id(e.topic(), e.partition()))
                .collect(),
        )
    }

    fn positions(&self) -> Vec<SourcePosition> {
        let mut out: Vec<SourcePosition> = self
            .records
            .next_offset
            .iter()
            .map(|(&partition, &offset)| SourcePosition {
                partition,
                offset: offset.max(0) as u64,
            })
            .collect();
        out.sort_by_key(|p| p.partition);
        out
    }

    fn commit(&mut self, positions: &[SourcePosition]) -> Result<(), SourceError> {
        // Only partitions this member still owns: after a rebalance the new
        // owner resumes from the last offsets committed here.
        let assigned = self.consumer.assignment().unwrap_or_default();
        if self.end_offsets.is_some() && assigned.count() == 0 {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in positions {
            let Some((topic, partition)) = self.records.partitions.get(p.partition) else {
                continue;
            };
            if assigned.find_partition(topic, *partition).is_none() {
                continue;
            }
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(p.offset as i64));
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.commits.inc();
                Ok(())
            }
            Err(e) => {
                self.commit_failures.inc();
                Err(SourceError::Other {
                    message: format!("offset commit: {e}"),
                    retryable: true,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::component::SourceFactory;

    use super::*;
    use crate::schema::SchemaConfig;

    fn config(extra: &str) -> KafkaSourceConfig {
        toml::from_str(&format!(
            "brokers = \"127.0.0.1:9\"\ntopics = [\"t\"]\ngroup = \"g\"\n{extra}"
        ))
        .unwrap()
    }

    fn problems(extra: &str) -> Vec<String> {
        config(extra)
            .validate(&eddy_core::component::ValidateContext::default())
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn schema_options_are_checked_against_the_format_and_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("s.json"), r#"{"required": ["id"]}"#).unwrap();
        std::fs::write(
            dir.path().join("p.avsc"),
            r#"{"type": "record", "name": "P", "fields": [{"name": "id", "type": "long"}]}"#,
        )
        .unwrap();
        assert!(problems(&format!("schema = {{ json_schema = \"{d}/s.json\" }}")).is_empty());
        assert!(problems(&format!(
            "format = \"avro\"\nschema = {{ avro = \"{d}/p.avsc\", json_schema = \"{d}/s.json\" }}"
        ))
        .is_empty());
        assert!(problems(&format!(
            "format = \"confluent_avro\"\nschema = {{ registry_dir = \"{d}\" }}"
        ))
        .is_empty());

        let cases = [
            (
                format!("schema = {{ json_schema = \"{d}/missing.json\" }}"),
                "missing.json",
            ),
            ("format = \"avro\"".to_string(), "needs `schema = { avro"),
            (
                "format = \"confluent_avro\"".to_string(),
                "needs `schema = { registry_dir",
            ),
            (
                format!("schema = {{ avro = \"{d}/p.avsc\" }}"),
                "`schema.avro` is for `format = \"avro\"`",
            ),
            (
                format!("format = \"avro\"\nschema = {{ avro = \"{d}/s.json\" }}"),
                "s.json",
            ),
        ];
        for (extra, wanted) in cases {
            let p = problems(&extra);
            assert!(
                p.iter().any(|m| m.contains(wanted)),
                "{extra}: {p:?} lacks {wanted}"
            );
        }
        assert!(toml::from_str::<KafkaSourceConfig>(
            "brokers = \"b\"\ntopics = [\"t\"]\ngroup = \"g\"\nschema = { jsonschema = \"x\" }"
        )
        .is_err());
    }

    #[test]
    fn payload_decoder_validates_after_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("s.json");
        std::fs::write(&schema, r#"{"properties": {"amount": {"type": "number"}}}"#).unwrap();
        let cfg = SchemaConfig {
            json_schema: Some(schema),
            ..SchemaConfig::default()
        };
        let mut d = PayloadDecoder::new(PayloadFormat::Json, &cfg).unwrap();
        assert!(d.decode(br#"{"amount": 1.5}"#).is_ok());
        let e = d.decode(br#"{"amount": "abc"}"#).unwrap_err();
        assert!(
            e.contains(r#"/amount: "abc" is not of type "number" (type)"#),
            "{e}"
        );
        assert!(d.decode(b"nope").unwrap_err().contains("JSON"));
    }
}
