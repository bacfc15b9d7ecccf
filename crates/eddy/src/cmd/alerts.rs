//! `eddy alerts list`: the open alerts of a running Eddy, read from its
//! server (`GET /api/v1/alerts`).

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

/// What `eddy alerts` does.
#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Print the open alerts (pending and firing), most severe first.
    List(ListArgs),
}

/// Arguments of `eddy alerts list`.
#[derive(Args)]
pub struct ListArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Only `firing` or `pending` alerts.
    #[arg(long)]
    status: Option<String>,
    /// A CEL filter over each alert event, e.g. `severity == "critical"`.
    #[arg(long)]
    filter: Option<String>,
    /// The environment variable holding an API key, when the server needs one.
    #[arg(long)]
    api_key_env: Option<String>,
    /// Print the alert events as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `eddy alerts ...`.
pub fn run(command: AlertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlertsCommand::List(args) => list(&args),
    }
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let base = args.url.trim_end_matches('/');
    let mut query = Vec::new();
    if let Some(status) = &args.status {
        query.push(format!("status={}", encode(status)));
    }
    if let Some(filter) = &args.filter {
        query.push(format!("filter={}", encode(filter)));
    }
    let url = if query.is_empty() {
        format!("{base}/api/v1/alerts")
    } else {
        format!("{base}/api/v1/alerts?{}", query.join("&"))
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.get(&url);
    if let Some(var) = &args.api_key_env {
        let key = std::env::var(var)
            .with_context(|| format!("environment variable `{var}` is not set"))?;
        request = request.header("authorization", &format!("Bearer {}", key.trim()));
    }
    let mut response = request
        .call()
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("cannot read the answer of {url}"))?;
    let doc: Value =
        serde_json::from_str(&body).with_context(|| format!("{url} did not answer JSON"))?;
    if status != 200 {
        let why = doc["error"].as_str().unwrap_or(&body);
        bail!("{url}: {status}: {why}");
    }
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
