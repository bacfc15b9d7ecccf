//! Lowering the CEL AST into [`Node`]s.
//!
//! Lowering resolves everything that does not depend on the event: field
//! paths are interned, comprehension variables get fixed slots, function
//! names and argument counts are checked (so evaluation can match argument
//! slices without indexing), and subtrees made only of constants are folded.

use std::fmt;

use cel::common::ast::{
    operators, CallExpr, ComprehensionExpr, EntryExpr, Expr, LiteralValue, SourceInfo,
};
use cel::IdedExpr;

use super::eval;
use super::limits::MAX_NODE_DEPTH;
use super::{EvalError, ExprError};
use crate::event::{Event, Value};
use crate::symbol::Sym;

/// A lowered expression.
#[derive(Clone, Debug)]
pub enum Node {
    /// A constant (literals and folded constant subtrees).
    Const(Value),
    /// A field path (`user.id`); a missing field evaluates to null.
    Field(Vec<Sym>),
    /// The event time (`_time`), in milliseconds.
    Time,
    /// A comprehension variable, by slot.
    Local(usize),
    /// `has(a.b)` on a field path: whether the path is present.
    Has(Vec<Sym>),
    /// Field selection on a computed value (`list[0].name`, `x.name`).
    Select(Box<Node>, Sym),
    /// `has(e.f)` on a computed value.
    HasSelect(Box<Node>, Sym),
    /// The common `field <op> constant` comparison, evaluated without
    /// copying the field's value.
    FieldCmp(Box<FieldCmp>),
    /// A comparison.
    Cmp(CmpOp, Box<Node>, Box<Node>),
    /// An arithmetic operator.
    Arith(ArithOp, Box<Node>, Box<Node>),
    /// A unary operator.
    Unary(UnaryOp, Box<Node>),
    /// `a && b`, with CEL's commutative error semantics.
    And(Box<Node>, Box<Node>),
    /// `a || b`, with CEL's commutative error semantics.
    Or(Box<Node>, Box<Node>),
    /// `c ? a : b`
    Cond(Box<Node>, Box<Node>, Box<Node>),
    /// `a in b` (element of a list, key of a map).
    In(Box<Node>, Box<Node>),
    /// `a[b]` (list element, map value).
    Index(Box<Node>, Box<Node>),
    /// A list literal.
    List(Vec<Node>),
    /// A map literal; keys are string constants.
    Map(Vec<(Sym, Node)>),
    /// A built-in function; the argument count was checked when lowering
    /// (for receiver calls such as `s.contains(t)` the receiver is the first
    /// argument).
    Call(Func, Vec<Node>),
    /// A comprehension, produced by the `all`, `exists`, `exists_one`, `map`
    /// and `filter` macros.
    Comprehension(Box<Comprehension>),
}

/// `field <op> constant`.
#[derive(Clone, Debug)]
pub struct FieldCmp {
    /// The field path.
    pub path: Vec<Sym>,
    /// The comparison, with the field on the left.
    pub op: CmpOp,
    /// The constant.
    pub value: Value,
}

