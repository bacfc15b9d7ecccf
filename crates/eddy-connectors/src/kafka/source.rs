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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, SourceFactory, WatermarkSpec};
use eddy_core::config::Diagnostic;
use eddy_core::json::JsonDecoder;
use eddy_core::metrics::{ComponentMetrics, Counter, Gauge};
use eddy_core::operator::{dead_letter, with_position};
use eddy_core::source::{EventTimeConfig, SourcePosition, TimestampAssigner};
use eddy_core::time::{format_rfc3339, now_ms, parse_rfc3339};
use eddy_core::{Event, Fields, Source, SourceBatch, SourceError, SourcePoll, Sym, Value};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;

use super::client::{Connection, MetricsContext, SaslConfig, TlsConfig};
use crate::schema::{AvroDecoder, ConfluentAvroDecoder, JsonSchemaValidator, SchemaConfig};

/// Records larger than this (bytes) go to dead letters unless configured.
const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Where a consumer starts in partitions it has no committed offset for
/// (or in all of them, for `earliest`/`latest`/a time).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StartPosition {
    /// The group's committed offsets; the earliest record where none.
    #[default]
    Committed,
    /// The first record still retained.
    Earliest,
    /// Only records produced after the start.
    Latest,
    /// The first record with a timestamp at or after this time (ms).
    Time(i64),
}

impl<'de> Deserialize<'de> for StartPosition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "committed" => Ok(StartPosition::Committed),
            "earliest" => Ok(StartPosition::Earliest),
            "latest" => Ok(StartPosition::Latest),
            other => parse_rfc3339(other).map(StartPosition::Time).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown start `{other}`: use \"committed\", \"earliest\", \"latest\" or an RFC 3339 time such as \"2026-01-31T00:00:00Z\""
                ))
            }),
        }
    }
}

/// How a record's bytes become events.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// One JSON object per record.
    #[default]
    Json,
    /// One JSON object per line; a record may hold several.
    Ndjson,
    /// One Avro binary datum (a record) per record, written with the
    /// schema in `schema.avro`.
    Avro,
    /// The Confluent wire format: a zero byte, a 4-byte big-endian schema
    /// id, an Avro binary datum; schemas from `schema.registry_dir`.
    ConfluentAvro,
}

/// Configuration of the `kafka` source.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Topics to read.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regular expression of topics to read (librdkafka syntax), instead
    /// of `topics`.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Consumer group; processes sharing it split the partitions.
    pub group: String,
    /// Where to start reading.
    #[serde(default)]
    pub start: StartPosition,
    /// Payload format.
    #[serde(default)]
    pub format: PayloadFormat,
    /// Record schemas: `json_schema` (checked on every decoded record),
    /// `avro` (for `format = "avro"`), `registry_dir` (for `format =
    /// "confluent_avro"`).
    #[serde(default)]
    pub schema: SchemaConfig,
    /// Add a `kafka` field with the record's topic, partition, offset,
    /// timestamp (ms), key and headers, usable in expressions and as
    /// `event_time = { field = "kafka.timestamp" }`.
    #[serde(default)]
    pub metadata: bool,
    /// How event time is found (default: ingestion time).
    #[serde(default)]
    pub event_time: Option<EventTimeConfig>,
    /// Records larger than this many bytes go to dead letters.
    #[serde(default)]
    pub max_record_bytes: Option<usize>,
    /// Read what the topics hold when the run starts, then finish (like a
    /// file). Partitions are split over workers statically (partition
    /// `p` goes to worker `p % workers`) instead of by the group
    /// protocol; offsets are still committed to `group`.
    #[serde(default)]
    pub bounded: bool,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL settings.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Further librdkafka consumer properties.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

impl KafkaSourceConfig {
    fn connection(&self) -> Connection {
        Connection {
            brokers: self.brokers.clone(),
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
            options: self.options.clone(),
        }
    }

    fn subscription(&self) -> Vec<String> {
        match &self.topic_pattern {
            // librdkafka treats a subscription starting with ^ as a regex.
            Some(p) if p.starts_with('^') => vec![p.clone()],
            Some(p) => vec![format!("^{p}")],
            None => self.topics.clone(),
        }
    }
}

