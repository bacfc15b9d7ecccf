//! Size and depth limits of expressions, checked before parsing.
//!
//! The CEL parser, its tree visitor, lowering, evaluation and `Drop` all
//! recurse once per level of the expression tree, and a left-associative
//! operator chain (`a + a + … + a`, `a.b.c`, `a[0][0]`, `s.trim().trim()`)
//! is one level per operator. A few thousand levels overflow a thread's
//! stack, which aborts the process, so the depth is bounded before any of
//! them runs: [`check_source`] scans the text lexically (skipping string
//! literals and comments exactly as the CEL lexer does) and estimates an
//! upper bound of the tree depth; lowering checks the real depth of its own
//! tree again ([`MAX_NODE_DEPTH`]).
//!
//! The limits are fixed, not configurable: they protect the stack of the
//! threads that compile and evaluate expressions (worker threads have the
//! default 2 MiB). Measured on 2 MiB stacks, a test (unoptimised) build
//! overflows at about 216 levels of operator chain and 249 levels of
//! bracket nesting, an optimised build at about 1,400 levels of chain (our
//! lowering) and 249 levels of nesting (the parser); the limits below keep
//! every build at least twice, and an optimised build five times, below that.

use super::ExprError;

/// The longest expression accepted, in bytes (256 KiB). Parsing takes
/// about 400 bytes of memory per byte of text, so this bounds a compile at
/// about 100 MiB; a list of 10,000 strings of 20 characters fits.
pub const MAX_EXPR_LEN: usize = 256 * 1024;

/// The largest estimated tree depth of an expression: each operator of a
/// chain (`+ - * / % < <= > >= == != in !`, member `.x`, a call or index
/// following another) counts 1, each level of brackets (`(…)`, `[…]`,
/// `{…}`, call arguments) counts 2, each `?:` counts 1, and a chain of
/// `&&`/`||` counts the depth of the balanced tree it becomes (log2 of its
/// length). Elements of a list or map, and call arguments, are side by
/// side, not nested: `x in ["a", "b", …]` with 10,000 elements is fine.
pub const MAX_EXPR_DEPTH: usize = 90;

/// The deepest lowered expression tree accepted, in nodes from the root to
/// a leaf. Macros (`all`, `map`, …) expand into a few more levels than their
/// text, so this is checked again while lowering; it leaves room for every
/// text within [`MAX_EXPR_DEPTH`] without macros.
pub const MAX_NODE_DEPTH: usize = 100;

/// How much one level of brackets counts against [`MAX_EXPR_DEPTH`]: the
/// parser spends several times more stack on it than on a chained operator.
const BRACKET_WEIGHT: usize = 2;

/// The hint every limit error ends with.
const HINT: &str =
    "split it into several `map` steps (set a field in one step, use it in the next)";

/// Checks `source` against [`MAX_EXPR_LEN`] and [`MAX_EXPR_DEPTH`] without
/// parsing it. Errors name the column where the bound is exceeded.
pub(crate) fn check_source(source: &str) -> Result<(), ExprError> {
    if source.len() > MAX_EXPR_LEN {
        return Err(limit_error(
            source,
            MAX_EXPR_LEN,
            &format!(
                "expression is {} bytes long, more than the limit of {MAX_EXPR_LEN}",
                source.len()
            ),
        ));
    }
    let mut scan = Scan::default();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        i = scan.token(bytes, i);
        if scan.estimate() > MAX_EXPR_DEPTH {
            return Err(limit_error(
                source,
                start,
                &format!(
                    "expression nests too deeply (operator chains and brackets deeper than \
                     the limit of {MAX_EXPR_DEPTH})"
                ),
            ));
        }
    }
    Ok(())
}

fn limit_error(source: &str, offset: usize, what: &str) -> ExprError {
    let message = match crate::config::line_col(source, offset) {
        (1, col) => format!("{what} at column {col}; {HINT}"),
        (line, col) => format!("{what} at line {line}, column {col}; {HINT}"),
    };
    ExprError { message }
}

/// One `expr` between separators (`,`, `:` of a map entry) inside a level
/// of brackets.
#[derive(Clone, Copy, Default)]
struct Segment {
    /// Operators of the current relation/arithmetic chain.
    chain: usize,
    /// The longest chain so far.
    max_chain: usize,
    /// Terms of `&&`/`||` so far (they become a balanced tree).
    logic: usize,
    /// `?` seen (each nests the rest).
    ternary: usize,
    /// The deepest closed bracket level inside this segment.
    max_child: usize,
}