/// A lowered comprehension. Variables live in slots of a per-evaluation
/// scope; nested comprehensions use higher slots.
#[derive(Clone, Debug)]
pub struct Comprehension {
    /// What is iterated: a list (its elements) or a map (its keys).
    pub range: Node,
    /// Slot of the iteration variable.
    pub iter_slot: usize,
    /// Slot of the accumulator.
    pub accu_slot: usize,
    /// Initial accumulator.
    pub init: Node,
    /// Evaluated before each step; iteration stops when it is false.
    pub cond: Node,
    /// The new accumulator.
    pub step: Node,
    /// The comprehension's value, computed from the final accumulator.
    pub result: Node,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            same => same,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+` (numbers, string and list concatenation)
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl ArithOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!a`
    Not,
    /// `-a`
    Neg,
    /// CEL's internal `@not_strictly_false`: true unless the operand is
    /// exactly `false` (errors count as true). Used by macro loop conditions.
    NotStrictlyFalse,
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// `size(x)` / `x.size()`: characters of a string, elements of a list or map.
    Size,
    /// `s.contains(t)`
    Contains,
    /// `s.startsWith(t)`
    StartsWith,
    /// `s.endsWith(t)`
    EndsWith,
    /// `s.lowerAscii()`
    LowerAscii,
    /// `s.upperAscii()`
    UpperAscii,
    /// `s.trim()`: without leading and trailing whitespace.
    Trim,
    /// `int(x)`
    Int,
    /// `double(x)`
    Double,
    /// `string(x)`
    String,
    /// `bool(x)`
    Bool,
    /// `type(x)`: the type name as a string (`"int"`, `"double"`, …).
    Type,
    /// `abs(x)`
    Abs,
    /// `max(a, b, …)` or `max(list)`
    Max,
    /// `min(a, b, …)` or `min(list)`
    Min,
    /// `timestamp("2024-05-01T12:00:00Z")`: milliseconds since the epoch.
    Timestamp,
    /// `duration("5s")`: milliseconds.
    Duration,
    /// `now()`: processing time (the wall clock), milliseconds since the
    /// epoch. Never folded; results using it differ from run to run.
    Now,
}

/// Adds the first name of every field path in `node` to `out` (once each).
pub(crate) fn fields_read(node: &Node, out: &mut Vec<Sym>) {
    let mut path = |p: &[Sym]| {
        if let Some(first) = p.first() {
            if !out.contains(first) {
                out.push(*first);
            }
        }
    };
    match node {
        Node::Field(p) | Node::Has(p) => path(p),
        Node::FieldCmp(c) => path(&c.path),
        Node::Const(_) | Node::Time | Node::Local(_) => {}
        Node::Select(n, _) | Node::HasSelect(n, _) | Node::Unary(_, n) => fields_read(n, out),
        Node::Cmp(_, a, b)
        | Node::Arith(_, a, b)
        | Node::And(a, b)
        | Node::Or(a, b)
        | Node::In(a, b)
        | Node::Index(a, b) => {
            fields_read(a, out);
            fields_read(b, out);
        }
        Node::Cond(c, a, b) => {
            fields_read(c, out);
            fields_read(a, out);
            fields_read(b, out);
        }
        Node::List(items) | Node::Call(_, items) => {
            for n in items {
                fields_read(n, out);
            }
        }
        Node::Map(entries) => {
            for (_, n) in entries {
                fields_read(n, out);
            }
        }
        Node::Comprehension(c) => {
            for n in [&c.range, &c.init, &c.cond, &c.step, &c.result] {
                fields_read(n, out);
            }
        }
    }
}

