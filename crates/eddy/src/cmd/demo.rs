//! `eddy demo`: the embedded demo pipeline (`examples/demo.toml`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// The demo pipeline, embedded so the binary needs no files.
pub const DEMO_PIPELINE: &str = include_str!("../../../../examples/demo.toml");

/// Arguments of `eddy demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_parser = super::parse_seconds)]
    duration: Option<Duration>,
    /// Port of the live dashboard and API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Worker threads.
    #[arg(long)]
    workers: Option<usize>,
}

/// Runs the demo and leaves its results under `./data`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let plan = match super::compile("examples/demo.toml (embedded)", DEMO_PIPELINE) {
        Ok(plan) => plan,
        Err(diags) => {
            eprint!("{diags}");
            return Ok(ExitCode::from(2));
        }
    };
    eprintln!("eddy demo: simulated business events with crisis scenarios → windowed KPIs, anomalies and alerts");
    eprintln!("results are written under ./data (department_kpis, merchant_kpis, alerts, anomalies, dead_letters, late_events)");
    super::run::execute(
        &plan,
        super::run::Execution {
            workers: args.workers,
            duration: args.duration,
            progress: true,
            serve: Some(std::net::SocketAddr::from(([127, 0, 0, 1], args.port))),
            ..Default::default()
        },
    )
}
