//! Expressions in CEL (the Common Expression Language).
//!
//! Expressions are parsed once, when a pipeline is compiled, with the `cel`
//! crate's parser, then lowered to an [`Expression`]: a tree whose field
//! references are already interned [`Sym`] paths, evaluated directly against
//! an [`Event`] without building CEL values. Event fields are top-level
//! identifiers (`amount > 10 && user.country != "AR"`); `_time` is the
//! event time in milliseconds.
//!
//! # The supported subset
//!
//! - Literals: `true`, `42`, `42u` (as int), `1.5`, `"text"`, `null`, lists
//!   `[1, 2]` and maps `{"k": v}` (keys must be string constants).
//! - Field paths `a.b.c`, also `a["b"]`. **A missing field evaluates to
//!   `null`**, as does selecting or indexing into a missing value or a
//!   non-map; `has(a.b)` tests presence (a field holding JSON `null` is
//!   present). `_time` is the event time.
//! - Arithmetic `+ - * / %`: int with int stays int and fails on overflow and
//!   division by zero; a mix of int and double gives a double; `+` also joins
//!   strings and lists. Arithmetic on a missing field fails with "field
//!   `amount` is missing or null".
//! - **Values never hold NaN or ±infinity.** JSON input cannot carry them,
//!   and any operation whose double result would not be finite fails with a
//!   reason naming the operation: division or modulus by zero (`1.0 / 0.0`,
//!   `0.0 / 0.0`), overflow (`1e308 * 10.0`), `double("inf")`,
//!   `double("nan")`. On an event that sends it to dead letters; in a
//!   subexpression made only of constants it is a compile error.
//! - Comparisons: `==`/`!=` between any values (`1 == 1.0`, `x == null`);
//!   `< <= > >=` between numbers (int and double mixed, exactly), strings or
//!   bools; ordering other types is an error.
//! - `&&`, `||` with CEL's commutative semantics (`false && error` is
//!   `false`, `true || error` is `true`), `!`, unary `-`, `c ? a : b`,
//!   `x in list`, `key in map`, `list[i]`, `map["k"]`.
//! - Functions: `size`, `s.contains(t)`, `s.startsWith(t)`, `s.endsWith(t)`,
//!   `s.lowerAscii()`, `s.upperAscii()`, `s.trim()`, `int`, `double`,
//!   `string`, `bool`, `type` (returns the type name as a string: `type(x) ==
//!   "int"`, and `type(x) == int` is accepted too), `abs`, `max`/`min` (of
//!   arguments or of a list), `timestamp("2024-05-01T12:00:00Z")` and
//!   `duration("5s")`.
//! - Macros `all`, `exists`, `exists_one`, `map`, `filter` over lists (maps
//!   iterate their keys). An error inside a macro's body fails the whole
//!   macro, unless the loop already stopped (`exists` found an element).
//!
//! **Timestamps and durations are int milliseconds** in Eddy: `_time >
//! timestamp("2024-05-01T00:00:00Z")` and `_time - start < duration("5m")`
//! are integer comparisons. `matches` (regular expressions), bytes, unsigned
//! arithmetic, message construction and optional syntax are not supported
//! and rejected when the pipeline is compiled, with the column of the
//! construct. Subexpressions made only of constants are computed once, when
//! compiling.
//!
//! # Limits
//!
//! An expression is at most [`MAX_EXPR_LEN`] bytes, and its estimated tree
//! depth (operator chains plus bracket nesting) at most [`MAX_EXPR_DEPTH`],
//! checked lexically before parsing; the lowered tree is at most
//! [`MAX_NODE_DEPTH`] deep. Every stage recurses per level, so these bounds
//! keep compiling and evaluating within a worker thread's stack.

mod compile;
mod eval;
mod limits;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use crate::event::{Event, Value};
use crate::symbol::Sym;

pub use compile::{ArithOp, CmpOp, Comprehension, FieldCmp, Func, Node, UnaryOp};
pub use eval::compare;
pub use limits::{MAX_EXPR_DEPTH, MAX_EXPR_LEN, MAX_NODE_DEPTH};

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
    /// Whether a double result would have been NaN or infinite: such a
    /// constant subexpression is a compile error, not a per-event one.
    pub(crate) non_finite: bool,
}

