//! A local OTLP/HTTP trace receiver per test (`otlp_receiver.py`): it
//! decodes each export with the official OpenTelemetry protobuf
//! definitions (opentelemetry-proto from PyPI, installed by
//! `scripts/install-services.sh`), so a body that breaks the OTLP/JSON
//! encoding is refused, and keeps every span for the test to read.

use std::process::Command;

use crate::{free_port, require_python, Server};

/// The receiver's program.
const RECEIVER: &str = include_str!("otlp_receiver.py");

/// A running receiver, stopped when dropped.
pub struct OtlpReceiver {
    server: Server,
}

impl OtlpReceiver {
    /// Starts one on a free loopback port, or returns `None` (after saying
    /// why) when opentelemetry-proto is not installed outside CI.
    pub fn start() -> Option<OtlpReceiver> {
        if !require_python(
            "opentelemetry.proto, google.protobuf",
            "opentelemetry-proto",
        ) {
            return None;
        }
        let port = free_port();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let mut cmd = Command::new("python3");
        cmd.args(["-c", RECEIVER, &port.to_string()])
            .arg(dir.path());
        Some(OtlpReceiver {
            server: Server::spawn(cmd, port, dir),
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`); spans go to `/v1/traces`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Every span received so far, flattened: `name`, `trace_id`,
    /// `span_id`, `parent_span_id`, `start_ns`, `end_ns`, `attributes`,
    /// `events` (names), `resource` (attributes) and `scope`.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        let path = self.server.dir.path().join("spans.ndjson");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Why bodies were refused, one line each.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.server.dir.path().join("errors.txt")).unwrap_or_default()
    }
}
