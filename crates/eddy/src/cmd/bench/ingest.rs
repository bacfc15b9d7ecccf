//! `eddy bench ingest`: events/s through HTTP ingest (`POST
//! /api/v1/ingest/{source}`, NDJSON bodies of `--batch` events from
//! `--clients` connections) into a `blackhole` sink, against the same
//! events read by the `file` source into the same sink, in one process.
//!
//! Both pipelines run in this process (the HTTP one with the server on a
//! free loopback port); each is timed from its start until the sink has
//! counted every event. Medians of `--rounds` rounds.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use eddy_runtime::{Plan, RunOptions};

/// Arguments of `eddy bench ingest`.
#[derive(Args)]
pub struct IngestArgs {
    /// Events per round.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Events per posted body.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Connections posting at once.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Rounds (the median is printed).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Worker threads.
    #[arg(long, short, default_value_t = 1)]
    workers: usize,
}

/// One event as a client would post it.
fn line(i: usize) -> String {
    format!(
        r#"{{"ts":{},"order":{i},"user":"u{}","amount":{}.{:02},"country":"{}"}}"#,
        1_700_000_000_000u64 + i as u64,
        i % 10_007,
        i % 977,
        i % 100,
        ["DE", "FR", "US", "JP"][i % 4]
    )
}

/// Runs `eddy bench ingest`.
pub fn run(args: &IngestArgs) -> anyhow::Result<ExitCode> {
    if args.events == 0 || args.batch == 0 || args.clients == 0 || args.rounds == 0 {
        bail!("--events, --batch, --clients and --rounds must be above 0");
    }
    let dir = std::env::temp_dir().join(format!("eddy-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let bodies: Vec<String> = (0..args.events)
        .step_by(args.batch)
        .map(|start| {
            let end = (start + args.batch).min(args.events);
            (start..end).map(|i| line(i) + "\n").collect()
        })
        .collect();
    let input = dir.join("events.ndjson");
    std::fs::write(&input, bodies.concat())?;
    let mut file_rates = Vec::new();
    let mut http_rates = Vec::new();
    for _ in 0..args.rounds {
        file_rates.push(from_file(&input, args)?);
        http_rates.push(over_http(&bodies, args)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (file, http) = (median(&mut file_rates), median(&mut http_rates));
    println!(
        "{} events, {} worker(s), medians of {} rounds",
        args.events, args.workers, args.rounds
    );
    println!("file source       → blackhole: {:>12.0} events/s", file);
    println!(
        "HTTP ingest ({} × {}-event bodies) → blackhole: {:>12.0} events/s ({:.2} of the file source)",
        args.clients,
        args.batch,
        http,
        http / file
    );
    Ok(ExitCode::SUCCESS)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn options(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        ..RunOptions::default()
    }
}

/// The file source's rate: events over the run's time.
fn from_file(input: &Path, args: &IngestArgs) -> anyhow::Result<f64> {
    let text = format!(
        r#"[sources.events]
type = "file"
path = "{}"
event_time = {{ field = "ts", format = "epoch_ms" }}

[sinks.out]
type = "blackhole"
inputs = ["events"]
"#,
        input.display()
    );
    let plan =
        Plan::compile("bench_ingest_file.toml", &text, &[]).map_err(|d| anyhow::anyhow!("{d}"))?;
    let started = Instant::now();
    let report = eddy_runtime::start(&plan, options(args.workers))
        .context("cannot start the file run")?
        .wait();
    let got = report.metrics.node("out").map_or(0, |n| n.received());
    if got != args.events as u64 {
        bail!("the file run delivered {got} of {} events", args.events);
    }
    Ok(args.events as f64 / started.elapsed().as_secs_f64())
}

/// HTTP ingest's rate: from the first post until the sink counted every
/// event.
fn over_http(bodies: &[String], args: &IngestArgs) -> anyhow::Result<f64> {
    let text = r#"[sources.events]
type = "http"
event_time = { field = "ts", format = "epoch_ms" }
queue = 64

[sinks.out]
type = "blackhole"
inputs = ["events"]
"#;
    let plan =
        Plan::compile("bench_ingest_http.toml", text, &[]).map_err(|d| anyhow::anyhow!("{d}"))?;
    let running =
        eddy_runtime::start(&plan, options(args.workers)).context("cannot start the HTTP run")?;
    let queue = running
        .prepared("events")
        .and_then(|p| p.get::<eddy_core::ingest::IngestQueue>())
        .context("the http source made no queue")?;
    let finished = Arc::new(AtomicBool::new(false));
    let status = eddy_server::Status::new(&plan, running.metrics().clone(), finished.clone())
        .with_ingest(vec![("events".to_string(), queue)]);
    let server = eddy_server::Server::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::new(status),
        Arc::new(eddy_server::Hub::new()),
        eddy_server::Access::default(),
    )
    .context("cannot start the server")?;
    let url = format!("http://{}/api/v1/ingest/events", server.addr());
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let posted: anyhow::Result<()> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..args.clients)
            .map(|_| scope.spawn(|| post_all(&url, bodies, &next)))
            .collect();
        clients
            .into_iter()
            .try_for_each(|c| c.join().unwrap_or_else(|_| bail!("a client panicked")))
    });
    posted?;
    let sink = running.metrics().node("out").context("no sink node")?;
    while sink.received() < args.events as u64 {
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "the HTTP run delivered {} of {} events",
                sink.received(),
                args.events
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let rate = args.events as f64 / started.elapsed().as_secs_f64();
    running.stop();
    running.wait();
    finished.store(true, Ordering::SeqCst);
    server.stop();
    Ok(rate)
}

/// Posts the bodies numbered by `next` until none is left, waiting and
/// posting again on `429` (the queue is full).
fn post_all(url: &str, bodies: &[String], next: &AtomicUsize) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(i) else {
            return Ok(());
        };
        loop {
            let mut answer = agent
                .post(url)
                .header("content-type", "application/x-ndjson")
                .send(body.as_str())
                .context("cannot post")?;
            let _ = answer.body_mut().read_to_string();
            match answer.status().as_u16() {
                202 => break,
                429 => std::thread::sleep(Duration::from_micros(500)),
                other => bail!("the ingest endpoint answered {other}"),
            }
        }
    }
}
