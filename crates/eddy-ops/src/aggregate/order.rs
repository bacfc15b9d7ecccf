//! The total order on values that decides every aggregate's ties.
//!
//! [`Value::total_cmp`] orders values by type rank and numbers numerically,
//! but calls some different values equal (`1` and `1.0`, two different
//! maps) and compares an integer with a float after rounding the integer.
//! A result chosen by it among "equal" values would depend on which came
//! first. [`value_order`] refines it into a strict total order, so choosing
//! the smallest or largest of a multiset of values gives one answer however
//! the values arrived:
//!
//! - null < booleans < numbers < strings < lists < maps (the ranks of
//!   `total_cmp`);
//! - numbers compare exactly (an integer with a float without rounding);
//!   an integer sorts before the float it equals (`1` before `1.0`), and
//!   floats follow [`f64::total_cmp`] (`-0.0` before `0.0`);
//! - strings by bytes, `false` before `true`;
//! - lists and maps element by element (maps by field name, then value, in
//!   their field order), a prefix first.

use std::cmp::Ordering;

use eddy_core::Value;

/// A strict total order on values (see the module docs): two values compare
/// equal only when they are the same value.
pub fn value_order(a: &Value, b: &Value) -> Ordering {
    compare(a, b, true)
}

/// [`value_order`] without telling an integer from the float it equals
/// (`10` and `10.0` compare equal, `0.0` and `-0.0` too): a total
/// preorder, used where numbers of equal value must tie (the `by` of
/// `max_by` / `min_by`).
pub fn value_order_loose(a: &Value, b: &Value) -> Ordering {
    compare(a, b, false)
}

fn compare(a: &Value, b: &Value, strict: bool) -> Ordering {
    use Value::*;
    // Breaks ties between numbers of equal value written differently.
    let tie = |o: Ordering| if strict { o } else { Ordering::Equal };
    match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) if strict || x != y => x.total_cmp(y),
        (Float(_), Float(_)) => Ordering::Equal,
        (Int(x), Float(y)) => int_float(*x, *y).then(tie(Ordering::Less)),
        (Float(x), Int(y)) => int_float(*y, *x).reverse().then(tie(Ordering::Greater)),
        (Str(x), Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bool(x), Bool(y)) => x.cmp(y),
        (List(x), List(y)) => lexicographic(x.iter(), y.iter(), |p, q| compare(p, q, strict)),
        (Map(x), Map(y)) => lexicographic(x.iter(), y.iter(), |(k1, v1), (k2, v2)| {
            k1.as_str()
                .cmp(k2.as_str())
                .then_with(|| compare(v1, v2, strict))
        }),
        _ => a.type_rank().cmp(&b.type_rank()),
    }
}

/// `i` against `f` exactly. NaN sorts like `f64::total_cmp` puts it: a
/// positive NaN above every number, a negative one below.
fn int_float(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return if f.is_sign_negative() {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // Every i64 lies in [-2^63, 2^63); floats outside that range (and the
    // infinities) are beyond every integer. Inside it, `f` truncated is an
    // exact integer and the fraction decides ties.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // `whole` is an integer in [-2^63, 2^63): the cast is exact.
    match i.cmp(&(whole as i64)) {
        Ordering::Equal if f > whole => Ordering::Less,
        Ordering::Equal if f < whole => Ordering::Greater,
        o => o,
    }
}

fn lexicographic<T>(
    mut a: impl Iterator<Item = T>,
    mut b: impl Iterator<Item = T>,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match cmp(&x, &y) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Fields, Sym};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn map(fields: &[(&str, Value)]) -> Value {
        let mut f = Fields::default();
        for (k, v) in fields {
            f.push(Sym::intern(k), v.clone());
        }
        Value::Map(Arc::new(f))
    }

    #[test]
    fn tells_apart_what_total_cmp_calls_equal() {
        let (one, one_f) = (Value::Int(1), Value::Float(1.0));
        assert_eq!(one.total_cmp(&one_f), Ordering::Equal);
        assert_eq!(value_order(&one, &one_f), Ordering::Less);
        assert_eq!(value_order(&one_f, &one), Ordering::Greater);
        let (a, b) = (map(&[("a", Value::Int(1))]), map(&[("a", Value::Int(2))]));
        assert_eq!(a.total_cmp(&b), Ordering::Equal);
        assert_eq!(value_order(&a, &b), Ordering::Less);
        // Exact, where `as f64` would round 2^53 + 1 down to 2^53.
        let big = Value::Int((1 << 53) + 1);
        assert_eq!(
            value_order(&big, &Value::Float(9007199254740992.0)),
            Ordering::Greater
        );
        assert_eq!(
            value_order(&Value::Int(i64::MAX), &Value::Float(9.3e18)),
            Ordering::Less
        );
        assert_eq!(
            value_order(&Value::Int(-3), &Value::Float(-2.5)),
            Ordering::Less
        );
        assert_eq!(
            value_order(&Value::Int(-2), &Value::Float(-2.5)),
            Ordering::Greater
        );
        assert_eq!(
            value_order(&Value::Float(-0.0), &Value::Float(0.0)),
            Ordering::Less
        );
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-4i64..4).prop_map(Value::Int),
            prop_oneof![
                (-8i64..8).prop_map(|i| i as f64 / 2.0),
                Just(-0.0),
                Just(f64::NAN),
                Just(-f64::NAN),
                Just(1e300),
            ]
            .prop_map(Value::Float),
            any::<i64>().prop_map(Value::Int),
            "[ab]{0,2}".prop_map(|s| Value::str(&s)),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(|l| Value::List(Arc::new(l))),
                prop::collection::vec(("[xy]", inner), 0..3).prop_map(|fs| {
                    let fs: Vec<(&str, Value)> =
                        fs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                    map(&fs)
                }),
            ]
        })
    }

    proptest! {
        /// A strict total order: antisymmetric, transitive, equal only for
        /// identical values, and consistent with `total_cmp` on scalars.
        #[test]
        fn is_a_strict_total_order(a in value(), b in value(), c in value()) {
            let ab = value_order(&a, &b);
            prop_assert_eq!(ab, value_order(&b, &a).reverse());
            if ab == Ordering::Equal {
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
            }
            if ab != Ordering::Greater && value_order(&b, &c) != Ordering::Greater {
                prop_assert_ne!(value_order(&a, &c), Ordering::Greater);
            }
            // `total_cmp` rounds an integer beyond 2^53 before comparing it
            // with a float; elsewhere on scalars the orders agree.
            let rounded = matches!((&a, &b), (Value::Int(x), Value::Float(_))
                | (Value::Float(_), Value::Int(x)) if x.unsigned_abs() > 1 << 53);
            let scalar = |v: &Value| !matches!(v, Value::List(_) | Value::Map(_));
            let tc = a.total_cmp(&b);
            if scalar(&a) && scalar(&b) && tc != Ordering::Equal && !rounded {
                prop_assert_eq!(ab, tc);
            }
        }
    }
}
