//! Exact sums of doubles, the ground of every order-independent float
//! aggregate.
//!
//! A float sum rounded after every addition depends on the order of the
//! additions, so the same values summed by two workers, or merged from
//! different partial results, can differ in their last bits. [`ExactSum`]
//! keeps the sum without any rounding, in two exact parts:
//!
//! - a fixed-point integer `A · 2^E` in an `i128`: a double is an integer
//!   mantissa times a power of two, so a value whose bits line up with
//!   the others' within 124 bits adds as one shift and one integer
//!   addition. Values of similar magnitude (prices, latencies, counts as
//!   doubles) all take this path, a few nanoseconds each, no allocation;
//! - for the rest (values too far apart in magnitude, subnormals, anything
//!   from 2^800 up), a list of non-overlapping doubles whose exact total is
//!   their sum (Shewchuk's "adaptive precision floating-point arithmetic",
//!   the algorithm behind Python's `math.fsum`): each addition is a few
//!   error-free two-sums over the list, kept inline up to [`INLINE`]
//!   parts.
//!
//! [`round`]
//! gives the correctly rounded total (nearest, ties to even). Since the
//! exact total depends only on the multiset of values added, so does
//! every result derived from it: the order of additions, the batching and
//! the merge tree of partial sums make no difference, bit for bit.
//!
//! Anything computed further from exact sums goes through [`canonical`],
//! the unique expansion of the exact value (the rounded total, then the
//! rounded remainder, and so on), so that even an inexact formula applied
//! afterwards sees the same input however the sum was built.
//!
//! [`round`]: ExactSum::round
//! [`canonical`]: ExactSum::canonical

/// Parts kept inline before the list moves to the heap.
pub const INLINE: usize = 3;

/// Largest number of canonical parts [`ExactSum::canonical`] yields: the
/// double range spans about 2,100 bits, 40 doubles of 53 bits.
const MAX_CANONICAL: usize = 48;

/// Values from 2^800 up skip the fixed-point part, so it stays below
/// 2^(125 + 799) and never decides whether a sum is finite.
const FIXED_LIMIT_BIASED: u64 = 1023 + 800;

/// Bits the fixed-point integer may use (its magnitude stays below 2^125
/// after an addition of two terms below 2^124).
const FIXED_BITS: u32 = 124;

/// An exact sum of finite doubles (see the module docs): the total is
/// `fixed · 2^fixed_exp` plus the sum of the parts.
#[derive(Clone, Debug, Default)]
pub struct ExactSum {
    fixed: i128,
    fixed_exp: i32,
    /// Parts in use, in `inline` while at most [`INLINE`], else in `heap`.
    len: u32,
    inline: [f64; INLINE],
    /// Boxed to keep a sum one pointer wide here rather than a `Vec`'s
    /// three words: the list rarely leaves the inline array.
    #[allow(clippy::box_collection)]
    heap: Option<Box<Vec<f64>>>,
}

impl PartialEq for ExactSum {
    /// Equal when the exact totals are equal.
    fn eq(&self, other: &ExactSum) -> bool {
        self.canonical().eq(other.canonical())
    }
}

impl ExactSum {
    /// The parts, smallest magnitude first; their exact sum is the total.
    #[inline]
    pub fn parts(&self) -> &[f64] {
        match &self.heap {
            Some(v) => v,
            None => &self.inline[..self.len as usize],
        }
    }

    /// Whether the total is zero.
    pub fn is_zero(&self) -> bool {
        self.len == 0 && self.fixed == 0
    }

    /// The part of largest magnitude of the list. The fixed-point part
    /// stays below 2^924, so a total whose top is below 2^1000 is finite.
    #[inline]
    pub fn top(&self) -> f64 {
        self.parts().last().copied().unwrap_or(0.0)
    }

