//! The `kafka` source's configuration.

use eddy_core::component::{
    BuildContext, BuildError, SourceFactory, ValidateContext, WatermarkSpec,
};
use eddy_core::config::Diagnostic;
use eddy_core::source::{EventTimeConfig, TimestampAssigner};
use eddy_core::time::parse_rfc3339;
use eddy_core::Source;
use serde::Deserialize;

use super::records::PayloadDecoder;
use super::KafkaSource;
use crate::kafka::client::{Connection, SaslConfig, TlsConfig};
use crate::schema::SchemaConfig;

/// Records larger than this (bytes) go to dead letters unless configured.
pub(super) const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

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
    pub(super) fn connection(&self) -> Connection {
        Connection {
            brokers: self.brokers.clone(),
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
            options: self.options.clone(),
        }
    }

    pub(super) fn subscription(&self) -> Vec<String> {
        match &self.topic_pattern {
            // librdkafka treats a subscription starting with ^ as a regex.
            Some(p) if p.starts_with('^') => vec![p.clone()],
            Some(p) => vec![format!("^{p}")],
            None => self.topics.clone(),
        }
    }
}

impl SourceFactory for KafkaSourceConfig {
    /// The group hands partitions to any member after a restart.
    fn positions_follow_partitions(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        KafkaSource::new(self, cx)
            .map(|s| Box::new(s) as Box<dyn Source>)
            .map_err(|e| BuildError::Input(format!("source `{}`: {e}", cx.name)))
    }

    fn watermarks(&self) -> WatermarkSpec {
        TimestampAssigner::from_config(self.event_time.as_ref()).watermarks()
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
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
