//! Crash recovery as a user meets it: `eddy run` killed with SIGKILL at
//! random moments and started again with the same command until it
//! finishes; the output must equal one uninterrupted run's, record for
//! record (compared sorted: with several workers the order of lines
//! between workers is not defined, their content is).
//!
//! The tumbling results also feed an anomaly detector (the ensemble, per
//! merchant), whose scores must come out bit for bit the same.
//!
//! The tumbling results also go to a real PostgreSQL (appended and
//! upserted), compared row for row with the uninterrupted run's tables.
//!
//! With two workers the killed runs also spill window state beyond a
//! 2 KiB budget to disk (`state_memory`), so spilled state crosses the
//! checkpoints and restores too, against the in-memory uninterrupted run.
//!
//! `EDDY_CHAOS_EVENTS` (default 1,000,000) and `EDDY_CHAOS_KILLS` (default
//! 20) size the test; `EDDY_CHAOS_SEED` replays a run's kill moments.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn eddy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Events 10 ms apart with up to ±400 ms of disorder, 50 merchants, users
/// active in bursts of 100 events, and every 9,973rd event 40 s old (late).
fn write_input(path: &Path, events: u64) {
    use std::io::Write;
    let mut rng = Rng(7);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let base: i64 = 1_700_000_000_000;
    for i in 0..events {
        let mut ts = base + i as i64 * 10 + rng.below(800) as i64 - 400;
        if i % 9_973 == 9_972 {
            ts -= 40_000;
        }
        writeln!(
            out,
            r#"{{"ts":{ts},"merchant":"m{}","user":"u{}","amount":{},"i":{i}}}"#,
            i % 50,
            (i / 100) % 2_000,
            rng.below(10_000),
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// The chaos pipeline; with `postgres` (a URL and a table prefix) the
/// tumbling results also go to PostgreSQL, appended and upserted.
fn pipeline(dir: &Path, workers: usize) -> String {
    pipeline_with(dir, workers, None, "")
}

/// The chaos pipeline with PostgreSQL output and `[pipeline]` lines
/// `extra`.
fn pipeline_with(
    dir: &Path,
    workers: usize,
    postgres: Option<(&str, &str)>,
    extra: &str,
) -> String {
    let d = dir.display();
    let pg = match postgres {
        Some((url, prefix)) => format!(
            r#"
[sinks.pg_append]
type = "postgres"
inputs = ["tumbling"]
url = {url:?}
table = "{prefix}_appended"
create_table = true

[sinks.pg_upsert]
type = "postgres"
inputs = ["tumbling"]
url = {url:?}
table = "{prefix}_upserted"
mode = "upsert"
key = ["window_start", "merchant"]
create_table = true
"#
        ),
        None => String::new(),
    };
    let text = format!(
        r#"
[pipeline]
name = "chaos"
workers = {workers}
data_dir = "{d}/data"
{extra}

[checkpoint]
interval = "300ms"

[sources.tx]
type = "file"
path = "{d}/in.ndjson"
event_time = {{ field = "ts", format = "epoch_ms", max_out_of_orderness = "1s" }}

[transforms.tumbling]
type = "window"
inputs = ["tx"]
key = "merchant"
window = {{ tumbling = "10s" }}
aggregates = {{ n = "count()", total = "sum(amount)", top = "max_by(i, amount)" }}

[transforms.sliding]
type = "window"
inputs = ["tx"]
key = "merchant"
window = {{ sliding = "30s", every = "10s" }}
aggregates = {{ n = "count()", p50 = "quantile(amount, 0.5)" }}

[transforms.sessions]
type = "window"
inputs = ["tx"]
key = "user"
window = {{ session = "5s" }}
aggregates = {{ n = "count()", first = "first(i)", last = "last(i)" }}

[transforms.scaled]
type = "map"
inputs = ["tx"]
set = {{ cents = "amount * 100" }}

[transforms.anomalies]
type = "anomaly"
inputs = ["tumbling"]
key = "merchant"
field = "total"
method = "ensemble"
min_samples = 5
hst_window = 16

[sinks.anomalies_out]
type = "file"
inputs = ["anomalies"]
path = "{d}/out/anomalies.ndjson"

[sinks.tumbling_out]
type = "file"
inputs = ["tumbling", "tumbling.late"]
path = "{d}/out/tumbling.ndjson"

[sinks.sliding_out]
type = "file"
inputs = ["sliding"]
path = "{d}/out/sliding.ndjson"

[sinks.sessions_out]
type = "file"
inputs = ["sessions"]
path = "{d}/out/sessions.ndjson"

[sinks.scaled_out]
type = "file"
inputs = ["scaled"]
path = "{d}/out/scaled.ndjson"
"#
    );
    text + &pg
}

const OUTPUTS: [&str; 5] = ["tumbling", "sliding", "sessions", "scaled", "anomalies"];

fn sorted_output(dir: &Path) -> Vec<Vec<String>> {
    OUTPUTS
        .iter()
        .map(|name| {
            let path = dir.join("out").join(format!("{name}.ndjson"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.sort_unstable();
            lines
        })
        .collect()
}

/// Appends a run's stderr to `log` next to the config, for the report of
/// a failure.
fn keep_log(config: &Path, stderr: &[u8]) {
    use std::io::Write;
    let path = config.with_file_name("eddy.log");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    log.write_all(stderr).unwrap();
    writeln!(log, "--- run ended").unwrap();
}

/// The warnings and errors the runs in `dir` logged.
fn logged_problems(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("eddy.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(40)
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_to_end(config: &Path) {
    let out = eddy().arg("run").arg(config).arg("-q").output().unwrap();
    keep_log(config, &out.stderr);
    assert!(
        out.status.success(),
        "eddy run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the pipeline in `dir` killing it `kills` times; returns how many
/// kills hit a running process.
fn run_with_kills(config: &Path, kills: u64, rng: &mut Rng) -> u64 {
    let mut hit = 0;
    for _ in 0..kills {
        let mut child = eddy()
            .arg("run")
            .arg(config)
            .arg("-q")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(150 + rng.below(1_500));
        let started = Instant::now();
        let mut finished = false;
        while started.elapsed() < wait && !finished {
            finished = matches!(child.try_wait(), Ok(Some(_)));
            std::thread::sleep(Duration::from_millis(5));
        }
        // SIGKILL (a no-op if it already exited), then reap it either way.
        // A run that ended on its own between the last look and the kill
        // exits successfully: running it again would start a new run over
        // a finished input, appending everything to PostgreSQL once more.
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        keep_log(config, &out.stderr);
        if finished || out.status.success() {
            assert!(
                out.status.success(),
                "eddy run failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return hit;
        }
        hit += 1;
    }
    run_to_end(config);
    hit
}

/// The rows of a table the chaos pipeline writes, sorted, as text.
fn table_rows(pg: &eddy_testkit::postgres::Postgres, table: &str) -> String {
    pg.query(&format!(
        "SELECT window_start, merchant, n, total, top FROM {table} \
         ORDER BY window_start, merchant, n, total, top"
    ))
}

fn chaos(workers: usize, postgres: bool) {
    let events = env_or("EDDY_CHAOS_EVENTS", 1_000_000);
    let kills = env_or("EDDY_CHAOS_KILLS", 20);
    let seed = env_or("EDDY_CHAOS_SEED", 0x5eed + workers as u64);
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in.ndjson");
    write_input(&input, events);
    let pg = if postgres {
        eddy_testkit::postgres::Postgres::start()
    } else {
        None
    };
    let setup = |name: &str, extra: &str| -> (PathBuf, PathBuf) {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::hard_link(&input, dir.join("in.ndjson")).unwrap();
        let config = dir.join("pipeline.toml");
        let url = pg.as_ref().map(|pg| pg.url());
        let postgres = url.as_deref().map(|url| (url, name));
        std::fs::write(&config, pipeline_with(&dir, workers, postgres, extra)).unwrap();
        (dir, config)
    };

    let (calm, calm_config) = setup("calm", "");
    run_to_end(&calm_config);
    let expected = sorted_output(&calm);
    assert!(
        expected[3].len() as u64 == events,
        "the map writes every event"
    );

    let spill = if workers > 1 {
        "state_memory = \"2KiB\""
    } else {
        ""
    };
    let (crashed, crashed_config) = setup("crashed", spill);
    let mut rng = Rng(seed);
    let hit = run_with_kills(&crashed_config, kills, &mut rng);
    eprintln!("{workers} workers: {hit} of {kills} kills hit a running process (seed {seed})");
    assert!(
        hit > 0,
        "no kill hit a running process; the test proved nothing"
    );
    if !spill.is_empty() {
        let log = std::fs::read_to_string(crashed.join("eddy.log")).unwrap_or_default();
        assert!(
            log.contains("spills to disk"),
            "the killed runs were to spill window state:\n{log}"
        );
    }
    let got = sorted_output(&crashed);
    for (i, name) in OUTPUTS.iter().enumerate() {
        assert_eq!(
            got[i].len(),
            expected[i].len(),
            "{name}: {} records after {hit} kills, {} uninterrupted (seed {seed})",
            got[i].len(),
            expected[i].len()
        );
        if let Some(k) = (0..got[i].len()).find(|&k| got[i][k] != expected[i][k]) {
            panic!(
                "{name}: record {k} differs after {hit} kills (seed {seed}):\n got  {}\n want {}",
                got[i][k], expected[i][k]
            );
        }
    }
    if let Some(pg) = &pg {
        for table in ["appended", "upserted"] {
            let want = table_rows(pg, &format!("calm_{table}"));
            let got = table_rows(pg, &format!("crashed_{table}"));
            assert!(want.lines().count() > 100, "{table}: {want}");
            if got != want {
                let (g, w): (Vec<&str>, Vec<&str>) =
                    (got.lines().collect(), want.lines().collect());
                let k = (0..g.len().min(w.len())).find(|&k| g[k] != w[k]);
                let staged = |prefix: &str| {
                    pg.query(&format!(
                        "SELECT eddy_worker, eddy_checkpoint, count(*) FROM \
                         {prefix}_{table}__eddy_stage GROUP BY 1, 2 ORDER BY 1, 2"
                    ))
                };
                panic!(
                    "PostgreSQL {table} rows differ after {hit} kills (seed {seed}): {} rows, \
                     {} uninterrupted; first difference at row {k:?}:\n got  {:?}\n want {:?}\n\
                     left staged (worker|checkpoint|rows): crashed {:?}, uninterrupted {:?}\n\
                     logged by the crashed runs:\n{}\nlogged by the uninterrupted run:\n{}",
                    g.len(),
                    w.len(),
                    k.and_then(|k| g.get(k)),
                    k.and_then(|k| w.get(k)),
                    staged("crashed"),
                    staged("calm"),
                    logged_problems(&crashed),
                    logged_problems(&calm),
                );
            }
        }
    }
}

#[test]
fn sigkill_at_random_moments_changes_nothing_one_worker() {
    chaos(1, true);
}

#[test]
fn sigkill_at_random_moments_changes_nothing_two_workers() {
    chaos(2, true);
}

/// Ctrl-C (SIGTERM) takes a savepoint and exits; a compatible change (one
/// more sink) resumes from it with no gap and no duplicate, and an
/// incompatible one (a window's size) is refused naming the window.
#[test]
fn sigterm_savepoint_then_a_new_sink_resumes_without_gap_or_duplicate() {
    let events = env_or("EDDY_CHAOS_EVENTS", 1_000_000);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    write_input(&dir.join("in.ndjson"), events);
    let config = dir.join("pipeline.toml");
    std::fs::write(&config, pipeline(dir, 1)).unwrap();

    let calm_dir = root.path().join("calm");
    std::fs::create_dir_all(&calm_dir).unwrap();
    std::fs::hard_link(dir.join("in.ndjson"), calm_dir.join("in.ndjson")).unwrap();
    let calm_config = calm_dir.join("pipeline.toml");
    std::fs::write(&calm_config, pipeline(&calm_dir, 1)).unwrap();
    run_to_end(&calm_config);
    let expected = sorted_output(&calm_dir);

    let child = eddy()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    let pid = child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let savepoint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("savepoint: "))
        .unwrap_or_else(|| panic!("no savepoint printed (did the run end first?):\n{stderr}"))
        .to_string();
    assert!(Path::new(&savepoint).join("_manifest").exists());

    // Incompatible: the tumbling window's size changed.
    let changed = pipeline(dir, 1).replace("tumbling = \"10s\"", "tumbling = \"20s\"");
    std::fs::write(&config, changed).unwrap();
    let refused = eddy().arg("run").arg(&config).arg("-q").output().unwrap();
    let why = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{why}");
    assert!(
        why.contains("`tumbling`") && why.contains("--allow-non-restored-state"),
        "{why}"
    );

    // Compatible: one more sink.
    let more = format!(
        "{}\n[sinks.extra]\ntype = \"file\"\ninputs = [\"scaled\"]\npath = \"{}/out/extra.ndjson\"\n",
        pipeline(dir, 1),
        dir.display()
    );
    std::fs::write(&config, more).unwrap();
    let resumed = eddy()
        .arg("run")
        .arg(&config)
        .arg("--from-checkpoint")
        .arg(&savepoint)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains(&format!("resuming from {savepoint}")), "{log}");
    assert_eq!(
        sorted_output(dir),
        expected,
        "output after the savepoint and resume"
    );
    let extra = std::fs::read_to_string(dir.join("out/extra.ndjson")).unwrap();
    let extra = extra.lines().count() as u64;
    assert!(
        extra > 0 && extra < events,
        "the new sink sees what came after the savepoint: {extra}"
    );
}
