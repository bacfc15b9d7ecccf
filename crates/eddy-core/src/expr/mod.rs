//! Expressions in CEL (the Common Expression Language).
//!
//! Expressions are parsed once, when a pipeline is compiled, with the `cel`
//! crate's parser, then lowered to an [`Expression`]: a tree whose field
//! references are already interned [`Sym`] paths, evaluated directly against
//! an [`Event`] without building CEL values. Event fields are top-level
//! identifiers (`amount > 10 && user.country != "AR"`); `_time` is the
//! event time in milliseconds.

mod compile;
mod eval;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use crate::event::{Event, Value};
use crate::symbol::Sym;

pub use compile::Node;

/// A compiled expression.
#[derive(Clone)]
pub struct Expression {
    source: Arc<str>,
    node: Arc<Node>,
}

/// Why an expression could not be compiled.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// What is wrong, including the position inside the expression.
    pub message: String,
}

/// Why an expression could not be evaluated on an event (a wrong type, a
/// missing field where a value is required, division by zero).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
}

impl EvalError {
    /// An evaluation error with `message`.
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }
}

impl Expression {
    /// Parses and lowers `source`.
    pub fn compile(source: &str) -> Result<Expression, ExprError> {
        let ast = cel::parser::Parser::default()
            .parse(source)
            .map_err(|e| ExprError {
                message: parse_error_text(&e),
            })?;
        Self::from_ast(&ast, source)
    }

    /// Lowers an already parsed CEL expression; `source` is its text.
    pub fn from_ast(ast: &cel::IdedExpr, source: &str) -> Result<Expression, ExprError> {
        let node = compile::lower(ast)?;
        Ok(Expression {
            source: Arc::from(source),
            node: Arc::new(node),
        })
    }

    /// The expression text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The lowered tree.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Evaluates against `event`.
    #[inline]
    pub fn eval(&self, event: &Event) -> Result<Value, EvalError> {
        eval::eval(&self.node, event)
    }

    /// Evaluates a condition; anything but a boolean is an error.
    #[inline]
    pub fn eval_bool(&self, event: &Event) -> Result<bool, EvalError> {
        match self.eval(event)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::new(format!(
                "condition `{}` produced {} ({}), not a bool",
                self.source,
                other.type_name(),
                crate::json::value_to_json_string(&other)
            ))),
        }
    }

    /// The field path, if the expression is nothing but a field reference.
    pub fn as_path(&self) -> Option<&[Sym]> {
        match &*self.node {
            Node::Field(p) => Some(p),
            _ => None,
        }
    }

    /// The value, if the expression is a constant.
    pub fn constant(&self) -> Option<&Value> {
        match &*self.node {
            Node::Const(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for Expression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Expression, D::Error> {
        let text = String::deserialize(d)?;
        Expression::compile(&text)
            .map_err(|e| serde::de::Error::custom(format!("bad expression `{text}`: {e}")))
    }
}

/// A function call such as `quantile(amount, 0.99)`: the form of aggregate
/// specifications.
#[derive(Clone, Debug)]
pub struct CallSpec {
    /// The function name.
    pub function: String,
    /// The arguments, compiled.
    pub args: Vec<Expression>,
}

/// Parses `source` as a single function call.
pub fn parse_call(source: &str) -> Result<CallSpec, ExprError> {
    let ast = cel::parser::Parser::default()
        .parse(source)
        .map_err(|e| ExprError {
            message: parse_error_text(&e),
        })?;
    match &ast.expr {
        cel::common::ast::Expr::Call(call)
            if call.target.is_none()
                && !call.func_name.starts_with('_')
                && !call.func_name.starts_with('@') =>
        {
            let args = call
                .args
                .iter()
                .map(|a| Expression::from_ast(a, source))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CallSpec {
                function: call.func_name.clone(),
                args,
            })
        }
        _ => Err(ExprError {
            message: format!("`{source}` is not a function call such as `sum(amount)`"),
        }),
    }
}

fn parse_error_text(e: &cel::ParseErrors) -> String {
    e.errors
        .iter()
        .map(|e| format!("column {}: {}", e.pos.1 + 1, e.msg))
        .collect::<Vec<_>>()
        .join("; ")
}
