//! `eddy bench postgres`: the `postgres` sink's throughput against a server
//! the user names, beside `psql` doing the same work.
//!
//! The rows look like window results (two timestamps, a key, two counts, an
//! average). Each figure is the median of three runs into a freshly
//! truncated table:
//!
//! - `copy`: the sink in append mode (binary `COPY`);
//! - `upsert` and `upsert replay`: the sink in upsert mode into an empty
//!   table, then the same rows again (every row conflicts and is updated);
//! - `psql \copy csv`: `psql` loading the same rows from a CSV file, the
//!   fastest way a user would bulk-load them by hand;
//! - `psql insert on conflict`: multi-row `INSERT ... ON CONFLICT DO
//!   UPDATE` statements of 1000 rows run by `psql`, the alternative to the
//!   sink's staging-table upsert.
//!
//! Tables named `eddy_bench_*` are dropped and created in the database.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use eddy_connectors::sinks::PostgresConfig;
use eddy_core::component::{BuildContext, SinkFactory};
use eddy_core::time::format_rfc3339;
use eddy_core::{Event, Fields, Sym, Value};

/// Arguments of `eddy bench postgres`.
#[derive(Args)]
pub struct PostgresArgs {
    /// The database: `postgres://USER@HOST:PORT/DB`.
    #[arg(long)]
    url: String,
    /// Rows per run.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Events per COPY (the sink's `batch_size`).
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
    /// Connections of the sink (its `pool_size`).
    #[arg(long, default_value_t = 1)]
    pool_size: usize,
    /// The `psql` program for setup and the baselines.
    #[arg(long, default_value = "psql")]
    psql: PathBuf,
}

const COLUMNS: &str = "window_start timestamptz, window_end timestamptz, key text, \
    n bigint, total bigint, avg double precision";

/// Runs of each measurement; the median is reported.
const RUNS: usize = 3;

/// The rows: 1000 keys per one-minute window.
fn events(rows: usize) -> Vec<Event> {
    let t0 = 1_700_000_000_000i64;
    let (start, end, key, n, total, avg) = (
        Sym::intern("window_start"),
        Sym::intern("window_end"),
        Sym::intern("key"),
        Sym::intern("n"),
        Sym::intern("total"),
        Sym::intern("avg"),
    );
    (0..rows as i64)
        .map(|i| {
            let w = t0 + (i / 1000) * 60_000;
            let mut f = Fields::with_capacity(6);
            f.push(start, Value::str(&format_rfc3339(w)));
            f.push(end, Value::str(&format_rfc3339(w + 60_000)));
            f.push(key, Value::str(&format!("key-{}", i % 1000)));
            f.push(n, Value::Int(i % 97 + 1));
            f.push(total, Value::Int(i * 7 % 100_003));
            f.push(avg, Value::Float((i % 1013) as f64 / 8.0));
            Event::new(w, f)
        })
        .collect()
}

fn psql(args: &PostgresArgs, sql: &str) -> anyhow::Result<()> {
    let out = Command::new(&args.psql)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &args.url,
            "-c",
            sql,
        ])
        .output()
        .with_context(|| format!("cannot run {}", args.psql.display()))?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn psql_file(args: &PostgresArgs, file: &Path) -> anyhow::Result<()> {
    let out = Command::new(&args.psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &args.url, "-f"])
        .arg(file)
        .output()
        .with_context(|| format!("cannot run {}", args.psql.display()))?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// One row as CSV / SQL literals, in column order.
fn literals(e: &Event) -> Vec<String> {
    e.fields.iter().map(|(_, v)| v.to_string()).collect()
}

/// Times the sink writing `events` (built fresh, so connecting and the
/// catalog lookup are part of the figure, as in a pipeline).
fn sink_run(args: &PostgresArgs, options: &str, events: &[Event]) -> anyhow::Result<Duration> {
    let text = format!(
        "url = {:?}\nbatch_size = {}\npool_size = {}\n{options}",
        args.url, args.batch_size, args.pool_size
    );
    let cfg: PostgresConfig = toml::from_str(&text).context("bench sink config")?;
    let cx = BuildContext::single("bench");
    let t = Instant::now();
    let mut sink = cfg.build(&cx).map_err(|e| anyhow::anyhow!("{e}"))?;
    for chunk in events.chunks(1024) {
        sink.write(chunk)?;
    }
    sink.flush()?;
    let elapsed = t.elapsed();
    let dead = sink.take_dead_letters();
    if !dead.is_empty() {
        bail!(
            "{} rows became dead letters: {:?}",
            dead.len(),
            dead.first()
        );
    }
    Ok(elapsed)
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d.get(d.len() / 2).copied().unwrap_or_default()
}

