//! The `eddy` binary driven as a user would: as a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn eddy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
}

/// Runs `cmd`, fails the test with its stderr unless it succeeded.
fn succeed(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_example_pipeline_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = succeed(eddy().arg("validate").arg(&path));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(": ok: "), "{stdout}");
        checked += 1;
    }
    assert!(
        checked >= 4,
        "expected demo.toml and the scenario examples, found {checked}"
    );
}

#[test]
fn validate_reports_positions_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "[sources.tx]\ntype = \"simulator\"\n\n[transforms.w]\ntype = \"window\"\ninputs = [\"tx\"]\nwindow = { tumbling = \"5 minutes\" }\naggregates = { n = \"count()\" }\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"ww\"]\n",
    )
    .unwrap();
    let out = eddy().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = file.display().to_string();
    assert!(err.contains(&format!("{name}:7:")), "{err}");
    assert!(err.contains("bad duration"), "{err}");
    assert!(
        err.contains(&format!("{name}:12:11: unknown input `ww`")),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `w`?"), "{err}");
}

/// Regression (hardening): `--duration inf` (also NaN, 1e20) panicked with
/// exit code 101, and `--workers 100000` ran until the kernel killed it.
#[test]
fn bad_command_line_values_are_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[sources.tx]\ntype = \"simulator\"\n\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"tx\"]\n",
    )
    .unwrap();
    for value in ["inf", "NaN", "1e20", "-1"] {
        for command in ["run", "demo"] {
            let mut cmd = eddy();
            cmd.arg(command);
            if command == "run" {
                cmd.arg(&file);
            }
            let out = cmd.arg(format!("--duration={value}")).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} --duration {value}: {stderr}"
            );
            assert!(stderr.contains("is not a number of seconds"), "{stderr}");
        }
    }
    let out = eddy()
        .arg("run")
        .arg(&file)
        .args(["--workers", "100000", "--duration", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("100000 workers exceed the limit of 256"),
        "{stderr}"
    );
}

#[test]
fn validate_locates_bytes_that_are_not_utf8_and_accepts_a_bom() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latin1.toml");
    std::fs::write(
        &file,
        b"[sources.tx]\ntype = \"simulator\"\n# caf\xe9\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"tx\"]\n",
    )
    .unwrap();
    let out = eddy().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = file.display().to_string();
    assert!(
        err.starts_with(&format!("{name}:3:6: the file is not valid UTF-8\n")),
        "{err}"
    );
    assert!(err.contains("hint: save the file as UTF-8"), "{err}");

    let bom = dir.path().join("bom.toml");
    std::fs::write(
        &bom,
        b"\xEF\xBB\xBF[sources.tx]\ntype = \"simulator\"\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"tx\"]\n",
    )
    .unwrap();
    let out = succeed(eddy().arg("validate").arg(&bom));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok: "));
}

#[test]
fn run_reads_a_file_and_writes_window_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tx.ndjson");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!(
            "{{\"ts\":{},\"merchant\":\"m{}\",\"amount\":{}}}\n",
            1_700_000_000_000i64 + i * 100,
            i % 3,
            i
        ));
    }
    text.push_str("not json\n");
    std::fs::write(&input, text).unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[sources.tx]\ntype = \"file\"\npath = {:?}\nevent_time = {{ field = \"ts\" }}\n\n[transforms.per_merchant]\ntype = \"window\"\ninputs = [\"tx\"]\nkey = \"merchant\"\nwindow = {{ tumbling = \"5s\" }}\naggregates = {{ n = \"count()\", total = \"sum(amount)\" }}\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"per_merchant\"]\npath = {:?}\n\n[sinks.dead]\ntype = \"file\"\ninputs = [\"tx.dead_letters\"]\npath = {:?}\n",
            input.display().to_string(),
            dir.path().join("out.ndjson").display().to_string(),
            dir.path().join("dead.ndjson").display().to_string(),
        ),
    )
    .unwrap();
    succeed(eddy().arg("run").arg(&pipeline).args(["--workers", "2"]));
    let results = lines(&dir.path().join("out.ndjson"));
    // 100 events over 10 s of event time in 5 s windows, 3 merchants: 2 windows × 3 keys.
    assert_eq!(results.len(), 6, "{results:?}");
    let total: i64 = results
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["n"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(total, 100);
    let dead = lines(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("invalid JSON"), "{}", dead[0]);
    assert!(dead[0].contains("tx.ndjson:101"), "{}", dead[0]);
}

