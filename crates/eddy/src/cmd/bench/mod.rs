//! `eddy bench`: Nexmark queries through the real pipeline machinery.
//!
//! Each query is an ordinary pipeline (the same config text a user could
//! write) fed by the `nexmark` source or, with `--source file`, by the `file`
//! source reading an NDJSON file of bids generated beforehand (untimed), and
//! ending in a `blackhole` sink. Throughput counts the events read by the
//! source; latency is measured by the runtime from the source read of a batch
//! to its sink write.
//!
//! `eddy bench kafka` measures consume + window + produce through a broker
//! against a plain librdkafka consume (see [`kafka`]).
//!
//! `eddy bench enrich` measures the sentiment scorer's accuracy and the
//! enrichment stages' speed (see [`enrich`]).
//!
//! `eddy bench redis` measures the `redis` sink's pipelined `XADD`s against
//! `redis-benchmark` on the same server (see [`redis`]).
//!
//! `eddy bench spill` runs millions of keys of window state under a memory
//! budget against the same run in memory (see [`spill`]).
//!
//! `eddy bench alerting` measures how long an alert takes from its event to
//! a local webhook, and memory with 10,000 alerts firing (see
//! [`alerting`]).
//!
//! `eddy bench ingest` measures HTTP ingest against the file source on the
//! same events (see [`ingest`]).
//!
//! `eddy bench websocket` fans the live feed out to many WebSocket clients
//! and measures delivery latency and server memory (see [`websocket`]).

mod alerting;
mod baseline;
mod enrich;
mod ingest;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod serve;
mod spill;
mod websocket;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use eddy_connectors::sources::nexmark::{NexmarkGenerator, NexmarkKind};
use eddy_connectors::sources::NexmarkConfig;
use eddy_runtime::{Plan, RunOptions, RunReport};

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Nexmark queries q0, q1, q2, q5, q7.
    Nexmark(NexmarkArgs),
    /// Accuracy and speed of the enrichment stages (sentiment, redact).
    Enrich(enrich::EnrichArgs),
    /// Stream entries/s written by the `redis` sink, against `redis-benchmark`.
    #[cfg(feature = "redis")]
    Redis(redis::RedisArgs),
    /// Kafka consume + window + produce, against a plain librdkafka consume.
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaArgs),
    /// The `postgres` sink (COPY, upsert) against `psql` on the same rows.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PostgresArgs),
    /// Window state far beyond a memory budget against all in memory.
    Spill(spill::SpillArgs),
    /// Alert latency from event to webhook, and memory with 10,000 alerts
    /// firing.
    Alerting(alerting::AlertingArgs),
    /// HTTP ingest into a blackhole against the file source, same events.
    Ingest(ingest::IngestArgs),
    /// The WebSocket feed fanned out to many clients: delivery latency and
    /// server memory.
    Websocket(websocket::WebsocketArgs),
}

/// Where the benchmark's bids come from.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BenchSource {
    /// The built-in generator, producing events directly.
    Generator,
    /// An NDJSON file written before the timed run (measures JSON decoding).
    File,
}

/// Arguments of `eddy bench nexmark`.
#[derive(Args)]
pub struct NexmarkArgs {
    /// The query: q0 (pass-through), q1 (currency conversion), q2 (selection),
    /// q5 (hot items, sliding windows), q7 (highest bid, tumbling windows),
    /// a (per-auction count and highest price in 10 s tumbling windows), b
    /// (the auction with the most bids per 10 s window sliding by 2 s),
    /// state (count and sum per auction and bidder in one day-long window:
    /// many keys of window state, for checkpoint figures), alerts (an alert
    /// rule over every bid, 10,000 alert instances), anomaly-METHOD
    /// (an anomaly detector on each bid's price, 10,000 keys).
    #[arg(long, short)]
    query: String,
    /// Events to generate.
    #[arg(long, short, default_value_t = 10_000_000)]
    events: u64,
    /// Worker threads.
    #[arg(long, short, default_value_t = 1)]
    workers: usize,
    /// Throttle the generator to this many events/s (for latency at a set load).
    #[arg(long)]
    rate: Option<u64>,
    /// Event-time rate of the generator (events per second of event time).
    #[arg(long, default_value_t = 100_000)]
    event_rate: u64,
    /// Read bids from a generated NDJSON file instead of the generator.
    #[arg(long, value_enum, default_value_t = BenchSource::Generator)]
    source: BenchSource,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Take durable checkpoints this often (seconds), into a temporary
    /// directory, and report their figures.
    #[arg(long, value_parser = super::parse_seconds)]
    checkpoint_interval: Option<Duration>,
    /// Serve the API and live feed during the run, with `--clients`
    /// WebSocket clients subscribed to the `metrics` channel and the
    /// query's results.
    #[arg(long)]
    serve: bool,
    /// WebSocket clients with `--serve`.
    #[arg(long, default_value_t = 100, requires = "serve")]
    clients: usize,
    /// With `--serve`: subscribe the clients to every node's output, the
    /// raw events included (the worst case).
    #[arg(long, requires = "serve")]
    subscribe_all: bool,
}

