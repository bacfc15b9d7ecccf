//! `type = "email"`: a notification as an e-mail over SMTP, with a text
//! and an HTML body.
//!
//! ```toml
//! [receivers.mail]
//! type = "email"
//! smtp = "smtp.example.com:587"
//! security = "starttls"               # starttls (default) | tls | none
//! from = "eddy@example.com"
//! to = ["oncall@example.com"]
//! username = "${SMTP_USER}"            # optional, with password
//! password = "${SMTP_PASSWORD}"
//! ```
//!
//! `starttls` and `tls` need Eddy built with the `tls` feature (rustls);
//! `none` sends in the clear, for a relay on the same machine. The subject
//! is the notification's title (`[FIRING:2] ops budget`). A temporary SMTP
//! failure (4xx, a lost connection) is retried; a permanent one (5xx)
//! dead-letters the notification.

use std::time::Duration;

use eddy_connectors::sinks::delivery::{
    CircuitConfig, Deliver, Delivered, DeliveryError, RetryConfig,
};
use eddy_connectors::sinks::http::expand_env;
use eddy_core::component::{BuildContext, BuildError, SinkFactory, ValidateContext};
use eddy_core::config::{Diagnostic, Duration as ConfigDuration};
use eddy_core::{Event, Sink};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use serde::Deserialize;

use super::formats::View;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Upgrade a plain connection with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine.
    None,
}

/// Configuration of an `email` receiver.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server, `host:port`.
    pub smtp: String,
    /// How the connection is protected (default `starttls`).
    #[serde(default)]
    pub security: Security,
    /// The sender, `eddy@example.com` or `Eddy <eddy@example.com>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// Login, with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Password, with `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Time-out of one delivery (default 10 s).
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Retries of temporary failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When to stop sending for a while after repeated failures.
    #[serde(default)]
    pub circuit_breaker: CircuitConfig,
}

impl EmailConfig {
    fn mailboxes(&self) -> Result<(Mailbox, Vec<Mailbox>), String> {
        let parse = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("bad address `{a}`: {e}"))
        };
        if self.to.is_empty() {
            return Err("needs at least one address in `to`".into());
        }
        let to = self.to.iter().map(|a| parse(a)).collect::<Result<_, _>>()?;
        Ok((parse(&self.from)?, to))
    }

    fn transport(&self) -> Result<SmtpTransport, String> {
        let (host, port) = self
            .smtp
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("`smtp = \"{}\"` is not host:port", self.smtp))?;
        let builder = match self.security {
            Security::None => SmtpTransport::builder_dangerous(host),
            #[cfg(feature = "tls")]
            Security::Starttls => SmtpTransport::starttls_relay(host).map_err(|e| e.to_string())?,
            #[cfg(feature = "tls")]
            Security::Tls => SmtpTransport::relay(host).map_err(|e| e.to_string())?,
            #[cfg(not(feature = "tls"))]
            Security::Starttls | Security::Tls => return Err(NO_TLS.into()),
        };
        let timeout = self.timeout.map_or(Duration::from_secs(10), |d| {
            Duration::from_millis(d.ms().max(1) as u64)
        });
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            builder =
                builder.credentials(Credentials::new(expand_env(user)?, expand_env(password)?));
        }
        Ok(builder.build())
    }
}

/// Why `starttls`/`tls` cannot work in this build.
#[cfg(not(feature = "tls"))]
const NO_TLS: &str = "`security = \"starttls\"` and `\"tls\"` need Eddy built with the `tls` feature; use `security = \"none\"` only for a relay on this machine";

impl SinkFactory for EmailConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let fail = |e: String| BuildError::Config(format!("receiver `{}`: {e}", cx.name));
        let (from, to) = self.mailboxes().map_err(fail)?;
        let mailer = Mailer {
            transport: self.transport().map_err(fail)?,
            from,
            to,
        };
        Ok(super::receiver_sink(
            mailer,
            cx,
            self.retry,
            self.circuit_breaker,
        ))
    }

    fn buffer(&self) -> Option<usize> {
        Some(super::BUFFER)
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if let Err(e) = self.mailboxes() {
            out.push(Diagnostic::new(0..0, e));
        }
        if self.username.is_some() != self.password.is_some() {
            out.push(Diagnostic::new(
                0..0,
                "`username` and `password` go together",
            ));
        }
        #[cfg(not(feature = "tls"))]
        if self.security != Security::None {
            out.push(Diagnostic::new(0..0, NO_TLS));
        }
        out
    }
}

/// Sends each notification as one message.
struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    fn message(&self, notification: &Event) -> Result<Message, String> {
        let v = View::of(notification)?;
        let title = v.title();
        let text = v.lines("- ").join("\n");
        let mut html = format!(
            "<h3 style=\"color:{}\">{}</h3><table>",
            v.colour(),
            escape(&title)
        );
        for a in &v.alerts {
            let status = format!("{}{}", a.status.shout(), a.by());
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            html.push_str(&format!(
                "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td><small>{}</small></td></tr>",
                escape(&status),
                escape(a.name()),
                escape(&a.summary()),
                escape(&labels.join(", "))
            ));
        }
        html.push_str("</table>");
        let mut builder = Message::builder().from(self.from.clone()).subject(title);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("cannot build the message: {e}"))
    }
}

/// `text` with `<`, `>` and `&` escaped for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Deliver for Mailer {
    fn deliver(
        &mut self,
        events: &[Event],
        _key: Option<&str>,
    ) -> Result<Delivered, DeliveryError> {
        let mut delivered = Delivered::default();
        for (i, e) in events.iter().enumerate() {
            let message = match self.message(e) {
                Ok(m) => m,
                Err(reason) => {
                    delivered.rejected.push((i, reason));
                    continue;
                }
            };
            let bytes = message.formatted().len() as u64;
            match self.transport.send(&message) {
                Ok(_) => delivered.bytes += bytes,
                Err(e) if e.is_permanent() => {
                    return Err(DeliveryError::Permanent(format!("SMTP: {e}")))
                }
                Err(e) => return Err(DeliveryError::Transient(format!("SMTP: {e}"))),
            }
        }
        Ok(delivered)
    }
}
