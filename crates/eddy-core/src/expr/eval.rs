//! Evaluating [`Node`]s against events.
//!
//! Evaluation returns `Cow<Value>`: constants and field reads are borrowed
//! from the expression and the event, so comparisons, arithmetic on numbers
//! and field reads neither allocate nor touch reference counts. Boolean
//! contexts (`&&`, `||`, `!`, conditions) go through [`eval_bool`], which
//! does not build a `Value` at all for comparisons.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use super::compile::{ArithOp, CmpOp, Comprehension, FieldCmp, Func, Node, UnaryOp};
use super::EvalError;
use crate::event::{Event, Fields, Value};
use crate::symbol::Sym;

/// What a missing field reads as.
static NULL: Value = Value::Null;

type Res<'a> = Result<Cow<'a, Value>, EvalError>;

/// Evaluation state: the event and the comprehension variables.
pub(crate) struct Cx<'a> {
    event: &'a Event,
    /// Comprehension slots; empty (never allocated) for expressions without
    /// macros.
    locals: Vec<Value>,
}

impl<'a> Cx<'a> {
    /// A context for evaluating against `event`.
    #[inline]
    pub(crate) fn new(event: &'a Event) -> Cx<'a> {
        Cx {
            event,
            locals: Vec::new(),
        }
    }
}

/// Evaluates `node` against `event` into an owned value.
pub(crate) fn eval_value(node: &Node, event: &Event) -> Result<Value, EvalError> {
    eval(node, &mut Cx::new(event)).map(Cow::into_owned)
}

/// Evaluates `node`.
pub(crate) fn eval<'a>(node: &'a Node, cx: &mut Cx<'a>) -> Res<'a> {
    Ok(match node {
        Node::Const(v) => Cow::Borrowed(v),
        Node::Field(path) => Cow::Borrowed(cx.event.fields.get_path(path).unwrap_or(&NULL)),
        Node::Time => Cow::Owned(Value::Int(cx.event.time)),
        Node::Local(slot) => Cow::Owned(local(cx, *slot)?.clone()),
        Node::Select(base, field) => match eval(base, cx)? {
            Cow::Borrowed(b) => Cow::Borrowed(select(b, *field)),
            Cow::Owned(b) => Cow::Owned(select(&b, *field).clone()),
        },
        Node::Index(base, index) => {
            let i = eval(index, cx)?;
            match eval(base, cx)? {
                Cow::Borrowed(b) => Cow::Borrowed(index_value(b, &i, base)?),
                Cow::Owned(b) => Cow::Owned(index_value(&b, &i, base)?.clone()),
            }
        }
        Node::Arith(op, a, b) => {
            let x = eval(a, cx)?;
            let y = eval(b, cx)?;
            Cow::Owned(arith(*op, a, &x, b, &y)?)
        }
        Node::Unary(UnaryOp::Neg, a) => match &*eval(a, cx)? {
            Value::Int(i) => {
                Cow::Owned(Value::Int(i.checked_neg().ok_or_else(|| {
                    EvalError::new(format!("integer overflow: -({i})"))
                })?))
            }
            Value::Float(f) => Cow::Owned(finite(-f, || format!("not a finite double: -({f:?})"))?),
            v => return Err(operand_error(a, v, "`-` needs a number")),
        },
        Node::Cond(c, a, b) => {
            if eval_bool(c, cx)? {
                eval(a, cx)?
            } else {
                eval(b, cx)?
            }
        }
        Node::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(eval(item, cx)?.into_owned());
            }
            Cow::Owned(Value::List(Arc::new(out)))
        }
        Node::Map(entries) => {
            let mut out = Fields::with_capacity(entries.len());
            for (k, v) in entries {
                out.insert(*k, eval(v, cx)?.into_owned());
            }
            Cow::Owned(Value::Map(Arc::new(out)))
        }
        Node::Call(f, args) => call(*f, args, cx)?,
        Node::Comprehension(c) => Cow::Owned(comprehension(c, cx)?),
        Node::Has(_)
        | Node::HasSelect(..)
        | Node::FieldCmp(_)
        | Node::Cmp(..)
        | Node::Unary(UnaryOp::Not | UnaryOp::NotStrictlyFalse, _)
        | Node::And(..)
        | Node::Or(..)
        | Node::In(..) => Cow::Owned(Value::Bool(eval_bool(node, cx)?)),
    })
}

