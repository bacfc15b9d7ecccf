//! Variance and standard deviation from exact sums.
//!
//! The state is the count n and the exact sums Σx and Σx² ([`ExactSum`]s;
//! each square is added as the exact pair of its rounded product and that
//! product's error). The result evaluates `D = n·Σx² − (Σx)²` exactly from
//! the canonical expansions of those sums, rounds D once, then divides:
//! population variance `D / n²`, sample variance `D / (n·(n − 1))`. Large
//! means do not cancel the variance away (values `1e9 + ε` keep their
//! spread), and the result depends only on the multiset of values, never
//! on their order or on how partial states were merged.
//!
//! A square is exact only if it fits the double range, so squares are kept
//! in three sums by the magnitude of x: `|x| ≥ 2^400` scaled by 2^-1200,
//! `|x| < 2^-400` scaled by 2^1200, the rest as is. Every value of the
//! double range then squares exactly, and D is computed at a scale where
//! neither the sums nor their products overflow; only parts of D below
//! about 2^-1000 of its leading term can round, the same way whatever the
//! history of the sums.

use super::exact::{exponent, pow2, scale, two_product, ExactSum};

/// Values at or above 2^400 in magnitude square into the `big` sum.
const BIG: f64 = pow2(400);
/// Values below 2^-400 in magnitude square into the `small` sum.
const SMALL: f64 = pow2(-400);
/// The scaling of a value before it squares into `big` (2^-600) or
/// `small` (2^600); squares are scaled by twice it.
const SHIFT: i32 = 600;

/// Σx is kept scaled by 2^-64, so values up to the largest double can add
/// up (a mean of 1e308 is finite even where the sum is not); only values
/// below about 2^-1010 lose bits to it, each the same way every time.
const SUM_SHIFT: i32 = 64;

/// Values with magnitude below this (2^450) keep every sum and the result
/// finite without a check, unless the state already holds larger ones.
const SAFE: f64 = pow2(450);

/// Count, exact sum and exact sum of squares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moments {
    n: u64,
    /// Σx · 2^-64.
    sum: ExactSum,
    /// Σx² over `SMALL ≤ |x| < BIG`: the rounded squares here, their
    /// rounding errors in `square_errors`. Apart, each sum's terms line up
    /// within the fixed-point part of [`ExactSum`] for values of similar
    /// magnitude (together they would span over 106 bits and fall back to
    /// its slower list).
    squares: ExactSum,
    square_errors: ExactSum,
    /// Σx² of the values outside that range, once one is seen.
    wide: Option<Box<WideSquares>>,
}

/// Sums of squares of very large and very small values, at a scale where
/// each square is a double.
#[derive(Clone, Debug, Default, PartialEq)]
struct WideSquares {
    /// Σ(x·2^-600)² over `|x| ≥ BIG`: Σx² · 2^-1200.
    big: ExactSum,
    /// Σ(x·2^600)² over `0 < |x| < SMALL`: Σx² · 2^1200.
    small: ExactSum,
}

