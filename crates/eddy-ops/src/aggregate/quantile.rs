//! Quantiles by DDSketch (Masson, Rim and Lee): values are counted in
//! logarithmic bins `(γ^(i−1), γ^i]` with `γ = (1 + α)/(1 − α)`, and a bin
//! answers with the one value within relative error α of everything in it.
//!
//! Positive and negative values have stores of their own (by magnitude) and
//! zeros a counter. Stores are sparse, sorted vectors of small pages of bins, so
//! memory follows the occupied bins (at most about 89,000 per sign over the
//! whole double range) and never the spread of the values; nothing is ever
//! collapsed, so every quantile keeps the bound whatever the range.
//!
//! Subnormal magnitudes (below 2^−1022) are spaced too sparsely for a
//! representative within 1 % of a whole bin to exist as a double, so they use
//! bins ten times finer, counted in units of the smallest subnormal: a
//! representative rounded to that grid is then still within
//! `α/10 + 0.5/k ≤ α` of a value of `k` units (bins below 500 units hold a
//! single value, answered exactly).

use std::fmt;

/// Relative accuracy of `quantile` and `median`: the result is within 1%
/// relative error of a value whose rank is q·(n − 1) in the sorted input.
pub const QUANTILE_RELATIVE_ACCURACY: f64 = 0.01;

/// Relative accuracy of the bins for subnormal magnitudes ([`SUBNORMAL`]
/// holds its mapping; a test checks the two agree).
#[cfg_attr(not(test), allow(dead_code))]
const SUBNORMAL_ACCURACY: f64 = QUANTILE_RELATIVE_ACCURACY / 10.0;

/// Bin indices of subnormal magnitudes start here: they span about 18,022
/// indices from it, all below [`SUBNORMAL_TOP`].
const SUBNORMAL_BASE: i32 = -60_000;

/// Above every subnormal bin and below every normal one (the lowest normal
/// bin, that of 2^−1022, is about −35,418).
const SUBNORMAL_TOP: i32 = -40_000;

/// The smallest subnormal, 2^−1074: the unit of subnormal bins.
const SUBNORMAL_UNIT: f64 = f64::from_bits(1);

/// Parameters of a logarithmic mapping.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mapping {
    /// `ln γ`.
    ln_gamma: f64,
    /// `1 / ln γ`.
    inv_ln_gamma: f64,
    /// `ln(2 / (1 + γ))`: the representative of bin i is `γ^i · 2/(1 + γ)`.
    ln_rep_factor: f64,
}

impl Mapping {
    #[cfg(test)]
    fn new(alpha: f64) -> Mapping {
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Mapping {
            ln_gamma: gamma.ln(),
            inv_ln_gamma: 1.0 / gamma.ln(),
            ln_rep_factor: (2.0 / (1.0 + gamma)).ln(),
        }
    }

    /// The bin `i` with `γ^(i−1) < v ≤ γ^i`, for a positive finite `v`.
    #[inline]
    fn index(self, v: f64) -> i32 {
        // |ln v| ≤ 745 and ln γ ≥ 0.002, so the quotient fits an i32.
        (v.ln() * self.inv_ln_gamma).ceil() as i32
    }

    /// The value reported for bin `i` (may be infinite for the top bins;
    /// the caller clamps).
    #[inline]
    fn value(self, i: i32) -> f64 {
        (f64::from(i) * self.ln_gamma + self.ln_rep_factor).exp()
    }
}

/// The mapping of [`QUANTILE_RELATIVE_ACCURACY`], as constants because
/// `ln` is not a `const fn` (a test checks them against `Mapping::new`).
const NORMAL: Mapping = Mapping {
    ln_gamma: 0.020_000_666_706_669_435,
    inv_ln_gamma: 49.998_333_288_886_78,
    ln_rep_factor: -0.010_050_335_853_501_338,
};

