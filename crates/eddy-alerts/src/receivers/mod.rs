//! Receivers: `[receivers.NAME]`, where notifications go.
//!
//! ```toml
//! [receivers.oncall]
//! type = "webhook"                      # Alertmanager's webhook JSON (version 4)
//! url = "https://hooks.example.com/alerts"
//! hmac = { secret = "${HOOK_SECRET}" }  # X-Eddy-Signature: sha256=<hex HMAC-SHA256 of the body>
//!
//! [receivers.chat]
//! type = "slack"                        # an incoming webhook; colour by severity
//! url = "${SLACK_WEBHOOK_URL}"
//!
//! [receivers.pager]
//! type = "pagerduty"                    # Events API v2: trigger, then resolve
//! routing_key = "${PAGERDUTY_KEY}"      # url defaults to events.pagerduty.com
//!
//! [receivers.teams]
//! type = "teams"                        # a Microsoft Teams incoming webhook (MessageCard)
//! url = "${TEAMS_WEBHOOK_URL}"
//!
//! [receivers.phone]
//! type = "sms"                          # an SMS provider's HTTP API, one request per number
//! url = "https://sms.example.com/v1/messages"
//! to = ["+15551234567"]
//! content_type = "application/x-www-form-urlencoded"
//! body = "To={to}&Body={text}"          # {to} and {text}: percent-encoded here, JSON-escaped for JSON
//!
//! [receivers.mail]
//! type = "email"                        # SMTP, text and HTML bodies (see [`email`])
//! smtp = "smtp.example.com:587"
//! from = "eddy@example.com"
//! to = ["oncall@example.com"]
//! ```
//!
//! A receiver is a sink reading the notifications `notify` routes to it
//! (without `inputs`, from every `notify` node that names it). Each
//! notification is one request, through the sinks' delivery layer: `408`,
//! `429`, `5xx` and network errors are retried with backoff (`retry`), a
//! `circuit_breaker` stops hammering a receiver that is down, any other
//! answer dead-letters the notification at once, and what is given up on
//! goes to `NAME.dead_letters`. Every receiver runs on its own thread
//! behind a bounded buffer, so a slow or hanging one (`timeout`, default
//! 10 s) holds up neither the pipeline nor the other receivers. `${VAR}`
//! in `url`, header values, `routing_key` and secrets is read from the
//! environment when the pipeline starts.

mod email;
mod formats;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use eddy_connectors::sinks::delivery::{
    CircuitConfig, Deliver, Delivered, Delivery, DeliveryError, DeliveryOptions, RetryConfig,
    Staging,
};
use eddy_connectors::sinks::http::{classify, classify_error, expand_env, sign};
use eddy_core::component::{BuildContext, BuildError, SinkFactory, ValidateContext};
use eddy_core::config::{Diagnostic, Duration as ConfigDuration};
use eddy_core::{Event, Sink};
use serde::Deserialize;

pub use email::{EmailConfig, Security};
pub use formats::{Format, PagerDuty, Settings, Slack, Sms, Teams, Webhook};

/// Default time-out of one request.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Notifications buffered in front of a receiver's thread.
pub(crate) const BUFFER: usize = 64;

/// `hmac = { secret = "...", header = "X-Eddy-Signature" }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverHmac {
    /// The shared secret.
    pub secret: String,
    /// The header carrying `sha256=<lower-case hex>` (default
    /// `X-Eddy-Signature`).
    #[serde(default)]
    pub header: Option<String>,
}

/// A receiver's configuration; `F` is its payload format (the `type`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct ReceiverConfig<F: Format> {
    /// Where to post (PagerDuty: defaults to the Events API v2 endpoint).
    #[serde(default)]
    pub url: Option<String>,
    /// PagerDuty: the integration's routing key.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// SMS: the recipients' numbers.
    #[serde(default)]
    pub to: Vec<String>,
    /// SMS: the request body, with `{to}` and `{text}` filled in.
    #[serde(default)]
    pub body: Option<String>,
    /// The body's content type (default `application/json`; an SMS form
    /// body: `application/x-www-form-urlencoded`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Extra headers of every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Signs each body with a shared secret.
    #[serde(default)]
    pub hmac: Option<ReceiverHmac>,
    /// Time-out of one request, connect to answer (default 10 s).
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Retries of `408`, `429`, `5xx` and network errors.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When to stop sending for a while after repeated failures.
    #[serde(default)]
    pub circuit_breaker: CircuitConfig,
    #[serde(skip)]
    format: PhantomData<F>,
}

impl<F: Format> ReceiverConfig<F> {
    fn url(&self) -> Result<String, String> {
        match (&self.url, F::DEFAULT_URL) {
            (Some(url), _) => expand_env(url),
            (None, Some(default)) => Ok(default.to_string()),
            (None, None) => Err("needs a `url`".into()),
        }
    }
}