/// Evaluates `node` where a boolean is required.
pub(crate) fn eval_bool<'a>(node: &'a Node, cx: &mut Cx<'a>) -> Result<bool, EvalError> {
    match node {
        Node::Const(Value::Bool(b)) => Ok(*b),
        Node::FieldCmp(fc) => field_cmp(fc, cx.event),
        Node::Cmp(op, a, b) => {
            let x = eval(a, cx)?;
            let y = eval(b, cx)?;
            compare(*op, &x, &y).ok_or_else(|| compare_error(*op, a, &x, b, &y))
        }
        Node::And(a, b) => match eval_bool(a, cx) {
            Ok(false) => Ok(false),
            Ok(true) => eval_bool(b, cx),
            // CEL's && is commutative: an error on one side is absorbed by
            // `false` on the other.
            Err(e) => match eval_bool(b, cx) {
                Ok(false) => Ok(false),
                _ => Err(e),
            },
        },
        Node::Or(a, b) => match eval_bool(a, cx) {
            Ok(true) => Ok(true),
            Ok(false) => eval_bool(b, cx),
            Err(e) => match eval_bool(b, cx) {
                Ok(true) => Ok(true),
                _ => Err(e),
            },
        },
        Node::Unary(UnaryOp::Not, a) => Ok(!eval_bool(a, cx)?),
        Node::Unary(UnaryOp::NotStrictlyFalse, a) => Ok(!matches!(eval_bool(a, cx), Ok(false))),
        Node::Has(path) => Ok(cx.event.fields.get_path(path).is_some()),
        Node::HasSelect(base, field) => {
            Ok(matches!(&*eval(base, cx)?, Value::Map(m) if m.get(*field).is_some()))
        }
        Node::In(a, b) => {
            let x = eval(a, cx)?;
            let coll = eval(b, cx)?;
            match &*coll {
                Value::List(items) => Ok(items.contains(&x)),
                Value::Map(m) => Ok(match &*x {
                    Value::Str(k) => m.iter().any(|(s, _)| s.as_str() == &**k),
                    _ => false,
                }),
                v => Err(operand_error(b, v, "`in` needs a list or a map")),
            }
        }
        _ => match &*eval(node, cx)? {
            Value::Bool(b) => Ok(*b),
            v => Err(operand_error(node, v, "a bool is required")),
        },
    }
}

#[inline]
fn field_cmp(fc: &FieldCmp, event: &Event) -> Result<bool, EvalError> {
    let v = event.fields.get_path(&fc.path).unwrap_or(&NULL);
    compare(fc.op, v, &fc.value).ok_or_else(|| {
        let field = Node::Field(fc.path.clone());
        compare_error(fc.op, &field, v, &Node::Const(fc.value.clone()), &fc.value)
    })
}

/// `a <op> b` with the semantics of CEL expressions, or `None` when `a` and
/// `b` cannot be ordered (say, an int and a string with `<`).
#[inline]
pub fn compare(op: CmpOp, a: &Value, b: &Value) -> Option<bool> {
    use Value::*;
    let ord = match op {
        CmpOp::Eq => return Some(a == b),
        CmpOp::Ne => return Some(a != b),
        _ => match (a, b) {
            (Int(x), Int(y)) => Some(x.cmp(y)),
            (Float(x), Float(y)) => x.partial_cmp(y),
            (Int(x), Float(y)) => int_float_cmp(*x, *y),
            (Float(x), Int(y)) => int_float_cmp(*y, *x).map(Ordering::reverse),
            (Str(x), Str(y)) => Some(x.cmp(y)),
            (Bool(x), Bool(y)) => Some(x.cmp(y)),
            _ => return None,
        },
    };
    // An unordered pair (NaN) makes every ordering comparison false.
    Some(match ord {
        None => false,
        Some(o) => match op {
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        },
    })
}

/// Exact ordering of an int and a double (converting the int to a double
/// would round above 2^53).
fn int_float_cmp(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // 2^63 is exactly representable; every i64 is below it.
    if f >= 9_223_372_036_854_775_808.0 {
        return Some(Ordering::Less);
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal if f > t => Some(Ordering::Less),
        Ordering::Equal if f < t => Some(Ordering::Greater),
        o => Some(o),
    }
}

