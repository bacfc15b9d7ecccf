//! Eddy against a real Kafka-protocol broker (tansu), cross-checked with an
//! independent client (kafka-python). Each test starts its own broker on a
//! free loopback port and stops it when done.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eddy_testkit::kafka::Broker;
use serde_json::Value;
use support::{
    apply_topics, consume_with_python, eddy, ids_in, produce_with_python, python, run_with_kills,
    succeed, wait_until, write_pipeline,
};

fn read_json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn topics_apply_creates_then_reports_unchanged() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let b = broker.brokers();
    let first = apply_topics(&b, dir.path(), &[("payments", 3), ("alerts", 1)]);
    assert!(
        first.contains("created  payments (3 partitions)"),
        "{first}"
    );
    assert!(first.contains("created  alerts (1 partitions)"), "{first}");
    let second = apply_topics(&b, dir.path(), &[("payments", 3), ("alerts", 1)]);
    assert!(second.contains("ok       payments"), "{second}");
    assert!(!second.contains("created"), "{second}");
}

/// `eddy produce` N simulator events → Kafka source → filter → tumbling
/// window → Kafka sink → kafka-python: the results equal the same pipeline
/// over the same events in a file.
#[test]
fn round_trip_through_kafka_equals_the_file_pipeline() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let b = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    apply_topics(&b, dir.path(), &[("events", 3), ("kpis", 2)]);
    const N: u64 = 1_000_000;
    succeed(eddy().args([
        "produce",
        "--brokers",
        &b,
        "--topic",
        "events",
        "--events",
        &N.to_string(),
        "--seed",
        "7",
        "-q",
    ]));
    // The same stream into a file, for the reference run.
    let gen = write_pipeline(
        dir.path(),
        "gen.toml",
        &format!(
            "[pipeline]\nworkers = 1\n[sources.sim]\ntype = \"simulator\"\nfast = true\nrate = 1000\nevents = {N}\nseed = 7\n[sinks.f]\ntype = \"file\"\ninputs = [\"sim\"]\npath = \"{d}/events.ndjson\"\n"
        ),
    );
    succeed(eddy().arg("run").arg(&gen).arg("-q"));
    let body = |source: &str, sink: &str| {
        format!(
            "[pipeline]\nworkers = 1\ncheckpoint_interval = \"1s\"\n{source}\n\
             [transforms.tx]\ntype = \"filter\"\ninputs = [\"input\"]\ncondition = 'type == \"transaction\"'\n\
             [transforms.kpi]\ntype = \"window\"\ninputs = [\"tx\"]\nkey = \"currency\"\nwindow = {{ tumbling = \"1m\" }}\n\
             aggregates = {{ n = \"count()\", total = \"sum(amount)\", top = \"max(amount)\" }}\n{sink}"
        )
    };
    let event_time = "event_time = { field = \"ts\" }";
    let via_kafka = write_pipeline(
        dir.path(),
        "kafka.toml",
        &body(
            &format!("[sources.input]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"events\"]\ngroup = \"rt\"\nbounded = true\n{event_time}\n"),
            &format!("[sinks.out]\ntype = \"kafka\"\ninputs = [\"kpi\"]\nbrokers = \"{b}\"\ntopic = \"kpis\"\nkey = \"currency\"\ncompression = \"zstd\"\n"),
        ),
    );
    let via_file = write_pipeline(
        dir.path(),
        "file.toml",
        &body(
            &format!(
                "[sources.input]\ntype = \"file\"\npath = \"{d}/events.ndjson\"\n{event_time}\n"
            ),
            &format!(
                "[sinks.out]\ntype = \"file\"\ninputs = [\"kpi\"]\npath = \"{d}/kpis.ndjson\"\n"
            ),
        ),
    );
    succeed(eddy().arg("run").arg(&via_kafka).arg("-q"));
    succeed(eddy().arg("run").arg(&via_file).arg("-q"));
    let expected = read_json_lines(&dir.path().join("kpis.ndjson"));
    assert!(
        expected.len() > 10,
        "the reference run produced {} windows",
        expected.len()
    );
    let got = consume_with_python(&b, "kpis", expected.len());
    let values = got
        .iter()
        .map(|r| serde_json::from_str::<Value>(r["value"].as_str().unwrap()).unwrap());
    assert_same_windows(values.collect(), &expected);
    let counted: u64 = expected.iter().map(|w| w["n"].as_u64().unwrap()).sum();
    assert!(counted > N / 20, "transactions counted: {counted}");
}

