//! `eddy bench enrich`: accuracy and speed of the enrichment transforms.
//!
//! Sentiment accuracy is the Pearson correlation of the compound scores
//! with the mean human ratings of the rated tweets. Speed is measured for
//! the scorer alone on the tweets, and for each stage inside a pipeline on
//! simulator events (`sentiment` and `entities` on chat messages, `redact`
//! on events of every category, all strings searched), where a stage's own
//! rate is derived from the same pipeline run with and without it.

use super::median;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use eddy_enrich::sentiment::corpus::{self, Rated};
use eddy_enrich::sentiment::Scorer;
use eddy_runtime::{Plan, RunOptions};

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
    Ok(())
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
/// added) with the stage `stage` and without it, and the stage's own rate.
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
    let (stage, last) = match stage {
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
        let report =
            eddy_runtime::run(&plan, RunOptions::default()).context("benchmark run failed")?;
        if let Some(e) = report.errors.iter().next() {
            anyhow::bail!("benchmark run failed: {e}");
        }
        let events = report.metrics.source_events() as f64;
        rates.push(events / report.elapsed.as_secs_f64().max(1e-9));
    }
    Ok(median(&mut rates))
}