#[test]
fn demo_runs_and_leaves_kpis_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let out = eddy()
        .current_dir(dir.path())
        .args(["demo", "--duration", "10"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let data = dir.path().join("data");
    let kpis = lines(&data.join("department_kpis.ndjson"));
    assert!(!kpis.is_empty(), "no department KPIs; stderr:\n{err}");
    assert!(
        kpis[0].contains("window_start") && kpis[0].contains("avg_utilization"),
        "{}",
        kpis[0]
    );
    let merchants = lines(&data.join("merchant_kpis.ndjson"));
    assert!(!merchants.is_empty(), "no merchant KPIs");
    let moods = lines(&data.join("channel_mood.ndjson"));
    assert!(
        moods
            .iter()
            .any(|m| m.contains("\"channel\"") && m.contains("\"mood\":")),
        "no channel moods from the sentiment stage: {moods:?}"
    );
    let messages = lines(&data.join("messages.ndjson"));
    assert!(
        messages.iter().any(|m| m.contains("\"entities\":[{"))
            && messages.iter().any(|m| m.contains("\"topic\":"))
            && messages.iter().any(|m| m.contains("[email]")),
        "messages without entities, topics or redacted e-mails: {:?}",
        &messages[..messages.len().min(5)]
    );
    assert!(
        !messages.iter().any(|m| m.contains("@example.com")),
        "an e-mail address reached the messages file"
    );
    let alerts = lines(&data.join("alerts.ndjson"));
    let firing = |name: &str| {
        alerts.iter().any(|a| {
            a.contains(&format!("\"alertname\":\"{name}\"")) && a.contains("\"status\":\"firing\"")
        })
    };
    assert!(
        firing("budget_utilization_critical")
            && alerts
                .iter()
                .any(|a| a.contains("\"severity\":\"critical\"")),
        "no critical budget alert fired in {} alerts",
        alerts.len()
    );
    assert!(firing("high_risk_transaction"), "no risk alert fired");
    // The run ended, so every alert that fired is resolved again.
    let count = |status: &str| alerts.iter().filter(|a| a.contains(status)).count();
    assert_eq!(
        count("\"status\":\"firing\""),
        count("\"status\":\"resolved\"")
    );
    let notifications = lines(&data.join("notifications.ndjson"));
    assert!(
        notifications
            .iter()
            .any(|n| n.contains("\"receiver\":\"oncall\"")
                && n.contains("\"status\":\"firing\"")
                && n.contains("\"version\":\"4\"")),
        "no critical notification to oncall in {notifications:?}"
    );
    assert!(err.contains("events/s"), "no progress shown: {err}");
}

#[test]
fn bench_prints_json_figures() {
    let out = succeed(eddy().args([
        "bench", "nexmark", "--query", "q7", "--events", "200000", "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["query"], "q7");
    assert_eq!(v["events"], 200_000);
    assert_eq!(v["workers"], 1);
    assert!(v["events_per_sec"].as_f64().unwrap() > 0.0);
    // 200k events at 100k events/s of event time from a 10 s boundary: 2 s
    // of bids, one 10 s window.
    assert_eq!(v["results"], 1);
    assert!(v["p99_ms"].as_f64().is_some());
}

/// The alerting, ingest and WebSocket benchmarks run end to end on a small
/// scale: every probe alert reaches the webhook, every posted event the
/// sink, every fanned-out event every client.
#[test]
fn the_alerting_ingest_and_websocket_benchmarks_measure_what_they_say() {
    let out = succeed(eddy().args([
        "bench",
        "alerting",
        "--alerts",
        "200",
        "--rate",
        "200",
        "--minutes",
        "0.1",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let counts = text
        .split("event to webhook through Eddy (")
        .nth(1)
        .and_then(|rest| rest.split(" arrived)").next())
        .unwrap_or_else(|| panic!("no latency line: {text}"));
    let (arrived, probes) = counts.split_once(" of ").unwrap();
    assert_eq!(arrived, probes, "{text}");
    assert!(probes.parse::<u32>().unwrap() >= 50, "{text}");
    let out = succeed(eddy().args(["bench", "ingest", "--events", "20000", "--rounds", "1"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("HTTP ingest (2 × 1000-event bodies)"),
        "{text}"
    );
    // The WebSocket fan-out: every client gets every event, none closed.
    let out = succeed(eddy().args([
        "bench",
        "websocket",
        "--clients",
        "20",
        "--rate",
        "20",
        "--minutes",
        "0.05",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let counts = text
        .split("post to delivery over ")
        .nth(1)
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|rest| rest.split(" deliveries").next())
        .unwrap_or_else(|| panic!("no latency line: {text}"));
    let (delivered, expected) = counts.split_once(" of ").unwrap();
    assert_eq!(delivered, expected, "{text}");
    assert!(expected.parse::<u32>().unwrap() >= 20 * 40, "{text}");
    assert!(
        text.contains("clients closed while measuring: 0; events missed by clients still open: 0"),
        "{text}"
    );
}

#[test]
fn the_readme_pipeline_example_validates() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(!blocks.is_empty(), "the README has no TOML example");
    let dir = tempfile::tempdir().unwrap();
    for (i, block) in blocks.iter().enumerate() {
        let file = dir.path().join(format!("readme{i}.toml"));
        std::fs::write(&file, block).unwrap();
        succeed(eddy().arg("validate").arg(&file));
    }
}

/// Library events reach stderr through the binary's `tracing` subscriber,
/// at the level `EDDY_LOG` sets.
#[cfg(feature = "http")]
#[test]
fn library_log_events_go_to_stderr_at_the_chosen_level() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"n\": 1}\n").unwrap();
    // Nothing listens on port 1: every attempt fails at once.
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[sources.tx]\ntype = \"file\"\npath = {:?}\n\n\
             [sinks.hook]\ntype = \"http\"\ninputs = [\"tx\"]\nurl = \"http://127.0.0.1:1/\"\n\
             retry = {{ attempts = 3, initial_backoff = \"1ms\", max_backoff = \"1ms\" }}\n\
             circuit_breaker = {{ failure_threshold = 2, reset_timeout = \"5ms\" }}\n",
            input.display().to_string()
        ),
    )
    .unwrap();
    let stderr = |level: Option<&str>| {
        let mut cmd = eddy();
        cmd.arg("run").arg(&pipeline).env_remove("EDDY_LOG");
        if let Some(level) = level {
            cmd.env("EDDY_LOG", level);
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stderr).into_owned()
    };
    let shown = stderr(None);
    // The line names the span it happened in: the sink's delivery.
    assert!(
        shown.contains("WARN sink.deliver{sink=hook events=1}: circuit open sink=hook"),
        "{shown}"
    );
    let quiet = stderr(Some("error"));
    assert!(!quiet.contains("circuit open"), "{quiet}");
    let unknown = stderr(Some("loud"));
    assert!(unknown.contains("EDDY_LOG is not one of"), "{unknown}");

    // `--log-format json`: every log line is one JSON object.
    let out = eddy()
        .args(["--log-format", "json", "run"])
        .arg(&pipeline)
        .env_remove("EDDY_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let open = events
        .iter()
        .find(|e| e["fields"]["message"] == "circuit open")
        .unwrap_or_else(|| panic!("no circuit-open event in {text}"));
    assert_eq!(open["level"], "WARN");
    assert_eq!(open["fields"]["sink"], "hook");
    assert!(open["timestamp"].is_string(), "{open}");
}

/// `eddy checkpoints list` shows a run's checkpoints, the finished one
/// marked, and a damaged one skipped with its reason; `inspect` shows what
/// one holds; a path that is not a checkpoint is a usage error.
#[test]
fn checkpoints_are_listed_and_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let text: String = (0..2_000)
        .map(|i| format!("{{\"ts\":{},\"n\":{i}}}\n", 1_700_000_000_000i64 + i * 10))
        .collect();
    std::fs::write(&input, text).unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"listed\"\ndata_dir = {data:?}\n[checkpoint]\n\
             [sources.tx]\ntype = \"file\"\npath = {input:?}\n\
             event_time = {{ field = \"ts\", format = \"epoch_ms\" }}\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"tx\"]\n",
            data = dir.path().display().to_string(),
            input = input.display().to_string()
        ),
    )
    .unwrap();
    succeed(eddy().arg("run").arg(&pipeline).arg("-q"));
    let store = dir.path().join("checkpoints/listed");
    let listed = succeed(eddy().args(["checkpoints", "list"]).arg(&store));
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let finished = listed
        .lines()
        .find(|l| l.contains("finished"))
        .unwrap_or_else(|| panic!("no finished checkpoint listed:\n{listed}"));
    let path = finished.split_whitespace().last().unwrap().to_string();
    let shown = succeed(eddy().args(["checkpoints", "inspect"]).arg(&path));
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains("of pipeline `listed`"), "{shown}");
    assert!(shown.contains("tx (file)"), "{shown}");
    let size = std::fs::metadata(&input).unwrap().len();
    assert!(
        shown.contains(&format!("0@{size}")),
        "the end position of the file: {shown}"
    );

    std::fs::remove_file(Path::new(&path).join("_manifest")).unwrap();
    let listed = succeed(eddy().args(["checkpoints", "list"]).arg(&store));
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("skipped") && listed.contains("never completed"),
        "{listed}"
    );

    let bad = eddy()
        .args(["checkpoints", "inspect"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a checkpoint directory"));
}

/// `[server]` makes `eddy run` serve while it runs and say where; a
/// misspelt key is a config error with its position.
#[test]
fn a_server_table_serves_the_run_and_bad_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"a\":1}\n{\"a\":2}\n").unwrap();
    let pipeline = dir.path().join("p.toml");
    let text = |server: &str| {
        format!(
            "[server]\n{server}\n\n[sources.src]\ntype = \"file\"\npath = {:?}\n\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"src\"]\npath = {:?}\n",
            input.display().to_string(),
            dir.path().join("out.ndjson").display().to_string()
        )
    };
    std::fs::write(&pipeline, text("listen = \"127.0.0.1:0\"")).unwrap();
    let out = succeed(eddy().arg("run").arg(&pipeline).arg("-q"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serving the dashboard and API at http://127.0.0.1:"),
        "{stderr}"
    );
    assert_eq!(lines(&dir.path().join("out.ndjson")).len(), 2);

    // A key's secret comes from the environment; a missing one is named.
    std::fs::write(
        &pipeline,
        text("listen = \"127.0.0.1:0\"\napi_keys = [{ name = \"ops\", key_env = \"EDDY_TEST_UNSET_KEY\", role = \"viewer\" }]"),
    )
    .unwrap();
    let out = eddy()
        .arg("run")
        .arg(&pipeline)
        .env_remove("EDDY_TEST_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`EDDY_TEST_UNSET_KEY` must hold the key"),
        "{stderr}"
    );
    let out = eddy()
        .arg("run")
        .arg(&pipeline)
        .arg("-q")
        .env("EDDY_TEST_UNSET_KEY", "a-key-long-enough-123")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("1 API keys; only /healthz is open"),
        "{stderr}"
    );

    std::fs::write(&pipeline, text("port = 80")).unwrap();
    let out = eddy().arg("validate").arg(&pipeline).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("p.toml:2:") && stderr.contains("port"),
        "{stderr}"
    );
}

