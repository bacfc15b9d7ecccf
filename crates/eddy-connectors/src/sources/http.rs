//! `type = "http"`: events that clients post to the server's
//! `POST /api/v1/ingest/{source}` (the pipeline needs a `[server]`).
//!
//! ```toml
//! [sources.orders]
//! type = "http"
//! event_time = { field = "ts", format = "epoch_ms" }   # default: ingestion time
//! queue = 64                  # bodies waiting for the pipeline (default 64)
//! max_body_bytes = 16777216   # larger bodies get 413 (default 16 MiB)
//! ```
//!
//! The server decodes each body (NDJSON or a JSON array) with
//! [`eddy_core::ingest::IngestQueue`], answers `202` with the lines it
//! refused once the body is in the queue, and `429` with `Retry-After`
//! when the queue is full: back-pressure reaches the client instead of
//! memory growing. Only worker 0 reads the queue. With ingestion time the
//! watermark follows the clock while nothing is posted, so an event's
//! results (a window closing, an alert firing) do not wait for the next
//! post. Accepted events that
//! are still queued when the process dies are lost: clients that need
//! more should retry until a downstream result confirms them.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use eddy_core::component::{
    BuildContext, BuildError, NodeContext, Prepared, SourceFactory, WatermarkSpec,
};
use eddy_core::ingest::IngestQueue;
use eddy_core::source::{EventTimeConfig, TimestampAssigner};
use eddy_core::{Source, SourceBatch, SourceError, SourcePoll};
use serde::Deserialize;

/// Default bodies queued.
const DEFAULT_QUEUE: usize = 64;
/// Default largest body.
const DEFAULT_MAX_BODY: usize = 16 << 20;

/// Configuration of the `http` source.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// How event time is found: `"ingestion"` (the default) or
    /// `{ field = "ts", ... }` as for the `file` source.
    #[serde(default)]
    pub event_time: Option<EventTimeConfig>,
    /// Bodies accepted but not yet read by the pipeline.
    #[serde(default)]
    pub queue: Option<usize>,
    /// Largest body in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

impl SourceFactory for HttpSourceConfig {
    fn prepare(&self, cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        let queue = IngestQueue::new(
            &cx.name,
            TimestampAssigner::from_config(self.event_time.as_ref()),
            self.queue.unwrap_or(DEFAULT_QUEUE),
            self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        );
        Ok(Some(Prepared::new(queue)))
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let queue: Arc<IngestQueue> = cx.prepared()?;
        let rx = if cx.worker == 0 {
            queue.take_receiver()
        } else {
            None
        };
        Ok(Box::new(HttpSource {
            rx,
            queue,
            told: i64::MIN,
        }))
    }

    fn watermarks(&self) -> WatermarkSpec {
        TimestampAssigner::from_config(self.event_time.as_ref()).watermarks()
    }
}

/// Reads the bodies the server queued.
struct HttpSource {
    /// `None` on workers other than 0, and once the queue is gone.
    rx: Option<Receiver<SourceBatch>>,
    queue: Arc<IngestQueue>,
    /// The clock time last told as progress.
    told: i64,
}

/// How often an idle ingestion-time source tells its clock, in ms.
const PROGRESS_EVERY_MS: i64 = 5;

impl Source for HttpSource {
    fn poll(&mut self, _max: usize) -> Result<SourcePoll, SourceError> {
        let Some(rx) = &self.rx else {
            return Ok(SourcePoll::Finished);
        };
        // The clock is read first: a body stamped before it is queued by
        // then, so finding the queue empty means nothing earlier will come.
        let clock = self.queue.clock();
        match rx.try_recv() {
            Ok(batch) => Ok(SourcePoll::Ready(batch)),
            Err(TryRecvError::Empty) => match clock {
                Some(t) if t >= self.told.saturating_add(PROGRESS_EVERY_MS) => {
                    self.told = t;
                    Ok(SourcePoll::Ready(SourceBatch {
                        progress: Some(t),
                        ..SourceBatch::default()
                    }))
                }
                _ => Ok(SourcePoll::Pending),
            },
            Err(TryRecvError::Disconnected) => {
                self.rx = None;
                Ok(SourcePoll::Finished)
            }
        }
    }
}