impl Moments {
    /// Adds one (finite) value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum.add(x * pow2(-SUM_SHIFT));
        let a = x.abs();
        if (SMALL..BIG).contains(&a) {
            let (square, error) = two_product(x, x);
            self.squares.add(square);
            self.square_errors.add(error);
        } else if a != 0.0 {
            let wide = self.wide.get_or_insert_with(Box::default);
            if a >= BIG {
                let y = scale(x, -SHIFT);
                wide.big.add_product(y, y);
            } else {
                let y = scale(x, SHIFT);
                wide.small.add_product(y, y);
            }
        }
    }

    /// Combines with moments of a disjoint set of values.
    pub fn merge(&mut self, o: &Moments) {
        self.n += o.n;
        self.sum.merge(&o.sum);
        self.squares.merge(&o.squares);
        self.square_errors.merge(&o.square_errors);
        if let Some(theirs) = &o.wide {
            let ours = self.wide.get_or_insert_with(Box::default);
            ours.big.merge(&theirs.big);
            ours.small.merge(&theirs.small);
        }
    }

    /// Whether adding `x` surely keeps every sum and result finite, decided
    /// without computing them.
    #[inline]
    pub fn surely_admits(&self, x: f64) -> bool {
        self.wide.is_none()
            && x.abs() < SAFE
            && self.sum.top().abs() < SAFE
            && self.squares.top() < pow2(1000)
    }

    /// Whether the sums, the mean and the variances are finite numbers.
    pub fn is_finite(&self) -> bool {
        let wide_finite = self
            .wide
            .as_ref()
            .is_none_or(|w| w.big.is_finite() && w.small.is_finite());
        self.sum.is_finite()
            && self.squares.is_finite()
            && self.square_errors.is_finite()
            && wide_finite
            && self.population_variance().is_none_or(f64::is_finite)
            && self.sample_variance().is_none_or(f64::is_finite)
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Sample variance (divides by n − 1); `None` below two values.
    pub fn sample_variance(&self) -> Option<f64> {
        (self.n >= 2).then(|| self.scaled_deviation(self.n - 1))
    }

    /// Population variance (divides by n); `None` when empty.
    pub fn population_variance(&self) -> Option<f64> {
        (self.n >= 1).then(|| self.scaled_deviation(self.n))
    }

    /// `D / (n · m)` with `D = n·Σx² − (Σx)²`, D exact before its one
    /// rounding.
    fn scaled_deviation(&self, m: u64) -> f64 {
        let n = self.n as f64;
        // Work at 2^-2k, k chosen so that Σx·2^-k and Σx²·2^-2k are at most
        // about 1: nothing overflows and nothing that matters underflows.
        let sum_head = self.sum.canonical().next().unwrap_or(0.0);
        let sq_heads = [
            (self.squares.canonical().next(), 0),
            (self.square_errors.canonical().next(), 0),
            (
                self.wide.as_ref().and_then(|w| w.big.canonical().next()),
                2 * SHIFT,
            ),
            (
                self.wide.as_ref().and_then(|w| w.small.canonical().next()),
                -2 * SHIFT,
            ),
        ];
        let mut k = if sum_head == 0.0 {
            -1100
        } else {
            exponent(sum_head) + SUM_SHIFT + 1
        };
        for (head, offset) in sq_heads {
            if let Some(h) = head.filter(|h| *h != 0.0) {
                k = k.max((exponent(h) + offset + 2) / 2);
            }
        }
        let mut d = ExactSum::default();
        let squares = [
            (Some(&self.squares), 0),
            (Some(&self.square_errors), 0),
            (self.wide.as_ref().map(|w| &w.big), 2 * SHIFT),
            (self.wide.as_ref().map(|w| &w.small), -2 * SHIFT),
        ];
        for (s, offset) in squares {
            for c in s.into_iter().flat_map(ExactSum::canonical) {
                d.add_product(scale(c, offset - 2 * k), n);
            }
        }
        let sum: Vec<f64> = self
            .sum
            .canonical()
            .map(|c| scale(c, SUM_SHIFT - k))
            .collect();
        for a in &sum {
            for b in &sum {
                d.add_product(-a, *b);
            }
        }
        // D ≥ 0 exactly (Cauchy–Schwarz); a rounded-away remainder cannot
        // make it negative by more than it is worth.
        let d = d.round().max(0.0);
        scale(d / n / m as f64, 2 * k)
    }
}

impl eddy_core::codec::Encode for Moments {
    /// `n << 1 | has_wide`, the three sums, then the wide sums if any.
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        enc.varint((self.n << 1) | u64::from(self.wide.is_some()));
        enc.put(&self.sum);
        enc.put(&self.squares);
        enc.put(&self.square_errors);
        if let Some(w) = &self.wide {
            enc.put(&w.big);
            enc.put(&w.small);
        }
    }
}

