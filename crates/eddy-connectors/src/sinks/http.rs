//! `type = "http"`: posts batches of events to a webhook.
//!
//! ```toml
//! [sinks.alerts_hook]
//! type = "http"
//! inputs = ["alerts"]
//! url = "https://hooks.example.com/eddy"
//! format = "json"                       # a JSON array per batch; or "ndjson"
//! headers = { "X-Team" = "ops" }
//! auth = { bearer = "${HOOK_TOKEN}" }   # or { basic = { user = "u", password = "p" } }
//! hmac = { secret = "${HOOK_SECRET}" }  # X-Eddy-Signature: hex HMAC-SHA256 of the body
//! timeout = "10s"
//! ```
//!
//! Each batch is one request. `${VAR}` in the url, header values and
//! secrets is replaced by the environment variable when the pipeline
//! starts. Every request carries an `Idempotency-Key` that stays the same
//! when a batch is retried, so a receiver can drop duplicates.
//!
//! With `[checkpoint]`, output is staged until its checkpoint completes
//! ([`staged`](super::delivery::staged)) and the key is
//! `PIPELINE/NODE/WORKER/CHECKPOINT/BATCH`: a batch sent again after a
//! crash and restart has the same body and the same key, so a receiver
//! that drops repeated keys gets every event exactly once.
//!
//! Delivery is at-least-once through the shared
//! [`delivery`](super::delivery) layer: network errors, time-outs, `429`
//! and `5xx` answers are retried with backoff; any other `4xx` (and `3xx`,
//! which is not followed) sends the batch to dead letters at once.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, SinkFactory, ValidateContext};
use eddy_core::config::{Diagnostic, Duration as ConfigDuration, Spanned};
use eddy_core::json::write_fields;
use eddy_core::{Event, Sink};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::delivery::{
    CircuitConfig, Deliver, Delivered, Delivery, DeliveryError, DeliveryOptions, RetryConfig,
    Staging,
};

/// Default events per request.
const DEFAULT_BATCH: usize = 500;
/// Default wait for a partial batch.
const DEFAULT_LINGER: Duration = Duration::from_millis(200);
/// Default number of batches buffered in front of the sink's thread.
const DEFAULT_BUFFER: usize = 8;
/// Default time-out of one request, from connect to the end of the answer.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this much of an error answer's body is quoted in dead letters.
const QUOTED_BODY: usize = 200;

/// The request method.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `POST` (the default).
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
}

/// How a batch is encoded.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// One JSON array of event objects (`application/json`).
    #[default]
    Json,
    /// One JSON object per line (`application/x-ndjson`).
    Ndjson,
}

/// `auth = { bearer = "TOKEN" }` or `auth = { basic = { user, password } }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

/// The only signature algorithm so far.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    /// HMAC with SHA-256.
    #[default]
    Sha256,
}

/// `hmac = { secret = "...", header = "X-Eddy-Signature" }`: signs each
/// body so the receiver can check it came from this pipeline.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// The shared secret.
    pub secret: String,
    /// The header carrying the lower-case hex signature of the body.
    #[serde(default = "default_signature_header")]
    pub header: String,
    /// `"sha256"` (the default and only choice).
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
}

fn default_signature_header() -> String {
    "X-Eddy-Signature".into()
}

fn default_idempotency_header() -> String {
    "Idempotency-Key".into()
}

/// Configuration of the `http` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where batches are sent, `http://` (or `https://` when built with the
    /// `tls` feature).
    pub url: Spanned<String>,
    /// `"POST"` (default), `"PUT"` or `"PATCH"`.
    #[serde(default)]
    pub method: HttpMethod,
    /// `"json"`: a JSON array per batch (default); `"ndjson"`: a line per
    /// event.
    #[serde(default)]
    pub format: BodyFormat,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Credentials for the `Authorization` header.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// Signs each body with a shared secret.
    #[serde(default)]
    pub hmac: Option<HmacConfig>,
    /// The header carrying the batch's idempotency key.
    #[serde(default = "default_idempotency_header")]
    pub idempotency_header: String,
    /// Time-out of one request, connect to answer (default 10 s).
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Events per request (default 500).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// How long a partial batch may wait (default 200 ms).
    #[serde(default)]
    pub linger: Option<ConfigDuration>,
    /// Batches buffered in front of the sink's thread (default 8).
    #[serde(default)]
    pub buffer: Option<usize>,
    /// Retries of transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When to stop sending for a while after repeated failures.
    #[serde(default)]
    pub circuit_breaker: CircuitConfig,
}

