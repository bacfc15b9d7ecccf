//! Where the libraries' `tracing` events and spans go: one line per event
//! on stderr, at the level `EDDY_LOG` names (`error`, `warn`, `info`
//! (default), `debug`, `trace`, `off`), as text or, with `--log-format
//! json`, as one JSON object per line (`timestamp`, `level`,
//! `fields.message` and the event's other fields) for log collectors.
//!
//! With an OTLP endpoint (`--otlp-endpoint URL`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
//! spans also go there over OTLP/HTTP with JSON bodies, in batches, with
//! `service.name = eddy`: the run, each stored checkpoint, each HTTP
//! request the server answers and each batch a network sink or alert
//! receiver delivers, with the events logged inside them. Their integer
//! fields are recorded as `i64`: the exporter writes unsigned ones as text.

use std::future::Future;
use std::pin::Pin;

use clap::ValueEnum;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Plain text, one line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The variable that sets the log level.
const LEVEL_VAR: &str = "EDDY_LOG";

/// The standard variables that turn span export on without the flag.
const OTLP_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Keeps span export going; flushes what is buffered when dropped.
pub struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: exporting the last spans failed: {e}");
            }
        }
    }
}

/// Installs the stderr subscriber for the whole process and, with an OTLP
/// endpoint (`otlp`, the base URL: `/v1/traces` is added), the span
/// exporter. An unknown level keeps the default and says so; an exporter
/// that cannot be built is reported and left out.
pub fn init(format: LogFormat, otlp: Option<&str>) -> Guard {
    let raw = std::env::var(LEVEL_VAR).ok();
    let parsed = raw.as_deref().map(|v| v.trim().parse::<LevelFilter>());
    let level = match &parsed {
        Some(Ok(level)) => *level,
        _ => LevelFilter::INFO,
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let lines = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().boxed(),
    };
    let wanted = otlp.is_some() || OTLP_VARS.iter().any(|v| std::env::var_os(v).is_some());
    let (provider, failed) = match wanted.then(|| exporter(otlp)) {
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let spans = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("eddy")));
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(level))
        .with(spans.with_filter(level))
        .try_init()
        .is_ok();
    if installed {
        if let (Some(Err(_)), Some(raw)) = (parsed, raw) {
            tracing::warn!(
                value = %raw,
                "{LEVEL_VAR} is not one of error, warn, info, debug, trace, off; using info"
            );
        }
        if let Some(e) = failed {
            tracing::warn!("spans are not exported: {e}");
        }
    }
    Guard(provider)
}

/// The tracer provider sending spans to `base` + `/v1/traces` (or where
/// the standard variables say), batched.
fn exporter(base: Option<&str>) -> Result<SdkTracerProvider, String> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_http_client(Ureq {
            agent: ureq::Agent::new_with_defaults(),
            failing: Default::default(),
        });
    if let Some(base) = base {
        let url = format!("{}/v1/traces", base.trim_end_matches('/'));
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build().map_err(|e| format!("OTLP endpoint: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("eddy")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The OTLP exporter's HTTP client: the blocking ureq agent the sinks
/// use. The SDK calls it from its own export thread, where blocking is
/// fine. A failing collector is reported once, and its recovery once.
#[derive(Debug)]
struct Ureq {
    agent: ureq::Agent,
    failing: std::sync::atomic::AtomicBool,
}

type Sent<'a> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'a>>;

impl HttpClient for Ureq {
    fn send_bytes<'a, 'b>(&'a self, request: Request<Bytes>) -> Sent<'b>
    where
        'a: 'b,
    {
        Box::pin(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let (parts, body) = request.into_parts();
            let uri = parts.uri.clone();
            let request = Request::from_parts(parts, body.to_vec());
            match self.agent.run(request) {
                Ok(mut response) => {
                    if self.failing.swap(false, Relaxed) {
                        tracing::info!("spans reach {uri} again");
                    }
                    let status = response.status();
                    let body = response.body_mut().read_to_vec()?;
                    Ok(Response::builder().status(status).body(Bytes::from(body))?)
                }
                Err(e) => {
                    // Outside any span, so this line is not exported itself.
                    if !self.failing.swap(true, Relaxed) {
                        tracing::warn!("spans cannot be exported to {uri}: {e}; they are dropped until it answers");
                    }
                    Err(e.into())
                }
            }
        })
    }
}
