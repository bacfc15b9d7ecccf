//! Parsing aggregate specifications such as `quantile(amount, 0.99)`.

use eddy_core::config::closest;
use eddy_core::expr::parse_call;
use eddy_core::{Event, Expression, Sym, Value};

use super::accumulator::Observation;

/// Every aggregate function name, for error messages and suggestions.
pub const FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "variance",
    "stddev_pop",
    "var_pop",
    "first",
    "last",
    "median",
    "quantile",
    "count_distinct",
    "top_k",
    "ewma",
    "max_by",
    "min_by",
];

/// Largest `k` accepted by `top_k`: the sketch keeps `max(10·k, 100)`
/// counters per window and key, so this bounds its memory.
const MAX_TOP_K: i64 = 10_000;

/// Why an aggregate specification is invalid, or why an event could not be
/// aggregated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AggregateError {
    /// The text is not a function call.
    #[error("aggregate `{name}`: {message}")]
    Syntax {
        /// The aggregate's output name.
        name: String,
        /// The parser's message.
        message: String,
    },
    /// No aggregate function has this name.
    #[error("aggregate `{name}`: unknown function `{function}`{}", suggestion_text(.suggestion))]
    UnknownFunction {
        /// The aggregate's output name.
        name: String,
        /// The function written.
        function: String,
        /// The closest known function, if any is close.
        suggestion: Option<String>,
    },
    /// The function got the wrong number of arguments.
    #[error("aggregate `{name}`: `{function}` takes {expected}, found {found} argument(s)")]
    Arity {
        /// The aggregate's output name.
        name: String,
        /// The function.
        function: &'static str,
        /// What the function takes, e.g. `1 argument (the value)`.
        expected: &'static str,
        /// How many arguments were given.
        found: usize,
    },
    /// A parameter that must be a literal (q, k, a half-life) is not valid.
    #[error("aggregate `{name}`: {message}")]
    BadParameter {
        /// The aggregate's output name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// An argument could not be evaluated on an event.
    #[error("aggregate `{name}`: {message}")]
    Eval {
        /// The aggregate's output name.
        name: String,
        /// The evaluation error.
        message: String,
    },
    /// An argument evaluated to a value of the wrong type.
    #[error("aggregate `{name}`: `{function}` needs {expected}, got {found} ({value})")]
    WrongType {
        /// The aggregate's output name.
        name: String,
        /// The function.
        function: &'static str,
        /// The type required.
        expected: &'static str,
        /// The type found.
        found: &'static str,
        /// The offending value, as JSON.
        value: String,
    },
    /// Folding the event in would make a float aggregate infinite or NaN.
    #[error(
        "aggregate `{name}`: `{function}` would leave the finite number range \
         (magnitude above 1.8e308), so the event is not aggregated"
    )]
    NonFinite {
        /// The aggregate's output name.
        name: String,
        /// The function.
        function: &'static str,
    },
    /// Two accumulators of different functions were merged.
    #[error("cannot merge a `{left}` accumulator with a `{right}` accumulator")]
    MergeMismatch {
        /// The function of the accumulator merged into.
        left: &'static str,
        /// The function of the other accumulator.
        right: &'static str,
    },
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(best) => format!(" (did you mean `{best}`?)"),
        None => format!(" (known: {})", FUNCTIONS.join(", ")),
    }
}

