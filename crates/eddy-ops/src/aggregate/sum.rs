//! Exact sums for `sum` and `avg`.

use eddy_core::Value;

/// A sum that stays exact for integers: integers accumulate in an `i128`
/// (so the result does not depend on order or on overflow in between) and
/// floats in an `f64`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NumericSum {
    ints: i128,
    floats: f64,
    any_float: bool,
    count: u64,
}

impl NumericSum {
    /// Adds a number; anything else is ignored.
    #[inline]
    pub fn add(&mut self, v: &Value) {
        match v {
            Value::Int(i) => self.ints += *i as i128,
            Value::Float(f) => {
                self.floats += f;
                self.any_float = true;
            }
            _ => return,
        }
        self.count += 1;
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &NumericSum) {
        self.ints += other.ints;
        self.floats += other.floats;
        self.any_float |= other.any_float;
        self.count += other.count;
    }

    /// Whether the float part and the total are finite numbers.
    #[inline]
    pub fn is_finite(&self) -> bool {
        self.floats.is_finite() && (self.ints as f64 + self.floats).is_finite()
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum: an integer while only integers were added and the total fits
    /// in an i64, otherwise a float; null when nothing was added.
    pub fn sum(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        if !self.any_float {
            if let Ok(i) = i64::try_from(self.ints) {
                return Value::Int(i);
            }
        }
        Value::Float(self.ints as f64 + self.floats)
    }

    /// The mean, or null when nothing was added.
    pub fn mean(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        Value::Float((self.ints as f64 + self.floats) / self.count as f64)
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
}
