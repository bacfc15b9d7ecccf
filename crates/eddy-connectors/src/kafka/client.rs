//! Connection settings shared by the Kafka source, sink and topic admin:
//! brokers, TLS and SASL, passed through to librdkafka.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use eddy_core::metrics::{ComponentMetrics, Counter, Gauge};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Deserialize;

/// `tls = { ca = "ca.pem", certificate = "client.pem", key = "client.key" }`;
/// `tls = {}` enables TLS with the system's trust store.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate file (PEM) to verify the brokers with.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate file (PEM), for mutual TLS.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Client private key file (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// SASL mechanisms librdkafka supports without extra system libraries.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Username and password in clear (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// `sasl = { mechanism = "SCRAM-SHA-512", username = "eddy", password = "..." }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Where the cluster is and how to authenticate.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// TLS, if the listener uses it.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL authentication.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Further librdkafka properties, as `{ "property" = "value" }`; they
    /// override what Eddy sets.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Connection {
    /// A connection to `brokers` without TLS or SASL.
    pub fn plain(brokers: &str) -> Connection {
        Connection {
            brokers: brokers.to_string(),
            ..Connection::default()
        }
    }

    /// The librdkafka configuration for this connection.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set_log_level(RDKafkaLogLevel::Error);
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(tls) = &self.tls {
            let path = |p: &PathBuf| p.to_string_lossy().into_owned();
            if let Some(ca) = &tls.ca {
                c.set("ssl.ca.location", path(ca));
            }
            if let Some(cert) = &tls.certificate {
                c.set("ssl.certificate.location", path(cert));
            }
            if let Some(key) = &tls.key {
                c.set("ssl.key.location", path(key));
            }
        }
        if let Some(sasl) = &self.sasl {
            let mechanism = match sasl.mechanism {
                SaslMechanism::Plain => "PLAIN",
                SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
                SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            };
            c.set("sasl.mechanism", mechanism);
            c.set("sasl.username", &sasl.username);
            c.set("sasl.password", &sasl.password);
        }
        c
    }

    /// Applies the user's `options` last, so they win.
    pub fn apply_overrides(&self, c: &mut ClientConfig) {
        for (k, v) in &self.options {
            c.set(k, v);
        }
    }
}

/// Consumer fetch settings Eddy uses unless `options` override them: larger
/// fetches than librdkafka's defaults, and a short broker-side wait, so a
/// consumer neither starves on small responses nor waits half a second for
/// `fetch.min.bytes` (measured: 78k → 814k records/s from a local broker).
///
/// The prefetch queue is bounded by size, not by its default 100,000
/// records per partition, and a full queue delays the next fetch by 10 ms
/// instead of a whole second: with librdkafka's defaults a consumer that
/// drains its queue within that second sits idle for the rest of it
/// (measured: 350–580k → 833k events/s through a window, in bursts of
/// ~750k/s with gaps of ~0.7 s before). The size is 8 MiB: the source
/// reads each partition from its own queue, and librdkafka then applies
/// `queued.max.messages.kbytes` per partition (its default, 64 MiB, would
/// let 100 partitions prefetch 6.4 GiB); 8 MiB read as fast as 64 MiB and
/// held 20 MiB less resident memory with 3 partitions.
pub const CONSUMER_FETCH_DEFAULTS: &[(&str, &str)] = &[
    ("max.partition.fetch.bytes", "10485760"),
    ("fetch.max.bytes", "104857600"),
    ("fetch.wait.max.ms", "10"),
    ("queued.min.messages", "10000000"),
    ("queued.max.messages.kbytes", "8192"),
    ("fetch.queue.backoff.ms", "10"),
];

/// A librdkafka client context that turns client-level errors into
/// metrics: `broker_down` is 1 while every broker is unreachable.
pub struct MetricsContext {
    down: AtomicBool,
    /// When the outage was noticed, to tell a broker that came back from
    /// a stale "UP" in statistics gathered before it.
    down_since: std::sync::Mutex<Option<std::time::Instant>>,
    broker_down: Gauge,
    client_errors: Counter,
}

impl MetricsContext {
    /// A context reporting into `metrics`.
    pub fn new(metrics: &ComponentMetrics) -> MetricsContext {
        MetricsContext {
            down: AtomicBool::new(false),
            down_since: std::sync::Mutex::new(None),
            broker_down: metrics.gauge("broker_down", &[]),
            client_errors: metrics.counter("client_errors", &[]),
        }
    }

    /// librdkafka's statistics (every second): no known broker up means
    /// an outage, also where librdkafka raised no error for it; a broker
    /// that has been up for less time than the outage lasted came back.
    pub fn observe(&self, stats: &rdkafka::Statistics) {
        let brokers: Vec<_> = stats.brokers.values().filter(|b| b.nodeid >= 0).collect();
        if brokers.is_empty() {
            return;
        }
        // The flag is the state; `down_since` only dates it.
        if !self.down.load(Relaxed) {
            if brokers.iter().all(|b| b.state != "UP") {
                self.mark_down();
            }
            return;
        }
        let since = self.down_since.lock().ok().and_then(|d| *d);
        let down_for = since.map_or(0, |s| s.elapsed().as_micros() as i64);
        if brokers
            .iter()
            .any(|b| b.state == "UP" && b.stateage < down_for)
        {
            self.reachable();
        }
    }

    fn mark_down(&self) {
        if !self.down.swap(true, Relaxed) {
            self.broker_down.add(1);
            if let Ok(mut d) = self.down_since.lock() {
                *d = Some(std::time::Instant::now());
            }
        }
    }

    /// The cluster answered: clear the outage flag.
    pub fn reachable(&self) {
        // Called for every record read: a plain load while all is well,
        // the swap and the lock only when an outage ends.
        if self.down.load(Relaxed) && self.down.swap(false, Relaxed) {
            self.broker_down.add(-1);
            if let Ok(mut d) = self.down_since.lock() {
                *d = None;
            }
        }
    }
}

impl ClientContext for MetricsContext {
    fn error(&self, error: KafkaError, _reason: &str) {
        self.client_errors.inc();
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.mark_down();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_settings_pass_through() {
        let conn: Connection = toml::from_str(
            r#"
brokers = "b1:9093,b2:9093"
tls = { ca = "/etc/ca.pem" }
sasl = { mechanism = "SCRAM-SHA-512", username = "eddy", password = "pw" }
options = { "socket.keepalive.enable" = "true" }
"#,
        )
        .unwrap();
        let mut c = conn.client_config();
        conn.apply_overrides(&mut c);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(
            Connection::plain("x:1")
                .client_config()
                .get("security.protocol"),
            Some("plaintext")
        );
    }

    #[test]
    fn unknown_mechanisms_are_rejected() {
        let err = toml::from_str::<Connection>(
            "brokers = \"b\"\nsasl = { mechanism = \"GSSAPI\", username = \"u\", password = \"p\" }",
        )
        .unwrap_err();
        assert!(err.to_string().contains("PLAIN"), "{err}");
    }
}
