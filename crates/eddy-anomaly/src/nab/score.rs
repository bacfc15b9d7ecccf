//! NAB's scoring: each row past the probation period is weighed by where
//! it falls, relative to the labelled windows, with NAB's scaled sigmoid;
//! a window counts its earliest detection as a true positive (or costs
//! `A_FN` when none), every detection outside a window costs `A_FP`
//! weighed by its distance past the preceding window. The raw sum over
//! the corpus is normalised so that a detector that never fires scores 0
//! and one that fires exactly at the start of every window scores 100.
//!
//! A row is a detection when its score is at or above the threshold. The
//! tuned threshold is the one, among the distinct scores, that maximises
//! the raw sum over the corpus (an exhaustive sweep: NAB's own optimiser
//! searches locally and may stop short of it).

use std::fmt;

use super::corpus::{Corpus, Series};

/// One of NAB's application profiles: the weights of true positives,
/// false negatives and false positives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// NAB's name for it.
    pub name: &'static str,
    /// Weight of a detected window (`A_TP`).
    pub tp: f64,
    /// Cost of a missed window (`A_FN`).
    pub fn_: f64,
    /// Cost of a false positive (`A_FP`).
    pub fp: f64,
}

impl Profile {
    /// The standard profile.
    pub const STANDARD: Profile = Profile {
        name: "standard",
        tp: 1.0,
        fn_: 1.0,
        fp: 0.11,
    };
    /// False positives cost twice as much.
    pub const REWARD_LOW_FP: Profile = Profile {
        name: "reward_low_FP",
        tp: 1.0,
        fn_: 1.0,
        fp: 0.22,
    };
    /// Missed windows cost twice as much.
    pub const REWARD_LOW_FN: Profile = Profile {
        name: "reward_low_FN",
        tp: 1.0,
        fn_: 2.0,
        fp: 0.11,
    };
    /// The three profiles, in NAB's order.
    pub const ALL: [Profile; 3] = [
        Profile::STANDARD,
        Profile::REWARD_LOW_FP,
        Profile::REWARD_LOW_FN,
    ];
}

/// NAB's scaled sigmoid of a relative position: about 0.987 at −1 (a
/// window's left edge), 0 at its right edge, towards −1 past it.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// Rows of a series before this one are not scored.
pub fn probation(rows: usize) -> usize {
    ((0.15 * rows as f64).floor()).min(0.15 * 5000.0) as usize
}

/// The score of a detector at one threshold under one profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// The threshold (1.1: nothing detected).
    pub threshold: f64,
    /// The raw sum over the corpus.
    pub raw: f64,
    /// The normalised score: 0 never fires, 100 perfect.
    pub normalized: f64,
    /// Windows with a detection.
    pub detected: usize,
    /// Windows without one.
    pub missed: usize,
    /// Detections outside every window.
    pub false_positives: usize,
}

/// One scorable row: its anomaly score, what a detection there is worth,
/// and the window it is in (an index over the corpus).
struct Point {
    score: f64,
    weight: f64,
    window: Option<usize>,
}

/// The weighed rows of every series (past probation) and the number of
/// windows in the corpus.
fn points(corpus: &Corpus, scores: &[Vec<f64>], profile: Profile) -> (Vec<Point>, usize) {
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::new();
    let mut base = 0;
    for (series, scores) in corpus.series.iter().zip(scores) {
        weigh(series, scores, profile, max_tp, base, &mut out);
        base += series.windows.len();
    }
    (out, base)
}

fn weigh(
    series: &Series,
    scores: &[f64],
    profile: Profile,
    max_tp: f64,
    base: usize,
    out: &mut Vec<Point>,
) {
    let rows = scores.len().min(series.values.len());
    let start = probation(rows);
    let mut next = 0;
    let mut current: Option<(usize, usize, usize)> = None;
    let mut previous: Option<(usize, usize)> = None;
    for (i, &score) in scores.iter().enumerate().take(rows) {
        if current.is_none() && next < series.windows.len() && series.windows[next].0 == i {
            let (a, b) = series.windows[next];
            current = Some((a, b, next));
            next += 1;
        }
        let (weight, window) = match current {
            Some((a, b, k)) => {
                let width = (b - a + 1) as f64;
                let position = -((b + 1 - i) as f64) / width;
                (
                    scaled_sigmoid(position) * profile.tp / max_tp,
                    Some(base + k),
                )
            }
            None => {
                let unweighted = match previous {
                    None => -1.0,
                    Some((right, width)) => {
                        scaled_sigmoid((i - right) as f64 / (width.max(2) - 1) as f64)
                    }
                };
                (unweighted * profile.fp, None)
            }
        };
        if i >= start {
            out.push(Point {
                score,
                weight,
                window,
            });
        }
        if let Some((a, b, _)) = current {
            if i == b {
                previous = Some((b, b - a + 1));
                current = None;
            }
        }
    }
}

