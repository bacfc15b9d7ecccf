//! Choosing the checkpoint a run resumes from and matching it to the plan.
//!
//! Without `--from-checkpoint`, a run with `[checkpoint]` resumes from the
//! newest complete checkpoint in its directory; damaged or unfinished ones
//! are skipped with a warning naming each. A checkpoint taken after all
//! input was processed (`finished`) is resumed like any other: a process
//! killed after it and started again writes nothing twice, and only input
//! added since is read (removing the directory starts over).
//!
//! Operators and sources are matched by name. A node whose type or
//! configuration changed, or a node with state that the pipeline no longer
//! has, refuses the restore with the node's name and what to do, unless
//! `--allow-non-restored-state` (then that state is dropped and the
//! changed node starts empty). The worker count must be the one the
//! checkpoint was taken with.

use std::path::{Path, PathBuf};
use std::time::Instant;

use eddy_core::source::{PartitionId, SourcePosition};
use eddy_state::checkpoint::{Checkpoint, CheckpointStore};
use rustc_hash::FxHashMap;

use super::persist::CheckpointMeta;
use super::RunError;
use crate::plan::Plan;
use crate::registry::Factory;

/// Which checkpoint a run starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Restore {
    /// The newest complete checkpoint in the `[checkpoint]` directory, if
    /// any (the default).
    #[default]
    Latest,
    /// This checkpoint directory (`.../chk-<id>`).
    From(PathBuf),
}

/// What one instance gets back.
#[derive(Clone, Debug, Default)]
pub(crate) struct RestoredInstance {
    pub positions: Vec<SourcePosition>,
    pub watermarks: Vec<(PartitionId, i64)>,
    pub state: Option<Vec<u8>>,
}

/// The checkpoint a run resumes from, matched to its plan.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    /// The checkpoint's id: sinks recover to it, new ids follow it.
    pub id: u64,
    /// Its directory.
    pub path: PathBuf,
    /// Per (plan node, worker).
    pub instances: FxHashMap<(usize, usize), RestoredInstance>,
}

/// What the start of a durable run found.
pub(crate) struct Start {
    /// The checkpoint to resume from, if any.
    pub restored: Option<Restored>,
    /// The largest checkpoint id present (new ids follow it).
    pub last_id: u64,
}

fn refuse(path: &Path, reason: String) -> RunError {
    RunError::Restore {
        path: path.to_path_buf(),
        reason,
    }
}

/// Finds and reads the checkpoint to resume from.
pub(crate) fn find(
    plan: &Plan,
    store: &CheckpointStore,
    restore: &Restore,
    workers: usize,
    allow_non_restored: bool,
) -> Result<Start, RunError> {
    let started = Instant::now();
    let listing = store
        .list()
        .map_err(|e| refuse(store.dir(), e.to_string()))?;
    let newest = listing
        .complete
        .iter()
        .map(|c| c.id)
        .chain(listing.problems.iter().map(|p| p.id))
        .max()
        .unwrap_or(0);
    let (checkpoint, explicit) = match restore {
        Restore::From(path) => (Some(open_explicit(path)?), true),
        Restore::Latest => {
            for p in &listing.problems {
                if listing.complete.first().is_none_or(|c| c.id < p.id) {
                    tracing::warn!(
                        "skipping checkpoint {} ({}): {}",
                        p.id,
                        p.dir.display(),
                        p.problem
                    );
                }
            }
            (listing.complete.into_iter().next(), false)
        }
    };
    let Some(checkpoint) = checkpoint else {
        return Ok(Start {
            restored: None,
            last_id: newest,
        });
    };
    let meta =
        CheckpointMeta::read(&checkpoint).map_err(|e| refuse(&checkpoint.dir, e.to_string()))?;
    if meta.finished && !explicit {
        // A process killed after its final checkpoint and started again
        // must not write its output twice: the finished run is resumed, and
        // only input added since is read.
        tracing::info!(
            "the last run finished ({}): only input added since is read; remove {} to start over",
            checkpoint.dir.display(),
            store.dir().display()
        );
    }
    let restored = matched(plan, &checkpoint, &meta, workers, allow_non_restored)?;
    tracing::info!(
        "resuming from checkpoint {} ({}) in {} ms",
        restored.id,
        restored.path.display(),
        started.elapsed().as_millis()
    );
    Ok(Start {
        last_id: newest.max(restored.id),
        restored: Some(restored),
    })
}

