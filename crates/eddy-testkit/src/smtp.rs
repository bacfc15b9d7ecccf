//! A throwaway SMTP server per test (aiosmtpd from PyPI, installed by
//! `scripts/install-services.sh`) that keeps each message it receives in a
//! Maildir, for a test to read back.

use std::process::Command;

use crate::{free_port, require_python, Server};

/// A running SMTP server, stopped when dropped.
pub struct Smtp {
    server: Server,
}

impl Smtp {
    /// Starts a server on a free loopback port, or returns `None` (after
    /// saying why) when aiosmtpd is not installed outside CI.
    pub fn start() -> Option<Smtp> {
        if !require_python("aiosmtpd", "aiosmtpd") {
            return None;
        }
        let port = free_port();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"));
        Some(Smtp {
            server: Server::spawn(cmd, port, dir),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    /// Every message received so far, raw, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let dir = self.server.dir.path().join("mail").join("new");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}
