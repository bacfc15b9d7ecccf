//! `eddy run FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use eddy_runtime::{Plan, RunOptions};

use crate::progress::Progress;

/// Arguments of `eddy run`.
#[derive(Args)]
pub struct RunArgs {
    /// The pipeline file.
    file: PathBuf,
    /// Stop after this many seconds (flushing open windows).
    #[arg(long, value_parser = super::parse_seconds)]
    duration: Option<Duration>,
    /// Worker threads (default: `[pipeline] workers`, else the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Do not print progress lines.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs the pipeline; exit 2 on config errors, 1 if the run reported errors.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = match super::load_plan(&args.file)? {
        Ok(plan) => plan,
        Err(diags) => {
            eprint!("{diags}");
            return Ok(ExitCode::from(2));
        }
    };
    execute(&plan, args.workers, args.duration, !args.quiet)
}

/// Runs a compiled plan with progress on stderr and a final summary.
pub fn execute(
    plan: &Plan,
    workers: Option<usize>,
    duration: Option<Duration>,
    progress: bool,
) -> anyhow::Result<ExitCode> {
    let workers = workers.or(plan.settings.workers);
    if let Some(problem) =
        workers.and_then(|w| eddy_core::config::check_workers(w, &plan.settings.limits))
    {
        eprintln!("error: {problem}");
        eprintln!(
            "  hint: {}",
            eddy_core::limits::Limits::raise_hint("max_workers")
        );
        return Ok(ExitCode::from(2));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the Ctrl-C handler")?;
    }
    let mut opts = RunOptions {
        stop,
        ..RunOptions::default()
    };
    if let Some(w) = workers {
        opts.workers = w;
    }
    opts.duration = duration;
    let running = eddy_runtime::start(plan, opts).context("cannot start the pipeline")?;
    let mut meter = Progress::new(running.metrics().clone());
    while !running.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if progress {
            meter.maybe_print();
        }
    }
    let report = running.wait();
    eprintln!("{}", meter.summary(&report));
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.errors.dropped() > 0 {
        eprintln!(
            "error: … and {} more errors (every one is counted in the node's errors)",
            report.errors.dropped()
        );
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
