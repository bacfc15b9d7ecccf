//! `eddy bench sentiment`: accuracy and speed of the sentiment scorer.
//!
//! Accuracy is the Pearson correlation of the compound scores with the mean
//! human ratings of the rated tweets. Speed is measured twice: the scorer
//! alone on the tweets, and inside a pipeline on the simulator's chat
//! messages, where the sentiment stage's own rate is derived from the same
//! pipeline run with and without it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use eddy_enrich::sentiment::corpus::{self, Rated};
use eddy_enrich::sentiment::Scorer;
use eddy_runtime::{Plan, RunOptions};

/// Arguments of `eddy bench sentiment`.
#[derive(Args)]
pub struct SentimentArgs {
    /// Directory holding the rated tweets (`tweets_GroundTruth.txt`).
    #[arg(long, default_value = "../shared/data/sentiment")]
    data: PathBuf,
    /// Timed rounds of each measurement; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Simulator messages per pipeline run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
}

/// Runs the benchmark and prints its figures.
pub fn run(args: &SentimentArgs) -> anyhow::Result<()> {
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

    let without = pipeline_rate(args, false)?;
    let with = pipeline_rate(args, true)?;
    let stage = 1.0 / (1.0 / with - 1.0 / without);
    println!(
        "pipeline, simulator messages (1 worker): {} events/s with the sentiment stage, {} without; the stage alone: {} texts/s",
        crate::progress::human(with as u64),
        crate::progress::human(without as u64),
        crate::progress::human(stage as u64),
    );
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

/// Median events/s of simulator chat messages through a pipeline ending in
/// a blackhole, with or without a sentiment stage.
fn pipeline_rate(args: &SentimentArgs, sentiment: bool) -> anyhow::Result<f64> {
    let stage = if sentiment {
        "[transforms.mood]\ntype = \"sentiment\"\ninputs = [\"chat\"]\nfield = \"text\"\n"
    } else {
        ""
    };
    let last = if sentiment { "mood" } else { "chat" };
    let text = format!(
        "[pipeline]\nbatch_size = 1024\n\n[sources.chat]\ntype = \"simulator\"\nfast = true\nseed = 7\nrate = 100000\nevents = {}\ncategories = [\"communication_message\"]\n\n{stage}\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"{last}\"]\n",
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

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
