//! `eddy detect --nab DIR --detector NAME --out RESULTS`: runs a detector
//! over the Numenta Anomaly Benchmark corpus as NAB's own detectors run
//! (each series once, in file order, causally), writes NAB-format results
//! and prints NAB's three profile scores.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use eddy_anomaly::nab::{self, Corpus, Report};
use eddy_anomaly::{Method, Model, Params};

/// Arguments of `eddy detect`.
#[derive(Args)]
pub struct DetectArgs {
    /// The NAB directory: `data/<category>/<file>.csv` and
    /// `combined_windows.json`.
    #[arg(long)]
    nab: PathBuf,
    /// Detectors to run, comma-separated (zscore, ewma, iqr, mad, seasonal,
    /// cusum, page-hinkley, bocpd, hst, ensemble) or `all`.
    #[arg(long, default_value = "ensemble")]
    detector: String,
    /// Where results go: `OUT/<detector>/<category>/<detector>_<file>.csv`.
    #[arg(long)]
    out: PathBuf,
    /// The fixed threshold scored besides the tuned one (the detectors'
    /// default threshold unless given).
    #[arg(long)]
    threshold: Option<f64>,
    /// Score the results already in `OUT/<detector>/` (another run's, or
    /// NAB's published ones, any detector name) instead of running
    /// detectors.
    #[arg(long)]
    score_only: bool,
}

/// NAB's debounce for every detector: after an anomaly a series is muted
/// this long (event time), so one incident flags one row.
const MUTE_MS: i64 = 8 * 3_600_000;

/// Runs `eddy detect`.
pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let corpus = Corpus::load(&args.nab)
        .with_context(|| format!("cannot read the NAB corpus in {}", args.nab.display()))?;
    if args.score_only {
        let threshold = args.threshold.unwrap_or(Params::default().threshold);
        for name in args.detector.split(',').map(str::trim) {
            let scores = nab::read_results(&args.out, name, &corpus)?;
            println!("{name}:\n{}", Report::new(&corpus, &scores, threshold));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let methods: Vec<Method> = if args.detector == "all" {
        Method::ALL.to_vec()
    } else {
        args.detector
            .split(',')
            .map(|name| name.trim().parse::<Method>().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    for method in methods {
        let params = Params {
            mute_ms: MUTE_MS,
            ..Params::default()
        };
        let threshold = args.threshold.unwrap_or(params.threshold);
        let started = std::time::Instant::now();
        let mut all = Vec::with_capacity(corpus.series.len());
        let mut rows = 0usize;
        for series in &corpus.series {
            let scores = detect(method, &params, series)?;
            nab::write_results(&args.out, method.name(), series, &scores)?;
            rows += scores.len();
            all.push(scores);
        }
        let secs = started.elapsed().as_secs_f64();
        let report = Report::new(&corpus, &all, threshold);
        println!(
            "{method}: {} series, {rows} rows in {secs:.2} s ({:.0} rows/s)\n{report}",
            corpus.series.len(),
            rows as f64 / secs.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Scores one series with a fresh detector, given the series' minimum and
/// maximum up front as NAB gives its detectors.
fn detect(method: Method, params: &Params, series: &nab::Series) -> anyhow::Result<Vec<f64>> {
    let low = series.values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = series
        .values
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let params = Params {
        range: (low <= high).then_some((low, high)),
        ..params.clone()
    };
    let model = Model::new(method, params, 1);
    let mut key = model.key_state();
    series
        .timestamps
        .iter()
        .zip(&series.values)
        .map(|(ts, &x)| {
            let t =
                parse_time(ts).with_context(|| format!("{}: bad timestamp `{ts}`", series.name))?;
            Ok(model.observe(&mut key, t, &[x]).score)
        })
        .collect()
}

/// NAB's `YYYY-MM-DD HH:MM:SS` (UTC) in milliseconds since the epoch.
fn parse_time(ts: &str) -> Option<i64> {
    eddy_core::time::parse_rfc3339(&format!("{}Z", ts.trim().replacen(' ', "T", 1)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nab_timestamps_parse_as_utc() {
        assert_eq!(super::parse_time("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(
            super::parse_time("2014-04-01 00:05:00"),
            Some(1_396_310_700_000)
        );
        assert_eq!(super::parse_time("yesterday"), None);
    }
}
