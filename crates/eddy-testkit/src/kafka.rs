//! A Kafka-protocol broker (tansu) for tests.

use std::path::PathBuf;
use std::process::Command;

use crate::{free_port, require, Server};

/// A running tansu broker on a free loopback port, keeping records in
/// memory. Topics must be created explicitly (no auto-creation).
pub struct Broker {
    server: Server,
    program: PathBuf,
}

impl Broker {
    /// Starts a broker, or `None` (outside CI) when tansu is not installed.
    pub fn start() -> Option<Broker> {
        let home = std::env::var("HOME").unwrap_or_default();
        let cached = format!("{home}/.cargo/bin/tansu");
        let program = require("tansu", &[cached.as_str()])?;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let server = Server::spawn(command(&program, port), port, dir);
        Some(Broker { server, program })
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    /// Stops the broker (as a crash would).
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts it again on the same port. Its storage is in memory, so
    /// topics and records are gone: recreate the topics.
    pub fn restart(&mut self) {
        let cmd = command(&self.program, self.server.port);
        self.server.restart(cmd);
    }
}

fn command(program: &PathBuf, port: u16) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(program);
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        "memory://tansu/",
    ]);
    cmd
}
