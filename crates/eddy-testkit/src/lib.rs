//! Real servers for Eddy's tests, each started by the test that needs it on
//! a free loopback port and stopped when its guard drops.
//!
//! The servers' programs are installed by `scripts/test.sh`. When one is
//! missing, [`require`] fails the test under `CI=true` (a missing server is
//! a failure there, never a silent skip) and otherwise returns `None` after
//! saying why, so a developer without the service can still run the rest.
//!
//! Servers: [`postgres::Postgres`], [`redis::Redis`], [`kafka`], [`http`]
//! receivers, an OTLP trace receiver ([`otlp::OtlpReceiver`]) and a
//! headless browser ([`browser::Browser`]).
#![warn(missing_docs)]

pub mod browser;
pub mod fuzz;
pub mod http;
pub mod otlp;
pub mod redis;
pub mod smtp;

pub use http::HttpReceiver;
pub use redis::Redis;
pub mod postgres;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub mod kafka;
pub mod pii;

/// Whether the tests run in CI, where every server must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds `program` on `PATH` or at one of `extra` paths. Under CI a missing
/// program panics; elsewhere `None` is returned and the reason printed.
pub fn require(program: &str, extra: &[&str]) -> Option<PathBuf> {
    let found = extra
        .iter()
        .map(PathBuf::from)
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(program))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .find(|p| p.is_file());
    if found.is_none() {
        let msg = format!("`{program}` is not installed: run scripts/install-services.sh");
        assert!(!in_ci(), "{msg}");
        eprintln!("skipping: {msg}");
    }
    found
}

/// Whether Python can import `modules` (the packages `scripts/install-services.sh`
/// installs). Under CI a missing one panics; elsewhere `false` is
/// returned and the reason printed.
pub fn require_python(modules: &str, package: &str) -> bool {
    let installed = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let msg = format!("{package} is not installed: run scripts/install-services.sh");
        assert!(!in_ci(), "{msg}");
        eprintln!("skipping: {msg}");
    }
    installed
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A server process, killed (and its files removed) when dropped.
pub struct Server {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    /// Its scratch directory (data files, logs).
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    /// Spawns `cmd` (stdout and stderr to `dir/server.log`) and waits for
    /// `port` to accept connections.
    pub fn spawn(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Server {
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut server = Server {
            child: Some(child),
            port,
            dir,
            log,
        };
        server.await_ready();
        server
    }

    fn await_ready(&mut self) {
        if !wait_for_port(self.port, Duration::from_secs(60)) {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!(
                "server on port {} did not start; its log:\n{log}",
                self.port
            );
        }
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (a `kill` name such as `QUIT`) and waits up to
    /// `grace` for the process to exit; then kills it. For servers whose
    /// clean or immediate shutdown matters (PostgreSQL's postmaster leaves
    /// its backends behind when killed outright).
    pub fn stop_with(&mut self, signal: &str, grace: Duration) {
        if let Some(c) = self.child.as_mut() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(c.id().to_string())
                .status();
            let until = Instant::now() + grace;
            while Instant::now() < until {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    /// Starts the process again with `cmd` after [`Server::kill`], on the
    /// same port and directory.
    pub fn restart(&mut self, mut cmd: Command) {
        self.kill();
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        self.child = Some(
            cmd.stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot restart {cmd:?}: {e}")),
        );
        self.await_ready();
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