    /// Adds `x` exactly. `x` must be finite; an addition whose partial
    /// results overflow leaves non-finite parts, which [`is_finite`]
    /// reports (the callers check before keeping the result).
    ///
    /// [`is_finite`]: ExactSum::is_finite
    #[inline]
    pub fn add(&mut self, x: f64) {
        if x == 0.0 || self.add_to_fixed(x) {
            return;
        }
        self.add_to_parts(x);
    }

    /// Adds `x` to the fixed-point part if it fits there.
    #[inline]
    fn add_to_fixed(&mut self, x: f64) -> bool {
        let bits = x.to_bits();
        let biased = (bits >> 52) & 0x7ff;
        if biased == 0 || biased >= FIXED_LIMIT_BIASED {
            return false;
        }
        let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
        let zeros = mantissa.trailing_zeros();
        let m = (mantissa >> zeros) as i128;
        let e = biased as i32 - 1075 + zeros as i32;
        self.add_fixed(if x < 0.0 { -m } else { m }, e)
    }

    /// Adds `m · 2^e` to the fixed-point part if both terms, aligned to
    /// the lower exponent, fit in [`FIXED_BITS`] bits.
    #[inline]
    fn add_fixed(&mut self, m: i128, e: i32) -> bool {
        if self.fixed == 0 {
            self.fixed = m;
            self.fixed_exp = e;
            return true;
        }
        let low = e.min(self.fixed_exp);
        let fits = |v: i128, shift: i32| {
            shift < FIXED_BITS as i32 && v.unsigned_abs() >> (FIXED_BITS - shift as u32) == 0
        };
        let (ours, theirs) = (self.fixed_exp - low, e - low);
        if !fits(self.fixed, ours) || !fits(m, theirs) {
            return false;
        }
        self.fixed = (self.fixed << ours) + (m << theirs);
        self.fixed_exp = low;
        true
    }

    /// Adds `x` to the list of parts.
    fn add_to_parts(&mut self, x: f64) {
        let len = self.len as usize;
        if let Some(v) = &mut self.heap {
            v.push(0.0);
            let n = grow(v, len, x);
            v.truncate(n);
            self.len = n as u32;
        } else if len < INLINE {
            let mut buf = [0.0; INLINE + 1];
            buf[..len].copy_from_slice(&self.inline[..len]);
            let n = grow(&mut buf, len, x);
            if n <= INLINE {
                self.inline[..n].copy_from_slice(&buf[..n]);
            } else {
                self.heap = Some(Box::new(buf[..n].to_vec()));
            }
            self.len = n as u32;
        } else {
            let mut v = Vec::with_capacity(2 * INLINE + 2);
            v.extend_from_slice(&self.inline);
            self.heap = Some(Box::new(v));
            self.len = INLINE as u32;
            self.add_to_parts(x);
        }
    }

    /// Adds every part of `other`: the total becomes the exact sum of both.
    pub fn merge(&mut self, other: &ExactSum) {
        if other.fixed != 0 && !self.add_fixed(other.fixed, other.fixed_exp) {
            self.add_fixed_to_parts(other.fixed, other.fixed_exp);
        }
        for &p in other.parts() {
            self.add(p);
        }
    }

    /// Adds `m · 2^e` to the list, as doubles of 40 bits each (exact:
    /// every piece is at least 2^e ≥ 2^-1074 and below 2^924).
    fn add_fixed_to_parts(&mut self, m: i128, e: i32) {
        let mut rest = m.unsigned_abs();
        let mut shift = e;
        while rest != 0 {
            let piece = (rest & ((1 << 40) - 1)) as f64;
            if piece != 0.0 {
                self.add_to_parts(scale(if m < 0 { -piece } else { piece }, shift));
            }
            rest >>= 40;
            shift += 40;
        }
    }

    /// The total, correctly rounded to the nearest double (ties to even);
    /// infinite when it is beyond the double range.
    pub fn round(&self) -> f64 {
        if self.fixed == 0 {
            return round_parts(self.parts());
        }
        let mut all = ExactSum {
            fixed: 0,
            ..self.clone()
        };
        all.add_fixed_to_parts(self.fixed, self.fixed_exp);
        round_parts(all.parts())
    }

