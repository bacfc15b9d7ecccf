//! Kafka helpers: `eddy topics apply`, `eddy produce` and `eddy tail`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use eddy_connectors::kafka::{apply_topics, Connection, TopicChange, TopicsFile};
use eddy_core::json::write_str;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

/// `eddy topics ...`.
#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create or update the topics of a `[topics.NAME]` file and report what changed.
    Apply(ApplyArgs),
}

/// Arguments of `eddy topics apply`.
#[derive(Args)]
pub struct ApplyArgs {
    /// The topics file.
    file: PathBuf,
    /// Bootstrap brokers (default: the file's `brokers`).
    #[arg(long)]
    brokers: Option<String>,
}

/// Applies a topics file; exit 1 if any topic could not be brought to spec.
pub fn topics(cmd: TopicsCommand) -> anyhow::Result<ExitCode> {
    let TopicsCommand::Apply(args) = cmd;
    let path = args.file.display().to_string();
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("cannot read topics file {path}"))?;
    let text = match eddy_core::config::config_text(&path, &bytes) {
        Ok(text) => text,
        Err(diags) => {
            eprint!("{diags}");
            return Ok(ExitCode::from(2));
        }
    };
    let file = match TopicsFile::parse(&path, text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(brokers) = args.brokers.or_else(|| file.brokers.clone()) else {
        bail!("{path}: no brokers: pass --brokers or set `brokers = \"host:port\"` in the file");
    };
    let changes = apply_topics(&Connection::plain(&brokers), &file).map_err(anyhow::Error::msg)?;
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for c in &changes {
        failed |= matches!(c, TopicChange::Failed { .. });
        // An error (a closed pipe) ends the command instead of panicking.
        writeln!(out, "{c}")?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Arguments of `eddy produce`.
#[derive(Args)]
pub struct ProduceArgs {
    /// Bootstrap brokers.
    #[arg(long)]
    brokers: String,
    /// Topic to write to (it must exist).
    #[arg(long)]
    topic: String,
    /// Produce simulator events with this scenario (`normal` for none,
    /// `budget_crisis`, `project_deadline_pressure`, `compliance_audit`,
    /// `market_volatility`, `burst`).
    #[arg(long, conflicts_with = "file")]
    simulator: Option<String>,
    /// Produce the JSON lines of this file instead.
    file: Option<PathBuf>,
    /// Events per second (simulator); default: flat out.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many events (simulator; a file stops at its end).
    #[arg(long)]
    events: Option<u64>,
    /// Record key, a CEL expression over the event (e.g. `department`).
    #[arg(long)]
    key: Option<String>,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Simulator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Do not print progress lines.
    #[arg(long, short)]
    quiet: bool,
}

/// Produces simulator events or a file's lines to a topic, through the
/// same pipeline machinery (and `kafka` sink) as `eddy run`.
pub fn produce(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let source = match (&args.simulator, &args.file) {
        (_, Some(path)) => format!(
            "type = \"file\"\npath = {}\n",
            toml_string(&path.display().to_string())
        ),
        (scenario, None) => {
            let mut s = String::from("type = \"simulator\"\n");
            match args.rate {
                Some(r) => s.push_str(&format!("rate = {r}\n")),
                None => s.push_str("fast = true\nrate = 1000\n"),
            }
            if let Some(n) = args.events {
                s.push_str(&format!("events = {n}\n"));
            }
            s.push_str(&format!("seed = {}\n", args.seed));
            match scenario.as_deref() {
                None | Some("normal") => {}
                Some(name) => s.push_str(&format!(
                    "scenarios = [{{ name = {} }}]\n",
                    toml_string(name)
                )),
            }
            s
        }
    };
    let key = args
        .key
        .as_deref()
        .map(|k| format!("key = {}\n", toml_string(k)))
        .unwrap_or_default();
    let text = format!(
        "[pipeline]\nworkers = 1\n\n[sources.input]\n{source}\n[sinks.kafka]\ntype = \"kafka\"\ninputs = [\"input\"]\nbrokers = {}\ntopic = {}\ncompression = {}\n{key}",
        toml_string(&args.brokers),
        toml_string(&args.topic),
        toml_string(&args.compression),
    );
    let plan = match super::compile("eddy produce", &text) {
        Ok(p) => p,
        Err(diags) => bail!("invalid arguments:\n{diags}"),
    };
    super::run::execute(
        &plan,
        super::run::Execution {
            workers: Some(1),
            progress: !args.quiet,
            ..Default::default()
        },
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_str(&mut out, s);
    String::from_utf8_lossy(&out).into_owned()
}

/// Arguments of `eddy tail`.
#[derive(Args)]
pub struct TailArgs {
    /// Bootstrap brokers.
    #[arg(long)]
    brokers: String,
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Consumer group (default: a fresh one, so every record is shown).
    #[arg(long)]
    group: Option<String>,
    /// Where to start without committed offsets: earliest or latest.
    #[arg(long, default_value = "earliest")]
    from: String,
    /// Print topic, partition, offset, timestamp, key and headers too.
    #[arg(long, short)]
    verbose: bool,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// Stop after this many seconds without a record.
    #[arg(long, value_parser = super::parse_seconds)]
    idle_exit: Option<Duration>,
}

/// Prints one record per line until interrupted.
pub fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    if args.from != "earliest" && args.from != "latest" {
        bail!("--from must be `earliest` or `latest`, not `{}`", args.from);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the Ctrl-C handler")?;
    }
    let group = args.group.clone().unwrap_or_else(|| {
        format!(
            "eddy-tail-{}-{}",
            std::process::id(),
            eddy_core::time::now_ms()
        )
    });
    let mut cc: ClientConfig = Connection::plain(&args.brokers).client_config();
    cc.set("group.id", &group)
        .set("auto.offset.reset", &args.from)
        .set(
            "enable.auto.commit",
            if args.group.is_some() {
                "true"
            } else {
                "false"
            },
        );
    let consumer: BaseConsumer = cc.create().context("cannot create a consumer")?;
    consumer
        .subscribe(&[args.topic.as_str()])
        .with_context(|| format!("cannot subscribe to {}", args.topic))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut seen = 0u64;
    let mut last = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) && args.max.is_none_or(|m| seen < m) {
        if args.idle_exit.is_some_and(|idle| last.elapsed() >= idle) {
            break;
        }
        let msg = match consumer.poll(Duration::from_millis(100)) {
            None => {
                out.flush()?;
                continue;
            }
            Some(Err(e)) => {
                eprintln!("warning: {e}");
                continue;
            }
            Some(Ok(m)) => m,
        };
        last = std::time::Instant::now();
        seen += 1;
        let value = String::from_utf8_lossy(msg.payload().unwrap_or_default());
        if args.verbose {
            let mut line = Vec::new();
            line.extend_from_slice(b"{\"topic\":");
            write_str(&mut line, msg.topic());
            line.extend_from_slice(
                format!(
                    ",\"partition\":{},\"offset\":{},\"timestamp\":{},\"key\":",
                    msg.partition(),
                    msg.offset(),
                    msg.timestamp().to_millis().unwrap_or(-1)
                )
                .as_bytes(),
            );
            match msg.key() {
                Some(k) => write_str(&mut line, &String::from_utf8_lossy(k)),
                None => line.extend_from_slice(b"null"),
            }
            line.extend_from_slice(b",\"headers\":{");
            if let Some(h) = msg.headers() {
                for (i, header) in h.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    write_str(&mut line, header.key);
                    line.push(b':');
                    match header.value {
                        Some(v) => write_str(&mut line, &String::from_utf8_lossy(v)),
                        None => line.extend_from_slice(b"null"),
                    }
                }
            }
            line.extend_from_slice(b"},\"value\":");
            write_str(&mut line, &value);
            line.push(b'}');
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{value}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