/// Opens `.../chk-<id>` named on the command line, verifying it.
fn open_explicit(path: &Path) -> Result<Checkpoint, RunError> {
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("chk-"))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            refuse(
                path,
                "not a checkpoint directory (its name must be chk-<id>); \
                 `eddy checkpoints list DIR` shows them"
                    .into(),
            )
        })?;
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    let store = CheckpointStore::open(parent).map_err(|e| refuse(path, e.to_string()))?;
    store
        .verify(id)
        .map_err(|p| refuse(path, format!("the checkpoint is damaged: {}", p.problem)))
}

/// Matches the checkpoint's nodes to the plan's and reads their state.
fn matched(
    plan: &Plan,
    checkpoint: &Checkpoint,
    meta: &CheckpointMeta,
    workers: usize,
    allow_non_restored: bool,
) -> Result<Restored, RunError> {
    let dir = &checkpoint.dir;
    if meta.workers != workers {
        return Err(refuse(
            dir,
            format!(
                "it was taken with {} workers and this run has {workers}; \
                 run with --workers {} (changing the worker count of a \
                 running pipeline is not supported yet)",
                meta.workers, meta.workers
            ),
        ));
    }
    let hint = "pass --allow-non-restored-state to drop that state and start the node empty";
    let mut restored = Restored {
        id: checkpoint.id,
        path: dir.clone(),
        instances: FxHashMap::default(),
    };
    for node in &meta.nodes {
        let Some(index) = plan.nodes.iter().position(|n| n.name == node.name) else {
            if allow_non_restored {
                tracing::warn!(
                    "dropping the checkpointed state of `{}`, which the pipeline no longer has",
                    node.name
                );
                continue;
            }
            return Err(refuse(
                dir,
                format!(
                    "it holds state of `{}` ({}), which the pipeline no longer has; {hint}",
                    node.name, node.kind
                ),
            ));
        };
        let now = &plan.nodes[index];
        let problem = if now.kind != node.kind {
            Some(format!(
                "`{}` was a {} and is now a {}",
                node.name, node.kind, now.kind
            ))
        } else if now.fingerprint != node.fingerprint {
            Some(format!(
                "the configuration of `{}` ({}) changed since the checkpoint, so its state may no longer fit",
                node.name, node.kind
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            if allow_non_restored {
                tracing::warn!("{problem}; it starts empty");
                continue;
            }
            return Err(refuse(dir, format!("{problem}; {hint}")));
        }
        // Partitions may move between instances: each gets every position
        // and watermark, and uses those of the partitions it is assigned.
        if matches!(&now.factory, Factory::Source(f) if f.positions_follow_partitions()) {
            let mut all = RestoredInstance::default();
            for inst in &node.instances {
                all.positions.extend(inst.positions.iter().cloned());
                all.watermarks.extend(inst.watermarks.iter().copied());
            }
            // A partition that moved is reported by its old owner too,
            // with an older offset: the furthest is the current owner's.
            all.positions
                .sort_by_key(|p| (p.partition, std::cmp::Reverse(p.offset)));
            all.positions.dedup_by_key(|p| p.partition);
            all.watermarks
                .sort_by_key(|&(p, t)| (p, std::cmp::Reverse(t)));
            all.watermarks.dedup_by_key(|w| w.0);
            for worker in 0..workers {
                restored.instances.insert((index, worker), all.clone());
            }
            continue;
        }
        for inst in &node.instances {
            let state = match &inst.state_file {
                Some(name) => Some(
                    checkpoint
                        .read(name)
                        .map_err(|e| refuse(dir, e.to_string()))?,
                ),
                None => None,
            };
            restored.instances.insert(
                (index, inst.worker),
                RestoredInstance {
                    positions: inst.positions.clone(),
                    watermarks: inst.watermarks.clone(),
                    state,
                },
            );
        }
    }
    Ok(restored)
}