/// Keeps the bids of the Nexmark stream.
const BIDS: &str = r#"
[transforms.bids]
type = "filter"
inputs = ["nexmark"]
condition = 'type == "bid"'
"#;

/// The pipeline for `query` after the source `nexmark`.
fn query_pipeline(query: &str) -> anyhow::Result<String> {
    let after_bids = match query {
        "q0" => return Ok(String::new()),
        "q2" => {
            return Ok(r#"
[transforms.q2]
type = "filter"
inputs = ["nexmark"]
condition = 'type == "bid" && auction % 123 == 0'
"#
            .to_string())
        }
        "q1" => {
            r#"
[transforms.q1]
type = "map"
inputs = ["bids"]
set = { price = "double(price) * 0.908" }
"#
        }
        "q5" => {
            r#"
[transforms.q5]
type = "window"
inputs = ["bids"]
key = "auction"
window = { sliding = "10s", every = "2s" }
aggregates = { num = "count()" }
top = { n = 1, by = "num" }
"#
        }
        "a" => {
            r#"
[transforms.a]
type = "window"
inputs = ["bids"]
key = "auction"
window = { tumbling = "10s" }
aggregates = { n = "count()", max_price = "max(price)" }
"#
        }
        "b" => {
            r#"
[transforms.b]
type = "window"
inputs = ["bids"]
key = "auction"
window = { sliding = "10s", every = "2s" }
aggregates = { n = "count()" }
top = { n = 1, by = "n" }
"#
        }
        "q7" => {
            r#"
[transforms.q7]
type = "window"
inputs = ["bids"]
window = { tumbling = "10s" }
aggregates = { price = "max(price)", auction = "max_by(auction, price)", bidder = "max_by(bidder, price)" }
"#
        }
        "state" => {
            r#"
[transforms.state]
type = "window"
inputs = ["bids"]
key = ["auction", "bidder"]
window = { tumbling = "1d" }
aggregates = { n = "count()", total = "sum(price)" }
"#
        }
        "alerts" => {
            r#"
[alerts.alerts]
inputs = ["bids"]
condition = "price > 1000000"
key = "auction % 10000"
severity = "high"
resolve_after = "10s"
labels = { auction = "{auction % 10000}" }
annotations = { summary = "bid of {price} on {auction}" }
"#
        }
        q if q.starts_with("anomaly-") => {
            let method = &q["anomaly-".len()..];
            method
                .parse::<eddy_anomaly::Method>()
                .map_err(|e| anyhow::anyhow!("query `{q}`: {e}"))?;
            return Ok(format!(
                r#"{BIDS}
[transforms.anomaly]
type = "anomaly"
inputs = ["bids"]
key = "auction % 10000"
field = "price"
method = "{method}"
"#
            ));
        }
        other => bail!(
            "unknown query `{other}`: use q0, q1, q2, q5, q7, a, b, state, alerts or anomaly-METHOD (anomaly-ewma, anomaly-ensemble, ...)"
        ),
    };
    Ok(format!("{BIDS}{after_bids}"))
}

