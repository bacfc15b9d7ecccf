//! A broker outage in the middle of a run, in a test binary of its own: it
//! runs librdkafka's mock cluster inside the test process, and alone it is
//! not disturbed by the other Kafka tests' brokers and clients.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{eddy, ids_in, wait_until, write_pipeline};

/// The broker goes down in the middle of a run and comes back. tansu keeps
/// its log in memory and would come back empty, so this test uses
/// librdkafka's mock cluster, which keeps its log while the broker is down:
/// Eddy reports the outage in its progress line (`broker_down=1`),
/// reconnects, and every event, produced before or after, reaches both the
/// file sink and the Kafka sink.
#[test]
fn a_broker_outage_is_reported_and_nothing_is_lost() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{ClientConfig, Message};

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("feed", 2, 1).unwrap();
    cluster.create_topic("copy", 2, 1).unwrap();
    let b = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let pipeline = write_pipeline(
        dir.path(),
        "feed.toml",
        &format!(
            "[pipeline]\nworkers = 1\ncheckpoint_interval = \"500ms\"\n\
             [sources.feed]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"feed\"]\ngroup = \"outage\"\n\
             options = {{ \"reconnect.backoff.max.ms\" = \"500\" }}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"feed\"]\npath = \"{d}/out.ndjson\"\n\
             [sinks.copy]\ntype = \"kafka\"\ninputs = [\"feed\"]\nbrokers = \"{b}\"\ntopic = \"copy\"\n"
        ),
    );
    let mut run = eddy()
        .arg("run")
        .arg(&pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = run.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    };
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .unwrap();
    let send = |from: i64, to: i64| {
        for i in from..to {
            let v = format!("{{\"id\":{i}}}");
            producer
                .send(BaseRecord::<(), _>::to("feed").payload(&v))
                .unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    send(0, 500);
    let out = dir.path().join("out.ndjson");
    wait_until(
        Duration::from_secs(60),
        "the events before the outage",
        || ids_in(&out).len() >= 500,
    );
    cluster.broker_down(1).unwrap();
    let reported = Instant::now() + Duration::from_secs(60);
    while !log.lock().unwrap().contains("broker_down=1") {
        let l = log.lock().unwrap().clone();
        assert!(
            Instant::now() < reported,
            "the outage was not reported:\n{l}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.broker_up(1).unwrap();
    send(500, 800);
    wait_until(
        Duration::from_secs(90),
        "the events after the outage",
        || {
            let ids: BTreeSet<i64> = ids_in(&out).into_iter().collect();
            (0..800).all(|i| ids.contains(&i))
        },
    );
    // The run reports the outage's consume errors: exit status 1.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(run.id().to_string())
        .status();
    run.wait().unwrap();
    reader.join().unwrap();
    // Everything also went through the Kafka sink.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["copy"]).unwrap();
    let mut copied = BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(60);
    while copied.len() < 800 && Instant::now() < until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            copied.insert(v["id"].as_i64().unwrap());
        }
    }
    assert_eq!(copied, (0..800).collect::<BTreeSet<i64>>());
    let l = log.lock().unwrap();
    let done = l
        .lines()
        .find(|x| x.starts_with("done in"))
        .unwrap_or_default();
    assert!(!done.contains("broker_down"), "the outage cleared:\n{l}");
    for e in l.lines().filter(|x| x.starts_with("error:")) {
        assert!(e.contains("consume"), "only the outage is reported: {e}");
    }
}
