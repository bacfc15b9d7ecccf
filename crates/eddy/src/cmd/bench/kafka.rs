//! `eddy bench kafka`: consume + decode + tumbling window + produce through
//! a Kafka-protocol broker, against a plain librdkafka consumer reading the
//! same topic (no decoding, no processing) in the same run; medians of
//! three runs each.
//!
//! The input topic is filled once (untimed) with Nexmark bids by an `eddy`
//! pipeline with a `kafka` sink. Eddy's side is an ordinary pipeline: a
//! bounded `kafka` source, a keyed 10 s tumbling window (highest bid per
//! auction), and a `kafka` sink. Its figure is input events over wall time
//! from start to the last result acknowledged by the broker.

use super::median;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use eddy_connectors::kafka::{
    apply_topics, Connection, TopicChange, TopicSpec, TopicsFile, CONSUMER_FETCH_DEFAULTS,
};
use eddy_runtime::{Plan, RunOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;

/// Runs of each side; the median is reported.
const RUNS: usize = 3;

/// Arguments of `eddy bench kafka`.
#[derive(Args)]
pub struct KafkaArgs {
    /// Bootstrap brokers (a test broker: the benchmark creates topics).
    #[arg(long, required_unless_present = "mock")]
    brokers: Option<String>,
    /// Use librdkafka's in-process mock cluster instead of a broker, to see
    /// Eddy's side when the broker is not the bottleneck.
    #[arg(long)]
    mock: bool,
    /// Nexmark events to generate; their bids (92 %) fill the input topic.
    #[arg(long, short = 'n', default_value_t = 2_000_000)]
    events: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Worker threads of Eddy's pipeline.
    #[arg(long, short, default_value_t = 1)]
    workers: usize,
}

/// Fills the topic, runs both sides and prints their medians.
pub fn run(args: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let stamp = eddy_core::time::now_ms();
    let input = format!("eddy-bench-in-{stamp}");
    let output = format!("eddy-bench-out-{stamp}");
    // The mock cluster lives as long as this binding.
    let mock = if args.mock {
        let cluster = MockCluster::new(1).context("cannot start the mock cluster")?;
        for topic in [&input, &output] {
            cluster
                .create_topic(topic, args.partitions, 1)
                .with_context(|| format!("cannot create {topic}"))?;
        }
        Some(cluster)
    } else {
        None
    };
    let brokers = match (&mock, &args.brokers) {
        (Some(cluster), _) => cluster.bootstrap_servers(),
        (None, Some(b)) => b.clone(),
        (None, None) => bail!("pass --brokers or --mock"),
    };
    if mock.is_none() {
        create_topics(&brokers, &[&input, &output], args.partitions)?;
    }
    let run_args = (brokers.as_str(), input.as_str(), output.as_str(), stamp);
    measure(args, run_args)
}

/// Creates the benchmark's topics on a real broker.
fn create_topics(brokers: &str, names: &[&String], partitions: i32) -> anyhow::Result<()> {
    let conn = Connection::plain(brokers);
    let mut topics = TopicsFile {
        brokers: None,
        topics: Default::default(),
    };
    for name in names {
        topics.topics.insert(
            (*name).clone(),
            TopicSpec {
                partitions,
                replication_factor: 1,
                retention: None,
                compression: None,
                cleanup_policy: None,
                config: Default::default(),
            },
        );
    }
    for change in apply_topics(&conn, &topics).map_err(anyhow::Error::msg)? {
        if let TopicChange::Failed { topic, reason } = change {
            bail!("cannot create topic {topic}: {reason}");
        }
    }
    Ok(())
}

/// Fills the input topic, then runs both sides `RUNS` times.
fn measure(
    args: &KafkaArgs,
    (brokers, input, output, stamp): (&str, &str, &str, i64),
) -> anyhow::Result<ExitCode> {
    let fill = format!(
        "[pipeline]\nworkers = 1\n\
         [sources.nexmark]\ntype = \"nexmark\"\nevents = {}\nonly = \"bid\"\n\
         [sinks.in]\ntype = \"kafka\"\ninputs = [\"nexmark\"]\nbrokers = \"{}\"\ntopic = \"{input}\"\nlinger = \"20ms\"\n",
        args.events, brokers
    );
    let started = Instant::now();
    // `only = "bid"` keeps the bids of the first `events` Nexmark events.
    let events = run_pipeline(&fill, 1)?;
    eprintln!(
        "filled {input} with {events} bids in {:.1}s ({}/s)",
        started.elapsed().as_secs_f64(),
        human(events as f64 / started.elapsed().as_secs_f64())
    );

    let mut plain = Vec::new();
    let mut eddy = Vec::new();
    for i in 0..RUNS {
        let p = plain_consume(brokers, input, events, stamp, i)?;
        eprintln!("plain consume run {}: {} records/s", i + 1, human(p));
        plain.push(p);
        let pipeline = format!(
            "[pipeline]\nworkers = {}\n\
             [sources.bids]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopics = [\"{input}\"]\ngroup = \"eddy-bench-{stamp}-{i}\"\n\
             bounded = true\nstart = \"earliest\"\nevent_time = {{ field = \"date_time\", format = \"epoch_ms\" }}\n\
             [transforms.top]\ntype = \"window\"\ninputs = [\"bids\"]\nkey = \"auction\"\nwindow = {{ tumbling = \"10s\" }}\n\
             aggregates = {{ bids = \"count()\", price = \"max(price)\" }}\n\
             [sinks.out]\ntype = \"kafka\"\ninputs = [\"top\"]\nbrokers = \"{b}\"\ntopic = \"{output}\"\nlinger = \"20ms\"\n",
            args.workers,
            b = brokers,
        );
        let t = Instant::now();
        let consumed = run_pipeline(&pipeline, args.workers)?;
        if consumed != events {
            bail!("Eddy read {consumed} of {events} events");
        }
        let e = events as f64 / t.elapsed().as_secs_f64();
        eprintln!(
            "eddy consume+window+produce run {}: {} events/s",
            i + 1,
            human(e)
        );
        eddy.push(e);
    }
    let (p, e) = (median(&mut plain), median(&mut eddy));
    println!(
        "kafka ({}): {} events, {} partitions, {} worker(s)\n  plain librdkafka consume: {} records/s\n  eddy consume + decode + window + produce: {} events/s ({:.0} % of the plain consume)",
        if args.mock { "librdkafka mock cluster" } else { brokers },
        events,
        args.partitions,
        args.workers,
        human(p),
        human(e),
        100.0 * e / p
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs a pipeline to its end; returns the events its sources read.
fn run_pipeline(text: &str, workers: usize) -> anyhow::Result<u64> {
    let plan = Plan::compile("bench", text, &[]).map_err(|d| anyhow::anyhow!("{d}"))?;
    let opts = RunOptions {
        workers,
        ..RunOptions::default()
    };
    let report = eddy_runtime::run(&plan, opts).context("cannot start the pipeline")?;
    if let Some(e) = report.errors.first() {
        bail!("the pipeline failed: {e}");
    }
    Ok(report.metrics.source_events())
}

/// Reads `count` records with a bare consumer, touching each payload.
fn plain_consume(
    brokers: &str,
    topic: &str,
    count: u64,
    stamp: i64,
    run: usize,
) -> anyhow::Result<f64> {
    let mut config = Connection::plain(brokers).client_config();
    // The same fetch settings as Eddy's source, for a like-for-like baseline.
    for (k, v) in CONSUMER_FETCH_DEFAULTS {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config
        .set("group.id", format!("plain-bench-{stamp}-{run}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create a consumer")?;
    consumer.subscribe(&[topic])?;
    let mut seen = 0u64;
    let mut bytes = 0usize;
    let mut started: Option<Instant> = None;
    let give_up = Instant::now() + Duration::from_secs(300);
    while seen < count {
        if Instant::now() > give_up {
            bail!("plain consumer read only {seen} of {count} records");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                // Time from the first record: group join is not throughput.
                started.get_or_insert_with(Instant::now);
                bytes += m.payload().map_or(0, <[u8]>::len);
                seen += 1;
            }
            Some(Err(e)) => bail!("consume: {e}"),
            None => {}
        }
    }
    std::hint::black_box(bytes);
    Ok(count as f64 / started.map_or(1e-9, |s| s.elapsed().as_secs_f64()))
}

fn human(x: f64) -> String {
    crate::progress::human(x as u64)
}