/// Running totals while the threshold sweeps down.
struct Sweep {
    best: Vec<f64>,
    windows_sum: f64,
    fp_sum: f64,
    fp_count: usize,
    profile: Profile,
}

impl Sweep {
    fn new(windows: usize, profile: Profile) -> Sweep {
        Sweep {
            best: vec![-profile.fn_; windows],
            windows_sum: -profile.fn_ * windows as f64,
            fp_sum: 0.0,
            fp_count: 0,
            profile,
        }
    }

    fn add(&mut self, p: &Point) {
        match p.window {
            Some(w) => {
                if p.weight > self.best[w] {
                    self.windows_sum += p.weight - self.best[w];
                    self.best[w] = p.weight;
                }
            }
            None => {
                self.fp_sum += p.weight;
                self.fp_count += 1;
            }
        }
    }

    fn score(&self, threshold: f64) -> Score {
        let n = self.best.len() as f64;
        let raw = self.windows_sum + self.fp_sum;
        let null = -self.profile.fn_ * n;
        let perfect = self.profile.tp * n;
        let missed = self
            .best
            .iter()
            .filter(|&&b| b == -self.profile.fn_)
            .count();
        Score {
            threshold,
            raw,
            normalized: if perfect > null {
                100.0 * (raw - null) / (perfect - null)
            } else {
                0.0
            },
            detected: self.best.len() - missed,
            missed,
            false_positives: self.fp_count,
        }
    }
}

/// The score at `threshold` (detections: scores ≥ it).
pub fn score_at(corpus: &Corpus, scores: &[Vec<f64>], profile: Profile, threshold: f64) -> Score {
    let (points, windows) = points(corpus, scores, profile);
    let mut sweep = Sweep::new(windows, profile);
    for p in points.iter().filter(|p| p.score >= threshold) {
        sweep.add(p);
    }
    sweep.score(threshold)
}

/// The threshold with the best raw score over the corpus, and that score.
pub fn tune(corpus: &Corpus, scores: &[Vec<f64>], profile: Profile) -> Score {
    let (mut points, windows) = points(corpus, scores, profile);
    points.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut sweep = Sweep::new(windows, profile);
    let mut best = sweep.score(1.1);
    let mut i = 0;
    while i < points.len() {
        let threshold = points[i].score;
        while i < points.len() && points[i].score == threshold {
            sweep.add(&points[i]);
            i += 1;
        }
        let s = sweep.score(threshold);
        if s.raw > best.raw {
            best = s;
        }
    }
    best
}

/// A detector's scores under the three profiles, tuned and at a fixed
/// threshold chosen in advance.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per profile: the tuned score and the fixed-threshold score.
    pub profiles: Vec<(Profile, Score, Score)>,
}

