//! Mean and variance by Welford's algorithm, with the parallel merge of
//! Chan, Golub and LeVeque.

/// Running count, mean and sum of squared deviations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Adds one value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Combines with moments of a disjoint set of values.
    pub fn merge(&mut self, o: &Moments) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let delta = o.mean - self.mean;
        self.mean += delta * o.n as f64 / n as f64;
        self.m2 += o.m2 + delta * delta * (self.n as f64 * o.n as f64 / n as f64);
        self.n = n;
    }

    /// Whether the mean and the sum of squared deviations are finite (the
    /// variances are at most the latter).
    #[inline]
    pub fn is_finite(&self) -> bool {
        self.mean.is_finite() && self.m2.is_finite()
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Sample variance (divides by n − 1); `None` below two values.
    pub fn sample_variance(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2 / (self.n - 1) as f64).max(0.0))
    }

    /// Population variance (divides by n); `None` when empty.
    pub fn population_variance(&self) -> Option<f64> {
        (self.n >= 1).then(|| (self.m2 / self.n as f64).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_textbook_variance_and_merges() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut all = Moments::default();
        xs.iter().for_each(|x| all.add(*x));
        assert_eq!(all.population_variance(), Some(4.0));
        assert!((all.sample_variance().unwrap() - 32.0 / 7.0).abs() < 1e-12);
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..3].iter().for_each(|x| a.add(*x));
        xs[3..].iter().for_each(|x| b.add(*x));
        a.merge(&b);
        assert!((a.sample_variance().unwrap() - all.sample_variance().unwrap()).abs() < 1e-12);
        let mut one = Moments::default();
        one.add(3.0);
        assert_eq!(one.sample_variance(), None);
        assert_eq!(one.population_variance(), Some(0.0));
        assert_eq!(Moments::default().population_variance(), None);
    }
}