/// Window results equal by key and window; sums may differ in the last
/// bits because events from several partitions arrive in another order.
fn assert_same_windows(got: Vec<Value>, expected: &[Value]) {
    let index = |rows: &[Value]| -> BTreeMap<(String, String), Value> {
        rows.iter()
            .map(|r| {
                let k = (r["currency"].to_string(), r["window_start"].to_string());
                (k, r.clone())
            })
            .collect()
    };
    let (g, e) = (index(&got), index(expected));
    assert_eq!(got.len(), expected.len(), "number of window results");
    assert_eq!(g.keys().collect::<Vec<_>>(), e.keys().collect::<Vec<_>>());
    for (k, want) in &e {
        let have = &g[k];
        assert_eq!(have["n"], want["n"], "count of {k:?}");
        assert_eq!(have["top"], want["top"], "max of {k:?}");
        assert_eq!(have["window_end"], want["window_end"]);
        let (a, b) = (
            have["total"].as_f64().unwrap(),
            want["total"].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            "sum of {k:?}: {a} vs {b}"
        );
    }
}

#[test]
fn bad_records_land_in_the_dead_letter_topic_with_headers() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let b = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    apply_topics(&b, dir.path(), &[("raw", 1), ("dlq", 1)]);
    let big = format!("{{\"ts\": 1, \"pad\": \"{}\"}}", "x".repeat(3000));
    let records = vec![
        r#"{"ts": 1700000000000, "n": 1}"#.to_string(),
        "not json".to_string(),
        r#"{"n": 2}"#.to_string(),
        big,
        r#"{"ts": 1700000000001, "n": 3}"#.to_string(),
    ];
    produce_with_python(&b, "raw", "none", &records);
    let pipeline = write_pipeline(
        dir.path(),
        "dlq.toml",
        &format!(
            "[pipeline]\nworkers = 1\n\
             [sources.raw]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"raw\"]\ngroup = \"dlq-test\"\nbounded = true\nmax_record_bytes = 2000\nevent_time = {{ field = \"ts\", format = \"epoch_ms\" }}\n\
             [sinks.good]\ntype = \"file\"\ninputs = [\"raw\"]\npath = \"{d}/good.ndjson\"\n\
             [sinks.dead]\ntype = \"kafka\"\ninputs = [\"raw.dead_letters\"]\nbrokers = \"{b}\"\ntopic = \"dlq\"\nvalue = \"event\"\n\
             headers = {{ reason = \"reason\", topic = \"topic\", partition = \"partition\", offset = \"offset\", attempts = \"attempts\", first_failure = \"first_failure\" }}\n"
        ),
    );
    succeed(eddy().arg("run").arg(&pipeline).arg("-q"));
    let good = read_json_lines(&dir.path().join("good.ndjson"));
    assert_eq!(
        good.iter().map(|e| e["n"].clone()).collect::<Vec<_>>(),
        [1, 3]
    );
    let dead = consume_with_python(&b, "dlq", 3);
    let by_offset: BTreeMap<String, &Value> = dead
        .iter()
        .map(|r| (r["headers"]["offset"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(by_offset.keys().collect::<Vec<_>>(), ["1", "2", "3"]);
    let reason = |o: &str| {
        by_offset[o]["headers"]["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        reason("1").contains("JSON") || reason("1").contains("expected"),
        "{}",
        reason("1")
    );
    assert!(
        reason("2").contains("missing time field `ts`"),
        "{}",
        reason("2")
    );
    assert!(reason("3").contains("limit is 2000"), "{}", reason("3"));
    for r in &dead {
        let h = &r["headers"];
        assert_eq!(h["topic"], "raw");
        assert_eq!(h["partition"], "0");
        assert_eq!(h["attempts"], "1");
        assert!(h["first_failure"].as_str().unwrap().ends_with('Z'), "{h}");
    }
    assert_eq!(
        by_offset["1"]["value"], "not json",
        "the original bytes are the value"
    );
}

#[test]
fn compression_codecs_round_trip_with_kafka_python() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let b = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let topics: Vec<(String, u32)> = codecs
        .iter()
        .flat_map(|c| [(format!("out-{c}"), 1), (format!("in-{c}"), 1)])
        .collect();
    let refs: Vec<(&str, u32)> = topics.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    apply_topics(&b, dir.path(), &refs);
    let lines: Vec<String> = (0..500)
        .map(|i| {
            format!(
                "{{\"i\":{i},\"text\":\"record {i} {}\"}}",
                "abc".repeat(i % 7)
            )
        })
        .collect();
    std::fs::write(dir.path().join("in.ndjson"), lines.join("\n") + "\n").unwrap();
    for codec in codecs {
        // Eddy compresses, kafka-python decompresses.
        succeed(
            eddy()
                .args([
                    "produce",
                    "--brokers",
                    &b,
                    "--topic",
                    &format!("out-{codec}"),
                    "--compression",
                    codec,
                    "-q",
                ])
                .arg(dir.path().join("in.ndjson")),
        );
        let got = consume_with_python(&b, &format!("out-{codec}"), lines.len());
        let values: Vec<Value> = got
            .iter()
            .map(|r| serde_json::from_str(r["value"].as_str().unwrap()).unwrap())
            .collect();
        let sent: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(values, sent, "{codec}: Eddy → kafka-python");
        // kafka-python compresses, Eddy decompresses.
        produce_with_python(&b, &format!("in-{codec}"), codec, &lines);
        let pipeline = write_pipeline(
            dir.path(),
            &format!("{codec}.toml"),
            &format!(
                "[pipeline]\nworkers = 1\n[sources.k]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"in-{codec}\"]\ngroup = \"g-{codec}\"\nbounded = true\n\
                 [sinks.f]\ntype = \"file\"\ninputs = [\"k\"]\npath = \"{d}/{codec}.ndjson\"\n"
            ),
        );
        succeed(eddy().arg("run").arg(&pipeline).arg("-q"));
        assert_eq!(
            read_json_lines(&dir.path().join(format!("{codec}.ndjson"))),
            sent,
            "{codec}: kafka-python → Eddy"
        );
    }
}

#[test]
fn murmur2_puts_keys_where_the_java_client_does() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let b = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    apply_topics(&b, dir.path(), &[("keyed", 6)]);
    let keys: Vec<String> = (0..200).map(|i| format!("customer-{i}")).collect();
    let lines: Vec<String> = keys.iter().map(|k| format!("{{\"k\":\"{k}\"}}")).collect();
    std::fs::write(dir.path().join("keys.ndjson"), lines.join("\n") + "\n").unwrap();
    succeed(
        eddy()
            .args([
                "produce",
                "--brokers",
                &b,
                "--topic",
                "keyed",
                "--key",
                "k",
                "-q",
            ])
            .arg(dir.path().join("keys.ndjson")),
    );
    let got = consume_with_python(&b, "keyed", keys.len());
    let placed: BTreeMap<String, u64> = got
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["partition"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut args = vec!["partitions".to_string(), "6".to_string()];
    args.extend(keys.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = succeed(&mut python(&refs));
    let java: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let used: BTreeSet<u64> = java.iter().copied().collect();
    assert!(used.len() >= 5, "keys spread over partitions {used:?}");
    for (k, p) in keys.iter().zip(java) {
        assert_eq!(placed[k], p, "key {k}");
    }
}

fn spawn_member(pipeline: &Path) -> Child {
    eddy()
        .arg("run")
        .arg(pipeline)
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "eddy run exited with {status}");
}

/// Two `eddy run` processes in one group split the partitions; stopping
/// one hands its partitions to the other; every event is accounted for.
#[test]
fn a_consumer_group_splits_partitions_and_survives_a_member_leaving() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let b = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    apply_topics(&b, dir.path(), &[("orders", 4)]);
    let member = |name: &str| {
        write_pipeline(
            dir.path(),
            &format!("{name}.toml"),
            &format!(
                "[pipeline]\nworkers = 1\ncheckpoint_interval = \"500ms\"\n\
                 [sources.orders]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"orders\"]\ngroup = \"shared\"\n\
                 [sinks.out]\ntype = \"file\"\ninputs = [\"orders\"]\npath = \"{d}/{name}.ndjson\"\n"
            ),
        )
    };
    let (pa, pb) = (member("a"), member("b"));
    let mut a = spawn_member(&pa);
    let mut bm = spawn_member(&pb);
    let batch = |from: i64, to: i64, name: &str| {
        let lines: Vec<String> = (from..to)
            .map(|i| format!("{{\"id\":{i},\"k\":\"key-{i}\"}}"))
            .collect();
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        succeed(
            eddy()
                .args([
                    "produce",
                    "--brokers",
                    &b,
                    "--topic",
                    "orders",
                    "--key",
                    "k",
                    "-q",
                ])
                .arg(&path),
        );
    };
    // Let both members join before producing.
    std::thread::sleep(Duration::from_secs(5));
    batch(0, 2000, "first.ndjson");
    let (fa, fb) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    let union = || -> BTreeSet<i64> { ids_in(&fa).into_iter().chain(ids_in(&fb)).collect() };
    wait_until(Duration::from_secs(60), "the first 2000 events", || {
        union().len() == 2000
    });
    let (na, nb) = (ids_in(&fa).len(), ids_in(&fb).len());
    assert!(na > 0 && nb > 0, "both members consumed: a {na}, b {nb}");
    stop(&mut a);
    batch(2000, 3000, "second.ndjson");
    wait_until(
        Duration::from_secs(90),
        "the next 1000 events at the remaining member",
        || {
            let b_ids: BTreeSet<i64> = ids_in(&fb).into_iter().collect();
            (2000..3000).all(|i| b_ids.contains(&i))
        },
    );
    stop(&mut bm);
    let all = union();
    assert_eq!(all, (0..3000).collect::<BTreeSet<i64>>());
}

/// Records that break the source's JSON Schema, and Confluent Avro frames
/// that cannot be decoded, go to dead letters with the reason; valid JSON
/// and Avro records pass.
#[test]
fn json_schema_violations_and_bad_avro_frames_become_dead_letters() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let b = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    apply_topics(&b, dir.path(), &[("payments", 1), ("avro", 1)]);
    std::fs::write(
        dir.path().join("payment.json"),
        r#"{"type": "object", "required": ["id", "amount"],
            "properties": {"id": {"type": "integer"}, "amount": {"type": "number"}}}"#,
    )
    .unwrap();
    let records = [
        r#"{"id": 1, "amount": 2.5}"#,
        r#"{"id": 2, "amount": "abc"}"#,
        r#"{"id": 3}"#,
        r#"{"id": 4, "amount": 7}"#,
    ]
    .map(String::from);
    produce_with_python(&b, "payments", "none", &records);
    // Confluent framing (0, id 1) around {id: long, who: string} datums,
    // encoded by hand: zig-zag varints and length-prefixed strings.
    let registry = dir.path().join("registry");
    std::fs::create_dir(&registry).unwrap();
    std::fs::write(
        registry.join("1.avsc"),
        r#"{"type": "record", "name": "P", "fields": [
            {"name": "id", "type": "long"}, {"name": "who", "type": "string"}]}"#,
    )
    .unwrap();
    let frames = [
        "00000000010a06616e6e", // id 5, who "ann"
        "00000000020a06616e6e", // unknown schema id 2
        "01000000010a06616e6e", // bad magic byte
        "00000000010c0462",     // truncated string
        "00000000010c02626f",   // id 6, who "bo"... with one byte too many
        "00000000010e026f",     // id 7, who "o"
    ]
    .map(String::from);
    produce_with_python(&b, "avro", "hex", &frames);
    let pipeline = write_pipeline(
        dir.path(),
        "schema.toml",
        &format!(
            "[pipeline]\nworkers = 1\n\
             [sources.pay]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"payments\"]\ngroup = \"schema-test\"\nbounded = true\n\
             schema = {{ json_schema = \"{d}/payment.json\" }}\n\
             [sources.av]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"avro\"]\ngroup = \"schema-test\"\nbounded = true\n\
             format = \"confluent_avro\"\nschema = {{ registry_dir = \"{d}/registry\" }}\n\
             [sinks.good]\ntype = \"file\"\ninputs = [\"pay\", \"av\"]\npath = \"{d}/good.ndjson\"\n\
             [sinks.dead]\ntype = \"file\"\ninputs = [\"pay.dead_letters\", \"av.dead_letters\"]\npath = \"{d}/dead.ndjson\"\n"
        ),
    );
    succeed(eddy().arg("run").arg(&pipeline).arg("-q"));
    let mut ids: Vec<i64> = read_json_lines(&dir.path().join("good.ndjson"))
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 4, 5, 7]);
    let dead: BTreeMap<(String, i64), String> = read_json_lines(&dir.path().join("dead.ndjson"))
        .iter()
        .map(|e| {
            (
                (
                    e["topic"].as_str().unwrap().to_string(),
                    e["offset"].as_i64().unwrap(),
                ),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |topic: &str, offset: i64| dead[&(topic.to_string(), offset)].clone();
    assert_eq!(dead.len(), 6, "{dead:?}");
    for (topic, offset, expected) in [
        (
            "payments",
            1,
            r#"/amount: "abc" is not of type "number" (type)"#,
        ),
        ("payments", 2, "(required)"),
        ("avro", 1, "unknown schema id 2"),
        ("avro", 2, "magic byte is 1"),
        ("avro", 3, "invalid Avro datum"),
        ("avro", 4, "bytes left"),
    ] {
        let r = reason(topic, offset);
        assert!(r.contains(expected), "{topic}@{offset}: {r}");
    }
}

/// Sorted lines of a file sink's output.
fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort_unstable();
    lines
}

/// `eddy run` reading Kafka with two workers is killed with SIGKILL at
/// random moments and started again each time: every record reaches the
/// output once, and the window results equal an uninterrupted run's. Each
/// restart resumes the partitions at the checkpoint's offsets, including
/// a record read but not yet emitted when the checkpoint was taken.
#[test]
fn sigkill_while_reading_kafka_changes_nothing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let b = broker.brokers();
    let dir = tempfile::tempdir().unwrap();
    apply_topics(&b, dir.path(), &[("clicks", 3)]);
    const RECORDS: i64 = 120_000;
    // Unkeyed records spread over the partitions, in time order within each
    // (so none is late, whatever the interleaving).
    let lines: Vec<String> = (0..RECORDS)
        .map(|i| {
            format!(
                r#"{{"i":{i},"user":"u{}","ts":{}}}"#,
                i % 40,
                1_700_000_000_000 + i * 20
            )
        })
        .collect();
    produce_with_python(&b, "clicks", "single", &lines);
    let setup = |run: &str| {
        let d = dir.path().join(run);
        std::fs::create_dir_all(&d).unwrap();
        let d = d.display();
        write_pipeline(
            dir.path(),
            &format!("{run}.toml"),
            &format!(
                r#"[pipeline]
name = "clicks"
workers = 2
data_dir = "{d}/data"
# Small batches and frequent checkpoints: a run lasts long enough, with
# checkpoints early enough, to be killed in the middle.
batch_size = 32

[checkpoint]
interval = "100ms"

[sources.clicks]
type = "kafka"
brokers = "{b}"
topics = ["clicks"]
group = "{run}"
bounded = true
start = "earliest"
event_time = {{ field = "ts", format = "epoch_ms", max_out_of_orderness = "1s" }}

[transforms.counts]
type = "window"
inputs = ["clicks"]
key = "user"
window = {{ tumbling = "2s" }}
aggregates = {{ n = "count()", ids = "sum(i)" }}

[sinks.counts_out]
type = "file"
inputs = ["counts", "counts.late"]
path = "{d}/counts.ndjson"

[sinks.raw_out]
type = "file"
inputs = ["clicks"]
path = "{d}/raw.ndjson"
"#
            ),
        )
    };
    let calm = setup("calm");
    succeed(eddy().arg("run").arg(&calm).arg("-q"));

    let killed = setup("killed");
    let checkpoints = dir.path().join("killed/data/checkpoints");
    let (hits, resumed) = run_with_kills(&killed, &checkpoints, 15, 0x006b_6166_6b61);
    assert!(
        resumed > 0,
        "no killed run resumed from a checkpoint ({hits} kills)"
    );

    let out = |run: &str, file: &str| dir.path().join(run).join(file);
    let mut ids = ids_of(&out("killed", "raw.ndjson"));
    ids.sort_unstable();
    let dupes = ids.windows(2).filter(|w| w[0] == w[1]).count();
    ids.dedup();
    assert_eq!(dupes, 0, "records read twice after {hits} kills");
    assert_eq!(
        ids,
        (0..RECORDS).collect::<Vec<_>>(),
        "records lost after {hits} kills"
    );
    let counts = sorted_lines(&out("calm", "counts.ndjson"));
    let total: i64 = counts
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, RECORDS, "the uninterrupted run counts every record");
    assert_eq!(
        sorted_lines(&out("killed", "counts.ndjson")),
        counts,
        "window results after {hits} kills"
    );
}

/// The `i` field of every line.
fn ids_of(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["i"]
                .as_i64()
                .unwrap()
        })
        .collect()
}
