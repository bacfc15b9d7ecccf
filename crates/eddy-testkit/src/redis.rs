//! A throwaway `redis-server` per test: no persistence, its own port and
//! directory, and [`Redis::kill`]/[`Redis::restart`] to simulate an outage.

use std::process::Command;

use crate::{free_port, require, Server};

/// A running `redis-server`, stopped when dropped.
pub struct Redis {
    server: Server,
    program: std::path::PathBuf,
}

impl Redis {
    /// Starts a server on a free loopback port, or returns `None` (after
    /// saying why) when `redis-server` is not installed outside CI.
    pub fn start() -> Option<Redis> {
        let program = require("redis-server", &[])?;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let cmd = command(&program, port, dir.path());
        Some(Redis {
            server: Server::spawn(cmd, port, dir),
            program,
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.server.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Stops the server (SIGKILL). Without persistence its data is gone.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts it again on the same port after [`Redis::kill`].
    pub fn restart(&mut self) {
        let cmd = command(&self.program, self.server.port, self.server.path());
        self.server.restart(cmd);
    }
}

fn command(program: &std::path::Path, port: u16, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    cmd
}
