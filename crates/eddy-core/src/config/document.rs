//! Splitting a pipeline file into components, with environment overrides.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::{deserialize_body, Diagnostic, Spanned};
use crate::limits::Limits;

/// The sections a pipeline file may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// `[sources.NAME]`
    Sources,
    /// `[transforms.NAME]`
    Transforms,
    /// `[sinks.NAME]`
    Sinks,
    /// `[alerts.NAME]`
    Alerts,
    /// `[receivers.NAME]`
    Receivers,
}

impl Section {
    /// The table name in the file.
    pub fn key(self) -> &'static str {
        match self {
            Section::Sources => "sources",
            Section::Transforms => "transforms",
            Section::Sinks => "sinks",
            Section::Alerts => "alerts",
            Section::Receivers => "receivers",
        }
    }

    const ALL: [Section; 5] = [
        Section::Sources,
        Section::Transforms,
        Section::Sinks,
        Section::Alerts,
        Section::Receivers,
    ];
}

/// Pipeline-wide settings from the optional `[pipeline]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// A name for logs and metrics.
    #[serde(default)]
    pub name: Option<String>,
    /// Worker threads (default: the number of cores).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Maximum events per batch read from a source (default 1024).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Directory for state, checkpoints and default outputs (default `./data`).
    #[serde(default)]
    pub data_dir: Option<String>,
    /// How often to take a checkpoint (default 5 s): source offsets are
    /// committed once everything before the checkpoint reached the sinks.
    #[serde(default)]
    pub checkpoint_interval: Option<crate::config::Duration>,
    /// Memory for the state of each operator instance (`"64MiB"`); state
    /// beyond it spills to an embedded store under `data_dir`. Unset, all
    /// state stays in memory. Tumbling and sliding windows spill; other
    /// operators keep their state in memory.
    #[serde(default)]
    pub state_memory: Option<crate::config::ByteSize>,
    /// Resource bounds (`[pipeline.limits]`), each with a default.
    #[serde(default)]
    pub limits: Limits,
}

/// `[server]`: serve the REST API, the WebSocket feed, Prometheus metrics
/// and the dashboard while the pipeline runs.
///
/// ```toml
/// [server]
/// listen = "127.0.0.1:8080"
/// api_keys = [{ name = "ops", key_env = "EDDY_OPS_KEY", role = "operator" }]
/// rate_limit = { per_second = 20, burst = 40 }
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port to listen on (default `127.0.0.1:8080`; port 0
    /// picks a free one).
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// API keys; with any, every path but `/healthz` needs one.
    #[serde(default)]
    pub api_keys: Vec<ApiKeySettings>,
    /// Requests per key (per client address without a key) and second.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    /// An NDJSON file recording changes, live-feed sessions and refused
    /// requests.
    #[serde(default)]
    pub audit_log: Option<std::path::PathBuf>,
    /// JSON Web Tokens (HS256 or RS256) accepted besides the API keys.
    #[serde(default)]
    pub jwt: Option<JwtSettings>,
    /// Serve HTTPS with this certificate and key.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

/// The server's certificate and key, PEM files.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain (the server's certificate first).
    pub certificate: std::path::PathBuf,
    /// Its private key.
    pub key: std::path::PathBuf,
}

/// How the server checks JSON Web Tokens: HS256 with a shared secret, or
/// RS256 with the issuer's public key (exactly one of the two).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// HS256: the environment variable holding the shared secret (at
    /// least 32 bytes).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// RS256: a PEM file with the issuer's RSA public key (at least 2048
    /// bits).
    #[serde(default)]
    pub public_key: Option<std::path::PathBuf>,
    /// Required issuer (`iss`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required audience (`aud`).
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim holding the role (default `role`).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Tolerated clock skew in seconds (default 30).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: i64,
}

fn default_role_claim() -> String {
    "role".into()
}

fn default_leeway() -> i64 {
    30
}

/// One API key: its secret is read from an environment variable, so it is
/// never written in the pipeline file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// A name for logs.
    pub name: String,
    /// The environment variable holding the key.
    pub key_env: String,
    /// What it may do.
    pub role: Role,
    /// The live-feed channels it may read (`metrics`, `alerts`,
    /// `node:NAME`; a trailing `*` matches any rest, as `node:kpi_*`);
    /// unset: every channel.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// What a key may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: the dashboard, the API, the feed, metrics.
    Viewer,
    /// Also ingest events.
    Operator,
    /// Everything.
    Admin,
}

