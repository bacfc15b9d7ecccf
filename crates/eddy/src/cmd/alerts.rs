//! `eddy alerts list|ack|silence|silences|unsilence`: the open alerts of
//! a running Eddy, and the acknowledgements and silences of its `notify`
//! nodes, through its server's API.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

/// What `eddy alerts` does.
#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Print the open alerts (pending and firing), most severe first.
    List(ListArgs),
    /// Acknowledge an alert: its escalation stops and it is not repeated
    /// until it resolves.
    Ack(AckArgs),
    /// Resolve an alert by hand: it resolves now, naming who did it; the
    /// condition met again raises a new one.
    Resolve(AckArgs),
    /// Silence the alerts matching every `--matcher` for a while.
    Silence(SilenceArgs),
    /// Print the silences (active, pending and recently expired).
    Silences(ServerArgs),
    /// End a silence now.
    Unsilence(UnsilenceArgs),
    /// Print what happened to alerts (transitions and acknowledgements),
    /// newest first, as JSON lines.
    History(HistoryArgs),
}

/// Arguments of `eddy alerts history`.
#[derive(Args)]
pub struct HistoryArgs {
    /// Only this alert.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Only this rule's alerts.
    #[arg(long)]
    alertname: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    server: ServerArgs,
}

/// Where the server is.
#[derive(Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The environment variable holding an API key, when the server needs one.
    #[arg(long)]
    api_key_env: Option<String>,
}

