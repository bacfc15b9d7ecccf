//! `type = "kafka"` sink: an idempotent producer per worker.
//!
//! ```toml
//! [sinks.alerts_out]
//! type = "kafka"
//! inputs = ["alerts"]
//! brokers = "127.0.0.1:9092"
//! topic = "alerts"
//! key = "department"                  # CEL; the record key (strings as is, other values as JSON)
//! value = "event"                     # CEL; default: the whole event as a JSON object
//! headers = { reason = "reason" }     # header name = CEL expression
//! acks = "all"                        # all | one | none
//! compression = "zstd"                # none | gzip | snappy | lz4 | zstd
//! partitioner = "murmur2"             # murmur2 (the Java client's) | consistent
//! batch_size = 10000
//! linger = "5ms"
//! ```
//!
//! Records are produced through the shared [`Delivery`] layer: each batch is
//! handed to librdkafka, which retries on its own within `delivery_timeout`;
//! records still failing then are retried by Eddy with backoff (only those,
//! so nothing delivered is sent twice), behind a circuit breaker. Records
//! the broker refuses for good (too large, invalid) go to
//! `NAME.dead_letters`. Delivery is at-least-once; with the idempotent
//! producer (the default) librdkafka's own retries never duplicate.
//! Transactions tied to checkpoints (`exactly_once`) come with the
//! checkpoint store: [`Sink::pre_commit`] already waits for every record to
//! be acknowledged, which is where a transaction's commit will go.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, SinkFactory, ValidateContext};
use eddy_core::config::{Diagnostic, Duration as ConfigDuration};
use eddy_core::json::{write_fields, write_value};
use eddy_core::{Event, Expression, Sink, Value};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde::Deserialize;

use super::client::{Connection, MetricsContext, SaslConfig, TlsConfig};
use crate::sinks::delivery::{
    CircuitConfig, Deliver, Delivered, Delivery, DeliveryError, DeliveryOptions, RetryConfig,
};

/// Which replicas must acknowledge a record.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    /// Every in-sync replica (required by the idempotent producer).
    #[default]
    All,
    /// The partition leader only.
    One,
    /// No acknowledgement.
    None,
}

/// Record batch compression.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Uncompressed.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec's name in Kafka configuration.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How keyed records are spread over partitions.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// murmur2 of the key, as the Java client's default partitioner (so
    /// keys land where Java producers put them); unkeyed records spread.
    #[default]
    Murmur2,
    /// CRC32 of the key (librdkafka's default); unkeyed records spread.
    Consistent,
}

/// Configuration of the `kafka` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers.
    pub brokers: String,
    /// The topic to write to.
    pub topic: String,
    /// The record key (CEL); none by default.
    #[serde(default)]
    pub key: Option<Expression>,
    /// The record value (CEL); by default the whole event as JSON.
    #[serde(default)]
    pub value: Option<Expression>,
    /// Record headers: name = CEL expression (strings as is, other values
    /// as JSON; null omits the header).
    #[serde(default)]
    pub headers: BTreeMap<String, Expression>,
    /// Acknowledgements required.
    #[serde(default)]
    pub acks: Acks,
    /// Compression codec.
    #[serde(default)]
    pub compression: Compression,
    /// Partitioner for keyed records.
    #[serde(default)]
    pub partitioner: Partitioner,
    /// Idempotent producer (default true; needs `acks = "all"`).
    #[serde(default = "default_true")]
    pub idempotent: bool,
    /// Records per batch handed to the producer (default 10,000).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// How long records may wait for a batch to fill (default 5 ms).
    #[serde(default)]
    pub linger: Option<ConfigDuration>,
    /// How long librdkafka keeps retrying a record before reporting it
    /// failed to Eddy's own retry (default 30 s).
    #[serde(default)]
    pub delivery_timeout: Option<ConfigDuration>,
    /// Largest record the producer accepts (bytes, default 1 MiB); larger
    /// ones go to dead letters.
    #[serde(default)]
    pub max_record_bytes: Option<usize>,
    /// Batches buffered before the pipeline waits for this sink.
    #[serde(default)]
    pub buffer: Option<usize>,
    /// Eddy's retries after librdkafka gave up.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Circuit breaker.
    #[serde(default)]
    pub circuit_breaker: CircuitConfig,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL settings.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Further librdkafka producer properties.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

