//! The one table of component types: `type = "..."` → config struct.

use std::sync::Arc;

use eddy_core::component::{SinkFactory, SourceFactory, TransformFactory};
use eddy_core::config::{deserialize_body, Diagnostic, Section, Spanned};
use serde::de::DeserializeOwned;
use toml::de::DeValue;

use eddy_alerts::notify::NotifyConfig;
use eddy_alerts::receivers::{EmailConfig, PagerDuty, ReceiverConfig, Slack, Sms, Teams, Webhook};
use eddy_alerts::rule::AlertRuleConfig;
#[cfg(feature = "http")]
use eddy_connectors::sinks::HttpSinkConfig;
#[cfg(feature = "parquet")]
use eddy_connectors::sinks::ParquetConfig;
#[cfg(feature = "postgres")]
use eddy_connectors::sinks::PostgresConfig;
#[cfg(feature = "redis")]
use eddy_connectors::sinks::RedisSinkConfig;
use eddy_connectors::sinks::{FileSinkConfig, StdoutConfig};
use eddy_connectors::sources::{
    FileSourceConfig, HttpSourceConfig, NexmarkConfig, SimulatorConfig, StdinConfig,
};
use eddy_enrich::entities::EntitiesConfig;
use eddy_enrich::geoip::GeoIpConfig;
use eddy_enrich::language::LanguageConfig;
use eddy_enrich::lookup::LookupConfig;
use eddy_enrich::metadata::EnrichConfig;
use eddy_enrich::redact::transform::RedactConfig;
use eddy_enrich::sentiment::transform::SentimentConfig;
use eddy_enrich::topics::TopicsConfig;
use eddy_ops::transforms::anomaly::AnomalyConfig;
use eddy_ops::transforms::filter::FilterConfig;
use eddy_ops::transforms::flat_map::FlatMapConfig;
use eddy_ops::transforms::map::MapConfig;
use eddy_ops::transforms::window::WindowConfig;

use crate::blackhole::BlackholeConfig;
use crate::health::HealthConfig;

/// A configured component of any kind.
#[derive(Clone)]
pub enum Factory {
    /// A source.
    Source(Arc<dyn SourceFactory>),
    /// A transform.
    Transform(Arc<dyn TransformFactory>),
    /// A sink.
    Sink(Arc<dyn SinkFactory>),
}

type Ctor = fn(&Spanned<DeValue<'_>>) -> Result<Factory, Diagnostic>;

fn source<T: SourceFactory + DeserializeOwned + 'static>(
    body: &Spanned<DeValue<'_>>,
) -> Result<Factory, Diagnostic> {
    deserialize_body::<T>(body).map(|c| Factory::Source(Arc::new(c)))
}

fn transform<T: TransformFactory + DeserializeOwned + 'static>(
    body: &Spanned<DeValue<'_>>,
) -> Result<Factory, Diagnostic> {
    deserialize_body::<T>(body).map(|c| Factory::Transform(Arc::new(c)))
}

fn sink<T: SinkFactory + DeserializeOwned + 'static>(
    body: &Spanned<DeValue<'_>>,
) -> Result<Factory, Diagnostic> {
    deserialize_body::<T>(body).map(|c| Factory::Sink(Arc::new(c)))
}

/// Every source type.
pub const SOURCES: &[(&str, Ctor)] = &[
    ("file", source::<FileSourceConfig>),
    #[cfg(feature = "kafka")]
    ("kafka", source::<eddy_connectors::kafka::KafkaSourceConfig>),
    ("nexmark", source::<NexmarkConfig>),
    ("simulator", source::<SimulatorConfig>),
    ("stdin", source::<StdinConfig>),
    ("http", source::<HttpSourceConfig>),
    (crate::health::KIND, source::<HealthConfig>),
];

/// Every transform type.
pub const TRANSFORMS: &[(&str, Ctor)] = &[
    ("anomaly", transform::<AnomalyConfig>),
    ("enrich", transform::<EnrichConfig>),
    ("entities", transform::<EntitiesConfig>),
    ("filter", transform::<FilterConfig>),
    ("flat_map", transform::<FlatMapConfig>),
    ("geoip", transform::<GeoIpConfig>),
    ("language", transform::<LanguageConfig>),
    ("lookup", transform::<LookupConfig>),
    ("map", transform::<MapConfig>),
    ("redact", transform::<RedactConfig>),
    ("sentiment", transform::<SentimentConfig>),
    ("topics", transform::<TopicsConfig>),
    ("window", transform::<WindowConfig>),
];

/// Alert kinds: `[alerts.NAME]` tables without a `type` are rules.
pub const ALERTS: &[(&str, Ctor)] = &[
    ("notify", transform::<NotifyConfig>),
    ("rule", transform::<AlertRuleConfig>),
];

/// Every receiver type.
pub const RECEIVERS: &[(&str, Ctor)] = &[
    ("email", sink::<EmailConfig>),
    ("pagerduty", sink::<ReceiverConfig<PagerDuty>>),
    ("slack", sink::<ReceiverConfig<Slack>>),
    ("sms", sink::<ReceiverConfig<Sms>>),
    ("teams", sink::<ReceiverConfig<Teams>>),
    ("webhook", sink::<ReceiverConfig<Webhook>>),
];

/// Every sink type.
pub const SINKS: &[(&str, Ctor)] = &[
    ("blackhole", sink::<BlackholeConfig>),
    ("file", sink::<FileSinkConfig>),
    #[cfg(feature = "http")]
    ("http", sink::<HttpSinkConfig>),
    #[cfg(feature = "kafka")]
    ("kafka", sink::<eddy_connectors::kafka::KafkaSinkConfig>),
    #[cfg(feature = "redis")]
    ("redis", sink::<RedisSinkConfig>),
    #[cfg(feature = "postgres")]
    ("postgres", sink::<PostgresConfig>),
    #[cfg(feature = "parquet")]
    ("parquet", sink::<ParquetConfig>),
    ("stdout", sink::<StdoutConfig>),
];

/// The types a section offers.
pub fn table(section: Section) -> &'static [(&'static str, Ctor)] {
    match section {
        Section::Sources => SOURCES,
        Section::Transforms => TRANSFORMS,
        Section::Sinks => SINKS,
        Section::Alerts => ALERTS,
        Section::Receivers => RECEIVERS,
    }
}