/// A token bucket per key or client address.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per second, on average.
    pub per_second: f64,
    /// Requests at once after a quiet spell.
    pub burst: f64,
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Largest `[pipeline] batch_size`: a source preallocates room for one
/// batch, and more than this gains no throughput.
pub const MAX_BATCH_SIZE: usize = 1_000_000;

impl PipelineSettings {
    /// Checks values that deserialisation accepts but the runtime cannot
    /// honour; `table` is the `[pipeline]` table, for positions.
    fn check(&self, table: &Spanned<DeValue<'_>>) -> Vec<Diagnostic> {
        let span = |key: &str| key_span(table, key);
        let mut diags = Vec::new();
        if let Some(w) = self.workers {
            if let Some(message) = check_workers(w, &self.limits) {
                diags.push(
                    Diagnostic::new(span("workers"), message)
                        .hint(Limits::raise_hint("max_workers")),
                );
            }
        }
        if let Some(b) = self.batch_size {
            if b == 0 || b > MAX_BATCH_SIZE {
                diags.push(
                    Diagnostic::new(
                        span("batch_size"),
                        format!("`batch_size` must be within 1..={MAX_BATCH_SIZE}, got {b}"),
                    )
                    .hint("the default, 1024, suits most pipelines"),
                );
            }
        }
        diags
    }
}

/// The span of `key`'s value in `table`, or of the table if it is absent.
fn key_span(table: &Spanned<DeValue<'_>>, key: &str) -> Range<usize> {
    match table.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map_or(table.span(), |(_, v)| v.span()),
        _ => table.span(),
    }
}

/// Why `workers` cannot run under `limits`, if it cannot.
pub fn check_workers(workers: usize, limits: &Limits) -> Option<String> {
    if workers == 0 {
        return Some("`workers` must be at least 1".into());
    }
    (workers > limits.max_workers).then(|| {
        format!(
            "{workers} workers exceed the limit of {} (`[pipeline.limits] max_workers`)",
            limits.max_workers
        )
    })
}

/// One `[section.NAME]` table.
#[derive(Clone, Debug)]
pub struct ComponentDoc<'i> {
    /// Which section it is in.
    pub section: Section,
    /// Its name.
    pub name: String,
    /// Span of the component's name in its header.
    pub name_span: Range<usize>,
    /// `type = "..."`, if given.
    pub kind: Option<Spanned<String>>,
    /// `inputs = [...]`, each with its span.
    pub inputs: Vec<Spanned<String>>,
    /// The rest of the table.
    pub body: Spanned<DeValue<'i>>,
}

/// A parsed pipeline file.
#[derive(Clone, Debug, Default)]
pub struct PipelineDoc<'i> {
    /// `[pipeline]` settings.
    pub settings: PipelineSettings,
    /// Every component, in file order per section.
    pub components: Vec<ComponentDoc<'i>>,
    /// `[checkpoint]` settings, if checkpoints are durable.
    pub checkpoint: Option<super::CheckpointSettings>,
    /// `[server]` settings, if the run serves its API and dashboard.
    pub server: Option<ServerSettings>,
}