impl Report {
    /// Scores `scores` (one vector per series of `corpus`).
    pub fn new(corpus: &Corpus, scores: &[Vec<f64>], fixed: f64) -> Report {
        Report {
            profiles: Profile::ALL
                .iter()
                .map(|&p| {
                    (
                        p,
                        tune(corpus, scores, p),
                        score_at(corpus, scores, p, fixed),
                    )
                })
                .collect(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cell = |s: &Score| {
            format!(
                "{:6.1} at {:.4} ({}/{} windows, {} FP)",
                s.normalized,
                s.threshold,
                s.detected,
                s.detected + s.missed,
                s.false_positives
            )
        };
        writeln!(
            f,
            "  {:<14} {:<40} fixed threshold",
            "profile", "tuned threshold"
        )?;
        for (p, tuned, fixed) in &self.profiles {
            writeln!(f, "  {:<14} {:<40} {}", p.name, cell(tuned), cell(fixed))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::corpus::Series;

    /// A series of `rows` rows with windows at the given inclusive rows.
    fn series(rows: usize, windows: &[(usize, usize)]) -> Series {
        Series {
            name: "test/one.csv".into(),
            timestamps: (0..rows).map(|i| format!("t{i}")).collect(),
            values: vec![0.0; rows],
            windows: windows.to_vec(),
        }
    }

    fn fire_at(rows: usize, at: &[usize]) -> Vec<f64> {
        (0..rows)
            .map(|i| if at.contains(&i) { 1.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn never_firing_scores_zero_and_firing_at_every_window_start_scores_100() {
        let corpus = Corpus {
            series: vec![
                series(100, &[(40, 49)]),
                series(200, &[(50, 59), (120, 139)]),
            ],
        };
        let never = vec![vec![0.0; 100], vec![0.0; 200]];
        let perfect = vec![fire_at(100, &[40]), fire_at(200, &[50, 120])];
        for p in Profile::ALL {
            assert_eq!(
                score_at(&corpus, &never, p, 0.5).normalized,
                0.0,
                "{}",
                p.name
            );
            let tuned = tune(&corpus, &never, p);
            assert_eq!((tuned.normalized, tuned.threshold), (0.0, 1.1));
            let best = score_at(&corpus, &perfect, p, 0.5);
            assert!(
                (best.normalized - 100.0).abs() < 1e-9,
                "{}: {best:?}",
                p.name
            );
            assert_eq!(
                (best.detected, best.missed, best.false_positives),
                (3, 0, 0)
            );
        }
    }

    #[test]
    fn a_hand_computed_case() {
        // 100 rows: probation is floor(0.15 · 100) = 15 rows; one window,
        // rows 40..=49 (width 10). Detections at rows 10 (probation: not
        // scored), 20, 45, 47 and 60.
        //
        // Standard profile (A_TP 1, A_FN 1, A_FP 0.11), σ(y) = 2/(1+e^(5y)) − 1:
        // - row 45: y = −(49 − 45 + 1)/10 = −0.5, σ = 0.848284, weighed by
        //   A_TP / σ(−1) = 1 / 0.986614: +0.859793;
        // - row 47 is later in the same window: adds nothing;
        // - row 20: no window before it, −1 · A_FP = −0.11;
        // - row 60: y = (60 − 49)/(10 − 1) = 1.222222, σ = −0.995574,
        //   · A_FP = −0.109513.
        // Raw: 0.859793 − 0.11 − 0.109513 = 0.640280. Never firing: −1;
        // perfect: +1. Normalised: 100 · (0.640280 + 1)/(1 + 1) = 82.0140.
        let corpus = Corpus {
            series: vec![series(100, &[(40, 49)])],
        };
        let scores = vec![fire_at(100, &[10, 20, 45, 47, 60])];
        let s = score_at(&corpus, &scores, Profile::STANDARD, 0.5);
        assert!((s.raw - 0.640_280).abs() < 1e-5, "{s:?}");
        assert!((s.normalized - 82.014_0).abs() < 1e-3, "{s:?}");
        assert_eq!((s.detected, s.missed, s.false_positives), (1, 0, 2));
        // reward_low_FP doubles both false-positive costs:
        // 0.859793 − 0.22 − 0.219026 = 0.420767 → 71.0384.
        let s = score_at(&corpus, &scores, Profile::REWARD_LOW_FP, 0.5);
        assert!((s.normalized - 71.038_4).abs() < 1e-3, "{s:?}");
    }

    #[test]
    fn only_the_earliest_detection_in_a_window_counts_and_far_false_positives_cost_more() {
        let corpus = Corpus {
            series: vec![series(100, &[(40, 49)])],
        };
        let at = |rows: &[usize]| score_at(&corpus, &[fire_at(100, rows)], Profile::STANDARD, 0.5);
        assert_eq!(at(&[42]).raw, at(&[42, 44, 48]).raw);
        assert!(at(&[41]).raw > at(&[45]).raw, "earlier is better");
        // Right after the window a false positive costs little; far after
        // it, nearly the full A_FP.
        let near = at(&[50]).raw - at(&[]).raw;
        let far = at(&[90]).raw - at(&[]).raw;
        assert!(
            near > far && far < -0.10 && near > -0.11,
            "near {near} far {far}"
        );
        // The tuned threshold never does worse than any fixed one.
        let scores = vec![(0..100).map(|i| (i % 7) as f64 / 7.0).collect::<Vec<f64>>()];
        let tuned = tune(&corpus, &scores, Profile::STANDARD);
        for t in [0.0, 0.2, 0.5, 0.9] {
            assert!(tuned.raw >= score_at(&corpus, &scores, Profile::STANDARD, t).raw);
        }
    }
}