impl Segment {
    /// The depth of this segment's own operators (without its children).
    fn own(&self) -> usize {
        let logic = usize::BITS - self.logic.leading_zeros();
        self.max_chain + self.ternary + logic as usize
    }

    fn chain_op(&mut self) {
        self.chain += 1;
        self.max_chain = self.max_chain.max(self.chain);
    }
}

/// One open level of brackets.
#[derive(Clone, Copy, Default)]
struct Level {
    seg: Segment,
    /// The deepest finished segment of this level.
    max_seg: usize,
}

/// The lexical scan's state: the open bracket levels, innermost last, and
/// the sum of the outer levels' depths (frozen while an inner one is open).
#[derive(Default)]
struct Scan {
    levels: Vec<Level>,
    root: Level,
    outer: usize,
    /// Whether the previous token was `)` or `]` (a postfix `[`/`(` then
    /// chains).
    after_close: bool,
}

impl Scan {
    fn top(&mut self) -> &mut Level {
        self.levels.last_mut().unwrap_or(&mut self.root)
    }

    /// The current upper estimate of the depth at this point.
    fn estimate(&self) -> usize {
        let top = self.levels.last().unwrap_or(&self.root);
        self.outer + top.seg.own() + top.seg.max_child
    }

    /// Scans the token at `i`; returns where the next one starts.
    fn token(&mut self, b: &[u8], i: usize) -> usize {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let end = match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0c => return i + 1,
            b'/' if next == Some(b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
                return end;
            }
            b'"' | b'\'' => match string_end(b, i) {
                Some(end) => end,
                // The lexer skips a character it cannot match and goes on.
                None => i + 1,
            },
            b'`' => match b[i + 1..].iter().position(|&c| !is_esc_ident(c)) {
                Some(p) if p > 0 && b[i + 1 + p] == b'`' => i + p + 2,
                _ => i + 1,
            },
            b'0'..=b'9' => number_end(b, i),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => number_end(b, i),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                if let Some(end) = prefixed_string_end(b, i) {
                    end
                } else {
                    let end = b[i..]
                        .iter()
                        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
                        .map_or(b.len(), |p| i + p);
                    if b[i..end] == *b"in" {
                        self.top().seg.chain_op();
                    }
                    end
                }
            }
            b'(' | b'[' | b'{' => {
                // `a[0][1]`, `f(x)(y)`: a bracket right after a closing one
                // adds a level to the chain; after a name it is covered by
                // the bracket's own weight.
                if self.after_close {
                    self.top().seg.chain_op();
                }
                let parent = self.top().seg.own();
                self.outer += parent + BRACKET_WEIGHT;
                self.levels.push(Level::default());
                self.after_close = false;
                return i + 1;
            }
            b')' | b']' | b'}' => {
                if let Some(closed) = self.levels.pop() {
                    let depth = closed.max_seg.max(closed.seg.own() + closed.seg.max_child);
                    let parent = self.top().seg.own();
                    self.outer = self.outer.saturating_sub(parent + BRACKET_WEIGHT);
                    let top = self.top();
                    top.seg.max_child = top.seg.max_child.max(depth + BRACKET_WEIGHT);
                }
                self.after_close = true;
                return i + 1;
            }
            b',' | b':' => {
                // Side by side: a new segment of the same level. (The `:`
                // of `?:` is counted by its `?`.)
                let top = self.top();
                let done = top.seg.own() + top.seg.max_child;
                if c == b',' || top.seg.ternary == 0 {
                    top.max_seg = top.max_seg.max(done);
                    let keep = top.max_seg;
                    *top = Level {
                        seg: Segment::default(),
                        max_seg: keep,
                    };
                } else {
                    top.seg.chain = 0;
                }
                i + 1
            }
            b'?' => {
                let seg = &mut self.top().seg;
                seg.ternary += 1;
                seg.chain = 0;
                i + 1
            }
            b'&' | b'|' if next == Some(c) => {
                let seg = &mut self.top().seg;
                seg.logic = seg.logic.max(1) + 1;
                seg.chain = 0;
                i + 2
            }
            b'=' | b'!' | b'<' | b'>' if next == Some(b'=') => {
                self.top().seg.chain_op();
                i + 2
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'!' | b'.' => {
                self.top().seg.chain_op();
                i + 1
            }
            // Anything else is a lexer error; the parser reports it.
            _ => i + 1,
        };
        self.after_close = false;
        end
    }
}

