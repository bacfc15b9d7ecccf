//! An operator instance's checkpointed state: its tables, its timers and
//! its watermark, taken at a barrier, written out later, and restored
//! before the instance's first call.
//!
//! Taking it is the synchronous part of a checkpoint: expired entries are
//! removed, then every table is frozen ([`StateTable::snapshot`], a
//! copy-on-write view for the built-in kinds). [`OperatorState::encode`]
//! encodes the frozen views on the checkpoint writer's thread as
//! `version, watermark, [name, bytes]*`; tables are matched by name on
//! restore.

use std::sync::Arc;

use crate::codec::{Decoder, Encoder};
use crate::operator::{Operator, OperatorContext};
use crate::state::{GroupRange, StateError, TableSnapshot, TimeDomain};
use crate::time::{now_ms, Timestamp};

/// The format of [`OperatorState::encode`].
const VERSION: u8 = 1;

/// Names of the context's timer tables in a snapshot (operators' table
/// names are identifiers, so they cannot collide).
const EVENT_TIMERS: &str = "$event-timers";
const PROCESSING_TIMERS: &str = "$processing-timers";

/// One operator instance's state frozen at a barrier.
#[derive(Clone)]
pub struct OperatorState {
    /// The instance's watermark.
    pub watermark: Timestamp,
    tables: Vec<(String, Arc<dyn TableSnapshot>)>,
}

impl OperatorState {
    /// Freezes `op`'s tables and `cx`'s timers and watermark, after
    /// removing expired entries; `None` for an operator without state.
    pub fn take(op: &mut dyn Operator, cx: &mut OperatorContext) -> Option<OperatorState> {
        let mut tables: Vec<(String, Arc<dyn TableSnapshot>)> = Vec::new();
        let watermark = cx.watermark();
        for (name, table) in op.tables() {
            match table.ttl_domain() {
                Some(TimeDomain::EventTime) => {
                    table.expire(watermark);
                }
                Some(TimeDomain::ProcessingTime) => {
                    table.expire(now_ms());
                }
                None => {}
            }
            tables.push((name.to_string(), Arc::from(table.snapshot())));
        }
        for (name, domain) in [
            (EVENT_TIMERS, TimeDomain::EventTime),
            (PROCESSING_TIMERS, TimeDomain::ProcessingTime),
        ] {
            let timers = cx.timers(domain);
            if timers.stored() > 0 {
                tables.push((name.to_string(), Arc::from(timers.snapshot())));
            }
        }
        if tables.is_empty() {
            return None;
        }
        Some(OperatorState { watermark, tables })
    }

    /// Encodes the state (runs on the checkpoint writer's thread).
    pub fn encode(&self) -> Vec<u8> {
        let mut enc = Encoder::new();
        enc.u8(VERSION);
        enc.zigzag(self.watermark);
        enc.varint(self.tables.len() as u64);
        let mut bytes = Vec::new();
        for (name, table) in &self.tables {
            enc.str(name);
            bytes.clear();
            table.write(&mut bytes);
            enc.bytes_field(&bytes);
        }
        enc.into_bytes()
    }

    /// Restores bytes written by [`OperatorState::encode`] into `op`'s
    /// tables and `cx`'s timers and watermark, keeping the key groups in
    /// `groups`; returns the entries restored. A table the operator no
    /// longer keeps is an error naming it.
    pub fn restore(
        bytes: &[u8],
        groups: &GroupRange,
        op: &mut dyn Operator,
        cx: &mut OperatorContext,
    ) -> Result<usize, StateError> {
        let mut dec = Decoder::new(bytes);
        let version = dec.u8()?;
        if version != VERSION {
            return Err(StateError::Corrupt(format!(
                "operator state format {version}, this version of Eddy reads {VERSION}"
            )));
        }
        let watermark = dec.zigzag()?;
        let n = dec.len(2)?;
        let mut restored = 0;
        let mut tables = op.tables();
        for _ in 0..n {
            let name = dec.str()?;
            let bytes = dec.bytes_field()?;
            restored += match name {
                EVENT_TIMERS => cx.timers(TimeDomain::EventTime).restore(bytes, groups)?,
                PROCESSING_TIMERS => cx
                    .timers(TimeDomain::ProcessingTime)
                    .restore(bytes, groups)?,
                _ => match tables.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, table)) => table.restore(bytes, groups)?,
                    None => {
                        return Err(StateError::Corrupt(format!(
                            "it holds state table `{name}`, which this operator no longer keeps"
                        )))
                    }
                },
            };
        }
        dec.finish()?;
        cx.set_watermark(watermark);
        Ok(restored)
    }
}

impl std::fmt::Debug for OperatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tables.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OperatorState")
            .field("watermark", &self.watermark)
            .field("tables", &names)
            .finish()
    }
}
