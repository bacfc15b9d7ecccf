//! Lowering the CEL AST into [`Node`]s.

use cel::common::ast::{Expr, LiteralValue};
use cel::IdedExpr;

use super::ExprError;
use crate::event::Value;
use crate::symbol::Sym;

/// A lowered expression.
#[derive(Clone, Debug)]
pub enum Node {
    /// A constant.
    Const(Value),
    /// A field path (`user.id`).
    Field(Vec<Sym>),
    /// The event time.
    Time,
    /// A unary or binary operator or built-in function.
    Call(Op, Vec<Node>),
}

/// Operators and built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `a && b`
    And,
    /// `a || b`
    Or,
    /// `!a`
    Not,
    /// `-a`
    Neg,
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a % b`
    Rem,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
}

/// Lowers a parsed CEL expression.
pub fn lower(e: &IdedExpr) -> Result<Node, ExprError> {
    match &e.expr {
        Expr::Literal(l) => Ok(Node::Const(literal(l)?)),
        Expr::Ident(name) if name == "_time" => Ok(Node::Time),
        Expr::Ident(name) => Ok(Node::Field(vec![Sym::intern(name)])),
        Expr::Select(sel) if !sel.test => match lower(&sel.operand)? {
            Node::Field(mut path) => {
                path.push(Sym::intern(&sel.field));
                Ok(Node::Field(path))
            }
            _ => Err(unsupported("field selection on a computed value")),
        },
        Expr::Call(call) if call.target.is_none() => {
            let op = match call.func_name.as_str() {
                "_&&_" => Op::And,
                "_||_" => Op::Or,
                "!_" => Op::Not,
                "-_" => Op::Neg,
                "_+_" => Op::Add,
                "_-_" => Op::Sub,
                "_*_" => Op::Mul,
                "_/_" => Op::Div,
                "_%_" => Op::Rem,
                "_==_" => Op::Eq,
                "_!=_" => Op::Ne,
                "_<_" => Op::Lt,
                "_<=_" => Op::Le,
                "_>_" => Op::Gt,
                "_>=_" => Op::Ge,
                other => return Err(unsupported(&format!("function `{other}`"))),
            };
            let args = call.args.iter().map(lower).collect::<Result<Vec<_>, _>>()?;
            Ok(Node::Call(op, args))
        }
        _ => Err(unsupported("this kind of expression")),
    }
}

fn literal(l: &LiteralValue) -> Result<Value, ExprError> {
    Ok(match l {
        LiteralValue::Boolean(b) => Value::Bool(*b.inner()),
        LiteralValue::Int(i) => Value::Int(*i.inner()),
        LiteralValue::UInt(u) => Value::Int(
            i64::try_from(*u.inner()).map_err(|_| unsupported("unsigned literal above 2^63"))?,
        ),
        LiteralValue::Double(d) => Value::Float(*d.inner()),
        LiteralValue::String(s) => Value::str(s.inner()),
        LiteralValue::Null => Value::Null,
        LiteralValue::Bytes(_) => return Err(unsupported("bytes literals")),
    })
}

fn unsupported(what: &str) -> ExprError {
    ExprError {
        message: format!("{what} is not supported"),
    }
}
