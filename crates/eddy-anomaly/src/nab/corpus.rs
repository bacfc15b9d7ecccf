//! The corpus on disk: `data/<category>/<file>.csv` (`timestamp,value`)
//! and `combined_windows.json` (the labelled anomaly windows), and results
//! as `OUT/<detector>/<category>/<detector>_<file>.csv`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the corpus or a results file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file's content is not what NAB writes.
    #[error("{path}:{line}: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Its line (1-based; 0 for the file as a whole).
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A detector name NAB cannot use in file names.
    #[error("detector name `{0}` must be non-empty and contain no `_` or `/`")]
    DetectorName(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NabError + '_ {
    move |source| NabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_error(path: &Path, line: usize, problem: impl Into<String>) -> NabError {
    NabError::Format {
        path: path.to_path_buf(),
        line,
        problem: problem.into(),
    }
}

/// One series of the corpus with its labelled windows.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// `<category>/<file>.csv`, as in `combined_windows.json`.
    pub name: String,
    /// The rows' timestamps as written (`YYYY-MM-DD HH:MM:SS`).
    pub timestamps: Vec<String>,
    /// The rows' values.
    pub values: Vec<f64>,
    /// The anomaly windows as inclusive row ranges, in order.
    pub windows: Vec<(usize, usize)>,
}

impl Series {
    fn category_and_file(&self) -> (&str, &str) {
        self.name.split_once('/').unwrap_or(("", &self.name))
    }
}

/// Every series of a NAB directory, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// The series.
    pub series: Vec<Series>,
}

impl Corpus {
    /// Reads `dir/data/*/*.csv` and `dir/combined_windows.json`.
    pub fn load(dir: &Path) -> Result<Corpus, NabError> {
        let labels_path = dir.join("combined_windows.json");
        let text = std::fs::read_to_string(&labels_path).map_err(io(&labels_path))?;
        let labels: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(&text)
            .map_err(|e| format_error(&labels_path, e.line(), e.to_string()))?;
        let data = dir.join("data");
        let mut series = Vec::new();
        let mut categories: Vec<PathBuf> = read_dir(&data)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        categories.sort();
        for category in categories {
            let mut files: Vec<PathBuf> = read_dir(&category)?
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "csv"))
                .collect();
            files.sort();
            for file in files {
                let name = file
                    .strip_prefix(&data)
                    .unwrap_or(&file)
                    .to_string_lossy()
                    .replace('\\', "/");
                let windows = labels.get(&name).ok_or_else(|| {
                    format_error(&labels_path, 0, format!("no windows listed for `{name}`"))
                })?;
                series.push(read_series(&file, name, windows)?);
            }
        }
        Ok(Corpus { series })
    }

    /// How many labelled windows the corpus has.
    pub fn windows(&self) -> usize {
        self.series.iter().map(|s| s.windows.len()).sum()
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, NabError> {
    std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io(dir)))
        .collect()
}

/// Drops a fractional-seconds suffix: windows are written with
/// `.000000`, rows without.
fn whole_seconds(ts: &str) -> &str {
    ts.split('.').next().unwrap_or(ts).trim()
}

fn read_series(
    path: &Path,
    name: String,
    windows: &[(String, String)],
) -> Result<Series, NabError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut timestamps = Vec::new();
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (ts, value) = line
            .split_once(',')
            .ok_or_else(|| format_error(path, i + 1, "expected `timestamp,value`"))?;
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                format_error(
                    path,
                    i + 1,
                    format!("`{}` is not a finite number", value.trim()),
                )
            })?;
        timestamps.push(ts.trim().to_string());
        values.push(value);
    }
    let row_of = |ts: &str| {
        let ts = whole_seconds(ts);
        timestamps.iter().position(|t| whole_seconds(t) == ts)
    };
    let mut rows = Vec::with_capacity(windows.len());
    for (start, end) in windows {
        let (Some(a), Some(b)) = (row_of(start), row_of(end)) else {
            return Err(format_error(
                path,
                0,
                format!("window [{start}, {end}] does not start and end at rows of the series"),
            ));
        };
        if b < a {
            return Err(format_error(
                path,
                0,
                format!("window [{start}, {end}] ends before it starts"),
            ));
        }
        rows.push((a, b));
    }
    rows.sort_unstable();
    Ok(Series {
        name,
        timestamps,
        values,
        windows: rows,
    })
}

fn results_path(out: &Path, detector: &str, series: &Series) -> Result<PathBuf, NabError> {
    if detector.is_empty() || detector.contains(['_', '/', '\\']) {
        return Err(NabError::DetectorName(detector.to_string()));
    }
    let (category, file) = series.category_and_file();
    Ok(out
        .join(detector)
        .join(category)
        .join(format!("{detector}_{file}")))
}

