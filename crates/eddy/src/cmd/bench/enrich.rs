//! `eddy bench enrich`: accuracy and speed of the enrichment transforms.
//!
//! Sentiment accuracy is the Pearson correlation of the compound scores
//! with the mean human ratings of the rated tweets. Entity accuracy is the
//! precision and recall of `entities` on simulator chat messages, whose
//! `mentions` field lists the entities the simulator put in them. Speed is measured for
//! the scorer alone on the tweets, and for each stage inside a pipeline on
//! simulator events (`sentiment` and `entities` on chat messages, `redact`
//! on events of every category, all strings searched), where a stage's own
//! rate is derived from the same pipeline run with and without it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use eddy_connectors::sources::simulator::{self, Category, Simulator, SimulatorConfig};
use eddy_core::{Event, Value};
use eddy_enrich::entities::Extractor;
use eddy_enrich::sentiment::corpus::{self, Rated};
use eddy_enrich::sentiment::Scorer;
use eddy_runtime::{Plan, RunOptions};

use super::median;

/// Arguments of `eddy bench enrich`.
#[derive(Args)]
pub struct EnrichArgs {
    /// Directory holding the rated tweets (`tweets_GroundTruth.txt`).
    #[arg(long, default_value = "../shared/data/sentiment")]
    data: PathBuf,
    /// Timed rounds of each measurement; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Simulator events per pipeline run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
}

/// Runs the benchmark and prints its figures.
pub fn run(args: &EnrichArgs) -> anyhow::Result<()> {
    let path = args.data.join(corpus::TWEETS);
    let rated = corpus::read_rated(&path).map_err(anyhow::Error::msg)?;
    let mut scorer = Scorer::default();
    let r = corpus::correlation(&mut scorer, &rated);
    println!(
        "accuracy: Pearson r = {r:.4} against the human ratings of {} tweets",
        rated.len()
    );

    let accuracy = entity_accuracy(20_000).map_err(anyhow::Error::msg)?;
    println!("{accuracy}");

    let (rate, mb) = scorer_rate(&mut scorer, &rated, args.rounds);
    println!(
        "scorer alone, tweets: {} texts/s ({mb:.0} MB/s), median of {} rounds",
        crate::progress::human(rate as u64),
        args.rounds
    );

    let chat = "categories = [\"communication_message\"]";
    let sentiment = "type = \"sentiment\"\nfield = \"text\"";
    stage_rate(
        args,
        "sentiment",
        chat,
        sentiment,
        "simulator chat messages",
    )?;
    let entities = "type = \"entities\"\nfield = \"text\"\ngazetteers = { technology = [\"Kafka\", \"PostgreSQL\", \"Redis\"], team = [\"platform\", \"payments\"] }";
    stage_rate(args, "entities", chat, entities, "simulator chat messages")?;
    stage_rate(
        args,
        "redact",
        "",
        "type = \"redact\"",
        "simulator events, all strings searched",
    )?;
    stage_rate(
        args,
        "language",
        chat,
        "type = \"language\"\nfield = \"text\"",
        "simulator chat messages",
    )?;
    stage_rate(
        args,
        "topics",
        chat,
        "type = \"topics\"\nfield = \"text\"\nkey = \"channel\"",
        "simulator chat messages",
    )?;
    // The enrichment chain of the demo: sentiment and entities, then
    // redaction before the sinks; and the same with topics, as the demo
    // runs it.
    let entities_stage = format!("[transforms.entities]\ninputs = [\"stage_0\"]\n{entities}\n\n");
    let redact = "type = \"redact\"";
    let chain = format!(
        "{sentiment}\n\n{entities_stage}[transforms.stage]\ninputs = [\"entities\"]\n{redact}"
    );
    stage_rate(
        args,
        "sentiment → entities → redact",
        chat,
        &chain,
        "simulator chat messages",
    )?;
    let chain = format!(
        "{sentiment}\n\n{entities_stage}[transforms.topics]\ninputs = [\"entities\"]\n\
         type = \"topics\"\nfield = \"text\"\nkey = \"channel\"\n\n\
         [transforms.stage]\ninputs = [\"topics\"]\n{redact}"
    );
    stage_rate(
        args,
        "sentiment → entities → topics → redact",
        chat,
        &chain,
        "simulator chat messages",
    )?;
    Ok(())
}