impl KafkaSinkConfig {
    /// Creates the producer with this configuration.
    pub fn producer(
        &self,
        context: ProduceContext,
    ) -> Result<BaseProducer<ProduceContext>, String> {
        let conn = Connection {
            brokers: self.brokers.clone(),
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
            options: self.options.clone(),
        };
        let mut c = conn.client_config();
        let linger = self.linger.map_or(5, |d| d.ms().max(0));
        let timeout = self.delivery_timeout.map_or(30_000, |d| d.ms().max(1));
        c.set(
            "acks",
            match self.acks {
                Acks::All => "all",
                Acks::One => "1",
                Acks::None => "0",
            },
        )
        .set(
            "enable.idempotence",
            if self.idempotent { "true" } else { "false" },
        )
        .set("compression.type", self.compression.name())
        .set("linger.ms", linger.to_string())
        .set("message.timeout.ms", timeout.to_string())
        .set(
            "message.max.bytes",
            self.max_record_bytes
                .unwrap_or(1 << 20)
                .max(1000)
                .to_string(),
        )
        .set(
            "partitioner",
            match self.partitioner {
                Partitioner::Murmur2 => "murmur2_random",
                Partitioner::Consistent => "consistent_random",
            },
        )
        .set("queue.buffering.max.messages", "1000000")
        .set("statistics.interval.ms", "1000");
        conn.apply_overrides(&mut c);
        c.create_with_context(context)
            .map_err(|e| format!("cannot create a producer for {}: {e}", self.brokers))
    }
}

impl SinkFactory for KafkaSinkConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let fail = |e: String| BuildError::Sink {
            message: format!("sink `{}`: {e}", cx.name),
            retryable: false,
        };
        let producer = self
            .producer(ProduceContext::new(&cx.metrics))
            .map_err(fail)?;
        let writer = KafkaWriter {
            producer,
            topic: self.topic.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            resume: None,
        };
        let opts = DeliveryOptions::new(
            self.batch_size,
            self.linger,
            self.retry,
            self.circuit_breaker,
            (10_000, Duration::from_millis(5)),
        );
        Ok(Box::new(Delivery::new(writer, &cx.name, opts, &cx.metrics)))
    }

    fn buffer(&self) -> Option<usize> {
        Some(self.buffer.unwrap_or(16))
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.idempotent && self.acks != Acks::All {
            out.push(
                Diagnostic::new(0..0, "the idempotent producer needs `acks = \"all\"`")
                    .hint("set acks = \"all\", or idempotent = false to trade it away"),
            );
        }
        out
    }
}

/// Outcome of one record, reported by librdkafka's delivery callback.
type Outcome = (usize, Result<(), (RDKafkaErrorCode, String)>);

/// The producer's context: delivery reports and client errors.
pub struct ProduceContext {
    outcomes: Mutex<Vec<Outcome>>,
    client: MetricsContext,
}

impl ProduceContext {
    /// A context reporting client errors into `metrics`.
    pub fn new(metrics: &eddy_core::metrics::ComponentMetrics) -> ProduceContext {
        ProduceContext {
            outcomes: Mutex::new(Vec::new()),
            client: MetricsContext::new(metrics),
        }
    }

    fn take(&self) -> Vec<Outcome> {
        self.outcomes
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
    }
}

impl rdkafka::client::ClientContext for ProduceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason);
    }

    fn stats(&self, stats: rdkafka::Statistics) {
        self.client.observe(&stats);
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err((
                e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                e.to_string(),
            )),
        };
        if let Ok(mut o) = self.outcomes.lock() {
            o.push((index, outcome));
        }
    }
}

/// Whether a produce error can never succeed for this record.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::TopicAuthorizationFailed
    )
}

/// Sends batches with librdkafka.
struct KafkaWriter {
    producer: BaseProducer<ProduceContext>,
    topic: String,
    key: Option<Expression>,
    value: Option<Expression>,
    headers: Vec<(String, Expression)>,
    /// The batch being retried, so a retry resends only what is left.
    resume: Option<Resume>,
}

/// What is left of a batch after an attempt with transient failures.
struct Resume {
    /// The batch's address and length.
    identity: (usize, usize),
    /// Indices still undelivered.
    left: Vec<usize>,
    /// What earlier attempts delivered and rejected.
    done: Delivered,
}

/// Bytes of a value: strings as they are, anything else as JSON.
fn value_bytes(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        other => write_value(out, other),
    }
}

/// Evaluates `x` on `e`, the error as text for the dead letter.
fn eval<'a>(x: &'a Expression, e: &'a Event) -> Result<std::borrow::Cow<'a, Value>, String> {
    x.eval_ref(e).map_err(|err| err.to_string())
}

/// One encoded record.
struct Encoded {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Option<OwnedHeaders>,
}

impl KafkaWriter {
    fn encode(&self, e: &Event) -> Result<Encoded, String> {
        let key = match &self.key {
            Some(k) => match &*eval(k, e)? {
                Value::Null => None,
                v => {
                    let mut b = Vec::new();
                    value_bytes(v, &mut b);
                    Some(b)
                }
            },
            None => None,
        };
        let mut value = Vec::with_capacity(256);
        match &self.value {
            Some(x) => {
                let v = eval(x, e)?;
                value_bytes(&v, &mut value);
            }
            None => write_fields(&mut value, &e.fields),
        }
        let headers = if self.headers.is_empty() {
            None
        } else {
            let mut h = OwnedHeaders::new_with_capacity(self.headers.len());
            for (name, x) in &self.headers {
                let v = eval(x, e)?;
                if matches!(*v, Value::Null) {
                    continue;
                }
                let mut b = Vec::new();
                value_bytes(&v, &mut b);
                h = h.insert(Header {
                    key: name,
                    value: Some(&b),
                });
            }
            Some(h)
        };
        Ok(Encoded {
            key,
            value,
            headers,
        })
    }