fn is_esc_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/' | b' ')
}

/// The end of the number at `i` (`12`, `1.5e-3`, `.5`, `0x1F`, `3u`).
fn number_end(b: &[u8], i: usize) -> usize {
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        let mut j = i + 2;
        while b.get(j).is_some_and(u8::is_ascii_hexdigit) {
            j += 1;
        }
        return j + usize::from(matches!(b.get(j), Some(b'u' | b'U')));
    }
    let mut j = digits(i);
    if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j = digits(j + 1);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(b.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if b.get(k).is_some_and(u8::is_ascii_digit) {
            j = digits(k);
        }
    }
    j + usize::from(matches!(b.get(j), Some(b'u' | b'U')))
}

/// A string with a `b`, `r`, `br`, … prefix at `i`, if one is there and
/// complete.
fn prefixed_string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(b.get(j), Some(b'b' | b'B')) {
        j += 1;
    }
    let raw = matches!(b.get(j), Some(b'r' | b'R'));
    if raw {
        j += 1;
    }
    if j == i || !matches!(b.get(j), Some(b'"' | b'\'')) {
        return None;
    }
    if raw {
        raw_string_end(b, j)
    } else {
        string_end(b, j)
    }
}

/// The end of the (non-raw) string literal whose quote is at `q`, as the
/// CEL lexer matches it, or `None` when it is not a complete literal.
fn string_end(b: &[u8], q: usize) -> Option<usize> {
    let quote = b[q];
    let triple = b.get(q + 1) == Some(&quote) && b.get(q + 2) == Some(&quote);
    if triple {
        let mut j = q + 3;
        while j < b.len() {
            if b[j] == quote && b.get(j + 1) == Some(&quote) && b.get(j + 2) == Some(&quote) {
                return Some(j + 3);
            }
            j = if b[j] == b'\\' {
                match escape_end(b, j) {
                    Some(end) => end,
                    // A bad escape: the lexer's longest match is `""`.
                    None => return Some(q + 2),
                }
            } else {
                j + 1
            };
        }
        // An unfinished triple quote lexes as an empty string, then a quote.
        return Some(q + 2);
    }
    let mut j = q + 1;
    while j < b.len() {
        match b[j] {
            c if c == quote => return Some(j + 1),
            b'\n' | b'\r' => return None,
            b'\\' => j = escape_end(b, j)?,
            _ => j += 1,
        }
    }
    None
}

/// The end of the raw string literal whose quote is at `q`.
fn raw_string_end(b: &[u8], q: usize) -> Option<usize> {
    let quote = b[q];
    let triple = b.get(q + 1) == Some(&quote) && b.get(q + 2) == Some(&quote);
    if triple {
        let close = [quote; 3];
        if let Some(p) = b[q + 3..].windows(3).position(|w| w == close) {
            return Some(q + 3 + p + 3);
        }
        return Some(q + 2);
    }
    let p = b[q + 1..]
        .iter()
        .position(|&c| c == quote || c == b'\n' || c == b'\r')?;
    (b[q + 1 + p] == quote).then_some(q + 1 + p + 1)
}

