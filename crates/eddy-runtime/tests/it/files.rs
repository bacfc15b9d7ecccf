//! Sinks in whole runs: Parquet files checked against the NDJSON the `file`
//! sink wrote from the same stream, and sink dead letters.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use eddy_connectors::sinks::parquet::ENCODING_KEY;
use eddy_core::time::format_rfc3339;
use eddy_runtime::{Plan, RunOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value as Json};

const T0: i64 = 1_700_000_000_000;

fn plan(text: &str) -> Plan {
    Plan::compile("test.toml", text, &[]).unwrap_or_else(|d| panic!("{d}"))
}

fn run(text: &str, workers: usize) -> eddy_runtime::RunReport {
    let report = eddy_runtime::run(
        &plan(text),
        RunOptions {
            workers,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report
}

/// Polls `what` until it holds; fails the test after 20 s.
fn wait_for(what: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !what() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(what(), "timed out waiting for the run");
}

fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// The objects of an NDJSON file, without null members (a Parquet row has
/// a null cell where an object has no member), sorted by their text.
fn ndjson_rows(path: &Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap();
    let rows = text
        .lines()
        .map(|l| match serde_json::from_str(l).unwrap() {
            Json::Object(m) => Json::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
            other => panic!("not an object: {other}"),
        })
        .collect();
    sorted(rows)
}

fn sorted(mut rows: Vec<Json>) -> Vec<Json> {
    rows.sort_by_cached_key(Json::to_string);
    rows
}

/// Every complete `.parquet` file under `dir`, sorted.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// One cell as JSON: timestamps as the RFC 3339 text the window wrote,
/// `json` columns parsed.
fn cell(batch: &RecordBatch, col: usize, row: usize) -> Json {
    let array = batch.column(col);
    if array.is_null(row) {
        return Json::Null;
    }
    let field = batch.schema_ref().field(col).clone();
    match field.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row).into(),
        DataType::Boolean => array.as_boolean().value(row).into(),
        DataType::Timestamp(TimeUnit::Millisecond, Some(tz)) if &**tz == "UTC" => {
            format_rfc3339(array.as_primitive::<TimestampMillisecondType>().value(row)).into()
        }
        DataType::Utf8 => {
            let text = array.as_string::<i32>().value(row);
            match field.metadata().get(ENCODING_KEY).map(String::as_str) {
                Some("json") => serde_json::from_str(text).unwrap(),
                _ => text.into(),
            }
        }
        other => panic!("unexpected column type {other}"),
    }
}

/// The rows of one Parquet file as JSON objects without null members.
fn parquet_rows(path: &Path) -> Vec<Json> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        for row in 0..batch.num_rows() {
            let mut object = Map::new();
            for (col, field) in batch.schema_ref().fields().iter().enumerate() {
                let v = cell(&batch, col, row);
                if !v.is_null() {
                    object.insert(field.name().clone(), v);
                }
            }
            rows.push(Json::Object(object));
        }
    }
    rows
}

fn write_input(path: &Path, n: i64) {
    append_input(path, 0, n);
}

/// Appends events `from..from + n` to `path`.
fn append_input(path: &Path, from: i64, n: i64) {
    let mut text = String::new();
    for i in from..from + n {
        let t = T0 + i * 37;
        let key = format!("k{}", i % 7);
        let amount = (i * 13) % 101;
        // Every fifth event carries a flag, so windows differ in `flagged`.
        let flag = if i % 5 == 0 { ",\"flag\":true" } else { "" };
        text.push_str(&format!(
            "{{\"ts\":{t},\"key\":\"{key}\",\"amount\":{amount}{flag}}}\n"
        ));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
}

#[test]
fn parquet_files_hold_the_rows_of_the_ndjson_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    write_input(&input, 5_000);
    let ndjson = dir.path().join("out.ndjson");
    let lake = dir.path().join("lake");
    let typed = dir.path().join("typed");
    let text = format!(
        r#"
[sources.tx]
type = "file"
path = {input}
event_time = {{ field = "ts", max_out_of_orderness = "1s" }}

[transforms.w]
type = "window"
inputs = ["tx"]
key = "key"
window = {{ tumbling = "1m" }}
aggregates = {{ n = "count()", total = "sum(amount)", mean = "avg(amount)",
               flagged = "count(flag)", top = "top_k(amount, 2)", first_flag = "first(flag)" }}

[sinks.nd]
type = "file"
inputs = ["w"]
path = {ndjson}

[sinks.pq]
type = "parquet"
inputs = ["w"]
path = {lake}
partition_by = "window_start"
row_group_size = 7

[sinks.typed]
type = "parquet"
inputs = ["w"]
url = "file://{typed_url}"
compression = "none"
schema = {{ window_start = "timestamp_ms", window_end = "timestamp_ms", key = "string",
           n = "int64", total = "int64", mean = "float64", flagged = "int64",
           top = "json", first_flag = "bool" }}
"#,
        input = quoted(&input),
        ndjson = quoted(&ndjson),
        lake = quoted(&lake),
        typed_url = typed.display(),
    );
    let report = run(&text, 2);
    let expected = ndjson_rows(&ndjson);
    assert!(expected.len() > 20, "{} windows", expected.len());

    // Inferred schema, Hive partitions by the window's UTC hour.
    let files = parquet_files(&lake);
    let mut rows = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&lake)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = relative.split('/').collect();
        assert_eq!(parts.len(), 3, "{relative}");
        assert!(parts[2].starts_with("part-") && parts[2].ends_with(".parquet"));
        for row in parquet_rows(file) {
            let start = row["window_start"].as_str().unwrap();
            let hour = format!("day={}/hour={}", &start[..10], &start[11..13]);
            assert_eq!(format!("{}/{}", parts[0], parts[1]), hour, "{relative}");
            rows.push(row);
        }
    }
    assert_eq!(sorted(rows), expected);
    let pq = &report.metrics.node("pq").unwrap().component;
    assert_eq!(pq.total("files_written"), files.len() as i64);
    assert_eq!(pq.total("records_out"), expected.len() as i64);
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(pq.total("bytes_out"), bytes as i64);

    // Declared schema through object_store's file:// store.
    let files = parquet_files(&typed);
    assert!(!files.is_empty());
    let rows: Vec<Json> = files.iter().flat_map(|f| parquet_rows(f)).collect();
    assert_eq!(sorted(rows), expected);
    let schema = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&files[0]).unwrap())
        .unwrap()
        .schema()
        .clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "window_start",
            "window_end",
            "key",
            "n",
            "total",
            "mean",
            "flagged",
            "top",
            "first_flag"
        ]
    );
    assert!(matches!(
        schema.field(0).data_type(),
        DataType::Timestamp(TimeUnit::Millisecond, _)
    ));
}