fn arith(op: ArithOp, an: &Node, a: &Value, bn: &Node, b: &Value) -> Result<Value, EvalError> {
    use Value::*;
    match (a, b) {
        (Int(x), Int(y)) => {
            let (x, y) = (*x, *y);
            let r = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div if y == 0 => return Err(EvalError::new("division by zero")),
                ArithOp::Div => x.checked_div(y),
                ArithOp::Rem if y == 0 => return Err(EvalError::new("modulus by zero")),
                ArithOp::Rem => x.checked_rem(y),
            };
            r.map(Int)
                .ok_or_else(|| EvalError::new(format!("integer overflow: {x} {} {y}", op.symbol())))
        }
        (Int(_) | Float(_), Int(_) | Float(_)) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            let r = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
                ArithOp::Rem => x % y,
            };
            finite(r, || {
                let what = match op {
                    ArithOp::Div if y == 0.0 => "division by zero",
                    ArithOp::Rem if y == 0.0 => "modulus by zero",
                    _ if x.is_finite() && y.is_finite() => "double overflow",
                    _ => "not a finite double",
                };
                format!("{what}: {x:?} {} {y:?}", op.symbol())
            })
        }
        (Str(x), Str(y)) if op == ArithOp::Add => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Str(Arc::from(s)))
        }
        (List(x), List(y)) if op == ArithOp::Add => {
            let mut l = Vec::with_capacity(x.len() + y.len());
            l.extend(x.iter().cloned());
            l.extend(y.iter().cloned());
            Ok(List(Arc::new(l)))
        }
        _ => Err(null_field(an, a)
            .or_else(|| null_field(bn, b))
            .unwrap_or_else(|| {
                EvalError::new(format!(
                    "no `{}` for {} and {}",
                    op.symbol(),
                    a.type_name(),
                    b.type_name()
                ))
            })),
    }
}

/// `Ok(Float(x))` when `x` is finite; else the error `what()` describes.
/// Eddy values never hold NaN or an infinity: JSON cannot carry them and
/// they compare and print surprisingly (`NaN != NaN`, `string(inf)`).
fn finite(x: f64, what: impl FnOnce() -> String) -> Result<Value, EvalError> {
    if x.is_finite() {
        Ok(Value::Float(x))
    } else {
        Err(EvalError::non_finite(what()))
    }
}

fn select(base: &Value, field: Sym) -> &Value {
    match base {
        Value::Map(m) => m.get(field).unwrap_or(&NULL),
        // Like a field path through a non-map: nothing there.
        _ => &NULL,
    }
}

/// `base[index]`: a string index selects a field like `base.index` does
/// (null when absent or when `base` is not a map); a number indexes a list.
fn index_value<'v>(
    base: &'v Value,
    index: &Value,
    base_node: &Node,
) -> Result<&'v Value, EvalError> {
    match (base, index) {
        (Value::Map(m), Value::Str(k)) => Ok(m
            .iter()
            .find(|(s, _)| s.as_str() == &**k)
            .map(|(_, v)| v)
            .unwrap_or(&NULL)),
        (_, Value::Str(_)) | (Value::Null, _) => Ok(&NULL),
        (Value::List(items), Value::Int(_) | Value::Float(_)) => {
            let i = index
                .as_i64()
                .ok_or_else(|| EvalError::new(format!("list index {index} is not an integer")))?;
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "index {i} out of range for a list of {} elements",
                        items.len()
                    ))
                })
        }
        (Value::List(_) | Value::Map(_), _) => Err(EvalError::new(format!(
            "cannot index a {} with a {}",
            base.type_name(),
            index.type_name()
        ))),
        _ => Err(operand_error(
            base_node,
            base,
            "only lists and maps can be indexed",
        )),
    }
}

fn local<'c>(cx: &'c Cx<'_>, slot: usize) -> Result<&'c Value, EvalError> {
    // Slots are assigned when lowering and the scope grows before a
    // comprehension runs, so this only fails on a lowering bug.
    cx.locals
        .get(slot)
        .ok_or_else(|| EvalError::new("internal error: comprehension variable out of scope"))
}

fn set_local(cx: &mut Cx<'_>, slot: usize, v: Value) {
    if cx.locals.len() <= slot {
        cx.locals.resize(slot + 1, Value::Null);
    }
    if let Some(s) = cx.locals.get_mut(slot) {
        *s = v;
    }
}

fn comprehension<'a>(c: &'a Comprehension, cx: &mut Cx<'a>) -> Result<Value, EvalError> {
    let range = eval(&c.range, cx)?;
    let init = eval(&c.init, cx)?.into_owned();
    set_local(cx, c.iter_slot, Value::Null);
    set_local(cx, c.accu_slot, init);
    match &*range {
        Value::List(items) => {
            for item in items.iter() {
                if !step(c, item.clone(), cx)? {
                    break;
                }
            }
        }
        Value::Map(m) => {
            for (k, _) in m.iter() {
                if !step(c, Value::str(k.as_str()), cx)? {
                    break;
                }
            }
        }
        v => return Err(operand_error(&c.range, v, "a list or a map is required")),
    }
    Ok(eval(&c.result, cx)?.into_owned())
}