impl HttpSinkConfig {
    /// The headers of every request, with `${VAR}` expanded.
    fn fixed_headers(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (k, v) in &self.headers {
            out.push((k.clone(), expand_env(v)?));
        }
        match &self.auth {
            Some(HttpAuth::Bearer(token)) => {
                out.push((
                    "Authorization".into(),
                    format!("Bearer {}", expand_env(token)?),
                ));
            }
            Some(HttpAuth::Basic { user, password }) => {
                let pair = format!("{}:{}", expand_env(user)?, expand_env(password)?);
                out.push((
                    "Authorization".into(),
                    format!("Basic {}", base64(pair.as_bytes())),
                ));
            }
            None => {}
        }
        let content_type = match self.format {
            BodyFormat::Json => "application/json",
            BodyFormat::Ndjson => "application/x-ndjson",
        };
        out.push(("Content-Type".into(), content_type.into()));
        Ok(out)
    }
}

impl SinkFactory for HttpSinkConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let fail = |e: String| BuildError::Config(format!("sink `{}`: {e}", cx.name));
        let url = expand_env(self.url.get_ref()).map_err(fail)?;
        url.parse::<ureq::http::Uri>()
            .map_err(|e| fail(format!("bad url `{url}`: {e}")))?;
        let timeout = self.timeout.map_or(DEFAULT_TIMEOUT, |d| {
            Duration::from_millis(d.ms().max(1) as u64)
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Statuses are classified here, not turned into errors.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let hmac = match &self.hmac {
            Some(h) => Some((
                h.header.clone(),
                expand_env(&h.secret).map_err(fail)?.into_bytes(),
            )),
            None => None,
        };
        let writer = HttpWriter {
            agent,
            url,
            method: self.method,
            format: self.format,
            headers: self.fixed_headers().map_err(fail)?,
            hmac,
            idempotency_header: self.idempotency_header.clone(),
            key_prefix: format!("{}-{}-{}", cx.name, cx.worker, eddy_core::time::now_ms()),
            sequence: 0,
            failed_body: None,
            body: Vec::new(),
        };
        let opts = DeliveryOptions::new(
            self.batch_size,
            self.linger,
            self.retry,
            self.circuit_breaker,
            (DEFAULT_BATCH, DEFAULT_LINGER),
        );
        let staging = cx.exactly_once.then(|| Staging::new(cx));
        Ok(Box::new(
            Delivery::new(writer, &cx.name, opts, &cx.metrics).staged(staging),
        ))
    }

    fn buffer(&self) -> Option<usize> {
        Some(self.buffer.unwrap_or(DEFAULT_BUFFER).max(1))
    }

    /// The url must be `http://` (or `https://` with TLS compiled in).
    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let url = self.url.get_ref();
        let https = cfg!(feature = "tls");
        let ok = url.starts_with("http://") || (https && url.starts_with("https://"));
        if ok {
            return Vec::new();
        }
        let hint = if url.starts_with("https://") {
            "this build has no TLS: rebuild with `--features tls`, or use http://"
        } else {
            "write it as http://host:port/path"
        };
        vec![Diagnostic::new(self.url.span(), format!("unsupported url `{url}`")).hint(hint)]
    }
}

/// Sends each batch as one request.
struct HttpWriter {
    agent: ureq::Agent,
    url: String,
    method: HttpMethod,
    format: BodyFormat,
    headers: Vec<(String, String)>,
    /// Signature header and secret.
    hmac: Option<(String, Vec<u8>)>,
    idempotency_header: String,
    /// Sink name, worker and start time: keys stay unique across restarts.
    key_prefix: String,
    /// Number of the batch being sent.
    sequence: u64,
    /// Hash of the body whose last attempt failed: the same body sent
    /// again is a retry and keeps its key.
    failed_body: Option<u64>,
    body: Vec<u8>,
}

impl HttpWriter {
    fn encode(&mut self, events: &[Event]) {
        self.body.clear();
        match self.format {
            BodyFormat::Json => {
                self.body.push(b'[');
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        self.body.push(b',');
                    }
                    write_fields(&mut self.body, &e.fields);
                }
                self.body.push(b']');
            }
            BodyFormat::Ndjson => {
                for e in events {
                    write_fields(&mut self.body, &e.fields);
                    self.body.push(b'\n');
                }
            }
        }
    }

    /// The idempotency key for the current body: a new one unless this is
    /// a retry of the batch that failed last.
    fn idempotency_key(&mut self, body_hash: u64) -> String {
        if self.failed_body != Some(body_hash) {
            self.sequence += 1;
        }
        format!("{}-{}", self.key_prefix, self.sequence)
    }

    fn send(&self, key: &str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let method = match self.method {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        };
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url.as_str());
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        request = request.header(self.idempotency_header.as_str(), key);
        if let Some((header, secret)) = &self.hmac {
            request = request.header(header.as_str(), sign(secret, &self.body));
        }
        let request = request.body(self.body.as_slice())?;
        self.agent.run(request)
    }
}

