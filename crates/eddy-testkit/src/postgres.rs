//! A throwaway PostgreSQL server: `initdb` into a temp dir, trust
//! authentication, one database, a free loopback port.
//!
//! PostgreSQL refuses to run as root, and the tests may run as root (in
//! containers): then the temp dir is handed to the `postgres` user (created
//! by the Debian package) and `initdb`/`postgres` run under its uid. The uid
//! is set on the child itself (rather than through `runuser`, which forks
//! and waits) so the child *is* the postmaster and signals reach it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{free_port, require, Server};

/// The superuser and database the server is set up with.
const USER: &str = "eddy";
const DB: &str = "eddy";

/// A running PostgreSQL server, stopped (immediate shutdown) and removed
/// when dropped.
pub struct Postgres {
    server: Server,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
}

/// `/usr/lib/postgresql/*/bin`, newest version first.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, d)| d).collect()
}

/// The `postgres` user's uid and gid when running as root.
fn owner() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    let uid = id(&["-u", "postgres"]).unwrap_or_else(|| {
        panic!("running as root, but there is no `postgres` user to run PostgreSQL as")
    });
    let gid = id(&["-g", "postgres"]).unwrap_or(uid);
    Some((uid, gid))
}

impl Postgres {
    /// Starts a server, or returns `None` (after saying why) when
    /// PostgreSQL is not installed; under `CI=true` that panics instead.
    pub fn start() -> Option<Postgres> {
        let dirs = candidate_dirs();
        let extra: Vec<String> = dirs
            .iter()
            .map(|d| d.join("postgres").display().to_string())
            .chain(["/usr/lib/postgresql/15/bin/postgres".to_string()])
            .collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let postgres = require("postgres", &extra)?;
        let bin = postgres.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let owner = owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", dir.path().display()));
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            USER,
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        as_owner(&mut initdb, owner);
        let out = initdb
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let pg = Postgres {
            server: Server::spawn(Self::command(&bin, dir.path(), port, owner), port, dir),
            bin,
            owner,
        };
        pg.await_queries();
        pg.psql("postgres", &format!("CREATE DATABASE {DB}"));
        Some(pg)
    }

    fn command(bin: &Path, dir: &Path, port: u16, owner: Option<(u32, u32)>) -> Command {
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            // Not `synchronous_commit=off`: a commit must survive the
            // immediate shutdown of `restart`, as it would a real crash
            // (fsync only matters when the OS itself goes down).
            .args(["-c", "full_page_writes=off"]);
        as_owner(&mut cmd, owner);
        cmd
    }

    /// The port accepts connections a moment before queries are served
    /// ("the database system is starting up").
    fn await_queries(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self
                .psql_command("postgres", "SELECT 1")
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < until,
                "PostgreSQL on port {} does not answer queries",
                self.port()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `postgres://eddy@127.0.0.1:PORT/eddy`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DB}", self.port())
    }

    /// The directory holding `psql` and the server programs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    fn psql_command(&self, db: &str, sql: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", USER, "-d", db])
            .args(["-p", &self.port().to_string(), "-c", sql]);
        cmd
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .psql_command(db, sql)
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `sql` with `psql` in the test database and returns its output
    /// unaligned (`|` between columns, one row per line); panics on error.
    pub fn query(&self, sql: &str) -> String {
        self.psql(DB, sql)
    }

    /// Turns TLS on with a fresh self-signed certificate for 127.0.0.1 and
    /// refuses TCP connections without TLS from then on. Returns the
    /// certificate (PEM) for clients to trust.
    pub fn enable_tls(&self) -> PathBuf {
        let dir = self.server.path();
        let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = dir.join("data").join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap_or_else(|e| panic!("{}: {e}", hba.display()));
        for f in [&key, &crt, &hba] {
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(f, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", f.display()));
            }
        }
        // The server refuses a key others can read.
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", key.display()));
        for sql in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
            "ALTER SYSTEM SET ssl = on".to_string(),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            self.psql("postgres", &sql);
        }
        crt
    }

    /// Stops the server abruptly (immediate shutdown: clients see their
    /// connections terminated), waits `down`, and starts it again on the
    /// same port and data directory.
    pub fn restart_after(&mut self, down: Duration) {
        self.server.stop_with("QUIT", Duration::from_secs(10));
        std::thread::sleep(down);
        let cmd = Self::command(&self.bin, self.server.path(), self.port(), self.owner);
        self.server.restart(cmd);
        self.await_queries();
    }

    /// [`Postgres::restart_after`] without a pause.
    pub fn restart(&mut self) {
        self.restart_after(Duration::ZERO);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.server.stop_with("QUIT", Duration::from_secs(10));
    }
}

fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
        // initdb and postgres look at these; root's would not be readable.
        cmd.env("HOME", "/tmp").current_dir("/tmp");
    }
}