impl Func {
    /// The function's name in CEL.
    pub fn name(self) -> &'static str {
        match self {
            Func::Size => "size",
            Func::Contains => "contains",
            Func::StartsWith => "startsWith",
            Func::EndsWith => "endsWith",
            Func::LowerAscii => "lowerAscii",
            Func::UpperAscii => "upperAscii",
            Func::Trim => "trim",
            Func::Int => "int",
            Func::Double => "double",
            Func::String => "string",
            Func::Bool => "bool",
            Func::Type => "type",
            Func::Abs => "abs",
            Func::Max => "max",
            Func::Min => "min",
            Func::Timestamp => "timestamp",
            Func::Duration => "duration",
            Func::Now => "now",
        }
    }

    /// Looks a function up by name and call style, returning it with its
    /// accepted argument counts (receiver included).
    fn lookup(name: &str, receiver: bool) -> Option<(Func, usize, usize)> {
        let (f, min, max) = match name {
            "size" => (Func::Size, 1, 1),
            "contains" if receiver => (Func::Contains, 2, 2),
            "startsWith" if receiver => (Func::StartsWith, 2, 2),
            "endsWith" if receiver => (Func::EndsWith, 2, 2),
            "lowerAscii" if receiver => (Func::LowerAscii, 1, 1),
            "upperAscii" if receiver => (Func::UpperAscii, 1, 1),
            "trim" if receiver => (Func::Trim, 1, 1),
            "int" if !receiver => (Func::Int, 1, 1),
            "double" if !receiver => (Func::Double, 1, 1),
            "string" if !receiver => (Func::String, 1, 1),
            "bool" if !receiver => (Func::Bool, 1, 1),
            "type" if !receiver => (Func::Type, 1, 1),
            "abs" if !receiver => (Func::Abs, 1, 1),
            "max" if !receiver => (Func::Max, 1, usize::MAX),
            "min" if !receiver => (Func::Min, 1, usize::MAX),
            "timestamp" if !receiver => (Func::Timestamp, 1, 1),
            "duration" if !receiver => (Func::Duration, 1, 1),
            "now" if !receiver => (Func::Now, 0, 0),
            _ => return None,
        };
        Some((f, min, max))
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Type names that may be written bare on the other side of `type(x) ==`.
const TYPE_NAMES: [&str; 8] = [
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "list",
    "map",
    "null_type",
];

/// Lowering state: where nodes are in the source, and the comprehension
/// variables in scope.
pub(crate) struct Lowerer<'s> {
    source: &'s str,
    info: Option<&'s SourceInfo>,
    /// Variables in scope, innermost last, with their slots.
    scope: Vec<(String, usize)>,
    /// Levels of `lower` now running: the depth of the node being lowered.
    depth: usize,
}