impl Deliver for HttpWriter {
    fn deliver(&mut self, events: &[Event], key: Option<&str>) -> Result<Delivered, DeliveryError> {
        self.encode(events);
        let body_hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.body.hash(&mut h);
            h.finish()
        };
        let key = match key {
            Some(k) => k.to_string(),
            None => self.idempotency_key(body_hash),
        };
        let outcome = match self.send(&key) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                // Reading the answer returns the connection to the pool.
                let text = response.body_mut().read_to_string().unwrap_or_default();
                classify(status, &text)
            }
            Err(e) => Err(classify_error(e)),
        };
        self.failed_body = match &outcome {
            Err(DeliveryError::Transient(_)) => Some(body_hash),
            _ => None,
        };
        outcome.map(|()| Delivered {
            bytes: self.body.len() as u64,
            rejected: Vec::new(),
        })
    }
}

/// Whether an answer's status means delivered, retry (408, 429, 5xx) or
/// give up (any other status), quoting the start of the answer's body.
pub fn classify(status: u16, body: &str) -> Result<(), DeliveryError> {
    let message = || {
        let quoted: String = body.chars().take(QUOTED_BODY).collect();
        if quoted.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", quoted.trim())
        }
    };
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(DeliveryError::Transient(message())),
        _ => Err(DeliveryError::Permanent(message())),
    }
}

/// Request errors: configuration mistakes cannot heal, the rest may.
pub fn classify_error(e: ureq::Error) -> DeliveryError {
    match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::RequireHttpsOnly(_) => {
            DeliveryError::Permanent(format!("cannot send the request: {e}"))
        }
        e => DeliveryError::Transient(format!("request failed: {e}")),
    }
}

/// Lower-case hex HMAC-SHA256 of `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails; an empty
    // signature would be refused by the receiver, not crash the sink.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Standard base64 with padding (for Basic credentials).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Replaces `${VAR}` with the environment variable `VAR`; a missing