/// One iteration; false when the loop condition ended the loop.
fn step<'a>(c: &'a Comprehension, item: Value, cx: &mut Cx<'a>) -> Result<bool, EvalError> {
    set_local(cx, c.iter_slot, item);
    if !eval_bool(&c.cond, cx)? {
        return Ok(false);
    }
    let next = eval(&c.step, cx)?.into_owned();
    set_local(cx, c.accu_slot, next);
    Ok(true)
}

fn call<'a>(f: Func, args: &'a [Node], cx: &mut Cx<'a>) -> Res<'a> {
    use Value::*;
    // Argument counts were checked when lowering; the fallback arm only
    // guards against a lowering bug.
    let v = match (f, args) {
        (Func::Size, [x]) => match &*eval(x, cx)? {
            Str(s) => Int(s.chars().count() as i64),
            List(l) => Int(l.len() as i64),
            Map(m) => Int(m.len() as i64),
            v => return Err(operand_error(x, v, "size() needs a string, list or map")),
        },
        (Func::Contains | Func::StartsWith | Func::EndsWith, [s, t]) => {
            let sv = eval(s, cx)?;
            let tv = eval(t, cx)?;
            match (&*sv, &*tv) {
                (Str(a), Str(b)) => Bool(match f {
                    Func::Contains => a.contains(&**b),
                    Func::StartsWith => a.starts_with(&**b),
                    _ => a.ends_with(&**b),
                }),
                (Str(_), v) => {
                    return Err(operand_error(
                        t,
                        v,
                        &format!("{f}() needs a string argument"),
                    ))
                }
                (v, _) => return Err(operand_error(s, v, &format!("{f}() needs a string"))),
            }
        }
        (Func::LowerAscii | Func::UpperAscii | Func::Trim, [s]) => {
            let sv = eval(s, cx)?;
            let text = match &*sv {
                Str(t) => t,
                v => return Err(operand_error(s, v, &format!("{f}() needs a string"))),
            };
            // Return the input untouched (no allocation) when nothing changes.
            let changed: Option<String> = match f {
                Func::LowerAscii => text
                    .bytes()
                    .any(|b| b.is_ascii_uppercase())
                    .then(|| text.to_ascii_lowercase()),
                Func::UpperAscii => text
                    .bytes()
                    .any(|b| b.is_ascii_lowercase())
                    .then(|| text.to_ascii_uppercase()),
                _ => {
                    let t = text.trim();
                    (t.len() != text.len()).then(|| t.to_string())
                }
            };
            match changed {
                Some(s) => Str(Arc::from(s)),
                None => return Ok(sv),
            }
        }
        (Func::Int, [x]) => {
            let xv = eval(x, cx)?;
            match &*xv {
                Int(_) => return Ok(xv),
                Float(d) => {
                    // CEL truncates toward zero and rejects out-of-range values.
                    if d.is_finite()
                        && *d > -9_223_372_036_854_775_809.0
                        && *d < 9_223_372_036_854_775_808.0
                    {
                        Int(d.trunc() as i64)
                    } else {
                        return Err(EvalError::new(format!("int({d}) is out of range")));
                    }
                }
                Str(s) => Int(s.trim().parse::<i64>().map_err(|_| {
                    EvalError::new(format!("cannot convert string \"{s}\" to int"))
                })?),
                v => return Err(operand_error(x, v, "int() needs a number or a string")),
            }
        }
        (Func::Double, [x]) => match &*eval(x, cx)? {
            Int(i) => Float(*i as f64),
            Float(d) => finite(*d, || format!("double({d:?}) is not a finite number"))?,
            Str(s) => {
                let d = s.trim().parse::<f64>().map_err(|_| {
                    EvalError::new(format!("cannot convert string \"{s}\" to double"))
                })?;
                finite(d, || format!("double(\"{s}\") is not a finite number"))?
            }
            v => return Err(operand_error(x, v, "double() needs a number or a string")),
        },
        (Func::String, [x]) => {
            let xv = eval(x, cx)?;
            match &*xv {
                Str(_) => return Ok(xv),
                Null => return Err(operand_error(x, &Null, "string() needs a value")),
                v => Value::str(&v.to_string()),
            }
        }
        (Func::Bool, [x]) => match &*eval(x, cx)? {
            Bool(b) => Bool(*b),
            Str(s) => match &**s {
                "true" | "True" | "TRUE" | "t" | "1" => Bool(true),
                "false" | "False" | "FALSE" | "f" | "0" => Bool(false),
                _ => {
                    return Err(EvalError::new(format!(
                        "cannot convert string \"{s}\" to bool"
                    )))
                }
            },
            v => return Err(operand_error(x, v, "bool() needs a bool or a string")),
        },
        (Func::Type, [x]) => {
            let name = match &*eval(x, cx)? {
                Null => "null_type",
                v => v.type_name(),
            };
            Value::str(name)
        }
        (Func::Abs, [x]) => match &*eval(x, cx)? {
            Int(i) => Int(i
                .checked_abs()
                .ok_or_else(|| EvalError::new(format!("integer overflow: abs({i})")))?),
            Float(d) => finite(d.abs(), || format!("abs({d:?}) is not a finite number"))?,
            v => return Err(operand_error(x, v, "abs() needs a number")),
        },
        (Func::Max | Func::Min, [single]) => {
            let lv = eval(single, cx)?;
            match &*lv {
                List(items) => extreme(f, items.iter().map(|v| (single, v)))?.clone(),
                Int(_) | Float(_) | Str(_) | Bool(_) => return Ok(lv),
                v => {
                    return Err(operand_error(
                        single,
                        v,
                        &format!("{f}() needs values or a list"),
                    ))
                }
            }
        }
        (Func::Max | Func::Min, args) if !args.is_empty() => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, cx)?);
            }
            extreme(f, args.iter().zip(vals.iter().map(|v| &**v)))?.clone()
        }
        (Func::Now, []) => Int(crate::time::now_ms()),
        (Func::Timestamp, [x]) => {
            let xv = eval(x, cx)?;
            match &*xv {
                Int(_) => return Ok(xv),
                Str(s) => Int(crate::time::parse_rfc3339(s).ok_or_else(|| {
                    EvalError::new(format!(
                        "invalid timestamp \"{s}\": expected RFC 3339 such as 2024-05-01T12:00:00Z"
                    ))
                })?),
                v => return Err(operand_error(x, v, "timestamp() needs an RFC 3339 string")),
            }
        }
        (Func::Duration, [x]) => {
            let xv = eval(x, cx)?;
            match &*xv {
                Int(_) => return Ok(xv),
                Str(s) => Int(crate::time::parse_duration(s)
                    .map_err(|e| EvalError::new(format!("invalid duration \"{s}\": {e}")))?),
                v => {
                    return Err(operand_error(
                        x,
                        v,
                        "duration() needs a string such as \"5s\"",
                    ))
                }
            }
        }
        _ => {
            return Err(EvalError::new(format!(
                "internal error: {f}() called with {} arguments",
                args.len()
            )))
        }
    };
    Ok(Cow::Owned(v))
}