impl<'s> Lowerer<'s> {
    /// A lowerer for `source`; `info` gives node positions for messages.
    pub(crate) fn new(source: &'s str, info: Option<&'s SourceInfo>) -> Lowerer<'s> {
        Lowerer {
            source,
            info,
            scope: Vec::new(),
            depth: 0,
        }
    }

    /// Lowers a parsed CEL expression.
    ///
    /// The tree's depth is bounded by [`MAX_NODE_DEPTH`]: lowering,
    /// evaluating and dropping the tree all recurse once per level, on
    /// worker threads with 2 MiB stacks.
    pub(crate) fn lower(&mut self, e: &IdedExpr) -> Result<Node, ExprError> {
        if self.depth >= MAX_NODE_DEPTH {
            let mut err = self.err(
                e.id,
                &format!("expression nests too deeply (more than {MAX_NODE_DEPTH} levels)"),
            );
            err.message.push_str(
                "; split it into several `map` steps (set a field in one step, use it in the next)",
            );
            return Err(err);
        }
        self.depth += 1;
        let node = self.lower_node(e);
        self.depth -= 1;
        node
    }

    fn lower_node(&mut self, e: &IdedExpr) -> Result<Node, ExprError> {
        let node = match &e.expr {
            Expr::Literal(l) => Node::Const(self.literal(e.id, l)?),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(sel) => {
                let operand = self.lower(&sel.operand)?;
                let field = Sym::intern(&sel.field);
                match (sel.test, operand) {
                    (false, Node::Field(mut path)) => {
                        path.push(field);
                        Node::Field(path)
                    }
                    (true, Node::Field(mut path)) => {
                        path.push(field);
                        Node::Has(path)
                    }
                    (false, Node::Time) | (true, Node::Time) => {
                        return Err(self.err(e.id, "`_time` is an int and has no fields"))
                    }
                    (false, other) => Node::Select(Box::new(other), field),
                    (true, other) => Node::HasSelect(Box::new(other), field),
                }
            }
            Expr::Call(call) => self.call(e.id, call)?,
            Expr::List(list) => {
                if !list.optional_indices.is_empty() {
                    return Err(self.err(e.id, "optional list elements are not supported"));
                }
                Node::List(
                    list.elements
                        .iter()
                        .map(|x| self.lower(x))
                        .collect::<Result<_, _>>()?,
                )
            }
            Expr::Map(map) => {
                let mut entries = Vec::with_capacity(map.entries.len());
                for entry in &map.entries {
                    let EntryExpr::MapEntry(me) = &entry.expr else {
                        return Err(self.err(entry.id, "struct fields are not supported"));
                    };
                    if me.optional {
                        return Err(self.err(entry.id, "optional map entries are not supported"));
                    }
                    // Event maps are keyed by interned names, so keys must be
                    // known now: interning keys computed from events would let
                    // a stream grow the symbol table.
                    let key = match self.lower(&me.key)? {
                        Node::Const(Value::Str(s)) => Sym::intern(&s),
                        _ => {
                            return Err(
                                self.err(me.key.id, "map literal keys must be string constants")
                            )
                        }
                    };
                    entries.push((key, self.lower(&me.value)?));
                }
                Node::Map(entries)
            }
            Expr::Comprehension(c) => self.comprehension(e.id, c)?,
            Expr::Struct(s) => {
                return Err(self.err(
                    e.id,
                    &format!(
                        "message construction (`{} {{…}}`) is not supported",
                        s.type_name
                    ),
                ))
            }
            Expr::Unspecified => return Err(self.err(e.id, "incomplete expression")),
        };
        fold(node).map_err(|m| self.err(e.id, &m.message))
    }

    fn ident(&self, name: &str) -> Node {
        if let Some((_, slot)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Node::Local(*slot);
        }
        if name == "_time" {
            return Node::Time;
        }
        Node::Field(vec![Sym::intern(name)])
    }

    fn literal(&self, id: u64, l: &LiteralValue) -> Result<Value, ExprError> {
        Ok(match l {
            LiteralValue::Boolean(b) => Value::Bool(*b.inner()),
            LiteralValue::Int(i) => Value::Int(*i.inner()),
            LiteralValue::UInt(u) => {
                Value::Int(i64::try_from(*u.inner()).map_err(|_| {
                    self.err(id, "unsigned literals above 2^63-1 are not supported")
                })?)
            }
            LiteralValue::Double(d) if d.inner().is_finite() => Value::Float(*d.inner()),
            LiteralValue::Double(_) => {
                return Err(self.err(id, "double literal out of range (it would be infinite)"))
            }
            LiteralValue::String(s) => Value::str(s.inner()),
            LiteralValue::Null => Value::Null,
            LiteralValue::Bytes(_) => return Err(self.err(id, "bytes literals are not supported")),
        })
    }

    fn call(&mut self, id: u64, call: &CallExpr) -> Result<Node, ExprError> {
        let name = call.func_name.as_str();
        if call.target.is_none() {
            match name {
                operators::LOGICAL_AND | operators::LOGICAL_OR => {
                    let [a, b] = self.args2(id, call)?;
                    return Ok(if name == operators::LOGICAL_AND {
                        Node::And(a, b)
                    } else {
                        Node::Or(a, b)
                    });
                }
                operators::LOGICAL_NOT => {
                    return Ok(Node::Unary(UnaryOp::Not, self.arg1(id, call)?))
                }
                operators::NEGATE => return Ok(Node::Unary(UnaryOp::Neg, self.arg1(id, call)?)),
                operators::NOT_STRICTLY_FALSE => {
                    return Ok(Node::Unary(UnaryOp::NotStrictlyFalse, self.arg1(id, call)?))
                }
                operators::ADD => return self.arith(id, call, ArithOp::Add),
                operators::SUBSTRACT => return self.arith(id, call, ArithOp::Sub),
                operators::MULTIPLY => return self.arith(id, call, ArithOp::Mul),
                operators::DIVIDE => return self.arith(id, call, ArithOp::Div),
                operators::MODULO => return self.arith(id, call, ArithOp::Rem),
                operators::EQUALS => return self.cmp(id, call, CmpOp::Eq),
                operators::NOT_EQUALS => return self.cmp(id, call, CmpOp::Ne),
                operators::LESS => return self.cmp(id, call, CmpOp::Lt),
                operators::LESS_EQUALS => return self.cmp(id, call, CmpOp::Le),
                operators::GREATER => return self.cmp(id, call, CmpOp::Gt),
                operators::GREATER_EQUALS => return self.cmp(id, call, CmpOp::Ge),
                operators::IN => {
                    let [a, b] = self.args2(id, call)?;
                    return Ok(Node::In(a, b));
                }
                operators::INDEX => {
                    let [a, b] = self.args2(id, call)?;
                    // `a["b"]` on a field path is the path `a.b`: resolved now
                    // like any other field reference.
                    return Ok(match (*a, *b) {
                        (Node::Field(mut path), Node::Const(Value::Str(k))) => {
                            path.push(Sym::intern(&k));
                            Node::Field(path)
                        }
                        (a, b) => Node::Index(Box::new(a), Box::new(b)),
                    });
                }
                operators::CONDITIONAL => {
                    let [c, a, b] = match call.args.as_slice() {
                        [c, a, b] => [c, a, b],
                        _ => return Err(self.arity_err(id, "?:", 3, call.args.len())),
                    };
                    return Ok(Node::Cond(
                        Box::new(self.lower(c)?),
                        Box::new(self.lower(a)?),
                        Box::new(self.lower(b)?),
                    ));
                }
                operators::OPT_INDEX | operators::OPT_SELECT => {
                    return Err(self.err(id, "optional field access (`?.`, `[?`) is not supported"))
                }
                _ => {}
            }
        }
        if name == "matches" {
            return Err(self.err_call(
                id,
                name,
                "function `matches` (regular expressions) is not supported: Eddy is built \
                 without a regex engine; use contains(), startsWith() or endsWith()",
            ));
        }
        let receiver = call.target.is_some();
        let Some((func, min, max)) = Func::lookup(name, receiver) else {
            let how = if receiver {
                format!("unknown method `.{name}()`")
            } else if name.starts_with('_') || name.starts_with('@') {
                format!("operator `{name}` is not supported")
            } else {
                format!("unknown function `{name}`")
            };
            return Err(self.err_call(id, name, &how));
        };
        let mut args = Vec::with_capacity(call.args.len() + 1);
        if let Some(t) = &call.target {
            args.push(self.lower(t)?);
        }
        for a in &call.args {
            args.push(self.lower(a)?);
        }
        if args.len() < min || args.len() > max {
            let expected = match (min, max, receiver) {
                (1, 1, true) => "no arguments".to_string(),
                (2, 2, true) => "1 argument".to_string(),
                (1, usize::MAX, _) => "at least 1 argument".to_string(),
                (n, _, _) => format!("{n} argument{}", if n == 1 { "" } else { "s" }),
            };
            let given = args.len() - usize::from(receiver);
            return Err(self.err_call(
                id,
                name,
                &format!("`{name}` takes {expected}, {given} given"),
            ));
        }
        let node = fold(Node::Call(func, args)).map_err(|m| self.err_call(id, name, &m.message))?;
        // Timestamps and durations are almost always written as literals: a
        // bad one is reported now rather than on every event.
        if let Node::Call(Func::Timestamp | Func::Duration, args) = &node {
            if let [Node::Const(_)] = args.as_slice() {
                if let Err(e) = eval::eval_value(&node, &Event::default()) {
                    return Err(self.err_call(id, name, &e.message));
                }
            }
        }
        Ok(node)
    }

    fn arith(&mut self, id: u64, call: &CallExpr, op: ArithOp) -> Result<Node, ExprError> {
        let [a, b] = self.args2(id, call)?;
        Ok(Node::Arith(op, a, b))
    }

    fn cmp(&mut self, id: u64, call: &CallExpr, op: CmpOp) -> Result<Node, ExprError> {
        let [ea, eb] = match call.args.as_slice() {
            [a, b] => [a, b],
            _ => return Err(self.arity_err(id, op.symbol(), 2, call.args.len())),
        };
        let mut a = self.lower(ea)?;
        let mut b = self.lower(eb)?;
        // CEL spells types as identifiers (`type(x) == int`); Eddy's type()
        // returns names, so a bare type name next to type() is that name.
        if matches!(op, CmpOp::Eq | CmpOp::Ne) {
            if is_type_call(ea) {
                if let Some(t) = self.type_ident(eb) {
                    b = Node::Const(Value::str(t));
                }
            } else if is_type_call(eb) {
                if let Some(t) = self.type_ident(ea) {
                    a = Node::Const(Value::str(t));
                }
            }
        }
        Ok(match (a, b) {
            (Node::Field(path), Node::Const(value)) => {
                Node::FieldCmp(Box::new(FieldCmp { path, op, value }))
            }
            (Node::Const(value), Node::Field(path)) => Node::FieldCmp(Box::new(FieldCmp {
                path,
                op: op.flip(),
                value,
            })),
            (a, b) => Node::Cmp(op, Box::new(a), Box::new(b)),
        })
    }

    fn type_ident<'e>(&self, e: &'e IdedExpr) -> Option<&'e str> {
        match &e.expr {
            Expr::Ident(name)
                if TYPE_NAMES.contains(&name.as_str())
                    && !self.scope.iter().any(|(n, _)| n == name) =>
            {
                Some(name)
            }
            _ => None,
        }
    }

    fn comprehension(&mut self, id: u64, c: &ComprehensionExpr) -> Result<Node, ExprError> {
        if c.iter_var2.is_some() {
            return Err(self.err(id, "two-variable comprehensions are not supported"));
        }
        // Range and initial value are evaluated outside the loop, so they
        // see only the enclosing scope.
        let range = self.lower(&c.iter_range)?;
        let init = self.lower(&c.accu_init)?;
        let depth = self.scope.len();
        let accu_slot = depth;
        let iter_slot = depth + 1;
        // The body's scope is unwound here whether or not it lowered.
        let body = self.comprehension_body(c, accu_slot, iter_slot);
        self.scope.truncate(depth);
        let (cond, step, result) = body?;
        Ok(Node::Comprehension(Box::new(Comprehension {
            range,
            iter_slot,
            accu_slot,
            init,
            cond,
            step,
            result,
        })))
    }

    /// Lowers a comprehension's condition, step (accumulator and iteration
    /// variable in scope) and result (accumulator only).
    fn comprehension_body(
        &mut self,
        c: &ComprehensionExpr,
        accu_slot: usize,
        iter_slot: usize,
    ) -> Result<(Node, Node, Node), ExprError> {
        self.scope.push((c.accu_var.clone(), accu_slot));
        self.scope.push((c.iter_var.clone(), iter_slot));
        let cond = self.lower(&c.loop_cond)?;
        let step = self.lower(&c.loop_step)?;
        self.scope.pop();
        let result = self.lower(&c.result)?;
        Ok((cond, step, result))
    }

    fn arg1(&mut self, id: u64, call: &CallExpr) -> Result<Box<Node>, ExprError> {
        match call.args.as_slice() {
            [a] => Ok(Box::new(self.lower(a)?)),
            _ => Err(self.arity_err(id, &call.func_name, 1, call.args.len())),
        }
    }

    fn args2(&mut self, id: u64, call: &CallExpr) -> Result<[Box<Node>; 2], ExprError> {
        match call.args.as_slice() {
            [a, b] => Ok([Box::new(self.lower(a)?), Box::new(self.lower(b)?)]),
            _ => Err(self.arity_err(id, &call.func_name, 2, call.args.len())),
        }
    }

    fn arity_err(&self, id: u64, op: &str, expected: usize, given: usize) -> ExprError {
        self.err(
            id,
            &format!("operator `{op}` takes {expected} operands, {given} given"),
        )
    }

    /// An error about node `id`, with its position in the expression.
    fn err(&self, id: u64, what: &str) -> ExprError {
        let message = match self.position(id) {
            Some((1, col)) => format!("{what} at column {col}"),
            Some((line, col)) => format!("{what} at line {line}, column {col}"),
            None => what.to_string(),
        };
        ExprError { message }
    }

    /// An error about the call of `name` (node `id`), placed at the name.
    fn err_call(&self, id: u64, name: &str, what: &str) -> ExprError {
        let message = match self.position_of(self.call_start(id, name)) {
            Some((1, col)) => format!("{what} at column {col}"),
            Some((line, col)) => format!("{what} at line {line}, column {col}"),
            None => what.to_string(),
        };
        ExprError { message }
    }

    /// Where the name of a call starts: the parser places calls at their
    /// opening parenthesis, which follows the name.
    fn call_start(&self, id: u64, name: &str) -> Option<usize> {
        let (start, _) = self.info?.offset_for(id)?;
        let start = start as usize;
        let name_start = start.checked_sub(name.len());
        Some(match name_start {
            Some(s) if self.source.get(s..start) == Some(name) => s,
            _ => start,
        })
    }

    /// 1-based line and column (in characters) of node `id`.
    fn position(&self, id: u64) -> Option<(usize, usize)> {
        let (start, _) = self.info?.offset_for(id)?;
        self.position_of(Some(start as usize))
    }

    /// 1-based line and column of byte offset `start` (the parser's offsets
    /// are in bytes).
    fn position_of(&self, start: Option<usize>) -> Option<(usize, usize)> {
        Some(crate::config::line_col(self.source, start?))
    }
}

