//! The `eddy` command: run, validate, demo and bench pipelines; manage,
//! feed and read Kafka topics.

// Input-derived data must never panic; see clippy.toml.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cmd;
mod logging;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Events are small, short-lived allocations made on one worker thread and
/// often freed on another; mimalloc handles that pattern far better than the
/// system allocator (about a fifth of the time in JSON-heavy pipelines).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Eddy: real-time event stream analytics in one binary.
#[derive(Parser)]
#[command(name = "eddy", version, about, propagate_version = true)]
struct Cli {
    /// How log lines on stderr are written: `text` or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    /// Export spans over OTLP/HTTP (JSON) to this collector, e.g.
    /// `http://127.0.0.1:4318` (`/v1/traces` is added). The standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` works too.
    #[arg(long, global = true, value_name = "URL")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file until its sources end, the duration passes or Ctrl-C.
    Run(cmd::run::RunArgs),
    /// Check a pipeline file and print a one-line plan, or every error with its position.
    Validate(cmd::validate::ValidateArgs),
    /// Run the built-in demo: simulated business events, windowed KPIs, anomalies and alerts.
    Demo(cmd::demo::DemoArgs),
    /// The open alerts of a running Eddy.
    #[command(subcommand)]
    Alerts(cmd::alerts::AlertsCommand),
    /// Run anomaly detectors over the Numenta Anomaly Benchmark and score them.
    Detect(cmd::detect::DetectArgs),
    /// List and inspect stored checkpoints and savepoints.
    #[command(subcommand)]
    Checkpoints(cmd::checkpoints::CheckpointsCommand),
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Manage Kafka topics.
    #[cfg(feature = "kafka")]
    #[command(subcommand)]
    Topics(cmd::kafka::TopicsCommand),
    /// Write simulator events or a file's JSON lines to a Kafka topic.
    #[cfg(feature = "kafka")]
    Produce(cmd::kafka::ProduceArgs),
    /// Print a Kafka topic's records, one per line, until interrupted.
    #[cfg(feature = "kafka")]
    Tail(cmd::kafka::TailArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dropped at the end of main: the last spans are sent before exit.
    let _logging = logging::init(cli.log_format, cli.otlp_endpoint.as_deref());
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Detect(args) => cmd::detect::run(args),
        Command::Alerts(args) => cmd::alerts::run(args),
        Command::Checkpoints(args) => cmd::checkpoints::run(args),
        #[cfg(feature = "kafka")]
        Command::Topics(args) => cmd::kafka::topics(args),
        #[cfg(feature = "kafka")]
        Command::Produce(args) => cmd::kafka::produce(args),
        #[cfg(feature = "kafka")]
        Command::Tail(args) => cmd::kafka::tail(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (e.g. `eddy run ... | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