/// Builds the whole pipeline text for a run.
fn pipeline_text(
    args: &NexmarkArgs,
    file: Option<&Path>,
    checkpoints: &Path,
) -> anyhow::Result<String> {
    let body = query_pipeline(&args.query)?;
    let last = match args.query.as_str() {
        "q0" => "nexmark",
        q if q.starts_with("anomaly-") => "anomaly",
        q => q,
    };
    let source = match file {
        Some(path) => format!(
            "[sources.nexmark]\ntype = \"file\"\npath = {:?}\nevent_time = {{ field = \"date_time\", format = \"epoch_ms\" }}\n",
            path.display().to_string()
        ),
        None => {
            let rate = args.rate.map(|r| format!("rate = {r}\n")).unwrap_or_default();
            format!(
                "[sources.nexmark]\ntype = \"nexmark\"\nevents = {}\nevents_per_second = {}\nseed = 42\n{rate}",
                args.events, args.event_rate
            )
        }
    };
    let checkpoint = match args.checkpoint_interval {
        Some(every) => format!(
            "[checkpoint]\ninterval = \"{}ms\"\ndir = {:?}\n",
            every.as_millis().max(1),
            checkpoints.display().to_string()
        ),
        None => String::new(),
    };
    Ok(format!(
        "[pipeline]\nbatch_size = 1024\n\n{checkpoint}\n{source}\n{body}\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"{last}\"]\n"
    ))
}

/// Writes `events` Nexmark bids as NDJSON (the `--source file` input).
fn write_bids(path: &Path, events: u64, event_rate: u64) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let cfg = NexmarkConfig {
        only: Some(NexmarkKind::Bid),
        events_per_second: event_rate,
        ..NexmarkConfig::default()
    };
    let mut generator = NexmarkGenerator::new(&cfg, 42, 0, 1);
    let mut batch = Vec::with_capacity(4096);
    let mut line = Vec::with_capacity(256);
    let mut written = 0;
    while written < events {
        batch.clear();
        generator.next_batch(&mut batch, 4096);
        batch.truncate((events - written) as usize);
        for e in &batch {
            line.clear();
            eddy_core::json::write_fields(&mut line, &e.fields);
            line.push(b'\n');
            out.write_all(&line)?;
        }
        written += batch.len() as u64;
    }
    out.flush()?;
    Ok(())
}