impl SourceFactory for KafkaSourceConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        KafkaSource::new(self, cx)
            .map(|s| Box::new(s) as Box<dyn Source>)
            .map_err(|e| BuildError::new(format!("source `{}`: {e}", cx.name)))
    }

    fn watermarks(&self) -> WatermarkSpec {
        TimestampAssigner::from_config(self.event_time.as_ref()).watermarks()
    }

    fn validate(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.bounded && self.topic_pattern.is_some() {
            out.push(
                Diagnostic::new(0..0, "`bounded = true` needs `topics`, not `topic_pattern`")
                    .hint("list the topics to read: topics = [\"payments\"]"),
            );
        }
        if let Err(e) = PayloadDecoder::new(self.format, &self.schema) {
            out.push(Diagnostic::new(0..0, e));
        }
        if self.topics.is_empty() == self.topic_pattern.is_none() {
            out.push(
                Diagnostic::new(0..0, "set exactly one of `topics` and `topic_pattern`")
                    .hint("topics = [\"payments\"] or topic_pattern = \"^payments-.*\""),
            );
        }
        out
    }
}

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

/// Turns records into events; kept apart from the consumer so a record
/// borrowed from it can be decoded while this is mutated.
struct Records {
    name: String,
    format: PayloadFormat,
    metadata: bool,
    max_record_bytes: usize,
    decoder: PayloadDecoder,
    assigner: TimestampAssigner,
    partitions: PartitionIds,
    /// Next offset to read per partition id.
    next_offset: HashMap<u32, i64>,
    records_in: Counter,
    bytes_in: Counter,
    dead_letters: Counter,
}

/// Small ids for (topic, partition) pairs: the runtime's partition ids.
#[derive(Default)]
struct PartitionIds {
    pairs: Vec<(Arc<str>, i32)>,
    ids: HashMap<(Arc<str>, i32), u32>,
}

