//! Pipelines ending in the `postgres` sink, against a real server
//! (eddy-testkit), checked row by row against the `file` sink's output of
//! the same run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use eddy_runtime::{Plan, RunOptions};
use eddy_testkit::postgres::Postgres;

const T0: i64 = 1_700_000_000_000;

/// Window results in the test; the benchmark (`eddy bench postgres`) runs
/// 1,000,000 in a release build, too slow for a debug test.
const RESULTS: i64 = 200_000;

/// One event per key, so every event becomes one window result.
fn write_input(path: &Path, n: i64) {
    let mut text = String::with_capacity(n as usize * 48);
    for i in 0..n {
        let t = T0 + i * 5;
        text.push_str(&format!(
            "{{\"ts\":{t},\"key\":\"k{i}\",\"amount\":{}}}\n",
            i % 997
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn pipeline(input: &Path, output: Option<&Path>, url: &str, sinks: &[(&str, &str)]) -> Plan {
    let mut text = format!(
        r#"
[sources.tx]
type = "file"
path = {input:?}
event_time = {{ field = "ts", max_out_of_orderness = "2s" }}

[transforms.w]
type = "window"
inputs = ["tx"]
key = "key"
window = {{ tumbling = "1s" }}
aggregates = {{ n = "count()", total = "sum(amount)", avg = "avg(amount)" }}
"#,
        input = input.display().to_string()
    );
    if let Some(output) = output {
        text.push_str(&format!(
            "\n[sinks.file]\ntype = \"file\"\ninputs = [\"w\"]\npath = {:?}\n\n[sinks.late]\ntype = \"file\"\ninputs = [\"w.late\"]\npath = {:?}\n",
            output.display().to_string(),
            output.with_extension("late").display().to_string()
        ));
    }
    for (name, options) in sinks {
        text.push_str(&format!(
            "\n[sinks.{name}]\ntype = \"postgres\"\ninputs = [\"w\"]\nurl = {url:?}\n{options}\n"
        ));
    }
    Plan::compile("pg.toml", &text, &[]).unwrap_or_else(|d| panic!("{d}"))
}

type Rows = BTreeMap<(i64, String), (i64, i64, String)>;

/// (window_start ms, key) → (n, total, avg) from the file sink's lines.
fn file_rows(path: &Path) -> Rows {
    let mut m = Rows::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let start = eddy_core::time::parse_rfc3339(v["window_start"].as_str().unwrap()).unwrap();
        let key = v["key"].as_str().unwrap().to_string();
        let avg = v["avg"].as_f64().unwrap();
        let prev = m.insert(
            (start, key),
            (
                v["n"].as_i64().unwrap(),
                v["total"].as_i64().unwrap(),
                format!("{avg}"),
            ),
        );
        assert!(prev.is_none());
    }
    m
}

/// The same from a table; each key must appear once.
fn table_rows(pg: &Postgres, table: &str) -> Rows {
    let out = pg.query(&format!(
        "SELECT (extract(epoch FROM window_start) * 1000)::bigint, key, n, total, avg FROM {table}"
    ));
    let mut m = Rows::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let avg: f64 = f[4].parse().unwrap();
        let prev = m.insert(
            (f[0].parse().unwrap(), f[1].to_string()),
            (
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                format!("{avg}"),
            ),
        );
        assert!(prev.is_none(), "row written twice: {line}");
    }
    m
}

#[test]
fn window_results_reach_postgres_by_copy_and_by_upsert_exactly_once() {
    let Some(pg) = Postgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let output = dir.path().join("out.ndjson");
    write_input(&input, RESULTS);
    pg.query(
        "CREATE TABLE appended (window_start timestamptz, window_end timestamptz, key text, \
         n bigint, total bigint, avg double precision)",
    );
    let plan = pipeline(
        &input,
        Some(&output),
        &pg.url(),
        &[
            ("copy", "table = \"appended\"\npool_size = 2"),
            (
                "upsert",
                "table = \"upserted\"\nmode = \"upsert\"\nkey = [\"window_start\", \"key\"]\ncreate_table = true",
            ),
        ],
    );
    let t = Instant::now();
    let report = eddy_runtime::run(
        &plan,
        // One worker: with two, a debug build of `file` → keyed `window`
        // intermittently loses a few windows at the end of input even
        // without this sink (the file sink sees the same loss): a runtime
        // issue of its own, not what this test is about.
        RunOptions {
            workers: 1,
            ..RunOptions::default()
        },
    )
    .unwrap();
    eprintln!("{RESULTS} results to two tables in {:?}", t.elapsed());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let want = file_rows(&output);
    let late = std::fs::read_to_string(output.with_extension("late")).unwrap_or_default();
    assert_eq!(late.lines().count(), 0);
    assert_eq!(want.len(), RESULTS as usize);
    assert!(table_rows(&pg, "appended") == want, "COPY rows differ");
    assert!(table_rows(&pg, "upserted") == want, "upserted rows differ");
    for sink in ["copy", "upsert"] {
        let m = &report.metrics.node(sink).unwrap().component;
        assert_eq!(m.total("records_out"), RESULTS, "{sink}");
        assert_eq!(m.total("dead_letters"), 0, "{sink}");
    }

    // The same run again: upserts rewrite identical rows.
    let summary = "SELECT count(*), md5(string_agg(u::text, ',' ORDER BY key)) FROM upserted u";
    let before = pg.query(summary);
    let again = pipeline(
        &input,
        None,
        &pg.url(),
        &[(
            "upsert",
            "table = \"upserted\"\nmode = \"upsert\"\nkey = [\"window_start\", \"key\"]",
        )],
    );
    let report = eddy_runtime::run(&again, RunOptions::default()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(pg.query(summary), before);
}