    /// Whether every part and the rounded total are finite.
    #[inline]
    pub fn is_finite(&self) -> bool {
        let parts = self.parts();
        if !parts.iter().all(|p| p.is_finite()) {
            return false;
        }
        // The total is within one unit in the last place of the top part
        // plus the fixed part (below 2^924), so only a top part near the
        // largest double can round to infinity.
        self.top().abs() < 8.0e307 || self.round().is_finite()
    }

    /// The canonical expansion of the total: its rounded value, then the
    /// rounded remainder, and so on, largest first, until nothing remains.
    /// It depends only on the exact total, not on how it was built.
    pub fn canonical(&self) -> impl Iterator<Item = f64> {
        let mut rest = self.clone();
        let mut left = MAX_CANONICAL;
        std::iter::from_fn(move || {
            if rest.is_zero() || left == 0 {
                return None;
            }
            // Every part is a multiple of 2^-1074, so a non-zero total
            // rounds to a non-zero head and the remainder shrinks.
            let head = rest.round();
            if head == 0.0 {
                // A zero total split between the fixed part and the list.
                return None;
            }
            left -= 1;
            if head.is_finite() {
                rest.add(-head);
            } else {
                left = 0;
            }
            Some(head)
        })
    }

    /// Adds `2^exp` times the canonical expansion of `other` (exact unless
    /// a scaled part falls below the double range, where it rounds the same
    /// way whatever the history of `other`).
    pub fn add_scaled(&mut self, other: &ExactSum, exp: i32) {
        for c in other.canonical() {
            self.add(scale(c, exp));
        }
    }

    /// Adds `a · b` exactly (unless the error of the product falls below
    /// the double range, for products smaller than about 2^-970).
    #[inline]
    pub fn add_product(&mut self, a: f64, b: f64) {
        let (p, e) = two_product(a, b);
        self.add(p);
        self.add(e);
    }
}