/// Entities found against entities meant, per type.
#[derive(Debug, Default)]
pub struct Accuracy {
    /// Type → (true positives, found, meant).
    pub by_type: BTreeMap<String, (u64, u64, u64)>,
    /// Messages measured.
    pub messages: usize,
}

impl Accuracy {
    /// Precision and recall over every type.
    pub fn overall(&self) -> (f64, f64) {
        let (tp, found, meant) = self
            .by_type
            .values()
            .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2));
        (ratio(tp, found), ratio(tp, meant))
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

impl std::fmt::Display for Accuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p, r) = self.overall();
        write!(
            f,
            "entities on {} simulator chat messages: precision {p:.4}, recall {r:.4}",
            self.messages
        )?;
        for (kind, &(tp, found, meant)) in &self.by_type {
            let (p, r) = (ratio(tp, found), ratio(tp, meant));
            write!(
                f,
                "\n  {kind}: precision {p:.4}, recall {r:.4} ({meant} meant)"
            )?;
        }
        Ok(())
    }
}

/// Precision and recall of `entities` (gazetteers: the simulated projects
/// and technologies) on `messages` simulator chat messages against their
/// `mentions`. A find counts when its type and text equal a mention's.
pub fn entity_accuracy(messages: usize) -> Result<Accuracy, String> {
    let cfg = SimulatorConfig {
        categories: Some(vec![Category::CommunicationMessage]),
        fast: true,
        seed: Some(11),
        ..SimulatorConfig::default()
    };
    let mut sim = Simulator::new(&cfg, 0, 0, 1).map_err(|e| e.to_string())?;
    let gazetteers = BTreeMap::from([
        ("project".to_string(), simulator::project_names()),
        (
            "technology".to_string(),
            simulator::technologies()
                .iter()
                .map(|t| t.to_string())
                .collect(),
        ),
    ]);
    let mut extractor = Extractor::new(&gazetteers)?;
    let mut accuracy = Accuracy {
        messages,
        ..Accuracy::default()
    };
    let mut events = Vec::with_capacity(messages);
    while events.len() < messages {
        let wanted = messages - events.len();
        sim.next_batch(&mut events, wanted);
    }
    for event in &events {
        let text = field(event, "text").and_then(Value::as_str).unwrap_or("");
        let mut meant: Vec<(String, String)> = match field(event, "mentions") {
            Some(Value::List(list)) => list
                .iter()
                .filter_map(|m| match m {
                    Value::Map(m) => Some((
                        m.get(eddy_core::Sym::intern("type"))?.as_str()?.to_string(),
                        m.get(eddy_core::Sym::intern("text"))?.as_str()?.to_string(),
                    )),
                    _ => None,
                })
                .collect(),
            _ => return Err("a chat message without `mentions`".into()),
        };
        for (kind, _) in &meant {
            accuracy.by_type.entry(kind.clone()).or_default().2 += 1;
        }
        for found in extractor.extract(text) {
            let kind = found.kind.to_string();
            let hit = meant
                .iter()
                .position(|(k, t)| *k == kind && **t == *found.text);
            let counts = accuracy.by_type.entry(kind).or_default();
            counts.1 += 1;
            if let Some(i) = hit {
                counts.0 += 1;
                meant.swap_remove(i);
            }
        }
    }
    Ok(accuracy)
}

fn field<'a>(event: &'a Event, name: &str) -> Option<&'a Value> {
    event.fields.get(eddy_core::Sym::intern(name))
}