/// variable is an error naming it. `$$` stands for `$`.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("`${{` without `}}` in `{text}`"))?;
            let name = &inner[..end];
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::metrics::ComponentMetrics;
    use eddy_core::{Fields, Sym, Value};
    use eddy_testkit::HttpReceiver;
    use std::sync::Arc;

    fn sink(text: &str) -> (Box<dyn Sink>, Arc<ComponentMetrics>) {
        let cfg: HttpSinkConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cfg.validate(&eddy_core::component::ValidateContext::default())
                .is_empty(),
            "{:?}",
            cfg.validate(&eddy_core::component::ValidateContext::default())
        );
        let cx = BuildContext::single("hook");
        let metrics = cx.metrics.clone();
        (cfg.build(&cx).unwrap(), metrics)
    }

    fn events(range: std::ops::Range<i64>) -> Vec<Event> {
        range
            .map(|i| {
                let mut f = Fields::default();
                f.push(Sym::intern("n"), Value::Int(i));
                f.push(Sym::intern("user"), Value::str("ann"));
                Event::new(i, f)
            })
            .collect()
    }

    /// Fast retries so failing tests stay short.
    const RETRY: &str =
        "retry = { attempts = 5, initial_backoff = \"5ms\", max_backoff = \"10ms\" }\n";

    #[test]
    fn batches_carry_auth_signature_and_idempotency_key() {
        let receiver = HttpReceiver::start();
        std::env::set_var("EDDY_TEST_HOOK_SECRET", "s3cret");
        let (mut sink, metrics) = sink(&format!(
            "url = {:?}\nbatch_size = 3\nheaders = {{ \"X-Team\" = \"ops\" }}\nauth = {{ bearer = \"tok\" }}\nhmac = {{ secret = \"${{EDDY_TEST_HOOK_SECRET}}\" }}\n",
            receiver.url()
        ));
        sink.write(&events(0..5)).unwrap();
        sink.flush().unwrap();
        let got = receiver.requests();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].text(),
            r#"[{"n":0,"user":"ann"},{"n":1,"user":"ann"},{"n":2,"user":"ann"}]"#
        );
        assert_eq!(
            got[1].text(),
            r#"[{"n":3,"user":"ann"},{"n":4,"user":"ann"}]"#
        );
        for r in &got {
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, "/hook");
            assert_eq!(r.header("authorization"), Some("Bearer tok"));
            assert_eq!(r.header("x-team"), Some("ops"));
            assert_eq!(r.header("content-type"), Some("application/json"));
            // The receiver's check: HMAC of the body with the shared secret.
            let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(&r.body);
            assert_eq!(
                r.header("x-eddy-signature"),
                Some(hex(&mac.finalize().into_bytes()).as_str())
            );
        }
        let keys: Vec<_> = got.iter().map(|r| r.header("idempotency-key")).collect();
        assert!(keys[0].is_some_and(|k| k.starts_with("hook-0-")));
        assert_ne!(keys[0], keys[1]);
        assert_eq!(metrics.total("records_out"), 5);
        assert_eq!(
            metrics.total("bytes_out"),
            (got[0].body.len() + got[1].body.len()) as i64
        );
    }

    #[test]
    fn retries_5xx_and_429_with_the_same_idempotency_key() {
        let receiver = HttpReceiver::start();
        receiver.fail_next(1, 500);
        receiver.fail_next(1, 429);
        let (mut sink, metrics) = sink(&format!(
            "url = {:?}\nformat = \"ndjson\"\nmethod = \"PUT\"\nauth = {{ basic = {{ user = \"u\", password = \"p\" }} }}\n{RETRY}",
            receiver.url()
        ));
        sink.write(&events(0..2)).unwrap();
        sink.flush().unwrap();
        sink.write(&events(2..3)).unwrap();
        sink.flush().unwrap();
        let got = receiver.requests();
        let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [500, 429, 200, 200]);
        assert_eq!(
            got[2].text(),
            "{\"n\":0,\"user\":\"ann\"}\n{\"n\":1,\"user\":\"ann\"}\n"
        );
        assert_eq!(got[0].method, "PUT");
        assert_eq!(got[0].header("authorization"), Some("Basic dTpw"));
        assert_eq!(got[0].header("content-type"), Some("application/x-ndjson"));
        let keys: Vec<_> = got.iter().map(|r| r.header("idempotency-key")).collect();
        assert_eq!(keys[0], keys[1], "a retry keeps its key");
        assert_eq!(keys[1], keys[2]);
        assert_ne!(keys[2], keys[3], "the next batch gets a new key");
        assert!(sink.take_dead_letters().is_empty());
        assert_eq!(metrics.total("retries"), 2);
        assert_eq!(metrics.total("records_out"), 3);
    }

    #[test]
    fn client_errors_go_to_dead_letters_without_retry() {
        let receiver = HttpReceiver::start();
        receiver.fail_next(1, 400);
        let (mut sink, metrics) = sink(&format!("url = {:?}\n{RETRY}", receiver.url()));
        sink.write(&events(0..2)).unwrap();
        sink.flush().unwrap();
        sink.write(&events(2..3)).unwrap();
        sink.flush().unwrap();
        let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [400, 200]);
        let dead = sink.take_dead_letters();
        assert_eq!(dead.len(), 2);
        assert_eq!(
            dead[0].fields.get(Sym::intern("reason")),
            Some(&Value::str("HTTP 400"))
        );
        assert_eq!(metrics.total("retries"), 0);
        assert_eq!(metrics.total("dead_letters"), 2);
    }

    #[test]
    fn an_unreachable_receiver_is_retried_then_dead_lettered() {
        let port = eddy_testkit::free_port();
        let (mut sink, metrics) = sink(&format!(
            "url = \"http://127.0.0.1:{port}/\"\nretry = {{ attempts = 3, initial_backoff = \"1ms\", max_backoff = \"1ms\" }}\n"
        ));
        sink.write(&events(0..1)).unwrap();
        sink.flush().unwrap();
        assert_eq!(metrics.total("failures"), 3);
        let dead = sink.take_dead_letters();
        assert_eq!(dead.len(), 1);
    }

    #[test]
    fn helpers_encode_and_expand() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        std::env::set_var("EDDY_TEST_EXPAND", "v");
        assert_eq!(
            expand_env("a${EDDY_TEST_EXPAND}b$$c$d").as_deref(),
            Ok("avb$c$d")
        );
        assert!(expand_env("${EDDY_TEST_NOT_SET_ANYWHERE}")
            .unwrap_err()
            .contains("not set"));
        let cfg: HttpSinkConfig = toml::from_str("url = \"ftp://x\"").unwrap();
        assert_eq!(
            cfg.validate(&eddy_core::component::ValidateContext::default())
                .len(),
            1
        );
        assert!(
            toml::from_str::<HttpSinkConfig>("url = \"http://x\"\nauth = { token = \"t\" }")
                .is_err()
        );
    }
}
