//! State beyond `[pipeline] state_memory` spills to disk and changes no
//! result: a million keys in one tumbling window (about 400 MB in memory)
//! under an 8 MiB budget, against the same run with all state in memory.

use std::path::Path;
use std::process::Command;

const KEYS: u64 = 1_000_000;

fn run(dir: &Path, name: &str, extra: &str) -> (Vec<String>, String) {
    let config = dir.join(format!("{name}.toml"));
    let d = dir.display();
    std::fs::write(
        &config,
        format!(
            r#"
[pipeline]
name = "{name}"
workers = 2
data_dir = "{d}/data"
{extra}

[sources.tx]
type = "file"
path = "{d}/in.ndjson"
event_time = {{ field = "ts", format = "epoch_ms", max_out_of_orderness = "1s" }}

[transforms.per_key]
type = "window"
inputs = ["tx"]
key = "k"
window = {{ tumbling = "10s" }}
aggregates = {{ n = "count()", total = "sum(v)", top = "max(v)" }}

[sinks.out]
type = "file"
inputs = ["per_key"]
path = "{d}/{name}.ndjson"
"#
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("run")
        .arg(&config)
        .arg("-q")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "eddy run failed:\n{stderr}");
    let text = std::fs::read_to_string(dir.join(format!("{name}.ndjson"))).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort_unstable();
    (lines, stderr)
}

#[test]
fn a_million_keys_over_an_8_mib_budget_give_the_in_memory_results() {
    use std::io::Write;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let mut input = std::io::BufWriter::new(std::fs::File::create(dir.join("in.ndjson")).unwrap());
    // Every key twice, the second time in reverse order, all in one window
    // but the last 1000 events, which close it.
    for i in 0..2 * KEYS {
        let k = if i < KEYS { i } else { 2 * KEYS - 1 - i };
        let ts = 1_700_000_000_000 + (i * 5_000 / (2 * KEYS)) as i64;
        writeln!(input, r#"{{"ts":{ts},"k":"key-{k}","v":{}}}"#, i % 977).unwrap();
    }
    writeln!(input, r#"{{"ts":1700000030000,"k":"last","v":0}}"#).unwrap();
    input.flush().unwrap();
    drop(input);

    let (want, _) = run(dir, "memory", "");
    assert_eq!(want.len() as u64, KEYS + 1);
    let (got, log) = run(dir, "spilled", "state_memory = \"8MiB\"");
    assert!(log.contains("state entries spilled to disk"), "{log}");
    assert_eq!(got.len(), want.len());
    if let Some(k) = (0..got.len()).find(|&k| got[k] != want[k]) {
        panic!("result {k} differs:\n got  {}\n want {}", got[k], want[k]);
    }
    // The spill store is removed with the run.
    assert!(!dir.join("data/spill/p-spilled").exists());
}
