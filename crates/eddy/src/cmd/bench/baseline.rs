//! Baselines measured in the same run as a benchmark, so its figures can be
//! read against what the hardware does without Eddy's machinery.

use std::collections::BTreeMap;
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
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let mut windows: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut events = 0u64;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let bid: BidLine =
            serde_json::from_str(line.trim_end()).context("baseline: bad bid line")?;
        events += 1;
        if bid.kind != "bid" {
            continue;
        }
        let w = windows
            .entry(bid.date_time.div_euclid(10_000))
            .or_insert((i64::MIN, 0));
        if bid.price > w.0 {
            *w = (bid.price, bid.auction);
        }
    }
    Ok((events as f64 / start.elapsed().as_secs_f64(), windows.len()))
}
