//! Personal data redacted before the sinks reaches none of them: generated
//! card numbers, IBANs and e-mail addresses, in free text and nested
//! fields, go through `redact` into every sink type that keeps what it is
//! sent (file, Parquet, Kafka, PostgreSQL, Redis, a webhook), each read
//! back from the real server.

mod support;

use std::path::Path;
use std::process::Command;

use eddy_testkit::kafka::Broker;
use eddy_testkit::pii::{pii, Pii};
use eddy_testkit::postgres::Postgres;
use eddy_testkit::{HttpReceiver, Redis};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use support::{apply_topics, consume_with_python, eddy, succeed, write_pipeline};

/// `n` generated sets of personal data (the same every run).
fn generated(n: usize) -> Vec<Pii> {
    let mut runner = TestRunner::deterministic();
    let strategy = pii();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// An event carrying `p` in a text and in nested fields.
fn event(i: usize, p: &Pii) -> String {
    serde_json::json!({
        "ts": 1_700_000_000_000i64 + i as i64,
        "n": i,
        "note": format!("{} pay with {} {} or IBAN {}; mail {}", p.before, p.card_text, p.after, p.iban_text, p.email),
        "customer": { "contact": p.email, "accounts": [p.iban_text, p.card_text] },
    })
    .to_string()
}

/// The secrets of `data` found in `output` (as written, or as digits in
/// the output stripped to letters and digits).
fn leaks<'a>(data: &'a [Pii], output: &str) -> Vec<&'a str> {
    let alnum: String = output.chars().filter(char::is_ascii_alphanumeric).collect();
    data.iter()
        .flat_map(Pii::secrets)
        .filter(|s| output.contains(*s) || alnum.contains(*s))
        .collect()
}

fn redis_stream(redis: &Redis, key: &str) -> String {
    let out = succeed(Command::new("redis-cli").args([
        "-p",
        &redis.port().to_string(),
        "XRANGE",
        key,
        "-",
        "+",
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn parquet_bytes(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "parquet") {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(path).unwrap()));
        }
    }
    text
}

#[test]
fn redacted_personal_data_reaches_no_sink() {
    let (Some(pg), Some(redis), Some(broker)) =
        (Postgres::start(), Redis::start(), Broker::start())
    else {
        return;
    };
    let hook = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 60;
    let data = generated(n);
    let input: String = data
        .iter()
        .enumerate()
        .map(|(i, p)| event(i, p) + "\n")
        .collect();
    std::fs::write(d.join("in.ndjson"), &input).unwrap();
    assert_eq!(
        leaks(&data, &input).len(),
        5 * n,
        "every secret is in the input"
    );
    apply_topics(&broker.brokers(), d, &[("pii", 1)]);

    let pipeline = write_pipeline(
        d,
        "pii.toml",
        &format!(
            r#"
[pipeline]
workers = 2

[sources.input]
type = "file"
path = "{d}/in.ndjson"
event_time = {{ field = "ts" }}

[transforms.scrub]
type = "redact"
inputs = ["input"]

[sinks.file]
type = "file"
inputs = ["scrub"]
path = "{d}/out.ndjson"

[sinks.lake]
type = "parquet"
inputs = ["scrub"]
path = "{d}/lake"
compression = "none"

[sinks.topic]
type = "kafka"
inputs = ["scrub"]
brokers = "{brokers}"
topic = "pii"

[sinks.db]
type = "postgres"
inputs = ["scrub"]
url = "{pg}"
table = "pii"
create_table = true

[sinks.cache]
type = "redis"
inputs = ["scrub"]
url = "{redis}"
kind = "stream"
key = "pii"

[sinks.hook]
type = "http"
inputs = ["scrub"]
url = "{hook}"
"#,
            d = d.display(),
            brokers = broker.brokers(),
            pg = pg.url(),
            redis = redis.url(),
            hook = hook.url(),
        ),
    );
    succeed(eddy().arg("run").arg(&pipeline).arg("-q"));

    let outputs = [
        (
            "file",
            std::fs::read_to_string(d.join("out.ndjson")).unwrap(),
        ),
        ("parquet", parquet_bytes(&d.join("lake"))),
        (
            "kafka",
            consume_with_python(&broker.brokers(), "pii", n)
                .iter()
                .map(|v| v.to_string() + "\n")
                .collect(),
        ),
        ("postgres", pg.query("SELECT * FROM pii ORDER BY n")),
        ("redis", redis_stream(&redis, "pii")),
        (
            "http",
            hook.requests().iter().map(|r| r.text() + "\n").collect(),
        ),
    ];
    for (sink, output) in &outputs {
        // Parquet stores each distinct value once per column chunk (its
        // dictionary), so its bytes say nothing of the row count: only that
        // no raw value is among them.
        if *sink != "parquet" {
            assert_eq!(
                output.matches("[card]").count(),
                2 * n,
                "{sink}: every event arrives with its two cards masked:\n{output}"
            );
        }
        assert!(
            output.contains("[iban]") && output.contains("[email]"),
            "{sink}"
        );
        let leaked = leaks(&data, output);
        assert!(leaked.is_empty(), "{sink} received {leaked:?}");
    }
}
