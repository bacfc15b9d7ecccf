//! Exponentially time-decayed averages.
//!
//! `ewma(x, h)` is `Σ v·2^(t/h) / Σ 2^(t/h)` over values `v` at event times
//! `t`: the average as seen from the latest event time, where a value one
//! half-life older weighs half as much. A weight is split into a power of
//! two and a fraction, `2^(t/h) = 2^q · 2^(r/h)` with `q = ⌊t/h⌋` and
//! `r = t − q·h` computed on integers, so each value's weight is the same
//! double whenever it is seen. The numerator and the denominator are exact
//! sums ([`ExactSum`]) of those terms, one pair per block of 64
//! half-lives; the result is the quotient of the two correctly rounded
//! totals. It depends only on the multiset of `(t, v)`, never on their
//! order or on how partial averages were merged.
//!
//! Blocks more than [`KEPT_BLOCKS`] blocks (2,240 half-lives) older than
//! the newest are dropped: a value there weighs less than 2^-2240 of the
//! newest, beyond what any double ratio of values could bring back.

use eddy_core::Timestamp;

use super::exact::{pow2, ExactSum};

/// Half-lives per block of weights.
const BLOCK: i64 = 64;

/// Blocks kept below the newest one.
pub const KEPT_BLOCKS: i64 = 35;

/// Terms are scaled by `2^(offset − 128)` within their block (offset
/// `0..64`): weights stay in `[2^-128, 2^-63)` and products of values up to
/// the largest double stay below 2^960, so 2^63 of them add up finitely.
const TERM_SHIFT: i32 = 128;

/// Values with magnitude below this (2^1000) keep the average finite
/// without a check, unless the state already holds larger ones.
const SAFE: f64 = pow2(1000);

/// The exact weighted sums of one block of 64 half-lives.
#[derive(Clone, Debug, PartialEq)]
struct Block {
    index: i64,
    /// Σ v · w, scaled as the weights.
    weighted: ExactSum,
    /// Σ w, each `w = 2^(offset − 128 + r/h)`.
    weights: ExactSum,
}

/// An exponentially time-decayed average (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Ewma {
    half_life: i64,
    /// Blocks by index, ascending; at most `KEPT_BLOCKS + 1`.
    blocks: Vec<Block>,
    /// Some value at or above `SAFE` in magnitude was added: updates need
    /// the full finiteness check. Decides only whether to check.
    huge: bool,
}

impl Ewma {
    /// An empty average with half-life `half_life_ms` (positive).
    pub fn new(half_life_ms: i64) -> Ewma {
        Ewma {
            half_life: half_life_ms.max(1),
            blocks: Vec::new(),
            huge: false,
        }
    }

    /// The half-life in milliseconds.
    pub fn half_life(&self) -> i64 {
        self.half_life
    }

    /// Adds value `v` observed at event time `t`.
    #[inline]
    pub fn add(&mut self, v: f64, t: Timestamp) {
        let q = t.div_euclid(self.half_life);
        let r = t.rem_euclid(self.half_life);
        let fraction = (r as f64 / self.half_life as f64).exp2();
        let index = q.div_euclid(BLOCK);
        let offset = q.rem_euclid(BLOCK) as i32 - TERM_SHIFT;
        let Some(block) = self.block(index) else {
            return;
        };
        block.weighted.add_product(v * pow2(offset), fraction);
        block.weights.add(fraction * pow2(offset));
        self.huge |= v.abs() >= SAFE;
    }

    /// The block `index`, inserted if new (dropping blocks it makes too
    /// old); `None` when it is itself too old to count.
    fn block(&mut self, index: i64) -> Option<&mut Block> {
        let newest = self.blocks.last().map_or(index, |b| b.index);
        if index < newest.saturating_sub(KEPT_BLOCKS) {
            return None;
        }
        let at = match self.blocks.binary_search_by_key(&index, |b| b.index) {
            Ok(at) => at,
            Err(at) => {
                self.blocks.insert(
                    at,
                    Block {
                        index,
                        weighted: ExactSum::default(),
                        weights: ExactSum::default(),
                    },
                );
                let floor = index.saturating_sub(KEPT_BLOCKS);
                let old = self.blocks.partition_point(|b| b.index < floor);
                self.blocks.drain(..old);
                at - old
            }
        };
        self.blocks.get_mut(at)
    }