impl EvalError {
    /// An evaluation error with `message`.
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
            non_finite: false,
        }
    }

    /// A double result that would not be finite; `message` names the
    /// operation.
    pub(crate) fn non_finite(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
            non_finite: true,
        }
    }
}

impl Expression {
    /// Parses and lowers `source`.
    ///
    /// Errors name the construct and its column: `unknown function `foo` at
    /// column 12`.
    pub fn compile(source: &str) -> Result<Expression, ExprError> {
        let (ast, info) = parse(source)?;
        Self::from_parsed(&ast, source, &info)
    }

    /// Lowers an already parsed CEL expression; `source` is its text. Errors
    /// carry no position; see [`Expression::from_parsed`].
    pub fn from_ast(ast: &cel::IdedExpr, source: &str) -> Result<Expression, ExprError> {
        Self::lower(ast, source, None)
    }

    /// Lowers an expression parsed with
    /// `cel::parser::Parser::parse_with_source_info`; `info` places errors
    /// in `source`. `ast` may be any subexpression of that parse.
    pub fn from_parsed(
        ast: &cel::IdedExpr,
        source: &str,
        info: &cel::common::ast::SourceInfo,
    ) -> Result<Expression, ExprError> {
        Self::lower(ast, source, Some(info))
    }

    fn lower(
        ast: &cel::IdedExpr,
        source: &str,
        info: Option<&cel::common::ast::SourceInfo>,
    ) -> Result<Expression, ExprError> {
        let node = compile::Lowerer::new(source, info).lower(ast)?;
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
        self.eval_ref(event).map(Cow::into_owned)
    }

    /// Evaluates against `event`, borrowing the result from the event or
    /// the expression when it is a field or a constant: no reference count
    /// is touched for those.
    #[inline]
    pub fn eval_ref<'a>(&'a self, event: &'a Event) -> Result<Cow<'a, Value>, EvalError> {
        eval::eval(&self.node, &mut eval::Cx::new(event))
    }

    /// Evaluates a condition; anything but a boolean is an error.
    #[inline]
    pub fn eval_bool(&self, event: &Event) -> Result<bool, EvalError> {
        match &*self.eval_ref(event)? {
            Value::Bool(b) => Ok(*b),
            other => Err(EvalError::new(format!(
                "condition `{}` produced {} ({}), not a bool",
                excerpt(&self.source),
                other.type_name(),
                crate::json::value_to_json_string(other)
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

    /// The top-level fields the expression reads (the first name of each
    /// field path), each once, in order of appearance: what a source may
    /// keep for it when it decodes only what the pipeline uses.
    pub fn fields_read(&self) -> Vec<Sym> {
        let mut out = Vec::new();
        compile::fields_read(&self.node, &mut out);
        out
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
        Expression::compile(&text).map_err(|e| {
            serde::de::Error::custom(format!("bad expression `{}`: {e}", excerpt(&text)))
        })
    }
}

/// The start of an expression's text for a message: at most 80 characters,
/// so a config error about a 20 KB expression stays readable (the column
/// in the message points into the whole text).
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 80;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
        None => text.into(),
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
    let (ast, info) = parse(source)?;
    match &ast.expr {
        cel::common::ast::Expr::Call(call)
            if call.target.is_none()
                && !call.func_name.starts_with('_')
                && !call.func_name.starts_with('@') =>
        {
            let args = call
                .args
                .iter()
                .map(|a| Expression::from_parsed(a, source, &info))
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

fn parse(source: &str) -> Result<(cel::IdedExpr, cel::common::ast::SourceInfo), ExprError> {
    // The parser and everything after it recurse once per tree level: the
    // text is checked first so that none of them can run out of stack.
    limits::check_source(source)?;
    cel::parser::Parser::default()
        .parse_with_source_info(source)
        .map_err(|e| ExprError {
            message: parse_error_text(&e),
        })
}

fn parse_error_text(e: &cel::ParseErrors) -> String {
    e.errors
        .iter()
        // The parser's positions are 1-based (line, column).
        .map(|e| match e.pos {
            (line, col) if line > 1 => format!("line {line}, column {col}: {}", e.msg),
            (_, col) => format!("column {col}: {}", e.msg),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
