//! Exact sums for `sum` and `avg`.
//!
//! Integers add up in an `i128` and doubles in an [`ExactSum`], so nothing
//! is rounded until the result is read: the sum is the exact total rounded
//! once to the nearest double (ties to even), and the mean is that rounded
//! sum divided by the count. Both depend only on the multiset of values,
//! never on their order or on how partial sums were merged.

use eddy_core::Value;

use super::exact::{pow2, ExactSum};

/// 2^1020: a value below it added to a sum whose largest part is below it
/// cannot overflow.
const SAFE: f64 = pow2(1020);

/// A sum that stays exact: integers accumulate in an `i128`, floats in an
/// [`ExactSum`]; the count of values added gives the mean.
#[derive(Clone, Debug, Default)]
pub struct NumericSum {
    ints: i128,
    floats: ExactSum,
    any_float: bool,
    count: u64,
}

impl PartialEq for NumericSum {
    /// Equal when the exact totals and the counts are.
    fn eq(&self, other: &NumericSum) -> bool {
        self.count == other.count
            && self.any_float == other.any_float
            && self.ints == other.ints
            && self.floats == other.floats
    }
}

impl NumericSum {
    /// Adds a number; anything else is ignored.
    #[inline]
    pub fn add(&mut self, v: &Value) {
        match v {
            Value::Int(i) => self.ints += *i as i128,
            Value::Float(f) => {
                self.floats.add(*f);
                self.any_float = true;
            }
            _ => return,
        }
        self.count += 1;
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &NumericSum) {
        self.ints += other.ints;
        self.floats.merge(&other.floats);
        self.any_float |= other.any_float;
        self.count += other.count;
    }

    /// Whether adding `v` surely keeps the sum finite, decided without
    /// computing it: both the value and the sum are far below the largest
    /// double.
    #[inline]
    pub fn surely_admits(&self, v: &Value) -> bool {
        let x = match v {
            Value::Float(f) => f.abs(),
            _ => 0.0,
        };
        x < SAFE && self.floats.top().abs() < SAFE
    }

    /// Whether the float part and the total are finite numbers.
    #[inline]
    pub fn is_finite(&self) -> bool {
        self.floats.is_finite()
            && (self.ints == 0 || self.floats.top().abs() < SAFE || self.total().is_finite())
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact total, rounded once to the nearest double.
    fn total(&self) -> f64 {
        if self.ints == 0 {
            return self.floats.round();
        }
        let mut all = self.floats.clone();
        add_i128(&mut all, self.ints);
        all.round()
    }

    /// The sum: an integer while only integers were added and the total fits
    /// in an i64, otherwise a float (the exact total, correctly rounded);
    /// null when nothing was added.
    pub fn sum(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        if !self.any_float {
            if let Ok(i) = i64::try_from(self.ints) {
                return Value::Int(i);
            }
        }
        Value::Float(self.total())
    }

    /// The mean: the correctly rounded sum divided by the count; null when
    /// nothing was added.
    pub fn mean(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        Value::Float(self.total() / self.count as f64)
    }
}

/// Adds an `i128` exactly, as four 32-bit pieces (each exact in a double).
fn add_i128(sum: &mut ExactSum, v: i128) {
    let high = (v >> 64) as i64;
    let low = v as u64;
    sum.add((high >> 32) as f64 * pow2(96));
    sum.add((high & 0xffff_ffff) as f64 * pow2(64));
    sum.add((low >> 32) as f64 * pow2(32));
    sum.add((low & 0xffff_ffff) as f64);
}

impl eddy_core::codec::Encode for NumericSum {
    /// `count << 1 | any_float`, the integer total, the float total.
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        enc.varint((self.count << 1) | u64::from(self.any_float));
        super::codec::put_i128(enc, self.ints);
        enc.put(&self.floats);
    }
}

impl eddy_core::codec::Decode for NumericSum {
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<Self, eddy_core::codec::DecodeError> {
        let head = dec.varint()?;
        Ok(NumericSum {
            count: head >> 1,
            any_float: head & 1 == 1,
            ints: super::codec::get_i128(dec)?,
            floats: dec.get()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_stay_exact_and_overflow_to_float() {
        let mut s = NumericSum::default();
        assert_eq!(s.sum(), Value::Null);
        s.add(&Value::Int(i64::MAX));
        s.add(&Value::Int(1));
        s.add(&Value::Int(-1));
        assert_eq!(s.sum(), Value::Int(i64::MAX));
        s.add(&Value::Int(1));
        assert_eq!(s.sum(), Value::Float(i64::MAX as f64 + 1.0));
        let mut t = NumericSum::default();
        t.add(&Value::Int(2));
        t.add(&Value::Float(0.5));
        t.add(&Value::str("ignored"));
        assert_eq!(t.sum(), Value::Float(2.5));
        assert_eq!(t.mean(), Value::Float(1.25));
    }

    /// Integers and floats together are summed exactly before the one
    /// rounding: 2^60 + 1 + 0.5 - 2^60 is 1.5, not 0 or 2.
    #[test]
    fn ints_and_floats_mix_exactly() {
        let mut s = NumericSum::default();
        for v in [
            Value::Int(1 << 60),
            Value::Int(1),
            Value::Float(0.5),
            Value::Float(-(2f64.powi(60))),
            Value::Int(i64::MIN),
            Value::Int(i64::MIN),
            Value::Float(2f64.powi(64)),
        ] {
            s.add(&v);
        }
        assert_eq!(s.sum(), Value::Float(1.5));
        assert_eq!(s.mean(), Value::Float(1.5 / 7.0));
    }
}