/// The end of the escape sequence at `j` (a backslash), or `None` when it is
/// not one the lexer accepts (which ends the literal as unmatched).
fn escape_end(b: &[u8], j: usize) -> Option<usize> {
    let hex = |from: usize, n: usize| {
        (b.len() >= from + n && b[from..from + n].iter().all(u8::is_ascii_hexdigit))
            .then_some(from + n)
    };
    match b.get(j + 1)? {
        b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'"' | b'\'' | b'\\' | b'?' | b'`' => {
            Some(j + 2)
        }
        b'0'..=b'3' => {
            let ok = b.get(j + 2).is_some_and(|c| (b'0'..=b'7').contains(c))
                && b.get(j + 3).is_some_and(|c| (b'0'..=b'7').contains(c));
            ok.then_some(j + 4)
        }
        b'x' | b'X' => hex(j + 2, 2),
        b'u' => hex(j + 2, 4),
        b'U' => hex(j + 2, 8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::{Event, Fields, Value};
    use crate::expr::Expression;
    use crate::symbol::Sym;

    fn chain(op: &str, n: usize) -> String {
        let mut s = "a".to_string();
        for _ in 1..n {
            push_op(&mut s, op);
        }
        s
    }

    /// Appends `op` and, unless it is postfix (`[0]`, `.size()`), an operand.
    fn push_op(s: &mut String, op: &str) {
        s.push_str(op);
        if !op.ends_with(']') && !op.ends_with(')') {
            s.push('a');
        }
    }

    fn event() -> Event {
        let mut f = Fields::default();
        f.push(Sym::intern("a"), Value::Int(1));
        f.push(Sym::intern("s"), Value::str(" x "));
        f.push(Sym::intern("b"), Value::Bool(true));
        Event::new(0, f)
    }

    /// Runs `f` on a thread with the 2 MiB stack of Eddy's worker threads.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn long_chains_are_errors_with_the_column_not_crashes() {
        for op in [" + ", " - ", " * ", " == ", " in ", ".", "[0]", ".trim()"] {
            let src = chain(op, 5000);
            let err = Expression::compile(&src).unwrap_err().message;
            assert!(err.contains("nests too deeply"), "{op}: {err}");
            assert!(err.contains("at column "), "{op}: {err}");
            assert!(err.contains("several `map` steps"), "{op}: {err}");
        }
        // The column is where the estimate passes the limit: the 101st `+`.
        let err = Expression::compile(&chain("+", 5000)).unwrap_err().message;
        let col = 2 * MAX_EXPR_DEPTH + 2;
        assert!(err.contains(&format!("at column {col};")), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_with_the_column() {
        for (open, close) in [("(", ")"), ("[", "]"), ("size(", ")"), ("{'k': ", "}")] {
            let src = format!("{}a{}", open.repeat(5000), close.repeat(5000));
            let err = Expression::compile(&src).unwrap_err().message;
            assert!(err.contains("nests too deeply"), "{open}: {err}");
            assert!(err.contains("at column "), "{open}: {err}");
        }
        let src = format!("{}a", "b ? a : ".repeat(5000));
        assert!(Expression::compile(&src).is_err());
    }

    #[test]
    fn long_text_is_an_error_with_the_column() {
        let src = format!("a == '{}'", "x".repeat(MAX_EXPR_LEN));
        let err = Expression::compile(&src).unwrap_err().message;
        assert!(err.contains("bytes long"), "{err}");
        assert!(
            err.contains(&format!("at column {}", MAX_EXPR_LEN + 1)),
            "{err}"
        );
    }

    #[test]
    fn operators_inside_strings_and_comments_do_not_count() {
        let plus = "+".repeat(10_000);
        for src in [
            format!("a == '{plus}'"),
            format!("a == \"{plus}\""),
            format!("a == '''{plus}\n'''"),
            format!("a == r'\\{plus}'"),
            format!("a == b\"{plus}\""),
            format!("a == 1 // {plus}\n"),
            format!("a == '\\'{plus}\\x41\\u0041\\101'"),
        ] {
            assert!(check_source(&src).is_ok(), "{src:.40}");
        }
        // A quote the lexer does not take as a string start hides nothing.
        let tail = chain(" + ", 500);
        for src in [
            format!("'{tail}"),
            format!("'\\q' + {tail}"),
            format!("'\n{tail}'"),
            format!("r'\\' + {tail}"),
        ] {
            assert!(check_source(&src).is_err(), "{src:.40}");
        }
    }

    #[test]
    fn big_flat_lists_and_long_logic_chains_compile() {
        let items: Vec<String> = (0..10_000).map(|i| format!("\"user-{i:07}\"")).collect();
        let src = format!("s in [{}]", items.join(", "));
        let e = Expression::compile(&src).unwrap();
        assert_eq!(e.eval(&event()), Ok(Value::Bool(false)));
        let src = format!(
            "a in [{}]",
            (0..10_000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(
            Expression::compile(&src).unwrap().eval(&event()),
            Ok(Value::Bool(true))
        );
        let src = (0..2_000)
            .map(|i| format!("a == {i}"))
            .collect::<Vec<_>>()
            .join(" || ");
        assert_eq!(
            Expression::compile(&src).unwrap().eval(&event()),
            Ok(Value::Bool(true))
        );
        let src = format!(
            "{{{}}}.size()",
            (0..5_000)
                .map(|i| format!("'k{i}': a + 1"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(
            Expression::compile(&src).unwrap().eval(&event()),
            Ok(Value::Int(5_000))
        );
    }

    /// The longest chain of `op` that passes the scan.
    fn longest(op: &str) -> usize {
        let mut n = 1;
        while check_source(&chain(op, n + 1)).is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn expressions_at_the_limit_compile_and_evaluate_on_a_worker_stack() {
        on_small_stack(|| {
            let ev = event();
            for (op, want) in [
                (" + ", None),
                (" * ", Some(Value::Int(1))),
                ("[0]", None),
                (".size()", None),
            ] {
                let n = longest(op);
                assert!(n >= MAX_EXPR_DEPTH / 2, "{op}: only {n}");
                let src = chain(op, n);
                let e = Expression::compile(&src).unwrap_or_else(|e| panic!("{op}: {e}"));
                let got = e.eval(&ev);
                if let Some(want) = want {
                    assert_eq!(got, Ok(want), "{op}");
                }
                drop(e);
                assert!(Expression::compile(&chain(op, n + 1)).is_err());
            }
            let n = longest(" + ");
            assert_eq!(
                Expression::compile(&chain(" + ", n)).unwrap().eval(&ev),
                Ok(Value::Int(n as i64))
            );
            // Nesting at the limit: parentheses, lists and calls.
            for (open, close) in [("(", ")"), ("[", "][0]"), ("abs(", ")")] {
                let mut k = 1;
                while check_source(&format!("{}a{}", open.repeat(k + 1), close.repeat(k + 1)))
                    .is_ok()
                {
                    k += 1;
                }
                let src = format!("{}a{}", open.repeat(k), close.repeat(k));
                let e = Expression::compile(&src).unwrap_or_else(|e| panic!("{src}: {e}"));
                assert_eq!(e.eval(&ev), Ok(Value::Int(1)), "{src}");
            }
            // Macros nested as deep as the scan allows stay within the
            // lowering limit or are refused by it, never crash.
            let mut src = "a".to_string();
            while check_source(&format!("[{src}].map(x, x + 1)[0]")).is_ok() {
                src = format!("[{src}].map(x, x + 1)[0]");
            }
            if let Ok(e) = Expression::compile(&src) {
                assert!(e.eval(&ev).is_ok());
            }
        });
    }

    #[test]
    fn lowering_bounds_the_depth_of_any_parsed_tree() {
        // A tree deeper than MAX_NODE_DEPTH that passes no text check: the
        // parser with a raised recursion limit, then lowering directly.
        let src = format!("{}a{}", "[".repeat(150), "]".repeat(150));
        let (ast, info) = cel::parser::Parser::default()
            .max_recursion_depth(200)
            .parse_with_source_info(&src)
            .unwrap();
        let err = Expression::from_parsed(&ast, &src, &info)
            .unwrap_err()
            .message;
        assert!(
            err.contains(&format!("more than {MAX_NODE_DEPTH} levels")),
            "{err}"
        );
        assert!(err.contains("at column "), "{err}");
    }

    fn op() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " + ", " - ", " * ", " / ", " % ", " < ", " == ", " != ", " in ", " && ", " || ", ".",
            "[0]", ".size()", " ? a : ",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Random operator chains wrapped in random nesting never crash a
        /// worker-sized stack: they compile and evaluate, or are refused.
        #[test]
        fn random_chains_and_nesting_never_crash(
            ops in prop::collection::vec(op(), 0..400),
            wraps in prop::collection::vec(0usize..4, 0..120),
        ) {
            let mut src = String::from("a");
            for op in &ops {
                push_op(&mut src, op);
            }
            for w in wraps {
                src = match w {
                    0 => format!("({src})"),
                    1 => format!("[{src}][0]"),
                    2 => format!("size([{src}])"),
                    _ => format!("{src} + ({src})").chars().take(4000).collect(),
                };
            }
            let ok = on_small_stack(move || match Expression::compile(&src) {
                Ok(e) => {
                    let _ = e.eval(&event());
                    true
                }
                Err(e) => !e.message.is_empty(),
            });
            prop_assert!(ok);
        }
    }
}
