//! `eddy checkpoints list DIR` and `eddy checkpoints inspect PATH`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use eddy_runtime::CheckpointMeta;
use eddy_state::checkpoint::CheckpointStore;

/// What `eddy checkpoints` does.
#[derive(Subcommand)]
pub enum CheckpointsCommand {
    /// List a checkpoint directory: complete checkpoints, newest first,
    /// and the damaged or unfinished ones with what is wrong.
    List {
        /// The `[checkpoint] dir` (default `data/checkpoints/PIPELINE`).
        dir: PathBuf,
    },
    /// Show what one checkpoint holds: nodes, source positions,
    /// watermarks and state sizes.
    Inspect {
        /// A checkpoint directory, `.../chk-<id>`.
        path: PathBuf,
    },
}

/// Runs `eddy checkpoints ...`; exit 2 when the directory is unusable.
pub fn run(command: CheckpointsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CheckpointsCommand::List { dir } => list(&dir),
        CheckpointsCommand::Inspect { path } => inspect(&path),
    }
}

fn list(dir: &Path) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        eprintln!("error: {} is not a directory", dir.display());
        return Ok(ExitCode::from(2));
    }
    let store =
        CheckpointStore::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let listing = store
        .list()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    println!("{:>8}  {:>12}  {:<9}  path", "id", "bytes", "kind");
    for c in &listing.complete {
        let bytes: u64 = c.files.iter().map(|f| f.size).sum();
        let kind = match CheckpointMeta::read(c) {
            Ok(meta) if meta.finished => "finished".to_string(),
            Ok(_) => "complete".to_string(),
            Err(e) => format!("unreadable: {e}"),
        };
        println!(
            "{:>8}  {:>12}  {:<9}  {}",
            c.id,
            bytes,
            kind,
            c.dir.display()
        );
    }
    for p in &listing.problems {
        println!(
            "{:>8}  {:>12}  {:<9}  {} ({})",
            p.id,
            "-",
            "skipped",
            p.dir.display(),
            p.problem
        );
    }
    if listing.complete.is_empty() && listing.problems.is_empty() {
        println!("(no checkpoints)");
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(path: &Path) -> anyhow::Result<ExitCode> {
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("chk-"))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(id) = id else {
        eprintln!(
            "error: {} is not a checkpoint directory (chk-<id>)",
            path.display()
        );
        eprintln!("  hint: `eddy checkpoints list DIR` shows them");
        return Ok(ExitCode::from(2));
    };
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    let store = CheckpointStore::open(parent)?;
    let checkpoint = match store.verify(id) {
        Ok(c) => c,
        Err(p) => {
            eprintln!(
                "error: checkpoint {id} at {} is not usable: {}",
                path.display(),
                p.problem
            );
            return Ok(ExitCode::from(2));
        }
    };
    let meta = CheckpointMeta::read(&checkpoint)?;
    println!(
        "checkpoint {id} of pipeline `{}`: {} workers, {}{} bytes of state",
        meta.pipeline,
        meta.workers,
        if meta.finished { "finished, " } else { "" },
        meta.state_bytes()
    );
    for node in &meta.nodes {
        println!(
            "{} ({})  config {:016x}",
            node.name, node.kind, node.fingerprint
        );
        for i in &node.instances {
            let mut parts = vec![format!("  worker {}", i.worker)];
            if !i.positions.is_empty() {
                let p: Vec<String> = i
                    .positions
                    .iter()
                    .map(|p| format!("{}@{}", p.partition, p.offset))
                    .collect();
                parts.push(format!("positions {}", p.join(" ")));
            }
            if !i.watermarks.is_empty() {
                let w: Vec<String> = i
                    .watermarks
                    .iter()
                    .map(|(p, t)| format!("{p}:{}", eddy_core::time::format_rfc3339(*t)))
                    .collect();
                parts.push(format!("max event time {}", w.join(" ")));
            }
            if let Some(f) = &i.state_file {
                parts.push(format!("state {} bytes in {f}", i.state_bytes));
            }
            println!("{}", parts.join(" · "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