    /// Hands record `i` to librdkafka, waiting while its queue is full.
    fn send_one(&self, i: usize, rec: &Encoded) -> Result<(), (RDKafkaErrorCode, String)> {
        loop {
            let mut r = BaseRecord::with_opaque_to(&self.topic, i).payload(&rec.value);
            if let Some(k) = &rec.key {
                r = r.key(k);
            }
            if let Some(h) = &rec.headers {
                r = r.headers(h.clone());
            }
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    return Err((code, e.to_string()));
                }
            }
        }
    }
}

impl Deliver for KafkaWriter {
    fn deliver(
        &mut self,
        events: &[Event],
        _key: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        let identity = (events.as_ptr() as usize, events.len());
        let (todo, mut done) = match self.resume.take() {
            Some(r) if r.identity == identity => (r.left, r.done),
            _ => ((0..events.len()).collect(), Delivered::default()),
        };
        let mut failed: Vec<usize> = Vec::new();
        let mut last_error = String::new();
        let mut in_flight = 0usize;
        for &i in &todo {
            let Some(e) = events.get(i) else { continue };
            let rec = match self.encode(e) {
                Ok(r) => r,
                Err(reason) => {
                    done.rejected
                        .push((i, format!("cannot encode the record: {reason}")));
                    continue;
                }
            };
            match self.send_one(i, &rec) {
                Ok(()) => {
                    in_flight += 1;
                    done.bytes += rec.value.len() as u64;
                }
                Err((code, reason)) if is_permanent(code) => done.rejected.push((i, reason)),
                Err((_, reason)) => {
                    last_error = reason;
                    failed.push(i);
                }
            }
            self.producer.poll(Duration::ZERO);
        }
        // Wait for every record's delivery report.
        let mut reported = 0usize;
        while reported < in_flight {
            // Polling serves the delivery callbacks; `flush` would wait out
            // its whole timeout between them.
            self.producer.poll(Duration::from_millis(1));
            for (i, outcome) in self.producer.context().take() {
                reported += 1;
                match outcome {
                    Ok(()) => {}
                    Err((code, reason)) if is_permanent(code) => done.rejected.push((i, reason)),
                    Err((_, reason)) => {
                        last_error = reason;
                        failed.push(i);
                    }
                }
            }
        }
        if !failed.is_empty() {
            failed.sort_unstable();
            self.resume = Some(Resume {
                identity,
                left: failed,
                done,
            });
            return Err(DeliveryError::Transient(last_error));
        }
        self.producer.context().client.reachable();
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use eddy_core::component::BuildContext;
    use eddy_core::{Fields, Sym};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::mocking::MockCluster;
    use rdkafka::ClientConfig;

    use super::*;

    /// librdkafka gives up on records while the broker is down; Eddy's own
    /// retry resends only those, so the topic ends with each record once.
    #[test]
    fn records_that_time_out_are_resent_once_the_broker_is_back() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let cfg: KafkaSinkConfig = toml::from_str(&format!(
            "brokers = \"{brokers}\"\ntopic = \"out\"\ndelivery_timeout = \"1s\"\n\
             retry = {{ attempts = 0, initial_backoff = \"100ms\", max_backoff = \"200ms\" }}\n\
             circuit_breaker = {{ failure_threshold = 100 }}"
        ))
        .unwrap();
        let cx = BuildContext::single("out");
        let mut sink = cfg.build(&cx).unwrap();
        let events: Vec<Event> = (0..100)
            .map(|i| {
                let mut f = Fields::default();
                f.push(Sym::intern("id"), Value::Int(i));
                Event::new(i, f)
            })
            .collect();
        sink.write(&events[..40]).unwrap();
        sink.flush().unwrap();
        cluster.broker_down(1).unwrap();
        let writer = std::thread::spawn(move || {
            sink.write(&events[40..]).unwrap();
            sink.flush().unwrap();
            sink
        });
        std::thread::sleep(Duration::from_secs(3));
        cluster.broker_up(1).unwrap();
        let mut sink = writer.join().unwrap();
        assert!(cx.metrics.total("retries") > 0, "the outage forced retries");
        assert!(sink.take_dead_letters().is_empty());
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "check")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&["out"]).unwrap();
        let mut ids = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while ids.len() < 100 && std::time::Instant::now() < until {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                ids.push(text);
            }
        }
        // Nothing more arrives: no record was sent twice.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                ids.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        assert_eq!(ids.len(), 100, "every record exactly once");
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 100);
    }
}
