//! Kafka: the `kafka` source and sink, and topic administration.
//!
//! All three speak to the cluster through librdkafka (built from source with
//! TLS, SASL PLAIN/SCRAM and every compression codec). Kafka is also how
//! Eddy scales beyond one process: processes that share a consumer `group`
//! split the partitions between them.

mod admin;
mod client;
mod sink;
mod source;

pub use admin::{apply_topics, TopicChange, TopicSpec, TopicsFile};
pub use client::{Connection, SaslConfig, SaslMechanism, TlsConfig, CONSUMER_FETCH_DEFAULTS};
pub use sink::{Acks, Compression, KafkaSinkConfig, Partitioner};
pub use source::{KafkaSource, KafkaSourceConfig, PayloadFormat, StartPosition};