    /// Adds another average's values (same half-life).
    pub fn merge(&mut self, other: &Ewma) {
        for theirs in &other.blocks {
            if let Some(ours) = self.block(theirs.index) {
                ours.weighted.merge(&theirs.weighted);
                ours.weights.merge(&theirs.weights);
            }
        }
        self.huge |= other.huge;
    }

    /// Whether adding `v` surely keeps the average finite, decided without
    /// computing it.
    #[inline]
    pub fn surely_admits(&self, v: f64) -> bool {
        !self.huge && v.abs() < SAFE
    }

    /// The decayed average, `None` when empty.
    pub fn value(&self) -> Option<f64> {
        let newest = self.blocks.last()?.index;
        let (mut weighted, mut weights) = (ExactSum::default(), ExactSum::default());
        for b in &self.blocks {
            // At most 35 blocks back: the shift stays within i32.
            let shift = ((b.index - newest) * BLOCK) as i32;
            weighted.add_scaled(&b.weighted, shift);
            weights.add_scaled(&b.weights, shift);
        }
        let w = weights.round();
        (w > 0.0).then(|| weighted.round() / w)
    }

    /// Whether the sums and the average are finite numbers.
    pub fn is_finite(&self) -> bool {
        self.blocks
            .iter()
            .all(|b| b.weighted.is_finite() && b.weights.is_finite())
            && self.value().is_none_or(f64::is_finite)
    }
}

impl eddy_core::codec::Encode for Ewma {
    /// Half-life, `huge`, then the blocks (index deltas and sums).
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        enc.zigzag(self.half_life);
        enc.u8(u8::from(self.huge));
        enc.varint(self.blocks.len() as u64);
        let mut prev = 0i64;
        for (i, b) in self.blocks.iter().enumerate() {
            if i == 0 {
                enc.zigzag(b.index);
            } else {
                // Ascending, at most KEPT_BLOCKS apart: a small delta.
                enc.varint(b.index.wrapping_sub(prev) as u64);
            }
            prev = b.index;
            enc.put(&b.weighted);
            enc.put(&b.weights);
        }
    }
}

impl eddy_core::codec::Decode for Ewma {
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<Self, eddy_core::codec::DecodeError> {
        use eddy_core::codec::DecodeError;
        let half_life = super::codec::get_in(dec, 1, i64::MAX, "ewma half-life")?;
        let huge = super::codec::get_bool(dec, "ewma flag")?;
        let n = dec.len(3)?;
        if n as i64 > KEPT_BLOCKS + 1 {
            return Err(DecodeError::OutOfRange("ewma blocks"));
        }
        let mut blocks: Vec<Block> = Vec::with_capacity(n);
        for _ in 0..n {
            let index = match blocks.last() {
                None => dec.zigzag()?,
                Some(last) => {
                    let delta = dec.varint()?;
                    if delta == 0 || delta > KEPT_BLOCKS as u64 {
                        return Err(DecodeError::OutOfRange("ewma block index"));
                    }
                    last.index
                        .checked_add(delta as i64)
                        .ok_or(DecodeError::OutOfRange("ewma block index"))?
                }
            };
            if blocks
                .first()
                .is_some_and(|f| index - f.index > KEPT_BLOCKS)
            {
                return Err(DecodeError::OutOfRange("ewma block span"));
            }
            blocks.push(Block {
                index,
                weighted: dec.get()?,
                weights: dec.get()?,
            });
        }
        Ok(Ewma {
            half_life,
            blocks,
            huge,
        })
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
