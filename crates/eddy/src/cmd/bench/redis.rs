//! `eddy bench redis`: entries/s that a pipeline writes to a Redis stream
//! through the `redis` sink, against `redis-benchmark` pipelining the same
//! `XADD` on the same server, each the median of three runs.
//!
//! Eddy's side is an ordinary pipeline: a `file` source reading `--entries`
//! one-field events (`{"f":"v"}`, written beforehand and untimed, so the
//! entries match what `redis-benchmark` adds) into a `redis` sink with
//! `kind = "stream"`. The stream is deleted before each run and its length
//! checked after, so a figure never counts entries that did not arrive.

use super::median;
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use eddy_runtime::{Plan, RunOptions};

/// Stream key Eddy writes.
const EDDY_STREAM: &str = "eddy:bench";
/// Stream key `redis-benchmark` writes.
const BASELINE_STREAM: &str = "benchstream";
/// Runs of each side; the median is reported.
const RUNS: usize = 3;

/// Arguments of `eddy bench redis`.
#[derive(Args)]
pub struct RedisArgs {
    /// The server to write to (its two stream keys are deleted).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    url: String,
    /// Entries per run.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    entries: u64,
    /// Events per pipeline (the sink's `batch_size`).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Commands per pipeline for `redis-benchmark -P`.
    #[arg(long, default_value_t = 100)]
    pipeline: u32,
    /// Connections `redis-benchmark` uses (`-c`); 1 matches the sink's one
    /// connection per worker.
    #[arg(long, default_value_t = 1)]
    clients: u32,
}

/// Runs both sides and prints their medians.
pub fn run(args: &RedisArgs) -> anyhow::Result<ExitCode> {
    let client = redis::Client::open(args.url.as_str())
        .with_context(|| format!("bad url `{}`", args.url))?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .with_context(|| format!("cannot connect to {}", args.url))?;
    let dir = super::tempfile_dir()?;
    let input = dir.join("entries.ndjson");
    write_entries(&input, args.entries)?;

    let mut eddy = Vec::new();
    for i in 0..RUNS {
        let rate = eddy_run(args, &input, &mut conn)?;
        eprintln!("eddy run {}: {} entries/s", i + 1, human(rate));
        eddy.push(rate);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let mut baseline = Vec::new();
    match redis_benchmark_target(&client) {
        Some((host, port)) => {
            for i in 0..RUNS {
                let _: () = redis::cmd("DEL").arg(BASELINE_STREAM).query(&mut conn)?;
                let rate = redis_benchmark(&host, port, args)?;
                eprintln!("redis-benchmark run {}: {} entries/s", i + 1, human(rate));
                baseline.push(rate);
            }
            let _: () = redis::cmd("DEL").arg(BASELINE_STREAM).query(&mut conn)?;
        }
        None => eprintln!("no baseline: redis-benchmark needs a plain TCP url"),
    }

    let eddy = median(&mut eddy);
    println!(
        "redis stream sink: {} entries in batches of {} = {} entries/s (median of {RUNS})",
        args.entries,
        args.batch_size,
        human(eddy)
    );
    if !baseline.is_empty() {
        let base = median(&mut baseline);
        println!(
            "baseline (redis-benchmark -P {} -c {} XADD): {} entries/s; Eddy at {:.0}%",
            args.pipeline,
            args.clients,
            human(base),
            100.0 * eddy / base.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human(rate: f64) -> String {
    crate::progress::human(rate as u64)
}

/// Writes `n` lines `{"f":"v"}`.
fn write_entries(path: &Path, n: u64) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    for _ in 0..n {
        out.write_all(b"{\"f\":\"v\"}\n")?;
    }
    out.flush()?;
    Ok(())
}

/// One timed pipeline run; entries/s.
fn eddy_run(args: &RedisArgs, input: &Path, conn: &mut redis::Connection) -> anyhow::Result<f64> {
    let _: () = redis::cmd("DEL").arg(EDDY_STREAM).query(conn)?;
    let text = format!(
        r#"
[pipeline]
batch_size = {batch}

[sources.entries]
type = "file"
path = {input:?}

[sinks.redis]
type = "redis"
inputs = ["entries"]
url = {url:?}
kind = "stream"
key = "{EDDY_STREAM}"
batch_size = {batch}
retry = {{ attempts = 1 }}
"#,
        batch = args.batch_size.max(1),
        input = input.display().to_string(),
        url = args.url,
    );
    let plan = Plan::compile("<bench>", &text, &[]).map_err(|d| anyhow::anyhow!("{d}"))?;
    let opts = RunOptions {
        workers: 1,
        tick: Duration::from_millis(50),
        ..RunOptions::default()
    };
    let report = eddy_runtime::run(&plan, opts).context("benchmark run failed")?;
    if let Some(e) = report.errors.first() {
        bail!("the run failed: {e}");
    }
    let len: u64 = redis::cmd("XLEN").arg(EDDY_STREAM).query(conn)?;
    if len != args.entries {
        let (sent, dead) = report
            .metrics
            .node("redis")
            .map(|n| {
                (
                    n.component.total("records_out"),
                    n.component.total("dead_letters"),
                )
            })
            .unwrap_or_default();
        bail!(
            "the stream holds {len} entries, expected {} (sink: {sent} sent, {dead} dead letters)",
            args.entries
        );
    }
    let _: () = redis::cmd("DEL").arg(EDDY_STREAM).query(conn)?;
    Ok(args.entries as f64 / report.elapsed.as_secs_f64().max(1e-9))
}

/// Host and port for `redis-benchmark`, for plain TCP urls.
fn redis_benchmark_target(client: &redis::Client) -> Option<(String, u16)> {
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => Some((host.clone(), *port)),
        _ => None,
    }
}

/// `redis-benchmark -P N XADD benchstream * f v`; entries/s.
fn redis_benchmark(host: &str, port: u16, args: &RedisArgs) -> anyhow::Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", &port.to_string()])
        .args(["-n", &args.entries.to_string()])
        .args(["-c", &args.clients.to_string()])
        .args(["-P", &args.pipeline.to_string(), "-q"])
        .args(["XADD", BASELINE_STREAM, "*", "f", "v"])
        .output()
        .context("cannot run redis-benchmark (scripts/install-services.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The last progress line holds the result: `XADD ...: 123456.79 requests per second, ...`.
    let rate = text
        .rsplit(':')
        .find_map(|part| {
            part.split_whitespace()
                .next()
                .filter(|_| part.contains("requests per second"))
                .and_then(|n| n.parse::<f64>().ok())
        })
        .with_context(|| format!("unexpected redis-benchmark output: {text}"))?;
    Ok(rate)
}