/// Runs the benchmark and prints rows/s per method.
pub fn run(args: PostgresArgs) -> anyhow::Result<()> {
    let dir = super::tempfile_dir()?;
    let events = events(args.rows);
    let csv = dir.join("rows.csv");
    let mut text = String::with_capacity(args.rows * 96);
    for e in &events {
        text.push_str(&literals(e).join(","));
        text.push('\n');
    }
    std::fs::write(&csv, &text).with_context(|| format!("cannot write {}", csv.display()))?;
    let inserts = dir.join("inserts.sql");
    let mut sql = String::with_capacity(args.rows * 110);
    for chunk in events.chunks(1000) {
        sql.push_str(
            "INSERT INTO eddy_bench_insert (window_start, window_end, key, n, total, avg) VALUES ",
        );
        for (i, e) in chunk.iter().enumerate() {
            let l = literals(e);
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                sql,
                "{sep}('{}','{}','{}',{},{},{})",
                l[0], l[1], l[2], l[3], l[4], l[5]
            );
        }
        sql.push_str(
            " ON CONFLICT (window_start, key) DO UPDATE SET window_end = EXCLUDED.window_end, \
             n = EXCLUDED.n, total = EXCLUDED.total, avg = EXCLUDED.avg;\n",
        );
    }
    std::fs::write(&inserts, &sql)
        .with_context(|| format!("cannot write {}", inserts.display()))?;
    drop((text, sql));

    for t in ["copy", "csv"] {
        psql(
            &args,
            &format!(
                "DROP TABLE IF EXISTS eddy_bench_{t}; CREATE TABLE eddy_bench_{t} ({COLUMNS})"
            ),
        )?;
    }
    for t in ["upsert", "insert"] {
        psql(
            &args,
            &format!(
                "DROP TABLE IF EXISTS eddy_bench_{t}; \
                 CREATE TABLE eddy_bench_{t} ({COLUMNS}, PRIMARY KEY (window_start, key))"
            ),
        )?;
    }

    let mut figures: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut record =
        |name: &'static str, d: Duration| match figures.iter_mut().find(|f| f.0 == name) {
            Some(f) => f.1.push(d),
            None => figures.push((name, vec![d])),
        };
    let upsert =
        "table = \"eddy_bench_upsert\"\nmode = \"upsert\"\nkey = [\"window_start\", \"key\"]";
    for run in 1..=RUNS {
        eprintln!("run {run}/{RUNS} ...");
        psql(
            &args,
            "TRUNCATE eddy_bench_copy, eddy_bench_csv, eddy_bench_upsert, eddy_bench_insert",
        )?;
        record(
            "eddy copy",
            sink_run(&args, "table = \"eddy_bench_copy\"", &events)?,
        );
        record("eddy upsert (new rows)", sink_run(&args, upsert, &events)?);
        record("eddy upsert (replay)", sink_run(&args, upsert, &events)?);
        let t = Instant::now();
        psql(
            &args,
            &format!(
                "\\copy eddy_bench_csv FROM '{}' WITH (FORMAT csv)",
                csv.display()
            ),
        )?;
        record("psql \\copy csv", t.elapsed());
        let t = Instant::now();
        psql_file(&args, &inserts)?;
        record("psql insert on conflict (new)", t.elapsed());
        let t = Instant::now();
        psql_file(&args, &inserts)?;
        record("psql insert on conflict (replay)", t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{} rows, batch_size {}, pool_size {}, median of {RUNS} runs",
        args.rows, args.batch_size, args.pool_size
    );
    for (name, runs) in figures {
        let d = median(runs);
        let rate = args.rows as f64 / d.as_secs_f64().max(1e-9);
        println!(
            "{name:<34} {:>10.0} rows/s  ({:.2} s)",
            rate,
            d.as_secs_f64()
        );
    }
    Ok(())
}
