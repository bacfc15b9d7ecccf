//! Evaluating [`Node`]s against events.

use std::cmp::Ordering;

use super::compile::{Node, Op};
use super::EvalError;
use crate::event::{Event, Value};

/// Evaluates `node` against `event`.
pub fn eval(node: &Node, event: &Event) -> Result<Value, EvalError> {
    match node {
        Node::Const(v) => Ok(v.clone()),
        Node::Field(path) => Ok(event.fields.get_path(path).cloned().unwrap_or(Value::Null)),
        Node::Time => Ok(Value::Int(event.time)),
        Node::Call(op, args) => call(*op, args, event),
    }
}

fn call(op: Op, args: &[Node], event: &Event) -> Result<Value, EvalError> {
    match op {
        Op::And => Ok(Value::Bool(
            truth(&args[0], event)? && truth(&args[1], event)?,
        )),
        Op::Or => Ok(Value::Bool(
            truth(&args[0], event)? || truth(&args[1], event)?,
        )),
        Op::Not => Ok(Value::Bool(!truth(&args[0], event)?)),
        Op::Neg => match eval(&args[0], event)? {
            Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
            Value::Float(f) => Ok(Value::Float(-f)),
            v => Err(EvalError::new(format!("cannot negate {}", v.type_name()))),
        },
        _ => {
            let a = eval(&args[0], event)?;
            let b = eval(&args[1], event)?;
            binary(op, a, b)
        }
    }
}

fn truth(node: &Node, event: &Event) -> Result<bool, EvalError> {
    match eval(node, event)? {
        Value::Bool(b) => Ok(b),
        v => Err(EvalError::new(format!(
            "expected bool, found {}",
            v.type_name()
        ))),
    }
}

fn binary(op: Op, a: Value, b: Value) -> Result<Value, EvalError> {
    use Value::*;
    let mismatch = |a: &Value, b: &Value| {
        EvalError::new(format!(
            "no `{op:?}` for {} and {}",
            a.type_name(),
            b.type_name()
        ))
    };
    match op {
        Op::Eq => Ok(Bool(a == b)),
        Op::Ne => Ok(Bool(a != b)),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let comparable = matches!(
                (&a, &b),
                (Int(_) | Float(_), Int(_) | Float(_)) | (Str(_), Str(_)) | (Bool(_), Bool(_))
            );
            if !comparable {
                return Err(mismatch(&a, &b));
            }
            let o = a.total_cmp(&b);
            Ok(Bool(match op {
                Op::Lt => o == Ordering::Less,
                Op::Le => o != Ordering::Greater,
                Op::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        _ => match (&a, &b) {
            (Int(x), Int(y)) => match op {
                Op::Add => Ok(Int(x.wrapping_add(*y))),
                Op::Sub => Ok(Int(x.wrapping_sub(*y))),
                Op::Mul => Ok(Int(x.wrapping_mul(*y))),
                Op::Div if *y == 0 => Err(EvalError::new("division by zero")),
                Op::Div => Ok(Int(x.wrapping_div(*y))),
                Op::Rem if *y == 0 => Err(EvalError::new("modulus by zero")),
                Op::Rem => Ok(Int(x.wrapping_rem(*y))),
                _ => Err(mismatch(&a, &b)),
            },
            (Int(_) | Float(_), Int(_) | Float(_)) => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                match op {
                    Op::Add => Ok(Float(x + y)),
                    Op::Sub => Ok(Float(x - y)),
                    Op::Mul => Ok(Float(x * y)),
                    Op::Div => Ok(Float(x / y)),
                    Op::Rem => Ok(Float(x % y)),
                    _ => Err(mismatch(&a, &b)),
                }
            }
            (Str(x), Str(y)) if op == Op::Add => Ok(Value::str(&format!("{x}{y}"))),
            _ => Err(mismatch(&a, &b)),
        },
    }
}