fn is_type_call(e: &IdedExpr) -> bool {
    matches!(&e.expr, Expr::Call(c) if c.target.is_none() && c.func_name == "type")
}

fn is_const(n: &Node) -> bool {
    matches!(n, Node::Const(_))
}

/// Replaces a node whose operands are all constants by its value. Children
/// are folded first (lowering is bottom-up), so only direct operands need
/// checking. A subtree that fails is kept: it may never be evaluated (`false
/// && 1/0 > 2`), and if it is, the error is reported then, per event. The
/// exception is a double that would be NaN or infinite (`1.0 / 0.0`,
/// `1e308 * 10.0`): written as constants, that is a mistake in the
/// expression, returned for the caller to make a compile error of.
fn fold(node: Node) -> Result<Node, EvalError> {
    let foldable = match &node {
        Node::Const(_)
        | Node::Field(_)
        | Node::Time
        | Node::Local(_)
        | Node::Has(_)
        | Node::FieldCmp(_)
        | Node::Comprehension(_)
        | Node::Call(Func::Now, _) => false,
        Node::Select(a, _) | Node::HasSelect(a, _) | Node::Unary(_, a) => is_const(a),
        Node::Cmp(_, a, b)
        | Node::Arith(_, a, b)
        | Node::And(a, b)
        | Node::Or(a, b)
        | Node::In(a, b)
        | Node::Index(a, b) => is_const(a) && is_const(b),
        Node::Cond(c, a, b) => is_const(c) && is_const(a) && is_const(b),
        Node::List(items) | Node::Call(_, items) => items.iter().all(is_const),
        Node::Map(entries) => entries.iter().all(|(_, v)| is_const(v)),
    };
    if !foldable {
        return Ok(node);
    }
    match eval::eval_value(&node, &Event::default()) {
        Ok(v) => Ok(Node::Const(v)),
        Err(e) if e.non_finite => Err(e),
        Err(_) => Ok(node),
    }
}