/// An aggregate function with its constant parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Function {
    /// `count()`: every event.
    Count,
    /// `count(x)`: events where `x` is not null.
    CountNonNull,
    /// `sum(x)`: integers stay integers unless a float is seen or the sum
    /// leaves the i64 range; floats are summed exactly and rounded once.
    Sum,
    /// `avg(x)`: the arithmetic mean, a float (the exact sum rounded once,
    /// divided by the count).
    Avg,
    /// `min(x)`: smallest value in the value order (numbers and strings).
    Min,
    /// `max(x)`: largest value in the value order.
    Max,
    /// `stddev(x)`: sample standard deviation (n − 1); null below 2 values.
    Stddev,
    /// `variance(x)`: sample variance (n − 1); null below 2 values.
    Variance,
    /// `stddev_pop(x)`: population standard deviation (n).
    StddevPop,
    /// `var_pop(x)`: population variance (n).
    VarPop,
    /// `first(x)`: `x` of the earliest event by event time (ties: the
    /// smallest `x` in the value order).
    First,
    /// `last(x)`: `x` of the latest event by event time (ties: the largest
    /// `x` in the value order).
    Last,
    /// `median(x)` or `quantile(x, q)`: within 1% relative error of a true
    /// rank-q value (DDSketch).
    Quantile(f64),
    /// `count_distinct(x)`: HyperLogLog++ estimate, 0.81% standard error.
    CountDistinct,
    /// `top_k(x, k)`: heavy hitters by Space-Saving.
    TopK(usize),
    /// `ewma(x, "1m")`: exponentially time-decayed average with this
    /// half-life in milliseconds.
    Ewma(i64),
    /// `max_by(x, by)`: `x` where `by` is largest (ties: the smallest `x`
    /// in the value order).
    MaxBy,
    /// `min_by(x, by)`: `x` where `by` is smallest (ties: the smallest `x`
    /// in the value order).
    MinBy,
}

impl Function {
    /// The function's name as written in a spec.
    pub fn name(self) -> &'static str {
        match self {
            Function::Count | Function::CountNonNull => "count",
            Function::Sum => "sum",
            Function::Avg => "avg",
            Function::Min => "min",
            Function::Max => "max",
            Function::Stddev => "stddev",
            Function::Variance => "variance",
            Function::StddevPop => "stddev_pop",
            Function::VarPop => "var_pop",
            Function::First => "first",
            Function::Last => "last",
            Function::Quantile(_) => "quantile",
            Function::CountDistinct => "count_distinct",
            Function::TopK(_) => "top_k",
            Function::Ewma(_) => "ewma",
            Function::MaxBy => "max_by",
            Function::MinBy => "min_by",
        }
    }

    /// Whether the function's float result could leave the finite range
    /// (see [`crate::aggregate::Accumulator::can_overflow`]).
    pub fn can_overflow(self) -> bool {
        matches!(
            self,
            Function::Sum
                | Function::Avg
                | Function::Stddev
                | Function::Variance
                | Function::StddevPop
                | Function::VarPop
                | Function::Ewma(_)
        )
    }

    /// Whether the function only accepts numbers: those whose float result
    /// can overflow, and the quantiles.
    pub fn is_numeric(self) -> bool {
        self.can_overflow() || matches!(self, Function::Quantile(_))
    }
}

/// A parsed aggregate: output name, function and argument expressions.
#[derive(Clone, Debug)]
pub struct AggregateSpec {
    /// The output field name.
    pub name: String,
    /// The output field name, interned.
    pub field: Sym,
    /// The function and its constant parameters.
    pub function: Function,
    /// The aggregated value (`x`); `None` for `count()`.
    pub input: Option<Expression>,
    /// The ordering value of `max_by` / `min_by`.
    pub by: Option<Expression>,
    /// The spec as written.
    pub text: String,
}

