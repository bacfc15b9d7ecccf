//! Distinct counts by HyperLogLog++.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use eddy_core::Value;
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use rustc_hash::FxHasher;

/// HyperLogLog++ precision: 2^14 registers, a standard error of
/// 1.04 / √16384 ≈ 0.81%. Small sets are counted (almost) exactly by the
/// sparse representation.
pub const DISTINCT_PRECISION: u8 = 14;

/// A deterministic hasher: FxHash (no random seed, so estimates are
/// reproducible and sketches from different workers merge) followed by the
/// SplitMix64 finaliser, because HyperLogLog needs well-mixed high bits and
/// FxHash alone does not provide them.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MixedFx;

/// The hasher built by [`MixedFx`].
#[derive(Default)]
pub struct MixedFxHasher(FxHasher);

impl Hasher for MixedFxHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
    }
    fn write_i64(&mut self, i: i64) {
        self.0.write_i64(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }
    fn finish(&self) -> u64 {
        let mut z = self.0.finish().wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl BuildHasher for MixedFx {
    type Hasher = MixedFxHasher;
    fn build_hasher(&self) -> MixedFxHasher {
        MixedFxHasher::default()
    }
}

/// A HyperLogLog++ sketch of values (precision 14, 0.81% standard error).
#[derive(Clone)]
pub struct DistinctCount {
    hll: Option<HyperLogLogPlus<Value, MixedFx>>,
}

impl Default for DistinctCount {
    fn default() -> Self {
        DistinctCount {
            // Only fails for a precision outside 4..=18; 14 is a constant.
            hll: HyperLogLogPlus::new(DISTINCT_PRECISION, MixedFx).ok(),
        }
    }
}

impl fmt::Debug for DistinctCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DistinctCount {{ estimate: {} }}", self.estimate())
    }
}

impl DistinctCount {
    /// Adds a value.
    #[inline]
    pub fn add(&mut self, v: &Value) {
        if let Some(h) = &mut self.hll {
            h.insert(v);
        }
    }

    /// Adds another sketch's values.
    pub fn merge(&mut self, other: &DistinctCount) {
        if let (Some(a), Some(b)) = (&mut self.hll, &other.hll) {
            // Same precision on both sides: the only merge error cannot occur.
            let _ = a.merge(b);
        }
    }

    /// The estimated number of distinct values, rounded.
    pub fn estimate(&self) -> u64 {
        // `count` needs `&mut` (it compacts the sparse list); results are
        // read once per window firing, so a copy is acceptable.
        match &self.hll {
            Some(h) => h.clone().count().round().max(0.0) as u64,
            None => 0,
        }
    }
}

/// Registers of the dense representation, six bits each, five per word.
const DENSE_WORDS: usize = (1usize << DISTINCT_PRECISION).div_ceil(5);

impl eddy_core::codec::Encode for DistinctCount {
    /// The sketch's own serialised form as a [`Value`] tree (integers as
    /// varints, field names once per encoder), with its temporary set
    /// sorted so equal sketches give equal bytes.
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        let tree = self
            .hll
            .as_ref()
            .and_then(|h| serde_json::to_value(h).ok())
            .map_or(Value::Null, |mut json| {
                if let Some(serde_json::Value::Array(set)) = json.get_mut("tmpset") {
                    set.sort_by_key(|v| v.as_u64());
                }
                from_json(&json)
            });
        enc.put(&tree);
    }
}

impl eddy_core::codec::Decode for DistinctCount {
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<Self, eddy_core::codec::DecodeError> {
        use eddy_core::codec::DecodeError;
        let bad = || DecodeError::OutOfRange("count_distinct sketch");
        let tree: Value = dec.get()?;
        if tree.is_null() {
            return Ok(DistinctCount { hll: None });
        }
        let json = to_json(&tree).ok_or_else(bad)?;
        // The parts the sketch indexes without checking must have the
        // shape of precision 14.
        let precision = json.get("precision").and_then(serde_json::Value::as_u64);
        let registers = json.get("registers").ok_or_else(bad)?;
        let dense_ok = registers.is_null()
            || (registers.get("count").and_then(serde_json::Value::as_u64)
                == Some(1 << DISTINCT_PRECISION)
                && registers
                    .get("buf")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|b| b.len() == DENSE_WORDS));
        if precision != Some(u64::from(DISTINCT_PRECISION)) || !dense_ok {
            return Err(bad());
        }
        let hll = serde_json::from_value(json).map_err(|_| bad())?;
        Ok(DistinctCount { hll: Some(hll) })
    }
}

/// A JSON tree as a value (numbers the sketch writes are unsigned integers).
fn from_json(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_f64().map(Value::Float))
            .unwrap_or(Value::Null),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => {
            Value::List(std::sync::Arc::new(a.iter().map(from_json).collect()))
        }
        serde_json::Value::Object(o) => {
            let mut f = eddy_core::Fields::with_capacity(o.len());
            for (k, v) in o {
                f.push(eddy_core::Sym::intern(k), from_json(v));
            }
            Value::Map(std::sync::Arc::new(f))
        }
    }
}

/// The inverse of [`from_json`]; `None` for values it never makes.
fn to_json(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::Str(s) => serde_json::Value::from(&**s),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect::<Option<_>>()?),
        Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| Some((k.as_str().to_string(), to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(n: u64, step: u64) -> f64 {
        let mut d = DistinctCount::default();
        for i in 0..n {
            d.add(&Value::Int((i * step) as i64));
            // Duplicates must not count.
            if i % 4 == 0 {
                d.add(&Value::Int((i * step) as i64));
            }
        }
        (d.estimate() as f64 - n as f64).abs() / n as f64
    }

    #[test]
    fn within_three_standard_errors() {
        for n in [10_000, 100_000, 1_000_000] {
            let err = relative_error(n, 7);
            assert!(err <= 0.025, "n={n}: relative error {err}");
        }
        let mut s = DistinctCount::default();
        for i in 0..20_000 {
            s.add(&Value::str(&format!("user-{i}")));
        }
        let err = (s.estimate() as f64 - 20_000.0).abs() / 20_000.0;
        assert!(err <= 0.025, "strings: relative error {err}");
    }

    #[test]
    fn small_sets_are_exact_and_ints_equal_floats() {
        let mut d = DistinctCount::default();
        for v in [
            Value::Int(1),
            Value::Float(1.0),
            Value::str("a"),
            Value::str("a"),
            Value::Int(2),
        ] {
            d.add(&v);
        }
        assert_eq!(d.estimate(), 3);
    }

    #[test]
    fn merge_equals_single_pass() {
        let (mut all, mut a, mut b) = (
            DistinctCount::default(),
            DistinctCount::default(),
            DistinctCount::default(),
        );
        for i in 0..50_000i64 {
            let v = Value::Int(i % 30_000);
            all.add(&v);
            if i % 2 == 0 {
                a.add(&v)
            } else {
                b.add(&v)
            }
        }
        a.merge(&b);
        let (x, y) = (a.estimate() as f64, all.estimate() as f64);
        assert!((x - y).abs() / y < 0.001, "{x} vs {y}");
    }
}
