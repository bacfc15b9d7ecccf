//! Exponentially time-decayed averages.

use eddy_core::Timestamp;

/// Largest weight exponent kept before renormalising: weights stay below
/// 2^60, far from f64 overflow even for large values.
const MAX_EXPONENT: f64 = 60.0;

/// `Σ v·2^((t−tref)/h) / Σ 2^((t−tref)/h)` over values `v` at event times
/// `t`, for half-life `h`: the average as seen from the latest event time,
/// where a value one half-life older weighs half as much. The reference
/// time `tref` only scales the weights alike, so the result does not depend
/// on it; it is moved forward (rescaling the weight sum) before weights
/// could overflow. The state is the weighted mean itself and the weight
/// sum: each update is a convex combination of the old mean and the new
/// value, so the mean stays within the values' range and cannot overflow
/// the way a weighted sum of large values would. The result depends only
/// on the set of `(t, v)` pairs (up to rounding), not their order, and two
/// accumulators merge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ewma {
    half_life: f64,
    reference: Option<Timestamp>,
    mean: f64,
    weight: f64,
}

impl Ewma {
    /// An empty average with half-life `half_life_ms` (positive).
    pub fn new(half_life_ms: i64) -> Ewma {
        Ewma {
            half_life: half_life_ms.max(1) as f64,
            reference: None,
            mean: 0.0,
            weight: 0.0,
        }
    }

    fn exponent(&self, t: Timestamp, reference: Timestamp) -> f64 {
        (t as f64 - reference as f64) / self.half_life
    }

    /// Moves the reference time to `to`, rescaling the weight sum.
    fn rebase(&mut self, to: Timestamp) {
        match self.reference {
            Some(r) if r != to => {
                self.weight *= self.exponent(r, to).exp2();
                self.reference = Some(to);
            }
            Some(_) => {}
            None => self.reference = Some(to),
        }
    }

    /// Folds `mean` with weight `w` into the average.
    #[inline]
    fn combine(&mut self, mean: f64, w: f64) {
        let total = self.weight + w;
        if total > 0.0 {
            self.mean = self.mean * (self.weight / total) + mean * (w / total);
            self.weight = total;
        }
    }

    /// Adds value `v` observed at event time `t`.
    #[inline]
    pub fn add(&mut self, v: f64, t: Timestamp) {
        let reference = *self.reference.get_or_insert(t);
        let mut e = self.exponent(t, reference);
        if e > MAX_EXPONENT {
            self.rebase(t);
            e = 0.0;
        }
        self.combine(v, e.exp2());
    }

    /// Adds another average's values (same half-life).
    pub fn merge(&mut self, other: &Ewma) {
        let Some(theirs) = other.reference else {
            return;
        };
        let ours = *self.reference.get_or_insert(theirs);
        // Rebase onto the later reference so no weight grows.
        let target = ours.max(theirs);
        self.rebase(target);
        let scale = self.exponent(theirs, target).exp2();
        self.combine(other.mean, other.weight * scale);
    }

    /// The decayed average, `None` when empty.
    pub fn value(&self) -> Option<f64> {
        (self.weight > 0.0).then_some(self.mean)
    }

    /// Whether the average and its weight are finite numbers.
    pub fn is_finite(&self) -> bool {
        self.mean.is_finite() && self.weight.is_finite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(points: &[(f64, i64)], h: f64) -> f64 {
        let tmax = points.iter().map(|p| p.1).max().unwrap_or(0) as f64;
        let (mut n, mut d) = (0.0, 0.0);
        for (v, t) in points {
            let w = ((*t as f64 - tmax) / h).exp2();
            n += v * w;
            d += w;
        }
        n / d
    }

    #[test]
    fn halves_weight_per_half_life_and_is_order_independent() {
        let mut e = Ewma::new(1_000);
        e.add(10.0, 0);
        e.add(40.0, 1_000);
        // Weights 1/2 and 1: (5 + 40) / 1.5 = 30.
        assert!((e.value().unwrap() - 30.0).abs() < 1e-9);
        let points: Vec<(f64, i64)> = (0..500)
            .map(|i| ((i % 17) as f64, (i * 7919) % 100_000))
            .collect();
        let (mut fwd, mut rev) = (Ewma::new(5_000), Ewma::new(5_000));
        points.iter().for_each(|(v, t)| fwd.add(*v, *t));
        points.iter().rev().for_each(|(v, t)| rev.add(*v, *t));
        let want = brute(&points, 5_000.0);
        assert!((fwd.value().unwrap() - want).abs() < 1e-9);
        assert!((rev.value().unwrap() - want).abs() < 1e-9);
        assert_eq!(Ewma::new(1).value(), None);
    }

    #[test]
    fn never_overflows_over_long_spans_and_merges() {
        let mut e = Ewma::new(1);
        for t in 0..100_000 {
            e.add(1.0, t * 10);
        }
        assert_eq!(e.value(), Some(1.0));
        let points: Vec<(f64, i64)> = (0..300).map(|i| (i as f64, i * 1_000)).collect();
        let (mut all, mut a, mut b) = (Ewma::new(20_000), Ewma::new(20_000), Ewma::new(20_000));
        for (i, (v, t)) in points.iter().enumerate() {
            all.add(*v, *t);
            if i % 2 == 0 {
                a.add(*v, *t)
            } else {
                b.add(*v, *t)
            }
        }
        a.merge(&b);
        let (x, y) = (a.value().unwrap(), all.value().unwrap());
        assert!((x - y).abs() < 1e-9 * y.abs(), "{x} vs {y}");
    }

    /// Values near the top of the double range average finitely (a
    /// weighted sum of them would overflow).
    #[test]
    fn huge_values_stay_finite() {
        let mut e = Ewma::new(1_000);
        for t in 0..100 {
            e.add(1.7e308, t * 500);
        }
        let v = e.value().unwrap_or(f64::NAN);
        assert!(
            e.is_finite() && (v - 1.7e308).abs() <= 1e-9 * 1.7e308,
            "{v}"
        );
        let mut m = Ewma::new(1_000);
        m.add(-1.7e308, 0);
        m.add(1.7e308, 1_000);
        let v = m.value().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{v}");
    }
}
