//! `type = "stdout"`: writes each event as one JSON line to standard output.
//!
//! ```toml
//! [sinks.console]
//! type = "stdout"
//! inputs = ["big_orders"]
//! ```
//!
//! Each batch is encoded into a reused buffer and written with one locked
//! write, so lines of different workers never interleave.

use std::io::Write;

use eddy_core::component::{BuildContext, BuildError, SinkFactory};
use eddy_core::json::write_fields;
use eddy_core::{Event, Sink, SinkError};
use serde::Deserialize;

use crate::sources::file::RecordFormat;

/// Configuration of the `stdout` sink.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// The output format. Only `"json"` (one JSON object per line) is
    /// supported.
    #[serde(default)]
    pub format: RecordFormat,
}

impl SinkFactory for StdoutConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(StdoutSink {
            buf: Vec::with_capacity(64 * 1024),
        }))
    }
}

/// Encodes `events` as NDJSON into `buf` (cleared first).
pub(crate) fn encode_ndjson(buf: &mut Vec<u8>, events: &[Event]) {
    buf.clear();
    for e in events {
        write_fields(buf, &e.fields);
        buf.push(b'\n');
    }
}

/// A running `stdout` sink.
pub struct StdoutSink {
    buf: Vec<u8>,
}

fn stdout_err(source: std::io::Error) -> SinkError {
    SinkError::Io {
        context: "stdout".into(),
        source,
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        encode_ndjson(&mut self.buf, events);
        let result = std::io::stdout().lock().write_all(&self.buf);
        // Do not keep a huge buffer around after an unusually large batch.
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::with_capacity(64 * 1024);
        }
        result.map_err(stdout_err)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        std::io::stdout().lock().flush().map_err(stdout_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Fields, Sym, Value};

    #[test]
    fn encodes_one_line_per_event() {
        let mut f = Fields::default();
        f.push(Sym::intern("a"), Value::Int(1));
        f.push(Sym::intern("b"), Value::str("x\ny"));
        let events = vec![Event::new(0, f.clone()), Event::new(1, f)];
        let mut buf = b"stale".to_vec();
        encode_ndjson(&mut buf, &events);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"a\":1,\"b\":\"x\\ny\"}\n{\"a\":1,\"b\":\"x\\ny\"}\n"
        );
    }

    #[test]
    fn writes_and_flushes_to_stdout() {
        let cfg: StdoutConfig = toml::from_str("format = \"json\"").unwrap();
        let mut sink = cfg.build(&BuildContext::single("out")).unwrap();
        let mut f = Fields::default();
        f.push(Sym::intern("stdout_sink_test"), Value::Bool(true));
        assert!(sink.write(&[Event::new(0, f)]).is_ok());
        assert!(sink.flush().is_ok());
        assert!(toml::from_str::<StdoutConfig>("format = \"pretty\"").is_err());
    }
}