/// Parses a pipeline file. `env` holds `(NAME, VALUE)` pairs; those starting
/// with `EDDY_` override values (`EDDY_SOURCES__TX__PATH=...`). Returns the
/// document and every problem found (syntax, unknown sections, bad
/// `type`/`inputs` shapes).
pub fn parse_document<'i>(
    text: &'i str,
    env: &'i [(String, String)],
) -> (PipelineDoc<'i>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let (root, errors) = DeTable::parse_recoverable(text);
    for e in &errors {
        diags.push(Diagnostic::from_toml(e, 0..0).hint("fix the TOML syntax at this position"));
    }
    if !errors.is_empty() {
        return (PipelineDoc::default(), diags);
    }
    let root_span = root.span();
    let mut root = root.into_inner();
    apply_env(&mut root, env, &mut diags);

    let mut doc = PipelineDoc::default();
    for (key, value) in root.iter() {
        let name: &str = key.get_ref();
        if name == "pipeline" {
            match deserialize_body::<PipelineSettings>(value) {
                Ok(s) => {
                    diags.extend(s.check(value));
                    doc.settings = s;
                }
                Err(d) => diags.push(d),
            }
            continue;
        }
        if name == "server" {
            match deserialize_body::<ServerSettings>(value) {
                Ok(s) => doc.server = Some(s),
                Err(d) => diags.push(d),
            }
            continue;
        }
        if name == "checkpoint" {
            match deserialize_body::<super::CheckpointSettings>(value) {
                Ok(s) => {
                    for (key, message, hint) in s.problems() {
                        diags.push(Diagnostic::new(key_span(value, key), message).hint(hint));
                    }
                    doc.checkpoint = Some(s);
                }
                Err(d) => diags.push(d),
            }
            continue;
        }
        let Some(section) = Section::ALL.into_iter().find(|s| s.key() == name) else {
            let mut d = Diagnostic::new(key.span(), format!("unknown section `{name}`"));
            d.hint = Some(
                match super::closest(
                    name,
                    &[
                        "sources",
                        "transforms",
                        "sinks",
                        "alerts",
                        "receivers",
                        "pipeline",
                        "checkpoint",
                        "server",
                    ],
                ) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => {
                        "sections are sources, transforms, sinks, alerts, receivers, pipeline, checkpoint and server"
                            .into()
                    }
                },
            );
            diags.push(d);
            continue;
        };
        let DeValue::Table(table) = value.get_ref() else {
            diags.push(
                Diagnostic::new(
                    value.span(),
                    format!("`{name}` must be a table of named components"),
                )
                .hint(format!("write `[{name}.NAME]` headers")),
            );
            continue;
        };
        for (cname, body) in table.iter() {
            match component(section, cname, body) {
                Ok(c) => doc.components.push(c),
                Err(d) => diags.push(d),
            }
        }
    }
    if doc.components.is_empty() && diags.is_empty() {
        diags.push(
            Diagnostic::new(
                root_span.start..root_span.start,
                "the pipeline has no components",
            )
            .hint("add at least one `[sources.NAME]` and one `[sinks.NAME]`"),
        );
    }
    (doc, diags)
}

fn component<'i>(
    section: Section,
    name: &Spanned<std::borrow::Cow<'i, str>>,
    body: &Spanned<DeValue<'i>>,
) -> Result<ComponentDoc<'i>, Diagnostic> {
    let DeValue::Table(table) = body.get_ref() else {
        return Err(Diagnostic::new(
            body.span(),
            format!("`{}.{}` must be a table", section.key(), name.get_ref()),
        )
        .hint(format!(
            "write `[{}.{}]` followed by its settings",
            section.key(),
            name.get_ref()
        )));
    };
    if name.get_ref().contains('.') || name.get_ref().is_empty() {
        return Err(Diagnostic::new(
            name.span(),
            format!(
                "component name `{}` must be non-empty and contain no dots",
                name.get_ref()
            ),
        )
        .hint("dots address side outputs (`NAME.late`); use `_` or `-` instead"));
    }
    let mut rest = table.clone();
    let mut kind = None;
    let mut inputs = Vec::new();
    let mut keep = DeTable::default();
    for (k, v) in std::mem::take(&mut rest) {
        match k.get_ref().as_ref() {
            "type" => match v.get_ref() {
                DeValue::String(s) => kind = Some(Spanned::new(v.span(), s.to_string())),
                _ => {
                    return Err(Diagnostic::new(v.span(), "`type` must be a string")
                        .hint("e.g. type = \"filter\""))
                }
            },
            "inputs" => match v.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::String(s) => {
                                inputs.push(Spanned::new(item.span(), s.to_string()))
                            }
                            _ => {
                                return Err(Diagnostic::new(
                                    item.span(),
                                    "each input must be a component name string",
                                )
                                .hint("e.g. inputs = [\"tx\", \"window.late\"]"))
                            }
                        }
                    }
                }
                _ => {
                    return Err(
                        Diagnostic::new(v.span(), "`inputs` must be an array of names")
                            .hint("e.g. inputs = [\"tx\"]"),
                    )
                }
            },
            _ => {
                keep.insert(k, v);
            }
        }
    }
    Ok(ComponentDoc {
        section,
        name: name.get_ref().to_string(),
        name_span: name.span(),
        kind,
        inputs,
        body: Spanned::new(body.span(), DeValue::Table(keep)),
    })
}