impl PartitionIds {
    fn id(&mut self, topic: &str, partition: i32) -> u32 {
        if let Some(&id) = self.ids.get(&(Arc::from(topic), partition)) {
            return id;
        }
        let id = self.pairs.len() as u32;
        let topic: Arc<str> = Arc::from(topic);
        self.pairs.push((topic.clone(), partition));
        self.ids.insert((topic, partition), id);
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

impl Records {
    /// Decodes one record into events and dead letters.
    fn decode(&mut self, msg: &BorrowedMessage<'_>, now: i64) -> (u32, Vec<Event>, Vec<Event>) {
        let id = self.partitions.id(msg.topic(), msg.partition());
        self.next_offset.insert(id, msg.offset() + 1);
        let payload = msg.payload().unwrap_or_default();
        self.records_in.inc();
        self.bytes_in.add(payload.len() as u64);
        let position = || format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
        let mut events = Vec::new();
        let mut dead = Vec::new();
        // Avro payloads are binary: base64 keeps them intact for replay.
        let binary = matches!(
            self.format,
            PayloadFormat::Avro | PayloadFormat::ConfluentAvro
        );
        let dead_letter_of = |reason: String, raw: &[u8]| {
            let raw = if binary {
                Value::str(&crate::schema::base64_text(raw))
            } else {
                Value::str(&String::from_utf8_lossy(raw))
            };
            let mut dl = with_position(
                dead_letter("decode", reason, raw, now),
                &self.name,
                position(),
            );
            dl.fields
                .push(Sym::intern("topic"), Value::str(msg.topic()));
            dl.fields.push(
                Sym::intern("partition"),
                Value::Int(i64::from(msg.partition())),
            );
            dl.fields
                .push(Sym::intern("offset"), Value::Int(msg.offset()));
            // Decoding is deterministic: one attempt, failed now.
            dl.fields.push(Sym::intern("attempts"), Value::Int(1));
            dl.fields.push(
                Sym::intern("first_failure"),
                Value::str(&format_rfc3339(now)),
            );
            dl
        };
        if payload.len() > self.max_record_bytes {
            let reason = format!(
                "record is {} bytes; the limit is {} (max_record_bytes)",
                payload.len(),
                self.max_record_bytes
            );
            let excerpt = &payload[..payload.len().min(1024)];
            dead.push(dead_letter_of(reason, excerpt));
            return (id, events, dead);
        }
        let meta = self.metadata.then(|| metadata(msg));
        let mut one = |bytes: &[u8], events: &mut Vec<Event>, dead: &mut Vec<Event>| match self
            .decoder
            .decode(bytes)
        {
            Ok(mut fields) => {
                if let Some(m) = &meta {
                    fields.insert(Sym::intern("kafka"), m.clone());
                }
                match self.assigner.time_of(&fields, now) {
                    Ok(t) => events.push(Event::new(t, fields)),
                    Err(reason) => dead.push(dead_letter_of(reason, bytes)),
                }
            }
            Err(e) => dead.push(dead_letter_of(e, bytes)),
        };
        match self.format {
            PayloadFormat::Json | PayloadFormat::Avro | PayloadFormat::ConfluentAvro => {
                one(payload, &mut events, &mut dead)
            }
            PayloadFormat::Ndjson => {
                for line in payload.split(|&b| b == b'\n') {
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        one(line, &mut events, &mut dead);
                    }
                }
            }
        }
        (id, events, dead)
    }
}

/// Payload bytes to fields, then the optional JSON Schema check.
struct PayloadDecoder {
    format: FormatDecoder,
    validator: Option<JsonSchemaValidator>,
}

enum FormatDecoder {
    Json(JsonDecoder),
    Avro(AvroDecoder),
    ConfluentAvro(ConfluentAvroDecoder),
}

impl PayloadDecoder {
    /// Reads the schema files `format` and `schema` name; the error says
    /// which file or option is wrong.
    fn new(format: PayloadFormat, schema: &SchemaConfig) -> Result<PayloadDecoder, String> {
        let misplaced = |option: &str, wanted: &str| {
            Err(format!(
                "`schema.{option}` is for `format = \"{wanted}\"`, not `{}`",
                format_name(format)
            ))
        };
        let decoder = match format {
            PayloadFormat::Json | PayloadFormat::Ndjson => {
                if schema.avro.is_some() {
                    return misplaced("avro", "avro");
                }
                if schema.registry_dir.is_some() {
                    return misplaced("registry_dir", "confluent_avro");
                }
                FormatDecoder::Json(JsonDecoder::new())
            }
            PayloadFormat::Avro => {
                if schema.registry_dir.is_some() {
                    return misplaced("registry_dir", "confluent_avro");
                }
                let Some(path) = &schema.avro else {
                    return Err(
                        "`format = \"avro\"` needs `schema = { avro = \"file.avsc\" }`".into(),
                    );
                };
                FormatDecoder::Avro(AvroDecoder::load(path).map_err(|e| e.to_string())?)
            }
            PayloadFormat::ConfluentAvro => {
                if schema.avro.is_some() {
                    return misplaced("avro", "avro");
                }
                let Some(dir) = &schema.registry_dir else {
                    return Err("`format = \"confluent_avro\"` needs `schema = { registry_dir = \"dir\" }` (holding <id>.avsc files)".into());
                };
                FormatDecoder::ConfluentAvro(
                    ConfluentAvroDecoder::new(dir).map_err(|e| e.to_string())?,
                )
            }
        };
        let validator = match &schema.json_schema {
            Some(path) => Some(JsonSchemaValidator::load(path).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(PayloadDecoder {
            format: decoder,
            validator,
        })
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<Fields, String> {
        let fields = match &mut self.format {
            FormatDecoder::Json(d) => d.decode(bytes).map_err(|e| e.to_string())?,
            FormatDecoder::Avro(d) => d.decode(bytes)?,
            FormatDecoder::ConfluentAvro(d) => d.decode(bytes)?,
        };
        if let Some(v) = &self.validator {
            v.check(&fields)?;
        }
        Ok(fields)
    }
}

fn format_name(format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::Json => "json",
        PayloadFormat::Ndjson => "ndjson",
        PayloadFormat::Avro => "avro",
        PayloadFormat::ConfluentAvro => "confluent_avro",
    }
}

/// The `kafka` metadata field of a record.
fn metadata(msg: &BorrowedMessage<'_>) -> Value {
    let mut f = Fields::with_capacity(6);
    f.push(Sym::intern("topic"), Value::str(msg.topic()));
    f.push(
        Sym::intern("partition"),
        Value::Int(i64::from(msg.partition())),
    );
    f.push(Sym::intern("offset"), Value::Int(msg.offset()));
    f.push(
        Sym::intern("timestamp"),
        msg.timestamp().to_millis().map_or(Value::Null, Value::Int),
    );
    f.push(
        Sym::intern("key"),
        msg.key()
            .map_or(Value::Null, |k| Value::str(&String::from_utf8_lossy(k))),
    );
    let mut headers = Fields::default();
    if let Some(h) = msg.headers() {
        for header in h.iter() {
            let v = header
                .value
                .map_or(Value::Null, |v| Value::str(&String::from_utf8_lossy(v)));
            headers.push(Sym::intern(header.key), v);
        }
    }
    f.push(Sym::intern("headers"), Value::Map(Arc::new(headers)));
    Value::Map(Arc::new(f))
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
    use super::*;

    fn config(extra: &str) -> KafkaSourceConfig {
        toml::from_str(&format!(
            "brokers = \"127.0.0.1:9\"\ntopics = [\"t\"]\ngroup = \"g\"\n{extra}"
        ))
        .unwrap()
    }

    fn problems(extra: &str) -> Vec<String> {
        config(extra)
            .validate()
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
