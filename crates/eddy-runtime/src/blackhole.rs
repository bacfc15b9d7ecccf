//! The `blackhole` sink: counts and discards, for benchmarks and dry runs.

use eddy_core::component::{BuildContext, BuildError, SinkFactory};
use eddy_core::{Event, Sink, SinkError};
use serde::Deserialize;

/// `type = "blackhole"`: accepts every event and discards it. The runtime
/// still counts events and measures latency at the sink.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {
    /// Run on its own threads behind a buffer of this many batches, as
    /// network sinks do (to measure or test that path).
    #[serde(default)]
    pub buffer: Option<usize>,
}

impl SinkFactory for BlackholeConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Blackhole))
    }

    fn buffer(&self) -> Option<usize> {
        self.buffer
    }
}

/// Discards everything.
pub struct Blackhole;

impl Sink for Blackhole {
    fn write(&mut self, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
