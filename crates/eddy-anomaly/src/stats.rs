//! Numerical building blocks shared by the detectors: normal and Student-t
//! tail probabilities in log space (so extreme values keep their order
//! instead of rounding to a probability of 0), running moments and a
//! fixed-size window of recent values.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

/// Natural log of the two-sided tail P(|Z| ≥ |z|) of a standard normal.
///
/// Computed as `ln erfc(|z|/√2)` from a Chebyshev fit of `erfc` (relative
/// error below 1.2e-7) whose exponent is kept apart, so z = 40 gives
/// about −804 rather than `ln 0`.
pub fn ln_normal_tail(z: f64) -> f64 {
    if z.is_nan() {
        return 0.0;
    }
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    (t.ln() - x * x + poly).min(0.0)
}

/// Natural log of Γ(x) for x > 0 (Lanczos, g = 7, nine terms; about 15
/// significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Surprise (−ln p, in nats) at which [`score_of`] gives 0.5: a two-sided
/// normal tail of 1e-4, about 3.9 standard deviations.
pub const HALF_SCORE_SURPRISE: f64 = 9.210_340_371_976_184;

/// Maps a surprise `s = −ln p ≥ 0` onto an anomaly score in [0, 1).
///
/// With `u = ln(1 + s / s½)`, the score is `u / (u + ln 2)`: strictly
/// increasing, 0.5 at `s½`, and below 0.9991 for any finite surprise, so
/// two values that differ in how unlikely they are never tie at the top
/// (a saturating map would make every large deviation 1.0 and leave
/// nothing for a threshold to tell apart).
pub fn score_of(surprise: f64) -> f64 {
    if surprise.is_nan() || surprise <= 0.0 {
        return 0.0;
    }
    if surprise.is_infinite() {
        return 1.0;
    }
    let u = (surprise / HALF_SCORE_SURPRISE).ln_1p();
    u / (u + std::f64::consts::LN_2)
}

/// The surprise a score stands for: the inverse of [`score_of`].
pub fn surprise_of(score: f64) -> f64 {
    if score <= 0.0 {
        return 0.0;
    }
    if score >= 1.0 {
        return f64::INFINITY;
    }
    let u = std::f64::consts::LN_2 * score / (1.0 - score);
    HALF_SCORE_SURPRISE * u.exp_m1()
}

/// The smallest spread a detector divides by: a series that has been
/// constant has no variance, and the first different value must give a
/// large but finite deviation rather than a division by zero.
pub fn spread_floor(level: f64) -> f64 {
    1e-9 * level.abs().max(1.0)
}

/// An exponentially weighted mean and variance (West's incremental form).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ewm {
    /// The weighted mean.
    pub mean: f64,
    /// The weighted variance.
    pub var: f64,
    /// How many values were seen (saturates; used for warm-up).
    pub n: u64,
}

impl Ewm {
    /// Adds `x` with weight `alpha`, or `1/n` while that is larger: the
    /// first `1/alpha` values are averaged equally, so the early variance
    /// is the sample's rather than a fraction of it.
    pub fn push(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let alpha = alpha.max(1.0 / (self.n + 1) as f64);
            let d = x - self.mean;
            let incr = alpha * d;
            self.mean += incr;
            self.var = (1.0 - alpha) * (self.var + d * incr);
        }
        self.n = self.n.saturating_add(1);
    }

    /// The standard deviation, floored by [`spread_floor`].
    pub fn std(&self) -> f64 {
        self.var.max(0.0).sqrt().max(spread_floor(self.mean))
    }

    /// `x`'s deviation from the mean in standard deviations.
    pub fn z(&self, x: f64) -> f64 {
        (x - self.mean) / self.std()
    }
}

/// The weight of each new value for an exponential average whose weights
/// halve every `half_life` values.
pub fn alpha_for_half_life(half_life: f64) -> f64 {
    1.0 - 0.5f64.powf(1.0 / half_life.max(1e-9))
}

/// The last `capacity` values, oldest first, with their sum and sum of
/// squares kept current (recomputed exactly once per lap, so rounding
/// never accumulates).
#[derive(Clone, Debug, PartialEq)]
pub struct Recent {
    values: Vec<f64>,
    capacity: usize,
    next: usize,
    sum: f64,
    sum_sq: f64,
}

impl Recent {
    /// An empty window of `capacity` values (at least 2).
    pub fn new(capacity: usize) -> Recent {
        let capacity = capacity.max(2);
        Recent {
            values: Vec::with_capacity(capacity),
            capacity,
            next: 0,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether it holds `capacity` values.
    pub fn is_full(&self) -> bool {
        self.values.len() == self.capacity
    }

    /// Adds `x`, returning the value it pushed out once full.
    pub fn push(&mut self, x: f64) -> Option<f64> {
        let evicted = if self.values.len() < self.capacity {
            self.values.push(x);
            None
        } else {
            let old = std::mem::replace(&mut self.values[self.next], x);
            self.next = (self.next + 1) % self.capacity;
            Some(old)
        };
        if self.next == 0 && evicted.is_some() {
            self.sum = self.values.iter().sum();
            self.sum_sq = self.values.iter().map(|v| v * v).sum();
        } else {
            let old = evicted.unwrap_or(0.0);
            self.sum += x - old;
            self.sum_sq += x * x - old * old;
        }
        evicted
    }

    /// The mean of the values held.
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            0.0
        } else {
            self.sum / self.values.len() as f64
        }
    }