/// Arguments of `eddy alerts ack` and `eddy alerts resolve`.
#[derive(Args)]
pub struct AckArgs {
    /// The alert's fingerprint (`eddy alerts list --json` shows it).
    fingerprint: String,
    /// Who takes it on (or resolves it).
    #[arg(long)]
    by: Option<String>,
    /// What is being done (or was done).
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `eddy alerts silence`.
#[derive(Args)]
pub struct SilenceArgs {
    /// `label = "value"` (or `!=`, `=~`, `!~`); repeat for several, all must hold.
    #[arg(long = "matcher", required = true)]
    matchers: Vec<String>,
    /// How long, from now: `30m`, `2h`.
    #[arg(long, default_value = "1h")]
    duration: String,
    /// Who silences.
    #[arg(long)]
    by: Option<String>,
    /// Why.
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `eddy alerts unsilence`.
#[derive(Args)]
pub struct UnsilenceArgs {
    /// The silence's id (`eddy alerts silences` shows them).
    id: u64,
    #[command(flatten)]
    server: ServerArgs,
}

/// Arguments of `eddy alerts list`.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only `firing` or `pending` alerts.
    #[arg(long)]
    status: Option<String>,
    /// A CEL filter over each alert event, e.g. `severity == "critical"`.
    #[arg(long)]
    filter: Option<String>,
    /// Print the alert events as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `eddy alerts ...`.
pub fn run(command: AlertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlertsCommand::List(args) => list(&args),
        AlertsCommand::Ack(args) => {
            let body = serde_json::json!({ "by": args.by, "comment": args.comment });
            let path = format!("/api/v1/alerts/{}/ack", encode(&args.fingerprint));
            let doc = call(&args.server, "POST", &path, Some(body))?;
            println!(
                "acknowledged {} by {}",
                args.fingerprint,
                doc["acknowledged"]["by"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Resolve(args) => {
            let body = serde_json::json!({ "by": args.by, "comment": args.comment });
            let path = format!("/api/v1/alerts/{}/resolve", encode(&args.fingerprint));
            call(&args.server, "POST", &path, Some(body))?;
            println!("resolving {}", args.fingerprint);
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Silence(args) => {
            let body = serde_json::json!({
                "matchers": args.matchers,
                "duration": args.duration,
                "created_by": args.by,
                "comment": args.comment,
            });
            let doc = call(&args.server, "POST", "/api/v1/silences", Some(body))?;
            println!("silence {} until {}", doc["id"], doc["ends_at"]);
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Silences(server) => {
            let doc = call(&server, "GET", "/api/v1/silences", None)?;
            println!(
                "{:<4} {:<8} {:<13} {:<13} {:<40} COMMENT",
                "ID", "STATE", "FROM", "UNTIL", "MATCHERS"
            );
            for s in doc["silences"].as_array().into_iter().flatten() {
                let matchers: Vec<&str> = s["matchers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<4} {:<8} {:<13} {:<13} {:<40} {}",
                    s["id"],
                    s["state"].as_str().unwrap_or("?"),
                    s["starts_at"],
                    s["ends_at"],
                    matchers.join(", "),
                    s["comment"].as_str().unwrap_or(""),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::History(args) => {
            let mut query = vec![format!("limit={}", args.limit)];
            if let Some(f) = &args.fingerprint {
                query.push(format!("fingerprint={}", encode(f)));
            }
            if let Some(a) = &args.alertname {
                query.push(format!("alertname={}", encode(a)));
            }
            let path = format!("/api/v1/alerts/history?{}", query.join("&"));
            let doc = call(&args.server, "GET", &path, None)?;
            for entry in doc["history"].as_array().into_iter().flatten() {
                println!("{entry}");
            }
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Unsilence(args) => {
            let path = format!("/api/v1/silences/{}", args.id);
            call(&args.server, "DELETE", &path, None)?;
            println!("silence {} ended", args.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sends a request to the server and returns its JSON answer; an answer
/// other than 2xx is an error quoting the server's reason.
fn call(
    server: &ServerArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let base = server.url.trim_end_matches('/');
    let url = format!("{base}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(url.as_str())
        .header("content-type", "application/json");
    if let Some(var) = &server.api_key_env {
        let key = std::env::var(var)
            .with_context(|| format!("environment variable `{var}` is not set"))?;
        request = request.header("authorization", format!("Bearer {}", key.trim()));
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = request
        .body(payload.as_bytes())
        .with_context(|| format!("bad request to {url}"))?;
    let mut response = agent
        .run(request)
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("cannot read the answer of {url}"))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON"))?;
    if !(200..300).contains(&status) {
        let why = doc["error"].as_str().unwrap_or(&text);
        bail!("{url}: {status}: {why}");
    }
    Ok(doc)
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let mut query = Vec::new();
    if let Some(status) = &args.status {
        query.push(format!("status={}", encode(status)));
    }
    if let Some(filter) = &args.filter {
        query.push(format!("filter={}", encode(filter)));
    }
    let path = if query.is_empty() {
        "/api/v1/alerts".to_string()
    } else {
        format!("/api/v1/alerts?{}", query.join("&"))
    };
    let doc = call(&args.server, "GET", &path, None)?;
    let mut alerts = doc["alerts"].as_array().cloned().unwrap_or_default();
    let rank = |a: &Value| match a["severity"].as_str() {
        Some("critical") => 0,
        Some("high") => 1,
        Some("medium") => 2,
        Some("low") => 3,
        _ => 4,
    };
    alerts.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a["starts_at"].as_str().cmp(&b["starts_at"].as_str()))
    });
    if args.json {
        for a in &alerts {
            println!("{a}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<9} {:<8} {:<24} {:<30} {:<25} SUMMARY",
        "SEVERITY", "STATUS", "SINCE", "ALERT", "LABELS"
    );
    for a in &alerts {
        let labels: Vec<String> = a["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "alertname" && *k != "severity")
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<9} {:<8} {:<24} {:<30} {:<25} {}",
            a["severity"].as_str().unwrap_or("?"),
            a["status"].as_str().unwrap_or("?"),
            a["starts_at"].as_str().unwrap_or(""),
            a["alertname"].as_str().unwrap_or("?"),
            labels.join(","),
            a["annotations"]["summary"].as_str().unwrap_or(""),
        );
    }
    eprintln!("{} open alert(s)", alerts.len());
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