#[test]
fn rows_that_do_not_fit_go_to_the_sink_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        format!(
            "{{\"ts\":{T0},\"n\":1,\"x\":0.5}}\n\
             {{\"ts\":{},\"n\":2,\"x\":2}}\n\
             {{\"ts\":{},\"n\":\"three\",\"x\":3.5}}\n\
             {{\"ts\":{},\"n\":4,\"x\":4.5,\"new\":true}}\n",
            T0 + 1,
            T0 + 2,
            T0 + 3
        ),
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let rejects = dir.path().join("rejects.ndjson");
    // Batches of two: the schema comes from the first two lines.
    let text = format!(
        r#"
[pipeline]
batch_size = 2

[sources.tx]
type = "file"
path = {input}
event_time = {{ field = "ts" }}

[sinks.pq]
type = "parquet"
inputs = ["tx"]
path = {lake}

[sinks.rejects]
type = "file"
inputs = ["pq.dead_letters"]
path = {rejects}
"#,
        input = quoted(&input),
        lake = quoted(&lake),
        rejects = quoted(&rejects),
    );
    run(&text, 1);
    let rows: Vec<Json> = parquet_files(&lake)
        .iter()
        .flat_map(|f| parquet_rows(f))
        .collect();
    let kept: Vec<(i64, f64)> = rows
        .iter()
        .map(|r| (r["n"].as_i64().unwrap(), r["x"].as_f64().unwrap()))
        .collect();
    // The int 2 in the float column `x` is widened.
    assert_eq!(kept, [(1, 0.5), (2, 2.0)]);
    let dead: Vec<Json> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["stage"], "pq");
    assert_eq!(dead[0]["event"]["n"], "three");
    assert!(dead[0]["reason"].as_str().unwrap().contains("int64"));
    assert_eq!(dead[1]["event"]["new"], true);
    assert!(dead[1]["reason"].as_str().unwrap().contains("`new`"));
}

#[test]
fn every_completed_checkpoint_leaves_complete_parquet_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    append_input(&input, 0, 300);
    let ndjson = dir.path().join("out.ndjson");
    let lake = dir.path().join("lake");
    let text = format!(
        r#"
[sources.tx]
type = "file"
path = {input}
follow = true
event_time = {{ field = "ts" }}

[sinks.nd]
type = "file"
inputs = ["tx"]
path = {ndjson}

[sinks.pq]
type = "parquet"
inputs = ["tx"]
path = {lake}
"#,
        input = quoted(&input),
        ndjson = quoted(&ndjson),
        lake = quoted(&lake),
    );
    let running = eddy_runtime::start(
        &plan(&text),
        RunOptions {
            workers: 2,
            ..RunOptions::default()
        },
    )
    .unwrap();
    let lake_rows = || {
        let rows = parquet_files(&lake)
            .iter()
            .flat_map(|f| parquet_rows(f))
            .collect();
        sorted(rows)
    };
    for (round, total) in [(1u64, 300i64), (2, 500)] {
        if round == 2 {
            append_input(&input, 300, 200);
        }
        wait_for(&|| running.metrics().source_events() == total as u64);
        let id = running.checkpoint();
        wait_for(&|| running.latest_checkpoint().is_some_and(|c| c.id == id));
        // Everything read before the barrier is in complete, readable files.
        let rows = lake_rows();
        assert_eq!(rows.len(), total as usize, "round {round}");
        assert_eq!(rows, ndjson_rows(&ndjson), "round {round}");
        assert_eq!(parquet_files(&lake).len(), round as usize);
    }
    running.stop();
    let report = running.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(lake_rows(), ndjson_rows(&ndjson));
}