impl AggregateSpec {
    /// Parses `text` (e.g. `quantile(amount, 0.99)`) as the aggregate `name`.
    pub fn parse(name: &str, text: &str) -> Result<AggregateSpec, AggregateError> {
        let call = parse_call(text).map_err(|e| AggregateError::Syntax {
            name: name.to_string(),
            message: e.message,
        })?;
        let mut args = call.args.into_iter();
        let n = args.len();
        let arity = |function: &'static str, expected: &'static str| AggregateError::Arity {
            name: name.to_string(),
            function,
            expected,
            found: n,
        };
        let bad = |message: String| AggregateError::BadParameter {
            name: name.to_string(),
            message,
        };
        let one = "1 argument (the value)";
        let (function, input, by) = match call.function.as_str() {
            "count" => match n {
                0 => (Function::Count, None, None),
                1 => (Function::CountNonNull, args.next(), None),
                _ => return Err(arity("count", "0 or 1 argument")),
            },
            f @ ("sum" | "avg" | "min" | "max" | "stddev" | "variance" | "stddev_pop"
            | "var_pop" | "first" | "last" | "median" | "count_distinct") => {
                if n != 1 {
                    let f = FUNCTIONS.iter().copied().find(|k| *k == f).unwrap_or("?");
                    return Err(arity(f, one));
                }
                let function = match f {
                    "sum" => Function::Sum,
                    "avg" => Function::Avg,
                    "min" => Function::Min,
                    "max" => Function::Max,
                    "stddev" => Function::Stddev,
                    "variance" => Function::Variance,
                    "stddev_pop" => Function::StddevPop,
                    "var_pop" => Function::VarPop,
                    "first" => Function::First,
                    "last" => Function::Last,
                    "median" => Function::Quantile(0.5),
                    _ => Function::CountDistinct,
                };
                (function, args.next(), None)
            }
            "quantile" => {
                if n != 2 {
                    return Err(arity("quantile", "2 arguments (the value, q)"));
                }
                let input = args.next();
                let q = constant(args.next())
                    .and_then(|v| v.as_f64())
                    .ok_or_else(|| bad("q of `quantile(x, q)` must be a number literal".into()))?;
                if !(0.0..=1.0).contains(&q) {
                    return Err(bad(format!("q must be within [0, 1], got {q}")));
                }
                (Function::Quantile(q), input, None)
            }
            "top_k" => {
                if n != 2 {
                    return Err(arity("top_k", "2 arguments (the value, k)"));
                }
                let input = args.next();
                let k = constant(args.next())
                    .and_then(|v| v.as_i64())
                    .ok_or_else(|| bad("k of `top_k(x, k)` must be an integer literal".into()))?;
                if !(1..=MAX_TOP_K).contains(&k) {
                    return Err(bad(format!("k must be within 1..={MAX_TOP_K}, got {k}")));
                }
                (Function::TopK(k as usize), input, None)
            }
            "ewma" => {
                if n != 2 {
                    return Err(arity(
                        "ewma",
                        "2 arguments (the value, a half-life such as \"1m\")",
                    ));
                }
                let input = args.next();
                let text = constant(args.next())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .ok_or_else(|| {
                        bad("the half-life of `ewma(x, \"1m\")` must be a duration string".into())
                    })?;
                let ms = eddy_core::time::parse_duration(&text)
                    .map_err(|e| bad(format!("bad half-life: {e}")))?;
                if ms <= 0 {
                    return Err(bad(format!("the half-life must be positive, got `{text}`")));
                }
                (Function::Ewma(ms), input, None)
            }
            f @ ("max_by" | "min_by") => {
                if n != 2 {
                    let f = if f == "max_by" { "max_by" } else { "min_by" };
                    return Err(arity(f, "2 arguments (the value, the ordering value)"));
                }
                let function = if f == "max_by" {
                    Function::MaxBy
                } else {
                    Function::MinBy
                };
                (function, args.next(), args.next())
            }
            other => {
                return Err(AggregateError::UnknownFunction {
                    name: name.to_string(),
                    function: other.to_string(),
                    suggestion: suggest(other).map(str::to_string),
                })
            }
        };
        Ok(AggregateSpec {
            name: name.to_string(),
            field: Sym::intern(name),
            function,
            input,
            by,
            text: text.to_string(),
        })
    }

    /// Evaluates the arguments on `event`.
    pub fn observe(&self, event: &Event) -> Result<Observation, AggregateError> {
        let value = self.eval(self.input.as_ref(), event)?;
        if self.function.is_numeric()
            && !matches!(value, Value::Null | Value::Int(_) | Value::Float(_))
        {
            return Err(self.wrong_type("a number", &value));
        }
        if matches!(value, Value::Float(f) if !f.is_finite()) && self.function.is_numeric() {
            return Err(self.wrong_type("a finite number", &value));
        }
        let by = self.eval(self.by.as_ref(), event)?;
        Ok(Observation {
            value,
            by,
            time: event.time,
        })
    }

    fn eval(&self, expr: Option<&Expression>, event: &Event) -> Result<Value, AggregateError> {
        match expr {
            None => Ok(Value::Null),
            Some(e) => e.eval(event).map_err(|err| AggregateError::Eval {
                name: self.name.clone(),
                message: format!("`{}`: {}", e.source(), err.message),
            }),
        }
    }