/// The largest (`max`) or smallest (`min`) value; the values must be
/// mutually ordered.
fn extreme<'v>(
    f: Func,
    mut values: impl Iterator<Item = (&'v Node, &'v Value)>,
) -> Result<&'v Value, EvalError> {
    let Some((first_node, first)) = values.next() else {
        return Err(EvalError::new(format!("{f}() of an empty list")));
    };
    let want = if f == Func::Max { CmpOp::Gt } else { CmpOp::Lt };
    if !matches!(
        first,
        Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Bool(_)
    ) {
        return Err(operand_error(
            first_node,
            first,
            &format!("{f}() needs numbers, strings or bools"),
        ));
    }
    let mut best = first;
    for (node, v) in values {
        match compare(want, v, best) {
            Some(true) => best = v,
            Some(false) => {}
            None => return Err(compare_error(want, node, v, first_node, best)),
        }
    }
    Ok(best)
}

/// "field `a.b` is missing or null" when `value` is null and came from a
/// field reference.
fn null_field(node: &Node, value: &Value) -> Option<EvalError> {
    match (node, value) {
        (Node::Field(path), Value::Null) => Some(EvalError::new(format!(
            "field `{}` is missing or null",
            path_text(path)
        ))),
        _ => None,
    }
}

/// An error about an operand of the wrong type, naming the field if a
/// missing field is the cause.
fn operand_error(node: &Node, value: &Value, what: &str) -> EvalError {
    null_field(node, value)
        .unwrap_or_else(|| EvalError::new(format!("{what}, found {}", value.type_name())))
}

fn compare_error(op: CmpOp, an: &Node, a: &Value, bn: &Node, b: &Value) -> EvalError {
    null_field(an, a)
        .or_else(|| null_field(bn, b))
        .unwrap_or_else(|| {
            EvalError::new(format!(
                "cannot compare {} with {} using `{}`",
                a.type_name(),
                b.type_name(),
                op.symbol()
            ))
        })
}

/// A dotted path as written.
pub(crate) fn path_text(path: &[Sym]) -> String {
    let mut s = String::new();
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(p.as_str());
    }
    s
}
