//! Exactly-once output to Redis and to a webhook across `kill -9`: with
//! `[checkpoint]`, both sinks stage their output until its checkpoint
//! completes and send it in batches whose keys are fixed at the barrier, so
//! a batch sent again after a crash is dropped (Redis, by a guard key set
//! in the same script) or recognisable (HTTP, by its `Idempotency-Key`).

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use eddy_testkit::http::HttpReceiver;
use eddy_testkit::redis::Redis;
use serde_json::Value;
use support::{run_with_kills, succeed, write_pipeline};

const EVENTS: i64 = 400_000;

/// The `i` of every entry of a Redis stream, in stream order.
fn stream_ids(redis: &Redis, key: &str) -> Vec<i64> {
    let out = succeed(Command::new("redis-cli").args([
        "-p",
        &redis.port().to_string(),
        "--raw",
        "XRANGE",
        key,
        "-",
        "+",
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "i")
        .map(|w| w[1].parse().unwrap())
        .collect()
}

fn assert_once_each(mut ids: Vec<i64>, what: &str) {
    ids.sort_unstable();
    let dupes = ids.windows(2).filter(|w| w[0] == w[1]).count();
    ids.dedup();
    assert_eq!(dupes, 0, "{what}: events written twice");
    assert_eq!(ids, (0..EVENTS).collect::<Vec<_>>(), "{what}: events lost");
}

#[test]
fn redis_and_webhook_output_survive_sigkill_exactly_once() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let hook = HttpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let input: String = (0..EVENTS)
        .map(|i| format!("{{\"i\":{i},\"ts\":{}}}\n", 1_700_000_000_000 + i))
        .collect();
    std::fs::write(dir.path().join("in.ndjson"), input).unwrap();
    let config = write_pipeline(
        dir.path(),
        "pipeline.toml",
        &format!(
            r#"[pipeline]
name = "once"
workers = 2
data_dir = "{d}/data"

[checkpoint]
interval = "200ms"

[sources.tx]
type = "file"
path = "{d}/in.ndjson"
event_time = {{ field = "ts", format = "epoch_ms" }}

[sinks.stream]
type = "redis"
inputs = ["tx"]
url = "{redis}"
kind = "stream"
key = "out"
batch_size = 700

[sinks.hook]
type = "http"
inputs = ["tx"]
url = "{hook}"
format = "ndjson"
batch_size = 900
"#,
            redis = redis.url(),
            hook = hook.url(),
        ),
    );
    let checkpoints = dir.path().join("data/checkpoints");
    let (hits, resumed) = run_with_kills(&config, &checkpoints, 15, 0x0e0e);
    assert!(
        resumed > 0,
        "no killed run resumed from a checkpoint ({hits} kills)"
    );

    assert_once_each(stream_ids(&redis, "out"), "redis");

    // The receiver may see a batch again; it is the same batch.
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    let mut repeated = 0;
    for r in hook.requests() {
        let key = r.header("idempotency-key").unwrap().to_string();
        match bodies.get(&key) {
            Some(body) => {
                assert_eq!(*body, r.text(), "batch {key} changed when sent again");
                repeated += 1;
            }
            None => {
                bodies.insert(key, r.text());
            }
        }
    }
    let ids: Vec<i64> = bodies
        .values()
        .flat_map(|b| b.lines())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["i"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_once_each(ids, &format!("webhook ({repeated} batches repeated)"));
}