    fn wrong_type(&self, expected: &'static str, value: &Value) -> AggregateError {
        AggregateError::WrongType {
            name: self.name.clone(),
            function: self.function.name(),
            expected,
            found: value.type_name(),
            value: eddy_core::json::value_to_json_string(value),
        }
    }
}

/// The closest function name: by edit distance, or one with two adjacent
/// letters swapped (`cuont`), the most common typo, which plain edit
/// distance counts as two edits.
fn suggest(word: &str) -> Option<&'static str> {
    closest(word, FUNCTIONS).or_else(|| {
        FUNCTIONS.iter().copied().find(|f| {
            let (a, b) = (word.as_bytes(), f.as_bytes());
            let diff: Vec<usize> = (0..a.len().min(b.len()))
                .filter(|&i| a[i] != b[i])
                .collect();
            a.len() == b.len()
                && matches!(diff[..], [i, j] if j == i + 1 && a[i] == b[j] && a[j] == b[i])
        })
    })
}

/// The literal value of a parameter expression, if it is one.
fn constant(e: Option<Expression>) -> Option<Value> {
    e.and_then(|e| e.constant().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        AggregateSpec::parse("agg", text).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_function() {
        let cases = [
            ("count()", Function::Count),
            ("count(x)", Function::CountNonNull),
            ("sum(amount)", Function::Sum),
            ("median(x)", Function::Quantile(0.5)),
            ("quantile(amount, 0.99)", Function::Quantile(0.99)),
            ("top_k(country, 5)", Function::TopK(5)),
            ("count_distinct(user.id)", Function::CountDistinct),
            ("ewma(latency, \"1m\")", Function::Ewma(60_000)),
            ("max_by(auction, price)", Function::MaxBy),
            ("min_by(auction, price)", Function::MinBy),
            ("stddev_pop(x)", Function::StddevPop),
        ];
        for (text, f) in cases {
            let spec = AggregateSpec::parse("a", text).unwrap();
            assert_eq!(spec.function, f, "{text}");
        }
        let spec = AggregateSpec::parse("a", "max_by(auction, price)").unwrap();
        let by = spec
            .by
            .as_ref()
            .and_then(|e| e.as_path())
            .map(|p| p[0].as_str());
        assert_eq!(by, Some("price"));
        let spec = AggregateSpec::parse("a", "count_distinct(user.id)").unwrap();
        assert_eq!(
            spec.input
                .as_ref()
                .and_then(|e| e.as_path())
                .map(|p| p.len()),
            Some(2)
        );
    }

    #[test]
    fn clear_errors() {
        assert!(
            err("cuont()").contains("did you mean `count`?"),
            "{}",
            err("cuont()")
        );
        assert!(err("frobnicate(x)").contains("unknown function `frobnicate`"));
        assert!(
            err("sum()").contains("`sum` takes 1 argument"),
            "{}",
            err("sum()")
        );
        assert!(err("quantile(x)").contains("2 arguments"));
        assert!(err("quantile(x, y)").contains("number literal"));
        assert!(err("quantile(x, 1.5)").contains("within [0, 1]"));
        assert!(err("top_k(x, k)").contains("integer literal"));
        assert!(err("top_k(x, 0)").contains("within 1..="));
        assert!(err("ewma(x, \"soon\")").contains("bad half-life"));
        assert!(err("ewma(x, 5)").contains("duration string"));
        assert!(err("amount + 1").contains("not a function call"));
    }

    #[test]
    fn observe_rejects_wrong_types_for_numeric_functions() {
        let mut f = eddy_core::Fields::default();
        f.push(Sym::intern("amount"), Value::str("ten"));
        let event = Event::new(5, f);
        let sum = AggregateSpec::parse("total", "sum(amount)").unwrap();
        let e = sum.observe(&event).unwrap_err();
        assert!(e.to_string().contains("needs a number, got string"), "{e}");
        let max = AggregateSpec::parse("m", "max(amount)").unwrap();
        assert_eq!(max.observe(&event).unwrap().value, Value::str("ten"));
        let div = AggregateSpec::parse("d", "sum(1 / 0)").unwrap();
        assert!(matches!(
            div.observe(&event),
            Err(AggregateError::Eval { .. })
        ));
    }
}
