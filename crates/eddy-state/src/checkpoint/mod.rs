//! Checkpoint storage in a local directory.
//!
//! ```text
//! DIR/chk-<id>/op-<operator>-kg-<start>-<end>   one file per operator and key-group range
//! DIR/chk-<id>/sources                          source positions
//! DIR/chk-<id>/_manifest                        written last: every file's size and CRC-32
//! ```
//!
//! A checkpoint is complete when its `_manifest` exists and every file it
//! names has the recorded size and checksum. The manifest is written to a
//! temporary file, synced, renamed into place and the directory synced, so a
//! crash leaves either no manifest or a whole one. Listing skips incomplete
//! or damaged checkpoints and reports each with the reason.
//!
//! Only local directories for now; object storage would sit behind the same
//! [`CheckpointStore`] calls.

mod manifest;
mod store;

pub use manifest::FileEntry;
pub use store::{
    state_file_name, Checkpoint, CheckpointProblem, CheckpointStore, CheckpointWriter, Listing,
    Problem, SOURCES_FILE,
};
