//! Storing completed checkpoints and reading them back.
//!
//! A checkpoint directory (see [`eddy_state::checkpoint`]) holds one file
//! per operator instance with state, `op-<node>-kg-<start>-<end>` named by
//! the key groups the instance owns, and the `sources` file: a
//! [`CheckpointMeta`] with the pipeline's shape (node names, types and
//! configuration fingerprints, the worker count), every source instance's
//! positions and watermark, and which state file belongs to which instance.
//!
//! Instances report in the worker threads at the barrier; encoding and
//! writing happen here, on the writer thread, so the pipeline only waits
//! for the operators' own snapshots.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use eddy_core::codec::{DecodeError, Decoder, Encoder};
use eddy_core::source::{PartitionId, SourcePosition};
use eddy_core::state::KEY_GROUPS;
use eddy_state::checkpoint::{state_file_name, Checkpoint, CheckpointStore, SOURCES_FILE};
use eddy_state::{GroupRange, StateError};

use super::checkpoint::{CompletedCheckpoint, Coordinator};
use crate::metrics::CheckpointMetrics;
use crate::plan::Plan;

/// Format version of the `sources` file.
const META_VERSION: u8 = 1;

/// The key groups worker `worker` of `workers` owns (see
/// [`eddy_core::state::owner_of`]): the groups `g` with
/// `g * workers / KEY_GROUPS == worker`.
pub(crate) fn groups_of(worker: usize, workers: usize) -> Range<u32> {
    let first = |w: usize| ((w * KEY_GROUPS as usize).div_ceil(workers.max(1))) as u32;
    first(worker)..first(worker + 1).min(KEY_GROUPS)
}

/// What a checkpoint says about the pipeline that took it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointMeta {
    /// The pipeline's name.
    pub pipeline: String,
    /// Workers of the run.
    pub workers: usize,
    /// Taken after all input was processed.
    pub finished: bool,
    /// Nodes with state or positions, in plan order.
    pub nodes: Vec<NodeMeta>,
}

/// One node's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeMeta {
    /// Its name in the pipeline.
    pub name: String,
    /// Its `type`.
    pub kind: String,
    /// Its configuration's fingerprint (see `PlanNode::fingerprint`).
    pub fingerprint: u64,
    /// Per instance that stored something.
    pub instances: Vec<InstanceMeta>,
}

/// One instance's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceMeta {
    /// Its worker.
    pub worker: usize,
    /// Source positions (sources only).
    pub positions: Vec<SourcePosition>,
    /// Per partition, the largest event time seen (sources only).
    pub watermarks: Vec<(PartitionId, i64)>,
    /// The file holding its operator state, if any.
    pub state_file: Option<String>,
    /// That file's size in bytes.
    pub state_bytes: u64,
}

impl CheckpointMeta {
    fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(META_VERSION);
        e.str(&self.pipeline);
        e.varint(self.workers as u64);
        e.u8(u8::from(self.finished));
        e.varint(self.nodes.len() as u64);
        for n in &self.nodes {
            e.str(&n.name);
            e.str(&n.kind);
            e.varint(n.fingerprint);
            e.varint(n.instances.len() as u64);
            for i in &n.instances {
                e.varint(i.worker as u64);
                e.varint(i.positions.len() as u64);
                for p in &i.positions {
                    e.varint(p.partition);
                    e.varint(p.offset);
                }
                e.varint(i.watermarks.len() as u64);
                for (partition, t) in &i.watermarks {
                    e.varint(*partition);
                    e.zigzag(*t);
                }
                e.put(&i.state_file);
                e.varint(i.state_bytes);
            }
        }
        e.into_bytes()
    }

    /// Reads a `sources` file.
    pub fn decode(bytes: &[u8]) -> Result<CheckpointMeta, DecodeError> {
        let mut d = Decoder::new(bytes);
        let version = d.u8()?;
        if version != META_VERSION {
            return Err(DecodeError::OutOfRange("checkpoint format version"));
        }
        let small = |n: u64, what| usize::try_from(n).map_err(|_| DecodeError::OutOfRange(what));
        let pipeline = d.str()?.to_owned();
        let workers = small(d.varint()?, "workers")?;
        let finished = d.u8()? != 0;
        let mut nodes = Vec::new();
        for _ in 0..d.len(3)? {
            let name = d.str()?.to_owned();
            let kind = d.str()?.to_owned();
            let fingerprint = d.varint()?;
            let mut instances = Vec::new();
            for _ in 0..d.len(4)? {
                let worker = small(d.varint()?, "worker")?;
                let mut positions = Vec::new();
                for _ in 0..d.len(2)? {
                    positions.push(SourcePosition {
                        partition: d.varint()?,
                        offset: d.varint()?,
                    });
                }
                let mut watermarks = Vec::new();
                for _ in 0..d.len(2)? {
                    watermarks.push((d.varint()?, d.zigzag()?));
                }
                let state_file = d.get()?;
                let state_bytes = d.varint()?;
                instances.push(InstanceMeta {
                    worker,
                    positions,
                    watermarks,
                    state_file,
                    state_bytes,
                });
            }
            nodes.push(NodeMeta {
                name,
                kind,
                fingerprint,
                instances,
            });
        }
        d.finish()?;
        Ok(CheckpointMeta {
            pipeline,
            workers,
            finished,
            nodes,
        })
    }

    /// Reads the meta of a stored checkpoint.
    pub fn read(checkpoint: &Checkpoint) -> Result<CheckpointMeta, StateError> {
        let bytes = checkpoint.read(SOURCES_FILE)?;
        CheckpointMeta::decode(&bytes).map_err(|e| {
            StateError::Corrupt(format!(
                "{}: {e}",
                checkpoint.dir.join(SOURCES_FILE).display()
            ))
        })
    }

    /// Total bytes of operator state.
    pub fn state_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .flat_map(|n| &n.instances)
            .map(|i| i.state_bytes)
            .sum()
    }
}

