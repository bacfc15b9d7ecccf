//! Baselines measured in the same run as a benchmark, so its figures can be
//! read against what the hardware does without Eddy's machinery.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use eddy_connectors::sources::nexmark::NexmarkGenerator;
use eddy_connectors::sources::NexmarkConfig;
use serde::Deserialize;

/// Events/s of the Nexmark generator alone, producing and dropping `events`
/// events: the ceiling for any query fed by it.
pub fn generator(events: u64, event_rate: u64) -> f64 {
    let cfg = NexmarkConfig {
        events_per_second: event_rate,
        ..NexmarkConfig::default()
    };
    let mut generator = NexmarkGenerator::new(&cfg, 42, 0, 1);
    let mut batch = Vec::with_capacity(1024);
    let mut produced = 0u64;
    let start = Instant::now();
    while produced < events {
        batch.clear();
        generator.next_batch(&mut batch, 1024);
        produced += batch.len() as u64;
    }
    produced as f64 / start.elapsed().as_secs_f64()
}

/// Reads an NDJSON bid file line by line, decoding each into a
/// [`BidLine`], and calls `f` with each bid; returns the lines read.
fn each_bid(path: &Path, mut f: impl FnMut(&BidLine<'_>)) -> anyhow::Result<u64> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let mut events = 0u64;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let bid: BidLine =
            serde_json::from_str(line.trim_end()).context("baseline: bad bid line")?;
        events += 1;
        if bid.kind == "bid" {
            f(&bid);
        }
    }
    Ok(events)
}

/// Query a by hand: per 10 s tumbling window and auction, the count and
/// the highest price. Returns the rate and the number of results.
pub fn file_a(path: &Path) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let mut windows: FxHashMap<(i64, i64), (u64, i64)> = FxHashMap::default();
    let events = each_bid(path, |bid| {
        let w = windows
            .entry((bid.date_time.div_euclid(10_000), bid.auction))
            .or_insert((0, i64::MIN));
        w.0 += 1;
        w.1 = w.1.max(bid.price);
    })?;
    Ok((events as f64 / start.elapsed().as_secs_f64(), windows.len()))
}

/// Query b by hand: bid counts per auction in 2 s slices, then for each
/// 10 s window sliding by 2 s the auction with the most bids (ties to the
/// smaller id). Returns the rate and the number of windows.
pub fn file_b(path: &Path) -> anyhow::Result<(f64, usize)> {
    const SLICE: i64 = 2_000;
    const SLICES: i64 = 5;
    let start = Instant::now();
    let mut slices: BTreeMap<i64, FxHashMap<i64, u64>> = BTreeMap::new();
    let events = each_bid(path, |bid| {
        *slices
            .entry(bid.date_time.div_euclid(SLICE))
            .or_default()
            .entry(bid.auction)
            .or_default() += 1;
    })?;
    let (Some(&first), Some(&last)) = (slices.keys().next(), slices.keys().next_back()) else {
        return Ok((events as f64 / start.elapsed().as_secs_f64(), 0));
    };
    let mut windows = 0;
    let mut merged: FxHashMap<i64, u64> = FxHashMap::default();
    for w in first - SLICES + 1..=last {
        merged.clear();
        for (_, counts) in slices.range(w..w + SLICES) {
            for (&auction, &n) in counts {
                *merged.entry(auction).or_default() += n;
            }
        }
        let best = merged.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
        // Kept opaque, so the ranking is not optimised away.
        if std::hint::black_box(best).is_some() {
            windows += 1;
        }
    }
    Ok((events as f64 / start.elapsed().as_secs_f64(), windows))
}

/// One bid line, decoded into a typed struct with borrowed strings.
#[derive(Deserialize)]
struct BidLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    auction: i64,
    price: i64,
    date_time: i64,
}

/// Events/s of a hand-written, single-purpose q7 over an NDJSON file: read
/// lines, decode each into a struct, keep the highest bid per 10 s window.
/// Returns the rate and the number of windows, which must match Eddy's.
pub fn file_q7(path: &Path) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let mut windows: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let events = each_bid(path, |bid| {
        let w = windows
            .entry(bid.date_time.div_euclid(10_000))
            .or_insert((i64::MIN, 0));
        if bid.price > w.0 {
            *w = (bid.price, bid.auction);
        }
    })?;
    Ok((events as f64 / start.elapsed().as_secs_f64(), windows.len()))
}