/// Median texts/s and MB/s of the scorer over the tweets, each round
/// scoring them all enough times to last about half a second.
fn scorer_rate(scorer: &mut Scorer, rated: &[Rated], rounds: usize) -> (f64, f64) {
    let bytes: usize = rated.iter().map(|r| r.text.len()).sum();
    let mut checksum = 0.0;
    let mut rates = Vec::new();
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let mut passes = 0;
        while start.elapsed() < Duration::from_millis(500) {
            for r in rated {
                checksum += scorer.score(&r.text).compound;
            }
            passes += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        rates.push(passes as f64 / secs);
    }
    // The checksum keeps the scoring from being optimised away.
    std::hint::black_box(checksum);
    let passes = median(&mut rates);
    (passes * rated.len() as f64, passes * bytes as f64 / 1e6)
}

/// Prints the rate of a pipeline of simulator events (`source` settings
/// added) with the stage `stage` (one transform's settings, or a chain of
/// tables from `stage_0`'s settings to `[transforms.stage]`) and without
/// it, and the stage's own rate.
fn stage_rate(
    args: &EnrichArgs,
    name: &str,
    source: &str,
    stage: &str,
    what: &str,
) -> anyhow::Result<()> {
    let without = pipeline_rate(args, source, None)?;
    let with = pipeline_rate(args, source, Some(stage))?;
    let alone = 1.0 / (1.0 / with - 1.0 / without);
    println!(
        "{name} in a pipeline of {what} (1 worker): {} events/s with the stage, {} without; the stage alone: {} events/s",
        crate::progress::human(with as u64),
        crate::progress::human(without as u64),
        crate::progress::human(alone as u64),
    );
    Ok(())
}

/// Median events/s of simulator events through a pipeline ending in a
/// blackhole, with or without a stage.
fn pipeline_rate(args: &EnrichArgs, source: &str, stage: Option<&str>) -> anyhow::Result<f64> {
    // A chain names its first node `stage_0` and its last `stage`.
    let (stage, last) = match stage {
        Some(s) if s.contains("[transforms.stage]") => (
            format!("[transforms.stage_0]\ninputs = [\"sim\"]\n{s}\n"),
            "stage",
        ),
        Some(s) => (
            format!("[transforms.stage]\ninputs = [\"sim\"]\n{s}\n"),
            "stage",
        ),
        None => (String::new(), "sim"),
    };
    let text = format!(
        "[pipeline]\nbatch_size = 1024\n\n[sources.sim]\ntype = \"simulator\"\nfast = true\nseed = 7\nrate = 100000\nevents = {}\n{source}\n\n{stage}\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"{last}\"]\n",
        args.events
    );
    let plan = Plan::compile("<bench>", &text, &[]).map_err(|d| anyhow::anyhow!("{d}"))?;
    let mut rates = Vec::new();
    for _ in 0..args.rounds.max(1) {
        // One worker: the targets are per worker.
        let options = RunOptions {
            workers: 1,
            ..RunOptions::default()
        };
        let report = eddy_runtime::run(&plan, options).context("benchmark run failed")?;
        if let Some(e) = report.errors.iter().next() {
            anyhow::bail!("benchmark run failed: {e}");
        }
        let events = report.metrics.source_events() as f64;
        rates.push(events / report.elapsed.as_secs_f64().max(1e-9));
    }
    Ok(median(&mut rates))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's truth and the extractor agree: every kind the
    /// simulator mentions is found, and nothing much else.
    #[test]
    fn entities_are_found_in_simulated_messages_with_their_truth() {
        let accuracy = entity_accuracy(5_000).unwrap();
        println!("{accuracy}");
        let (p, r) = accuracy.overall();
        assert!(p >= 0.95 && r >= 0.95, "{accuracy}");
        for kind in [
            "amount",
            "date",
            "email",
            "ip",
            "project",
            "technology",
            "ticket",
            "url",
        ] {
            let (tp, _, meant) = accuracy.by_type[kind];
            assert!(meant > 50 && tp > 0, "{kind}: {accuracy}");
        }
    }
}