impl eddy_core::codec::Decode for Moments {
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<Self, eddy_core::codec::DecodeError> {
        let head = dec.varint()?;
        let (sum, squares, square_errors) = (dec.get()?, dec.get()?, dec.get()?);
        let wide = if head & 1 == 1 {
            Some(Box::new(WideSquares {
                big: dec.get()?,
                small: dec.get()?,
            }))
        } else {
            None
        };
        Ok(Moments {
            n: head >> 1,
            sum,
            squares,
            square_errors,
            wide,
        })
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
        assert_eq!(all.sample_variance(), Some(32.0 / 7.0));
        let (mut a, mut b) = (Moments::default(), Moments::default());
        xs[..3].iter().for_each(|x| a.add(*x));
        xs[3..].iter().for_each(|x| b.add(*x));
        a.merge(&b);
        assert_eq!(a.sample_variance(), all.sample_variance());
        let mut one = Moments::default();
        one.add(3.0);
        assert_eq!(one.sample_variance(), None);
        assert_eq!(one.population_variance(), Some(0.0));
        assert_eq!(Moments::default().population_variance(), None);
    }

    /// A large mean does not cancel the spread away, at any magnitude.
    #[test]
    fn large_means_keep_their_variance() {
        for (base, step) in [(1e9, 1e-3), (1e16, 2.0), (1e150, 1e135), (1e-300, 1e-315)] {
            let mut m = Moments::default();
            let xs = [base, base + step, base + 2.0 * step];
            xs.iter().for_each(|x| m.add(*x));
            // Deviations from the first value are exact (Sterbenz), so the
            // textbook formula on them is accurate.
            let (d1, d2) = (xs[1] - xs[0], xs[2] - xs[0]);
            let mean = (d1 + d2) / 3.0;
            let want = ((0.0 - mean).powi(2) + (d1 - mean).powi(2) + (d2 - mean).powi(2)) / 3.0;
            let got = m.population_variance().unwrap_or(f64::NAN);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "{base}: {got} vs {want}"
            );
        }
        let mut same = Moments::default();
        for _ in 0..5 {
            same.add(0.1);
        }
        assert_eq!(same.sample_variance(), Some(0.0));
        let mut huge = Moments::default();
        huge.add(1e308);
        huge.add(1e308);
        assert_eq!(huge.population_variance(), Some(0.0));
        assert!(huge.is_finite());
        huge.add(-1e308);
        assert!(!huge.is_finite(), "a variance near 4e615 is refused");
    }

    /// The variance against an exact big-integer oracle of
    /// `(n·Σx² − (Σx)²) / n²`, on cancellation-heavy data, in any order.
    #[test]
    fn matches_an_exact_oracle() {
        use super::super::exact::tests::{round_units, units};
        use num_bigint::BigInt;
        use proptest::prelude::*;
        let value = prop_oneof![
            (-1000i64..1000).prop_map(|i| 1e9 + i as f64 * 1e-3),
            (-1000i64..1000).prop_map(|i| 1e16 + i as f64 * 2.0),
            prop::sample::select(vec![1e16, -1e16, 1.0, 0.1, 3e-200, 1e130, -1e130]),
            (-1.0f64..1.0, -200i32..140).prop_map(|(m, e)| m * 10f64.powi(e)),
        ];
        proptest!(|(xs in prop::collection::vec(value, 1..30))| {
            let (mut fwd, mut rev) = (Moments::default(), Moments::default());
            xs.iter().for_each(|x| fwd.add(*x));
            xs.iter().rev().for_each(|x| rev.add(*x));
            let n = BigInt::from(xs.len());
            let u: Vec<BigInt> = xs.iter().map(|x| units(*x)).collect();
            let sum: BigInt = u.iter().sum();
            let squares: BigInt = u.iter().map(|a| a * a).sum();
            // D in units of 2^-2148; back to units of 2^-1074, rounded.
            let d: BigInt = (&n * squares - &sum * &sum) >> 1074u32;
            let want = round_units(&d) / xs.len() as f64 / xs.len() as f64;
            let got = fwd.population_variance().unwrap_or(f64::NAN);
            prop_assert_eq!(got.to_bits(), rev.population_variance().unwrap_or(f64::NAN).to_bits());
            prop_assert!((got - want).abs() <= 1e-14 * want + 1e-300, "{} vs {}", got, want);
        });
    }
}