/// Runs the benchmark and prints its figures.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    let args = match cmd {
        BenchCommand::Nexmark(args) => args,
        BenchCommand::Enrich(args) => {
            enrich::run(&args)?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCommand::Spill(args) => return spill::run(&args),
        BenchCommand::Alerting(args) => return alerting::run(&args),
        BenchCommand::Ingest(args) => return ingest::run(&args),
        BenchCommand::Websocket(args) => return websocket::run(&args),
        #[cfg(feature = "redis")]
        BenchCommand::Redis(args) => return redis::run(&args),
        #[cfg(feature = "kafka")]
        BenchCommand::Kafka(args) => return kafka::run(&args),
        #[cfg(feature = "postgres")]
        BenchCommand::Postgres(args) => {
            postgres::run(args)?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let dir = tempfile_dir()?;
    let file = if args.source == BenchSource::File {
        let path = dir.join("bids.ndjson");
        eprintln!("writing {} bids to {} ...", args.events, path.display());
        write_bids(&path, args.events, args.event_rate)?;
        Some(path)
    } else {
        None
    };
    let checkpoints = dir.join("checkpoints");
    let text = pipeline_text(&args, file.as_deref(), &checkpoints)?;
    let plan = Plan::compile("<bench>", &text, &[]).map_err(|d| anyhow::anyhow!("{d}"))?;
    let opts = RunOptions {
        workers: args.workers.max(1),
        tick: Duration::from_millis(50),
        ..RunOptions::default()
    };
    let report = if args.serve {
        let (report, messages) = serve::run(&plan, opts, args.clients, args.subscribe_all)?;
        eprintln!(
            "server on: {} WebSocket clients read {} messages",
            args.clients,
            crate::progress::human(messages)
        );
        report
    } else {
        eddy_runtime::run(&plan, opts).context("benchmark run failed")?
    };
    let baseline = match &file {
        Some(path) if args.query == "q7" => Some(baseline::file_q7(path)?),
        Some(path) if args.query == "a" => Some(baseline::file_a(path)?),
        Some(path) if args.query == "b" => Some(baseline::file_b(path)?),
        Some(_) => None,
        None if args.rate.is_none() => Some((baseline::generator(args.events, args.event_rate), 0)),
        None => None,
    };
    let _ = std::fs::remove_dir_all(&dir);
    if let (Some((_, windows)), Some(_)) = (baseline, &file) {
        let results = report
            .metrics
            .node("out")
            .map(|n| n.received())
            .unwrap_or(0);
        if windows as u64 != results {
            bail!("the baseline found {windows} windows but Eddy emitted {results} results");
        }
    }
    print_report(&args, &report, baseline.map(|(rate, _)| rate));
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An `eddy run` a benchmark started (this executable, quiet, output
/// discarded); killed when dropped, so a benchmark that fails leaves no
/// run behind.
pub(crate) struct RunChild(pub(crate) std::process::Child);

impl RunChild {
    /// Starts `eddy run CONFIG -q`.
    pub(crate) fn start(config: &Path) -> anyhow::Result<RunChild> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg("run")
            .arg(config)
            .arg("-q")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start eddy run")?;
        Ok(RunChild(child))
    }
}

impl Drop for RunChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The median of `v` (the upper one of an even count; 0 when empty),
/// sorting `v`.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("eddy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Peak resident memory of this process in MiB (Linux; `None` elsewhere).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn print_report(args: &NexmarkArgs, report: &RunReport, baseline: Option<f64>) {
    let peak = peak_rss_mib();
    let events = report.metrics.source_events();
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let rate = events as f64 / secs;
    let results = report
        .metrics
        .node("out")
        .map(|n| n.received())
        .unwrap_or(0);
    let (p50, p99) = report
        .latency_us
        .iter()
        .find(|(n, _)| n == "out")
        .filter(|(_, h)| !h.is_empty())
        .map(|(_, h)| {
            (
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
            )
        })
        .unwrap_or((0.0, 0.0));
    let source = match args.source {
        BenchSource::Generator => "generator",
        BenchSource::File => "file",
    };
    let baseline_name = match args.source {
        BenchSource::Generator => "generator alone",
        BenchSource::File => "hand-written serde_json loop",
    };
    if args.json {
        println!(
            "{{\"query\":\"{}\",\"source\":\"{source}\",\"events\":{events},\"workers\":{},\"rate_limit\":{},\"seconds\":{secs:.3},\"events_per_sec\":{rate:.0},\"results\":{results},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"baseline\":{},\"baseline_events_per_sec\":{},\"ratio\":{},\"peak_rss_mib\":{}}}",
            args.query,
            args.workers,
            args.rate.map(|r| r.to_string()).unwrap_or_else(|| "null".into()),
            baseline.map(|_| format!("\"{baseline_name}\"")).unwrap_or_else(|| "null".into()),
            baseline.map(|b| format!("{b:.0}")).unwrap_or_else(|| "null".into()),
            baseline.map(|b| format!("{:.3}", rate / b.max(1e-9))).unwrap_or_else(|| "null".into()),
            peak.map(|m| format!("{m:.1}")).unwrap_or_else(|| "null".into()),
        );
    } else {
        println!(
            "nexmark {} ({source}, {} worker{}): {events} events in {secs:.2}s = {} events/s; {results} results; latency p50 {p50:.3} ms, p99 {p99:.3} ms",
            args.query,
            args.workers,
            if args.workers == 1 { "" } else { "s" },
            crate::progress::human(rate as u64),
        );
        if let Some(m) = peak {
            println!("peak memory (resident): {m:.1} MiB");
        }
        if args.checkpoint_interval.is_some() {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &report.metrics.checkpoints;
            println!(
                "checkpoints: {} stored, {} failed; last {} bytes in {} ms; longest stall {} µs, longest alignment {} µs",
                c.stored.load(Relaxed),
                c.failures.load(Relaxed),
                crate::progress::human(c.last_bytes.load(Relaxed)),
                c.last_duration_ms.load(Relaxed),
                crate::progress::human(c.max_stall_us.load(Relaxed)),
                crate::progress::human(c.max_alignment_us.load(Relaxed)),
            );
        }
        if let Some(b) = baseline {
            println!(
                "baseline ({baseline_name}, 1 thread): {} events/s; Eddy at {:.2} of it",
                crate::progress::human(b as u64),
                rate / b.max(1e-9)
            );
        }
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.errors.dropped() > 0 {
        eprintln!(
            "error: … and {} more errors (every one is counted in the node's errors)",
            report.errors.dropped()
        );
    }
}
