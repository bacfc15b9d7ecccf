//! Quantiles by DDSketch.

use std::fmt;

use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of `quantile` and `median`: the result is within 1%
/// relative error of a value whose rank is q·(n − 1) in the sorted input.
pub const QUANTILE_RELATIVE_ACCURACY: f64 = 0.01;

/// Bins per sign. With 1% accuracy, 2048 bins cover about 17 orders of
/// magnitude before the lowest bins collapse (which only affects the
/// accuracy of the very lowest quantiles).
const MAX_BINS: u32 = 2048;

/// Smallest magnitude told apart from zero.
const MIN_VALUE: f64 = 1.0e-9;

/// A DDSketch with 1% relative accuracy.
#[derive(Clone)]
pub struct QuantileSketch {
    sketch: DDSketch,
}

impl Default for QuantileSketch {
    fn default() -> Self {
        QuantileSketch {
            sketch: DDSketch::new(Config::new(QUANTILE_RELATIVE_ACCURACY, MAX_BINS, MIN_VALUE)),
        }
    }
}

impl fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuantileSketch {{ count: {} }}", self.sketch.count())
    }
}

impl QuantileSketch {
    /// Adds a value; NaN and infinities are ignored (they have no bin).
    #[inline]
    pub fn add(&mut self, v: f64) {
        if v.is_finite() {
            self.sketch.add(v);
        }
    }

    /// Adds another sketch's values.
    pub fn merge(&mut self, other: &QuantileSketch) {
        // Both sketches are built from the same constant configuration, the
        // only case in which DDSketch refuses to merge.
        let _ = self.sketch.merge(&other.sketch);
    }

    /// The q-quantile, `None` when empty or q is outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q).ok().flatten()
    }

    /// Number of values.
    pub fn count(&self) -> usize {
        self.sketch.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// The sketch's answer must be within 1% of the exact rank-q value.
    fn check(mut values: Vec<f64>, label: &str) {
        let mut s = QuantileSketch::default();
        values.iter().for_each(|v| s.add(*v));
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
            let rank = (q * (values.len() - 1) as f64) as usize;
            let exact = values[rank];
            let got = s.quantile(q).unwrap();
            let err = (got - exact).abs() / exact.abs().max(MIN_VALUE);
            assert!(
                err <= QUANTILE_RELATIVE_ACCURACY + 1e-9,
                "{label} q={q}: got {got}, exact {exact}, error {err}"
            );
        }
    }

    #[test]
    fn within_one_percent_on_several_distributions() {
        let mut rng = SmallRng::seed_from_u64(7);
        let n = 100_000;
        let uniform = (0..n).map(|_| rng.random_range(1.0..1000.0)).collect();
        check(uniform, "uniform");
        let exp = (0..n)
            .map(|_| -(1.0 - rng.random::<f64>()).ln() * 50.0)
            .collect();
        check(exp, "exponential");
        let pareto = (0..n)
            .map(|_| 1.0 / (1.0 - rng.random::<f64>()).powf(1.0 / 1.5))
            .collect();
        check(pareto, "pareto");
        let signed = (0..n).map(|_| rng.random_range(-500.0..500.0)).collect();
        check(signed, "signed");
    }

    #[test]
    fn merge_equals_single_pass() {
        let mut rng = SmallRng::seed_from_u64(3);
        let values: Vec<f64> = (0..10_000).map(|_| rng.random_range(0.5..100.0)).collect();
        let (mut all, mut a, mut b) = (
            QuantileSketch::default(),
            QuantileSketch::default(),
            QuantileSketch::default(),
        );
        for (i, v) in values.iter().enumerate() {
            all.add(*v);
            if i % 3 == 0 {
                a.add(*v)
            } else {
                b.add(*v)
            }
        }
        a.merge(&b);
        for q in [0.1, 0.5, 0.99] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
        assert_eq!(QuantileSketch::default().quantile(0.5), None);
    }
}