/// Dead letters nobody reads are named at the end of the run, with the fix.
#[test]
fn unrouted_dead_letters_are_warned_about_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"a\":1}\nnot json\n{\"a\":2}\n").unwrap();
    let pipeline = dir.path().join("p.toml");
    let sink = |extra: &str| {
        format!(
            "[sources.src]\ntype = \"file\"\npath = {:?}\n\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"src\"{extra}]\npath = {:?}\n",
            input.display().to_string(),
            dir.path().join("out.ndjson").display().to_string()
        )
    };
    std::fs::write(&pipeline, sink("")).unwrap();
    let out = succeed(eddy().arg("run").arg(&pipeline).arg("-q"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: 1 dead letters from `src` were not kept")
            && stderr.contains("inputs = [\"src.dead_letters\"]"),
        "{stderr}"
    );
    std::fs::write(&pipeline, sink(", \"src.dead_letters\"")).unwrap();
    let out = succeed(eddy().arg("run").arg(&pipeline).arg("-q"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("were not kept"), "{stderr}");
    assert_eq!(lines(&dir.path().join("out.ndjson")).len(), 3);
}

/// `eddy detect` over a one-series NAB corpus writes NAB's result format,
/// and `--score-only` scores result files already there: the run's own
/// (the same figures again) and a never-firing detector's (0).
#[test]
fn detect_writes_nab_results_and_scores_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let nab = dir.path().join("nab");
    std::fs::create_dir_all(nab.join("data/cat")).unwrap();
    let stamp = |row: usize| {
        let m = row * 5;
        format!(
            "2014-01-{:02} {:02}:{:02}:00",
            1 + m / 1440,
            (m / 60) % 24,
            m % 60
        )
    };
    let mut csv = String::from("timestamp,value\n");
    for row in 0..400 {
        let value = if row == 300 {
            50.0
        } else {
            10.0 + (row % 7) as f64 * 0.3
        };
        csv.push_str(&format!("{},{value}\n", stamp(row)));
    }
    std::fs::write(nab.join("data/cat/a.csv"), &csv).unwrap();
    std::fs::write(
        nab.join("combined_windows.json"),
        format!(
            r#"{{"cat/a.csv": [["{}.000000", "{}.000000"]]}}"#,
            stamp(280),
            stamp(320)
        ),
    )
    .unwrap();
    let out = dir.path().join("results");
    let run = succeed(
        eddy()
            .args(["detect", "--detector", "ensemble", "--nab"])
            .arg(&nab)
            .arg("--out")
            .arg(&out),
    );
    let run = String::from_utf8_lossy(&run.stdout).to_string();
    let written = lines(&out.join("ensemble/cat/ensemble_a.csv"));
    assert_eq!(written[0], "timestamp,value,anomaly_score");
    assert_eq!(written.len(), 401);
    assert!(written[301].starts_with(&format!("{},50,", stamp(300))));

    let null: String = csv
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                "timestamp,value,anomaly_score\n".to_string()
            } else {
                format!("{l},0\n")
            }
        })
        .collect();
    std::fs::create_dir_all(out.join("null/cat")).unwrap();
    std::fs::write(out.join("null/cat/null_a.csv"), null).unwrap();
    let scored = succeed(
        eddy()
            .args([
                "detect",
                "--score-only",
                "--detector",
                "null,ensemble",
                "--nab",
            ])
            .arg(&nab)
            .arg("--out")
            .arg(&out),
    );
    let scored = String::from_utf8_lossy(&scored.stdout).to_string();
    let standard = |text: &str, from: &str| -> String {
        let start = text
            .find(from)
            .unwrap_or_else(|| panic!("no `{from}` in {text}"));
        text[start..]
            .lines()
            .find(|l| l.trim_start().starts_with("standard"))
            .unwrap_or_else(|| panic!("no standard line in {text}"))
            .to_string()
    };
    assert_eq!(standard(&scored, "ensemble:"), standard(&run, "ensemble:"));
    assert!(
        standard(&scored, "null:").trim_start()["standard".len()..]
            .trim_start()
            .starts_with("0.0 "),
        "{scored}"
    );
}