impl<F: Format + 'static> SinkFactory for ReceiverConfig<F> {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let fail = |e: String| BuildError::Config(format!("receiver `{}`: {e}", cx.name));
        let url = self.url().map_err(fail)?;
        url.parse::<ureq::http::Uri>()
            .map_err(|e| fail(format!("bad url `{url}`: {e}")))?;
        let routing_key = self
            .routing_key
            .as_deref()
            .map(expand_env)
            .transpose()
            .map_err(fail)?;
        let content_type = self
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".into());
        let format = F::new(Settings {
            routing_key,
            to: self.to.clone(),
            body: self.body.clone(),
            form: content_type.contains("x-www-form-urlencoded"),
        })
        .map_err(fail)?;
        let mut headers = vec![("Content-Type".to_string(), content_type)];
        for (k, v) in &self.headers {
            headers.push((k.clone(), expand_env(v).map_err(fail)?));
        }
        let hmac = match &self.hmac {
            Some(h) => Some((
                h.header
                    .clone()
                    .unwrap_or_else(|| "X-Eddy-Signature".to_string()),
                expand_env(&h.secret).map_err(fail)?.into_bytes(),
            )),
            None => None,
        };
        let timeout = self.timeout.map_or(DEFAULT_TIMEOUT, |d| {
            Duration::from_millis(d.ms().max(1) as u64)
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let writer = Poster {
            agent,
            url,
            headers,
            hmac,
            format,
        };
        Ok(receiver_sink(writer, cx, self.retry, self.circuit_breaker))
    }

    fn buffer(&self) -> Option<usize> {
        Some(BUFFER)
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.url.is_none() && F::DEFAULT_URL.is_none() {
            out.push(
                Diagnostic::new(0..0, format!("a `{}` receiver needs a `url`", F::NAME))
                    .hint("url = \"https://hooks.example.com/...\""),
            );
        }
        if F::NEEDS_ROUTING_KEY != self.routing_key.is_some() {
            let message = if F::NEEDS_ROUTING_KEY {
                format!("a `{}` receiver needs a `routing_key`", F::NAME)
            } else {
                format!("`routing_key` is for `pagerduty`, not `{}`", F::NAME)
            };
            out.push(Diagnostic::new(0..0, message));
        }
        let templated = !self.to.is_empty() || self.body.is_some();
        if F::NEEDS_TEMPLATE && (self.to.is_empty() || self.body.is_none()) {
            out.push(
                Diagnostic::new(
                    0..0,
                    format!("a `{}` receiver needs `to` and `body`", F::NAME),
                )
                .hint("to = [\"+15551234567\"], body = \"To={to}&Body={text}\""),
            );
        } else if !F::NEEDS_TEMPLATE && templated {
            out.push(Diagnostic::new(
                0..0,
                format!("`to` and `body` are for `sms`, not `{}`", F::NAME),
            ));
        }
        out
    }
}

/// A receiver: `writer` behind the sinks' delivery layer, one
/// notification per delivery, sent as soon as it comes (staged until its
/// checkpoint completes when the run keeps checkpoints).
fn receiver_sink<W: Deliver + 'static>(
    writer: W,
    cx: &BuildContext,
    retry: RetryConfig,
    circuit: CircuitConfig,
) -> Box<dyn Sink> {
    let opts = DeliveryOptions {
        batch_size: 1,
        linger: Duration::ZERO,
        retry,
        circuit,
    };
    let staging = cx.exactly_once.then(|| Staging::new(cx));
    Box::new(Delivery::new(writer, &cx.name, opts, &cx.metrics).staged(staging))
}

/// Posts each notification, formatted, to one URL.
struct Poster<F: Format> {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    hmac: Option<(String, Vec<u8>)>,
    format: F,
}

impl<F: Format> Poster<F> {
    fn post(&self, body: &[u8], key: Option<&str>) -> Result<(), DeliveryError> {
        let mut request = ureq::http::Request::builder()
            .method("POST")
            .uri(self.url.as_str());
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some((header, secret)) = &self.hmac {
            request = request.header(header.as_str(), format!("sha256={}", sign(secret, body)));
        }
        let request = request
            .body(body)
            .map_err(|e| DeliveryError::Permanent(format!("cannot build the request: {e}")))?;
        match self.agent.run(request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                classify(status, &text)
            }
            Err(e) => Err(classify_error(e)),
        }
    }
}

impl<F: Format> Deliver for Poster<F> {
    fn deliver(&mut self, events: &[Event], key: Option<&str>) -> Result<Delivered, DeliveryError> {
        let mut delivered = Delivered::default();
        for (i, e) in events.iter().enumerate() {
            match self.format.bodies(e) {
                Ok(bodies) => {
                    for (n, body) in bodies.iter().enumerate() {
                        // A PagerDuty notification is one request per alert.
                        let key = key.map(|k| format!("{k}/{n}"));
                        self.post(body, key.as_deref())?;
                        delivered.bytes += body.len() as u64;
                    }
                }
                Err(reason) => delivered.rejected.push((i, reason)),
            }
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests;
