//! Helpers shared by the end-to-end test binaries (each uses a subset).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn eddy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
}

pub fn write_pipeline(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn ids_in(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["id"].as_i64())
        .collect()
}

/// Waits until `done()` or panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads `child`'s stderr (it must be piped) until it says where it
/// serves; returns that base URL and a thread that collects the whole log
/// until the process ends.
pub fn served_at(child: &mut std::process::Child) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("serving the dashboard and API at ").nth(1) {
                let _ = tx.send(rest.split(' ').next().unwrap_or_default().to_string());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("eddy says where it serves");
    (url, log)
}

/// Runs `cmd` and fails the test, with its output, unless it succeeds.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `tests/support/kafka_check.py` with `args` (a kafka-python client).
pub fn python(args: &[&str]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/kafka_check.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(args);
    cmd
}

/// Reads `count` records of `topic` with kafka-python.
pub fn consume_with_python(brokers: &str, topic: &str, count: usize) -> Vec<Value> {
    let out = succeed(&mut python(&[
        "consume",
        brokers,
        topic,
        &count.to_string(),
    ]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sends `lines` to `topic` with kafka-python.
pub fn produce_with_python(brokers: &str, topic: &str, codec: &str, lines: &[String]) {
    let mut child = python(&["produce", brokers, topic, codec])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    assert!(
        child.wait().unwrap().success(),
        "kafka-python produce failed"
    );
}

/// Creates topics through `eddy topics apply`; returns its stdout.
pub fn apply_topics(brokers: &str, dir: &Path, topics: &[(&str, u32)]) -> String {
    let mut text = String::new();
    for (name, partitions) in topics {
        text.push_str(&format!("[topics.{name}]\npartitions = {partitions}\n\n"));
    }
    let file = dir.join(format!("topics-{}.toml", topics[0].0));
    std::fs::write(&file, text).unwrap();
    let out = succeed(
        eddy()
            .args(["topics", "apply", "--brokers", brokers])
            .arg(&file),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a complete checkpoint (one with its `_manifest`) exists under
/// `dir`, at any depth up to four.
pub fn has_checkpoint(dir: &Path) -> bool {
    fn walk(dir: &Path, depth: usize) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.filter_map(Result::ok).any(|e| {
            let path = e.path();
            path.file_name().is_some_and(|n| n == "_manifest")
                || (depth > 0 && path.is_dir() && walk(&path, depth - 1))
        })
    }
    walk(dir, 4)
}

/// Runs `eddy run CONFIG` up to `attempts` times, each run killed with
/// SIGKILL unless it ended first: once a complete checkpoint exists under
/// `checkpoints` (so a restart has one to resume from), after a further
/// pseudo-random wait in `0..300` ms (from `seed`); then once more to the
/// end. Returns how many kills hit a running process and how many of the
/// killed runs had resumed from a checkpoint.
pub fn run_with_kills(
    config: &Path,
    checkpoints: &Path,
    attempts: usize,
    mut seed: u64,
) -> (usize, usize) {
    let (mut hits, mut resumed) = (0, 0);
    for _ in 0..attempts {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let wait = Duration::from_millis((seed >> 33) % 300);
        let mut child = eddy()
            .arg("run")
            .arg(config)
            .env("EDDY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while !has_checkpoint(checkpoints) && Instant::now() < until {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        let log = child.wait_with_output().unwrap().stderr;
        resumed += usize::from(String::from_utf8_lossy(&log).contains("resuming from checkpoint"));
        hits += 1;
    }
    succeed(eddy().arg("run").arg(config).arg("-q"));
    (hits, resumed)
}

/// A child process killed when dropped, so a failing test leaves no run
/// behind.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