/// One step of Shewchuk's GROW-EXPANSION as in `math.fsum`: adds `x` to the
/// non-overlapping parts `p[..len]` (increasing magnitude) in place and
/// returns the new length (at most `len + 1`; `p` has room for it).
#[inline]
fn grow(p: &mut [f64], len: usize, mut x: f64) -> usize {
    let mut i = 0;
    for j in 0..len {
        let mut y = p[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        let lo = y - (hi - x);
        if lo != 0.0 {
            p[i] = lo;
            i += 1;
        }
        x = hi;
    }
    if x != 0.0 {
        p[i] = x;
        i += 1;
    }
    i
}

/// The correctly rounded sum of non-overlapping parts in increasing
/// magnitude: the top parts are added until one addition is inexact, then
/// the half-way case is settled by the sign of what lies below (the final
/// step of `math.fsum`).
fn round_parts(p: &[f64]) -> f64 {
    let Some((&top, rest)) = p.split_last() else {
        return 0.0;
    };
    let mut hi = top;
    let mut lo = 0.0;
    let mut n = rest.len();
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = p[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// `a · b` as `(p, e)` with `p + e = a · b` exactly, `p` the rounded
/// product (exact unless the product is below about 2^-970).
#[inline]
pub fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

/// `x · 2^exp`, in steps that stay within the double range so only the
/// last one can round.
pub fn scale(mut x: f64, mut exp: i32) -> f64 {
    while exp > 1000 {
        x *= pow2(1000);
        exp -= 1000;
    }
    while exp < -1000 {
        x *= pow2(-1000);
        exp += 1000;
        if x == 0.0 {
            return x;
        }
    }
    x * pow2(exp)
}

/// `2^e` for `e` in the normal range `-1022..=1023`.
#[inline]
pub const fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The binary exponent of a finite non-zero `x` (`x = m · 2^e`, `1 ≤ |m| < 2`
/// for normal numbers; subnormals report -1023).
#[inline]
pub fn exponent(x: f64) -> i32 {
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// Most parts a decoded sum may hold: non-overlapping doubles over the
/// double range, one bit each at worst.
const MAX_PARTS: usize = 2200;

/// Lowest exponent of the fixed-point part (that of the smallest subnormal).
const FIXED_EXP_MIN: i64 = -1074;
/// Highest exponent of the fixed-point part (values from 2^800 up skip it).
const FIXED_EXP_MAX: i64 = 800;

impl eddy_core::codec::Encode for ExactSum {
    /// `parts << 1 | has_fixed`, then the fixed part (`i128`, exponent),
    /// then the parts: a zero sum is one byte.
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        let parts = self.parts();
        enc.varint(((parts.len() as u64) << 1) | u64::from(self.fixed != 0));
        if self.fixed != 0 {
            super::codec::put_i128(enc, self.fixed);
            enc.zigzag(i64::from(self.fixed_exp));
        }
        for &p in parts {
            enc.f64(p);
        }
    }
}

impl eddy_core::codec::Decode for ExactSum {
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<Self, eddy_core::codec::DecodeError> {
        use super::codec::{get_finite, get_i128, get_in};
        use eddy_core::codec::DecodeError;
        let head = dec.varint()?;
        let mut sum = ExactSum::default();
        if head & 1 == 1 {
            sum.fixed = get_i128(dec)?;
            if sum.fixed == 0 || sum.fixed.unsigned_abs() >> (FIXED_BITS + 1) != 0 {
                return Err(DecodeError::OutOfRange("exact sum fixed part"));
            }
            sum.fixed_exp = get_in(dec, FIXED_EXP_MIN, FIXED_EXP_MAX, "exact sum exponent")? as i32;
        }
        let n = usize::try_from(head >> 1).map_err(|_| DecodeError::OutOfRange("parts"))?;
        if n > MAX_PARTS || n.saturating_mul(8) > dec.remaining() {
            return Err(DecodeError::OutOfRange("exact sum parts"));
        }
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let p = get_finite(dec, "exact sum part")?;
            // Non-overlapping parts by increasing magnitude, none zero.
            if p == 0.0 || parts.last().is_some_and(|q: &f64| q.abs() > p.abs()) {
                return Err(DecodeError::OutOfRange("exact sum parts order"));
            }
            parts.push(p);
        }
        sum.len = n as u32;
        if n <= INLINE {
            sum.inline[..n].copy_from_slice(&parts);
        } else {
            sum.heap = Some(Box::new(parts));
        }
        Ok(sum)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use num_bigint::{BigInt, BigUint, Sign};
    use proptest::prelude::*;

    /// A finite double as an integer number of 2^-1074 (the smallest
    /// subnormal): every double is one exactly.
    pub(crate) fn units(x: f64) -> BigInt {
        let bits = x.to_bits();
        let biased = (bits >> 52) & 0x7ff;
        let frac = bits & ((1 << 52) - 1);
        let n = if biased == 0 {
            BigInt::from(frac)
        } else {
            BigInt::from(frac | 1 << 52) << (biased - 1)
        };
        if x.is_sign_negative() {
            -n
        } else {
            n
        }
    }

    /// `n` units of 2^-1074 rounded to the nearest double, ties to even.
    pub(crate) fn round_units(n: &BigInt) -> f64 {
        let mag: &BigUint = n.magnitude();
        let len = mag.bits();
        let shift = len.saturating_sub(53);
        let mut m: BigUint = mag >> shift;
        if shift > 0 {
            let rem = mag - (&m << shift);
            let half = BigUint::from(1u8) << (shift - 1);
            let odd = m.bit(0);
            if rem > half || (rem == half && odd) {
                m += 1u32;
            }
        }
        let m = u64::try_from(m).unwrap_or(u64::MAX) as f64;
        let e = shift as i32 - 1074;
        let x = if e + 53 > 1100 {
            f64::INFINITY
        } else if e >= -1022 {
            m * 2f64.powi(e)
        } else {
            // shift is 0: at most 53 bits times 2^-1074, exact in two steps.
            m * 2f64.powi(-1022) * 2f64.powi(e + 1022)
        };
        if n.sign() == Sign::Minus {
            -x
        } else {
            x
        }
    }

    /// The exact sum of `xs`, correctly rounded: the oracle.
    pub(crate) fn oracle(xs: &[f64]) -> f64 {
        let total: BigInt = xs.iter().fold(BigInt::default(), |a, &x| a + units(x));
        round_units(&total)
    }

    fn sum_of(xs: &[f64]) -> ExactSum {
        let mut s = ExactSum::default();
        xs.iter().for_each(|&x| s.add(x));
        s
    }

    #[test]
    fn cancellation_is_exact() {
        assert_eq!(sum_of(&[1e16, 1.0, -1e16]).round(), 1.0);
        assert_eq!(sum_of(&[1e100, 1.0, -1e100, 1e-100]).round(), 1.0);
        assert_eq!(sum_of(&[0.1; 10]).round(), oracle(&[0.1; 10]));
        assert_ne!(0.1f64 * 10.0, [0.1f64; 10].iter().sum::<f64>());
        // Half-way cases round to even, decided by the smallest part.
        let ulp = 2f64.powi(-52);
        assert_eq!(sum_of(&[1.0, ulp / 2.0]).round(), 1.0);
        assert_eq!(sum_of(&[1.0, ulp / 2.0, 1e-300]).round(), 1.0 + ulp);
        assert_eq!(sum_of(&[]).round(), 0.0);
        assert!(!sum_of(&[1e308, 1e308]).is_finite());
        assert!(sum_of(&[1e308, 7e307, -1e308]).is_finite());
    }

    #[test]
    fn spills_to_the_heap_and_back_stays_exact() {
        let xs: Vec<f64> = (0..60).map(|i| 2f64.powi(i * 30 - 900)).collect();
        let s = sum_of(&xs);
        assert!(s.parts().len() > INLINE, "{}", s.parts().len());
        assert_eq!(s.round(), oracle(&xs));
        let canon: Vec<f64> = s.canonical().collect();
        let exact = |v: &[f64]| v.iter().fold(BigInt::default(), |a, &x| a + units(x));
        assert_eq!(
            exact(&canon),
            exact(&xs),
            "the canonical expansion is exact"
        );
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            // Values of similar size, with cents.
            (-1_000_000i64..1_000_000).prop_map(|c| c as f64 / 100.0),
            // Any magnitude, either sign.
            (-1.0f64..1.0, -300i32..300).prop_map(|(m, e)| m * 10f64.powi(e)),
            // Cancellation: huge values with their negatives, and ones.
            prop::sample::select(vec![1e16, -1e16, 1.0, -1.0, 1e300, -1e300, 5e-324, 0.5]),
            any::<f64>().prop_filter("finite", |x| x.is_finite() && x.abs() < 1e300),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The rounded total is the exactly rounded sum (a rational
        /// oracle), whatever the order and the split into merged parts.
        #[test]
        fn equals_the_rational_oracle_in_any_order(
            xs in prop::collection::vec(finite(), 0..40),
            cut in 0usize..40,
            perm in any::<prop::sample::Index>(),
        ) {
            let want = oracle(&xs);
            let s = sum_of(&xs);
            prop_assert_eq!(s.round().to_bits(), want.to_bits());
            // Reversed and rotated, and split into two merged halves.
            let mut ys = xs.clone();
            ys.reverse();
            if !ys.is_empty() {
                let k = perm.index(ys.len());
                ys.rotate_left(k);
            }
            let cut = cut.min(ys.len());
            let (mut a, b) = (sum_of(&ys[..cut]), sum_of(&ys[cut..]));
            a.merge(&b);
            prop_assert_eq!(a.round().to_bits(), want.to_bits());
            prop_assert!(a == s);
        }
    }
}
