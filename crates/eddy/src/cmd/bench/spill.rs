//! `eddy bench spill`: window state far beyond memory. `--keys` keys (5
//! million by default) each seen twice in one tumbling window, run once
//! with all state in memory and once under a `state_memory` budget (64 MiB
//! by default); prints each run's time and peak resident memory and
//! whether their results are identical, line for line.
//!
//! Each run is a separate `eddy run` process (this executable), so the
//! peaks are its own: read from `/proc/PID/status` (`VmHWM`) while it runs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

/// Arguments of `eddy bench spill`.
#[derive(Args)]
pub struct SpillArgs {
    /// Distinct keys (each gets two events).
    #[arg(long, default_value_t = 5_000_000)]
    keys: u64,
    /// The spilled run's `state_memory`.
    #[arg(long, default_value = "64MiB")]
    budget: String,
    /// Worker threads.
    #[arg(long, short, default_value_t = 2)]
    workers: usize,
}

/// What one run measured.
struct Measured {
    seconds: f64,
    peak_mib: f64,
    results: Vec<String>,
}

/// Writes the input: every key twice (the second time in reverse order),
/// all in one 10 s window, and one event that closes it.
fn write_input(path: &Path, keys: u64) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for i in 0..2 * keys {
        let k = if i < keys { i } else { 2 * keys - 1 - i };
        let ts = 1_700_000_000_000 + (i * 5_000 / (2 * keys)) as i64;
        writeln!(out, r#"{{"ts":{ts},"k":"key-{k}","v":{}}}"#, i % 977)?;
    }
    writeln!(out, r#"{{"ts":1700000030000,"k":"last","v":0}}"#)?;
    out.flush()?;
    Ok(())
}

/// Runs the pipeline with `extra` under `[pipeline]` as its own process.
fn run_once(dir: &Path, name: &str, workers: usize, extra: &str) -> anyhow::Result<Measured> {
    let d = dir.display();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"[pipeline]
name = "{name}"
workers = {workers}
data_dir = "{d}/data"
{extra}

[sources.tx]
type = "file"
path = "{d}/in.ndjson"
event_time = {{ field = "ts", format = "epoch_ms", max_out_of_orderness = "1s" }}

[transforms.per_key]
type = "window"
inputs = ["tx"]
key = "k"
window = {{ tumbling = "10s" }}
aggregates = {{ n = "count()", total = "sum(v)", top = "max(v)" }}

[sinks.out]
type = "file"
inputs = ["per_key"]
path = "{d}/{name}.ndjson"
"#
        ),
    )?;
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .arg("run")
        .arg(&config)
        .arg("-q")
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start eddy run")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0.0f64;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("`eddy run {}` failed: {status}", config.display());
    }
    let output = dir.join(format!("{name}.ndjson"));
    let text =
        std::fs::read_to_string(&output).with_context(|| format!("read {}", output.display()))?;
    let mut results: Vec<String> = text.lines().map(str::to_string).collect();
    results.sort_unstable();
    Ok(Measured {
        seconds,
        peak_mib: peak_kib / 1024.0,
        results,
    })
}

/// Runs both and prints their figures; fails if the results differ.
pub fn run(args: &SpillArgs) -> anyhow::Result<ExitCode> {
    let dir = super::tempfile_dir()?;
    eprintln!("writing {} events ...", 2 * args.keys + 1);
    write_input(&dir.join("in.ndjson"), args.keys)?;
    let budget = format!("state_memory = {:?}", args.budget);
    let spilled = run_once(&dir, "spilled", args.workers, &budget)?;
    let memory = run_once(&dir, "memory", args.workers, "")?;
    let _ = std::fs::remove_dir_all(&dir);
    let identical = spilled.results == memory.results;
    println!(
        "spill: {} keys ({} events), {} workers",
        args.keys,
        2 * args.keys + 1,
        args.workers
    );
    for (what, m) in [("in memory", &memory), (args.budget.as_str(), &spilled)] {
        println!(
            "  {what:>10}: {:>7.1} s, peak RSS {:>8.1} MiB, {} results",
            m.seconds,
            m.peak_mib,
            m.results.len()
        );
    }
    println!(
        "  identical results: {}",
        if identical { "yes" } else { "NO" }
    );
    Ok(if identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