/// Writes `scores` for `series` as NAB results:
/// `out/<detector>/<category>/<detector>_<file>.csv` with the series' rows
/// and an `anomaly_score` column (shortest text that reads back exactly).
pub fn write_results(
    out: &Path,
    detector: &str,
    series: &Series,
    scores: &[f64],
) -> Result<(), NabError> {
    let path = results_path(out, detector, series)?;
    if scores.len() != series.values.len() {
        return Err(format_error(
            &path,
            0,
            format!("{} scores for {} rows", scores.len(), series.values.len()),
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut text = String::with_capacity(series.values.len() * 48);
    text.push_str("timestamp,value,anomaly_score\n");
    for ((ts, v), s) in series.timestamps.iter().zip(&series.values).zip(scores) {
        text.push_str(&format!("{ts},{v},{s}\n"));
    }
    let mut file = std::fs::File::create(&path).map_err(io(&path))?;
    file.write_all(text.as_bytes()).map_err(io(&path))
}

/// Reads back the scores of every series of `corpus` for `detector` (our
/// results or NAB's published ones: the `anomaly_score` column, found by
/// its header).
pub fn read_results(
    out: &Path,
    detector: &str,
    corpus: &Corpus,
) -> Result<Vec<Vec<f64>>, NabError> {
    corpus
        .series
        .iter()
        .map(|series| {
            let path = results_path(out, detector, series)?;
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let column = header
                .split(',')
                .position(|h| h.trim() == "anomaly_score")
                .ok_or_else(|| format_error(&path, 1, "no `anomaly_score` column"))?;
            let scores: Vec<f64> = lines
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    l.split(',')
                        .nth(column)
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| format_error(&path, i + 2, "no number in `anomaly_score`"))
                })
                .collect::<Result<_, _>>()?;
            if scores.len() != series.values.len() {
                return Err(format_error(
                    &path,
                    0,
                    format!(
                        "{} rows, the series has {}",
                        scores.len(),
                        series.values.len()
                    ),
                ));
            }
            Ok(scores)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn tiny(dir: &Path) {
        write(
            &dir.join("data/cat/a.csv"),
            "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,2.5\n2014-01-01 00:10:00,3\n",
        );
        write(
            &dir.join("combined_windows.json"),
            r#"{"cat/a.csv": [["2014-01-01 00:05:00.000000", "2014-01-01 00:10:00.000000"]]}"#,
        );
    }

    #[test]
    fn loads_series_and_windows_and_round_trips_results() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        let corpus = Corpus::load(dir.path()).unwrap();
        assert_eq!(corpus.series.len(), 1);
        let s = &corpus.series[0];
        assert_eq!(s.name, "cat/a.csv");
        assert_eq!(s.values, vec![1.0, 2.5, 3.0]);
        assert_eq!(s.windows, vec![(1, 2)]);
        let out = dir.path().join("results");
        let scores = vec![0.1, 0.123_456_789_012_345_67, 1.0 / 3.0];
        write_results(&out, "mine", s, &scores).unwrap();
        let text = std::fs::read_to_string(out.join("mine/cat/mine_a.csv")).unwrap();
        assert!(
            text.starts_with("timestamp,value,anomaly_score\n2014-01-01 00:00:00,1,0.1\n"),
            "{text}"
        );
        assert_eq!(read_results(&out, "mine", &corpus).unwrap(), vec![scores]);
        assert!(matches!(
            write_results(&out, "my_detector", s, &[0.0; 3]),
            Err(NabError::DetectorName(_))
        ));
        assert!(write_results(&out, "mine", s, &[0.0; 2]).is_err());
    }

    #[test]
    fn reads_nab_result_files_with_their_extra_columns() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        let corpus = Corpus::load(dir.path()).unwrap();
        write(
            &dir.path().join("res/numenta/cat/numenta_a.csv"),
            "timestamp,value,anomaly_score,label,S(t)_reward_low_FP_rate\n\
             2014-01-01 00:00:00,1,0.5,0,0\n2014-01-01 00:05:00,2.5,0.25,1,0\n2014-01-01 00:10:00,3,0.0,1,0\n",
        );
        let scores = read_results(&dir.path().join("res"), "numenta", &corpus).unwrap();
        assert_eq!(scores, vec![vec![0.5, 0.25, 0.0]]);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        write(
            &dir.path().join("data/cat/b.csv"),
            "timestamp,value\n2014-01-01 00:00:00,x\n",
        );
        let err = Corpus::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no windows listed for `cat/b.csv`"), "{err}");
        write(
            &dir.path().join("combined_windows.json"),
            r#"{"cat/a.csv": [], "cat/b.csv": []}"#,
        );
        let err = Corpus::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("b.csv:2") && err.contains("`x` is not a finite number"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("data/cat/b.csv")).unwrap();
        write(
            &dir.path().join("combined_windows.json"),
            r#"{"cat/a.csv": [["2015-01-01 00:00:00", "2015-01-01 00:05:00"]]}"#,
        );
        let err = Corpus::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("a.csv") && err.contains("does not start and end at rows"),
            "{err}"
        );
    }

    /// The corpus shipped beside the repository (`../shared/data/nab`, or
    /// `EDDY_NAB_DIR`): 35 series and the window counts of its labels.
    #[test]
    fn the_shared_corpus_loads_whole() {
        let dir = std::env::var_os("EDDY_NAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab")
            });
        if !dir.join("combined_windows.json").exists() {
            eprintln!("no NAB corpus at {}: nothing to load", dir.display());
            return;
        }
        let corpus = Corpus::load(&dir).unwrap();
        assert_eq!(corpus.series.len(), 35);
        assert_eq!(corpus.windows(), 55);
        assert!(corpus
            .series
            .iter()
            .all(|s| s.windows.iter().all(|&(a, b)| a <= b && b < s.values.len())));
    }
}