/// The mapping of [`SUBNORMAL_ACCURACY`].
const SUBNORMAL: Mapping = Mapping {
    ln_gamma: 0.002_000_000_666_667_021_5,
    inv_ln_gamma: 499.999_833_333_300_16,
    ln_rep_factor: -0.001_000_500_333_583_645_6,
};

/// The bin of a positive finite magnitude.
#[inline]
fn bin_of(m: f64) -> i32 {
    if m >= f64::MIN_POSITIVE {
        NORMAL.index(m)
    } else {
        // Exact: a subnormal is a whole number of units below 2^52.
        SUBNORMAL_BASE + SUBNORMAL.index(m / SUBNORMAL_UNIT)
    }
}

/// The magnitude reported for bin `i`: finite and positive.
fn magnitude_of(i: i32) -> f64 {
    if i > SUBNORMAL_TOP {
        NORMAL.value(i).min(f64::MAX)
    } else {
        let units = SUBNORMAL
            .value(i - SUBNORMAL_BASE)
            .round()
            .clamp(1.0, 4_503_599_627_370_495.0);
        units * SUBNORMAL_UNIT
    }
}

/// Bins per page of a store.
const PAGE: usize = 16;

/// A sparse store: pages of [`PAGE`] consecutive bins, sorted by page,
/// holding only pages with an occupied bin. A page is small, so memory
/// stays proportional to the occupied bins, and finding a value's page
/// searches far fewer entries than single bins would.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Store {
    pages: Vec<(i32, [u64; PAGE])>,
}

impl Store {
    #[inline]
    fn add(&mut self, bin: i32, n: u64) {
        let (page, slot) = (
            bin.div_euclid(PAGE as i32),
            bin.rem_euclid(PAGE as i32) as usize,
        );
        match self.pages.binary_search_by_key(&page, |p| p.0) {
            Ok(i) => self.pages[i].1[slot] += n,
            Err(i) => {
                let mut counts = [0; PAGE];
                counts[slot] = n;
                self.pages.insert(i, (page, counts));
            }
        }
    }

    /// Sums two stores bin by bin (the same bins a single pass would fill).
    fn merge(&mut self, other: &Store) {
        for (page, counts) in &other.pages {
            match self.pages.binary_search_by_key(page, |p| p.0) {
                Ok(i) => {
                    for (a, b) in self.pages[i].1.iter_mut().zip(counts) {
                        *a += b;
                    }
                }
                Err(i) => self.pages.insert(i, (*page, *counts)),
            }
        }
    }

    /// Occupied bins with their counts, by ascending bin.
    fn bins(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.pages.iter().flat_map(|(page, counts)| {
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(move |(slot, n)| (page * PAGE as i32 + slot as i32, *n))
        })
    }
}

/// A DDSketch with 1% relative accuracy over every finite double.
#[derive(Clone, Default, PartialEq)]
pub struct QuantileSketch {
    /// Negative values by magnitude.
    negative: Store,
    /// Positive values.
    positive: Store,
    zeros: u64,
    count: u64,
    /// Exact extremes: q = 0 and q = 1 are answered exactly, and no answer
    /// lies outside them.
    min: f64,
    max: f64,
}

impl fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "QuantileSketch {{ count: {}, bins: {} }}",
            self.count,
            self.bins()
        )
    }
}