/// Applies `EDDY_A__B__C=value` overrides. A value that parses as a TOML
/// value (number, boolean, array, inline table, quoted string) is used as
/// such, anything else as a plain string.
fn apply_env<'i>(root: &mut DeTable<'i>, env: &'i [(String, String)], diags: &mut Vec<Diagnostic>) {
    for (name, value) in env {
        let Some(path) = name.strip_prefix("EDDY_") else {
            continue;
        };
        let path: Vec<String> = path.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.len() < 2 || path.iter().any(String::is_empty) {
            continue;
        }
        let parsed = match DeValue::parse(value) {
            Ok(v) => v.into_inner(),
            Err(_) => DeValue::String(value.as_str().into()),
        };
        if let Err(msg) = set_path(root, &path, parsed) {
            diags.push(
                Diagnostic::new(0..0, format!("environment variable {name}: {msg}"))
                    .hint("EDDY_ overrides address tables with `__`, e.g. EDDY_SOURCES__TX__PATH"),
            );
        }
    }
}

/// Why an `EDDY_` override cannot be placed in the document.
#[derive(Debug, thiserror::Error)]
enum OverrideError {
    /// The variable names no key.
    #[error("empty path")]
    EmptyPath,
    /// A step of the path holds a value, not a table.
    #[error("`{0}` is not a table")]
    NotATable(String),
    /// The table just made could not be found again (a bug).
    #[error("table insert failed")]
    Lost,
}

fn set_path<'i>(
    table: &mut DeTable<'i>,
    path: &[String],
    value: DeValue<'i>,
) -> Result<(), OverrideError> {
    let (first, rest) = path.split_first().ok_or(OverrideError::EmptyPath)?;
    let existing = table
        .iter_mut()
        .find(|(k, _)| k.get_ref().as_ref() == first.as_str())
        .map(|(_, v)| v);
    if rest.is_empty() {
        match existing {
            Some(slot) => {
                let span = slot.span();
                *slot = Spanned::new(span, value);
            }
            None => {
                table.insert(
                    Spanned::new(0..0, first.clone().into()),
                    Spanned::new(0..0, value),
                );
            }
        }
        return Ok(());
    }
    let slot = match existing {
        Some(slot) => slot,
        None => {
            table.insert(
                Spanned::new(0..0, first.clone().into()),
                Spanned::new(0..0, DeValue::Table(DeTable::default())),
            );
            table
                .iter_mut()
                .find(|(k, _)| k.get_ref().as_ref() == first.as_str())
                .map(|(_, v)| v)
                .ok_or(OverrideError::Lost)?
        }
    };
    match slot.get_mut() {
        DeValue::Table(t) => set_path(t, rest, value),
        _ => Err(OverrideError::NotATable(first.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::line_col;

    const FILE: &str = r#"
[sources.tx]
type = "file"
path = "a.ndjson"

[transforms.big]
type = "filter"
inputs = ["tx"]
condition = "amount > 10"

[sinks.out]
type = "stdout"
inputs = ["big", "big.dead_letters"]
"#;

    #[test]
    fn splits_components_with_spans() {
        let (doc, diags) = parse_document(FILE, &[]);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(doc.components.len(), 3);
        let sink = &doc.components[2];
        assert_eq!(sink.section, Section::Sinks);
        assert_eq!(
            sink.kind.as_ref().map(|k| k.get_ref().as_str()),
            Some("stdout")
        );
        assert_eq!(sink.inputs[1].get_ref(), "big.dead_letters");
        assert_eq!(line_col(FILE, sink.inputs[1].span().start), (13, 18));
    }

    #[test]
    fn unknown_sections_and_syntax_errors_have_positions() {
        let (_, diags) = parse_document("[sorces.a]\ntype = \"file\"\n", &[]);
        assert_eq!(diags[0].message, "unknown section `sorces`");
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `sources`?"));
        let text = "[sources.a]\ntype = \n";
        let (_, diags) = parse_document(text, &[]);
        assert_eq!(line_col(text, diags[0].span.start).0, 2);
    }

    #[test]
    fn environment_overrides_values_and_creates_tables() {
        let env = vec![
            ("EDDY_SOURCES__TX__PATH".to_string(), "b.ndjson".to_string()),
            ("EDDY_PIPELINE__WORKERS".to_string(), "3".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let (doc, diags) = parse_document(FILE, &env);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(doc.settings.workers, Some(3));
        let DeValue::Table(t) = doc.components[0].body.get_ref() else {
            panic!()
        };
        let path = t
            .iter()
            .find(|(k, _)| k.get_ref() == "path")
            .map(|(_, v)| v.get_ref().clone());
        assert!(matches!(path, Some(DeValue::String(s)) if s == "b.ndjson"));
    }
}