/// Writes one completed checkpoint; returns its total size in bytes.
fn store_one(
    store: &CheckpointStore,
    plan: &Plan,
    workers: usize,
    checkpoint: &CompletedCheckpoint,
) -> Result<u64, StateError> {
    let mut writer = store.begin(checkpoint.id)?;
    let mut meta = CheckpointMeta {
        pipeline: plan.name.clone(),
        workers,
        finished: checkpoint.finished,
        nodes: Vec::new(),
    };
    let mut total = 0u64;
    for inst in &checkpoint.instances {
        let has_state = inst.state.is_some();
        if !has_state && inst.positions.is_empty() && inst.watermarks.is_empty() {
            continue;
        }
        let Some(node) = plan.nodes.get(inst.node) else {
            continue;
        };
        if meta.nodes.last().is_none_or(|n| n.name != node.name) {
            meta.nodes.push(NodeMeta {
                name: node.name.clone(),
                kind: node.kind.clone(),
                fingerprint: node.fingerprint,
                instances: Vec::new(),
            });
        }
        let mut im = InstanceMeta {
            worker: inst.worker,
            positions: inst.positions.clone(),
            watermarks: inst.watermarks.clone(),
            state_file: None,
            state_bytes: 0,
        };
        if let Some(state) = &inst.state {
            let range = GroupRange::new(groups_of(inst.worker, workers));
            let name = format!("{}-w{}", state_file_name(&node.name, &range), inst.worker);
            let bytes = state.encode();
            writer.write_file(&name, &bytes)?;
            im.state_bytes = bytes.len() as u64;
            total += im.state_bytes;
            im.state_file = Some(name);
        }
        if let Some(n) = meta.nodes.last_mut() {
            n.instances.push(im);
        }
    }
    let bytes = meta.encode();
    total += bytes.len() as u64;
    writer.write_sources(&bytes)?;
    writer.commit()?;
    Ok(total)
}

/// The writer thread: stores each checkpoint the coordinator completes, in
/// order, keeps the newest `retain`, and tells the coordinator.
pub(crate) fn write_checkpoints(
    rx: Receiver<(CompletedCheckpoint, Instant)>,
    store: CheckpointStore,
    plan: Arc<Plan>,
    workers: usize,
    retain: usize,
    coordinator: Arc<Coordinator>,
    metrics: Arc<CheckpointMetrics>,
) {
    for (checkpoint, started) in rx {
        let id = checkpoint.id;
        // Storing one checkpoint, in an exported trace; `aligned_ms` is
        // the time from its request until every instance had snapshotted.
        let span = tracing::info_span!(
            "checkpoint.store",
            checkpoint.id = id as i64,
            aligned_ms = started.elapsed().as_millis() as i64,
            bytes = tracing::field::Empty,
        );
        let _storing = span.enter();
        match store_one(&store, &plan, workers, &checkpoint) {
            Ok(bytes) => {
                span.record("bytes", bytes as i64);
                if let Err(e) = store.retain(retain) {
                    tracing::warn!("removing old checkpoints in {}: {e}", store.dir().display());
                }
                metrics.completed(id, started.elapsed(), bytes);
                coordinator.stored(checkpoint, true);
            }
            Err(e) => {
                tracing::warn!("checkpoint {id} could not be stored: {e}");
                metrics.failures.fetch_add(1, Relaxed);
                coordinator.stored(checkpoint, false);
            }
        }
    }
}

/// Where a run's checkpoints live.
pub(crate) fn store_dir(plan: &Plan) -> Option<PathBuf> {
    let settings = plan.checkpoint.as_ref()?;
    let data_dir = PathBuf::from(plan.settings.data_dir.as_deref().unwrap_or("data"));
    Some(settings.directory(&data_dir, &plan.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_group_ranges_match_ownership() {
        for workers in 1..=7 {
            for g in 0..KEY_GROUPS {
                let owner = eddy_core::state::owner_of(g, workers);
                assert!(groups_of(owner, workers).contains(&g), "{g} of {workers}");
            }
            let total: u32 = (0..workers)
                .map(|w| groups_of(w, workers).len() as u32)
                .sum();
            assert_eq!(total, KEY_GROUPS);
        }
    }

    #[test]
    fn meta_round_trips_and_refuses_garbage() {
        let meta = CheckpointMeta {
            pipeline: "orders".into(),
            workers: 2,
            finished: true,
            nodes: vec![NodeMeta {
                name: "in".into(),
                kind: "file".into(),
                fingerprint: u64::MAX,
                instances: vec![InstanceMeta {
                    worker: 1,
                    positions: vec![SourcePosition {
                        partition: 0,
                        offset: 1 << 40,
                    }],
                    watermarks: vec![(0, -5)],
                    state_file: Some("op-in-kg-64-128-w1".into()),
                    state_bytes: 17,
                }],
            }],
        };
        let bytes = meta.encode();
        assert_eq!(CheckpointMeta::decode(&bytes).unwrap(), meta);
        for cut in 0..bytes.len() {
            assert!(CheckpointMeta::decode(&bytes[..cut]).is_err());
        }
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(CheckpointMeta::decode(&other).is_err());
    }
}