impl QuantileSketch {
    /// Adds a value; NaN and infinities are ignored (they have no bin).
    #[inline]
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        if v > 0.0 {
            self.positive.add(bin_of(v), 1);
        } else if v < 0.0 {
            self.negative.add(bin_of(-v), 1);
        } else {
            self.zeros += 1;
        }
    }

    /// Adds another sketch's values; the result equals one sketch fed
    /// both inputs.
    pub fn merge(&mut self, other: &QuantileSketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.negative.merge(&other.negative);
        self.positive.merge(&other.positive);
        self.zeros += other.zeros;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The q-quantile: within 1% relative error of the value of rank
    /// ⌊q·(n − 1)⌋ (0-based) in the sorted input; `None` when empty or q is
    /// outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if q == 0.0 {
            return Some(self.min);
        }
        if q == 1.0 {
            return Some(self.max);
        }
        // q < 1, so the rank is below n − 1 and fits the counts.
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        // Ascending values: negatives by falling magnitude, zeros, positives.
        for (bin, n) in self.negative.bins().rev() {
            seen += n;
            if seen > rank {
                return Some((-magnitude_of(bin)).clamp(self.min, self.max));
            }
        }
        seen += self.zeros;
        if seen > rank {
            return Some(0.0);
        }
        for (bin, n) in self.positive.bins() {
            seen += n;
            if seen > rank {
                return Some(magnitude_of(bin).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Number of values.
    pub fn count(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    /// Number of occupied bins (the sketch's memory is proportional to it).
    pub fn bins(&self) -> usize {
        self.negative.bins().count() + self.positive.bins().count()
    }
}

impl Store {
    /// Pages as `count, then per page: page delta, occupancy mask, counts`.
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        enc.varint(self.pages.len() as u64);
        let mut prev = 0i32;
        for (i, (page, counts)) in self.pages.iter().enumerate() {
            if i == 0 {
                enc.zigzag(i64::from(*page));
            } else {
                enc.varint(u64::from(page.abs_diff(prev)));
            }
            prev = *page;
            let mask = counts
                .iter()
                .enumerate()
                .fold(0u64, |m, (slot, n)| m | (u64::from(*n > 0) << slot));
            enc.varint(mask);
            for &n in counts.iter().filter(|n| **n > 0) {
                enc.varint(n);
            }
        }
    }

    /// Reads a store, checking that pages ascend within the bins a double
    /// can reach and hold an occupied bin; returns it with its total count.
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<(Store, u64), eddy_core::codec::DecodeError> {
        use eddy_core::codec::DecodeError;
        let bad = DecodeError::OutOfRange("quantile sketch page");
        let lo = i64::from(bin_of(SUBNORMAL_UNIT).div_euclid(PAGE as i32));
        let hi = i64::from(bin_of(f64::MAX).div_euclid(PAGE as i32));
        let n = dec.len(3)?;
        let mut store = Store {
            pages: Vec::with_capacity(n),
        };
        let mut total = 0u64;
        for _ in 0..n {
            let page = match store.pages.last() {
                None => dec.zigzag()?,
                Some(last) => match dec.varint()? {
                    0 => return Err(bad),
                    d => {
                        i64::from(last.0).saturating_add(i64::try_from(d).map_err(|_| bad.clone())?)
                    }
                },
            };
            if !(lo..=hi).contains(&page) {
                return Err(bad);
            }
            let mask = dec.varint()?;
            if mask == 0 || mask >> PAGE != 0 {
                return Err(bad);
            }
            let mut counts = [0u64; PAGE];
            for (slot, c) in counts.iter_mut().enumerate() {
                if mask >> slot & 1 == 1 {
                    *c = dec.varint()?;
                    if *c == 0 {
                        return Err(bad);
                    }
                    total = total
                        .checked_add(*c)
                        .ok_or(DecodeError::OutOfRange("count"))?;
                }
            }
            store.pages.push((page as i32, counts));
        }
        Ok((store, total))
    }
}

impl eddy_core::codec::Encode for QuantileSketch {
    /// Both stores and the zeros; the extremes only when not empty (the
    /// count is their sum).
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        self.negative.encode(enc);
        self.positive.encode(enc);
        enc.varint(self.zeros);
        if self.count > 0 {
            enc.f64(self.min);
            enc.f64(self.max);
        }
    }
}

impl eddy_core::codec::Decode for QuantileSketch {
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<Self, eddy_core::codec::DecodeError> {
        use eddy_core::codec::DecodeError;
        let (negative, n) = Store::decode(dec)?;
        let (positive, p) = Store::decode(dec)?;
        let zeros = dec.varint()?;
        let count = n
            .checked_add(p)
            .and_then(|c| c.checked_add(zeros))
            .ok_or(DecodeError::OutOfRange("count"))?;
        let (mut min, mut max) = (0.0, 0.0);
        if count > 0 {
            min = super::codec::get_finite(dec, "quantile minimum")?;
            max = super::codec::get_finite(dec, "quantile maximum")?;
            // The answers are clamped to [min, max].
            if min > max {
                return Err(DecodeError::OutOfRange("quantile extremes"));
            }
        }
        Ok(QuantileSketch {
            negative,
            positive,
            zeros,
            count,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Floating rounding of the logarithm and exponential.
    const EPSILON: f64 = 1e-9;

    /// The relative error of `got` against the rank-q value of `sorted`.
    fn error(s: &QuantileSketch, sorted: &[f64], q: f64) -> (f64, f64, f64) {
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        let exact = sorted[rank];
        let got = s.quantile(q).unwrap_or(f64::NAN);
        let err = if exact == 0.0 {
            got.abs()
        } else {
            (got - exact).abs() / exact.abs()
        };
        (got, exact, err)
    }

    /// The sketch's answer must be within 1% of the exact rank-q value.
    fn check(mut values: Vec<f64>, label: &str) {
        let mut s = QuantileSketch::default();
        values.iter().for_each(|v| s.add(*v));
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
            let (got, exact, err) = error(&s, &values, q);
            assert!(
                err <= QUANTILE_RELATIVE_ACCURACY + EPSILON,
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

    /// The median of a thousand 1s and one 1e19 is 1 (it was 16.6 when
    /// the lowest bins collapsed to fit a bounded store).
    #[test]
    fn a_wide_range_does_not_collapse_low_bins() {
        let mut s = QuantileSketch::default();
        (0..1000).for_each(|_| s.add(1.0));
        s.add(1e19);
        let median = s.quantile(0.5).unwrap_or(f64::NAN);
        assert!((median - 1.0).abs() <= 0.01, "{median}");
        assert_eq!(s.quantile(1.0), Some(1e19));
        assert_eq!(s.bins(), 2);
    }

    /// Values below 1e-9 are values, not zeros, down to the smallest
    /// subnormal; the extremes of the range are answered finitely.
    #[test]
    fn tiny_huge_and_subnormal_values_keep_the_bound() {
        let mut values = vec![1e-12, 3e-300, -2.5e-310, 1e-320, f64::MAX, -f64::MAX];
        values.extend([5e-324, 1.5e-322, 2.2e-308, f64::MIN_POSITIVE, 1e308]);
        // Whole numbers of units from 1 to 2^52: the subnormal grid.
        let mut k = 1u64;
        while k < 1 << 52 {
            values.push(k as f64 * SUBNORMAL_UNIT);
            values.push((k + k / 3 + 1) as f64 * SUBNORMAL_UNIT);
            k = k * 2 + 1;
        }
        for v in &values {
            let mut s = QuantileSketch::default();
            s.add(*v);
            s.add(*v);
            s.add(0.0);
            // Rank 1 of [0, v, v] (v > 0) or [v, v, 0]: v itself.
            let got = s.quantile(0.5).unwrap_or(f64::NAN);
            assert!(got.is_finite(), "{v}: {got}");
            assert!(
                (got - v).abs() <= (QUANTILE_RELATIVE_ACCURACY + EPSILON) * v.abs(),
                "{v:e}: got {got:e}"
            );
        }
        let top = bin_of(f64::MIN_POSITIVE);
        assert!(top > SUBNORMAL_TOP && bin_of(f64::MIN_POSITIVE - SUBNORMAL_UNIT) < SUBNORMAL_TOP);
        assert!(bin_of(SUBNORMAL_UNIT) == SUBNORMAL_BASE && bin_of(f64::MAX) > top);
        // The bin representative alone (no clamping by min/max).
        for v in values.iter().filter(|v| **v > 0.0) {
            let rep = magnitude_of(bin_of(*v));
            assert!(
                (rep - v).abs() <= (QUANTILE_RELATIVE_ACCURACY + EPSILON) * v,
                "{v:e}: bin value {rep:e}"
            );
        }
    }

    #[test]
    fn mapping_constants_match_their_accuracy() {
        let close = |a: Mapping, b: Mapping| {
            (a.ln_gamma - b.ln_gamma).abs() < 1e-15
                && (a.inv_ln_gamma - b.inv_ln_gamma).abs() < 1e-9
                && (a.ln_rep_factor - b.ln_rep_factor).abs() < 1e-15
        };
        assert!(close(NORMAL, Mapping::new(QUANTILE_RELATIVE_ACCURACY)));
        assert!(close(SUBNORMAL, Mapping::new(SUBNORMAL_ACCURACY)));
    }

    #[test]
    fn merge_equals_single_pass() {
        let mut rng = SmallRng::seed_from_u64(3);
        let values: Vec<f64> = (0..10_000)
            .map(|_| rng.random_range(0.5..100.0) * if rng.random() { 1.0 } else { -1e-200 })
            .collect();
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
        assert_eq!(a, all);
        assert_eq!(QuantileSketch::default().quantile(0.5), None);
        assert_eq!(all.quantile(1.5), None);
    }

    /// A value spanning 1e-300..1e300 in magnitude, either sign, or zero.
    fn wide() -> impl Strategy<Value = f64> {
        prop_oneof![
            1 => Just(0.0),
            8 => (-300.0f64..300.0, any::<bool>())
                .prop_map(|(e, neg)| if neg { -(10f64.powf(e)) } else { 10f64.powf(e) }),
            2 => (-3.0f64..3.0).prop_map(|e| 10f64.powf(e)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn every_quantile_is_within_the_bound(mut values in prop::collection::vec(wide(), 1..400)) {
            let mut s = QuantileSketch::default();
            values.iter().for_each(|v| s.add(*v));
            values.sort_by(f64::total_cmp);
            for i in 0..=100 {
                let q = f64::from(i) / 100.0;
                let (got, exact, err) = error(&s, &values, q);
                prop_assert!(
                    err <= QUANTILE_RELATIVE_ACCURACY + EPSILON,
                    "q={} got {:e} exact {:e} err {}", q, got, exact, err
                );
            }
            prop_assert!(s.bins() <= values.len());
        }

        #[test]
        fn merging_any_split_equals_one_pass(
            values in prop::collection::vec(wide(), 0..300),
            cuts in prop::collection::vec(any::<bool>(), 0..300),
        ) {
            let (mut all, mut a, mut b) = (
                QuantileSketch::default(),
                QuantileSketch::default(),
                QuantileSketch::default(),
            );
            for (i, v) in values.iter().enumerate() {
                all.add(*v);
                if cuts.get(i).copied().unwrap_or(false) { a.add(*v) } else { b.add(*v) }
            }
            a.merge(&b);
            prop_assert_eq!(a, all);
        }
    }

    /// `cargo test -p eddy-ops --release -- --ignored --nocapture add_speed`
    #[test]
    #[ignore = "timing, run by hand"]
    fn add_speed() {
        let mut rng = SmallRng::seed_from_u64(1);
        let values: Vec<f64> = (0..1_000_000)
            .map(|_| -(1.0 - rng.random::<f64>()).ln() * 50.0 + 0.001)
            .collect();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let mut s = QuantileSketch::default();
            let start = std::time::Instant::now();
            values.iter().for_each(|v| s.add(*v));
            let ns = start.elapsed().as_nanos() as f64 / values.len() as f64;
            best = best.min(ns);
            assert_eq!(s.count(), values.len());
        }
        println!("QuantileSketch::add: {best:.1} ns/value (best of 5, exponential values)");
    }
}