    /// The sample standard deviation, floored by [`spread_floor`].
    pub fn std(&self) -> f64 {
        let n = self.values.len() as f64;
        let var = if n < 2.0 {
            0.0
        } else {
            ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
        };
        var.sqrt().max(spread_floor(self.mean()))
    }

    /// The values held, in no particular order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

impl Encode for Ewm {
    fn encode(&self, enc: &mut Encoder) {
        enc.f64(self.mean);
        enc.f64(self.var);
        enc.varint(self.n);
    }
}

impl Decode for Ewm {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Ewm {
            mean: dec.f64()?,
            var: dec.f64()?,
            n: dec.varint()?,
        })
    }
}

impl Encode for Recent {
    fn encode(&self, enc: &mut Encoder) {
        enc.varint(self.capacity as u64);
        enc.varint(self.next as u64);
        self.values.encode(enc);
        // The running sums as they are, not recomputed: a restored window
        // must round exactly as the original does.
        enc.f64(self.sum);
        enc.f64(self.sum_sq);
    }
}

impl Decode for Recent {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let capacity =
            usize::try_from(dec.varint()?).map_err(|_| DecodeError::OutOfRange("capacity"))?;
        let next =
            usize::try_from(dec.varint()?).map_err(|_| DecodeError::OutOfRange("position"))?;
        let values: Vec<f64> = dec.get()?;
        if capacity < 2
            || values.len() > capacity
            || next >= capacity.max(1)
            || (next > 0 && values.len() < capacity)
        {
            return Err(DecodeError::OutOfRange("recent values"));
        }
        let sum = dec.f64()?;
        let sum_sq = dec.f64()?;
        Ok(Recent {
            values,
            capacity,
            next,
            sum,
            sum_sq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_values_and_keeps_order_far_out() {
        // P(|Z| >= 1.96) = 0.0499958, P(|Z| >= 3) = 0.0026998.
        assert!((ln_normal_tail(1.96).exp() - 0.049_995_8).abs() < 1e-6);
        assert!((ln_normal_tail(3.0).exp() - 0.002_699_8).abs() < 1e-7);
        assert!(ln_normal_tail(0.0).abs() < 1e-6);
        let far: Vec<f64> = [10.0, 40.0, 400.0, 1e6]
            .iter()
            .map(|&z| ln_normal_tail(z))
            .collect();
        assert!(
            far.windows(2).all(|w| w[1] < w[0] && w[1].is_finite()),
            "{far:?}"
        );
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        for (x, f) in [(1.0, 1.0f64), (5.0, 24.0), (10.0, 362_880.0)] {
            assert!((ln_gamma(x) - f.ln()).abs() < 1e-9, "{x}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-9);
    }

    #[test]
    fn score_is_strictly_increasing_and_below_one() {
        let s: Vec<f64> = [0.0, 1.0, 9.21, 100.0, 1e6, 1e12, 1e300]
            .iter()
            .map(|&x| score_of(x))
            .collect();
        assert_eq!(s[0], 0.0);
        assert!((s[2] - 0.5).abs() < 1e-3);
        assert!(s.windows(2).all(|w| w[1] > w[0] && w[1] < 1.0), "{s:?}");
        assert!((surprise_of(score_of(42.0)) - 42.0).abs() < 1e-9);
    }

    #[test]
    fn recent_keeps_the_moments_of_its_window() {
        let mut r = Recent::new(4);
        for x in 0..1000 {
            r.push(f64::from(x));
        }
        assert_eq!(r.len(), 4);
        assert!((r.mean() - 997.5).abs() < 1e-9);
        let var: f64 = [996.0f64, 997.0, 998.0, 999.0]
            .iter()
            .map(|v| (v - 997.5).powi(2))
            .sum::<f64>()
            / 3.0;
        assert!((r.std() - var.sqrt()).abs() < 1e-9);
        let back: Recent =
            eddy_core::codec::decode_from(&eddy_core::codec::encode_to_vec(&r)).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn ewm_tracks_a_level() {
        let mut e = Ewm::default();
        for _ in 0..200 {
            e.push(5.0, 0.1);
        }
        assert!((e.mean - 5.0).abs() < 1e-12);
        assert!(e.z(5.0).abs() < 1e-6);
        assert!(e.z(6.0) > 1e6);
    }
}
