//! Accumulators: the incremental state of one aggregate in one window.

use std::cmp::Ordering;

use eddy_core::{Timestamp, Value};

use super::distinct::DistinctCount;
use super::ewma::Ewma;
use super::moments::Moments;
use super::quantile::QuantileSketch;
use super::spec::{AggregateError, AggregateSpec, Function};
use super::sum::NumericSum;
use super::top_k::SpaceSaving;

/// One event's input to an aggregate, from [`AggregateSpec::observe`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// The aggregated value (`x`); null for `count()`.
    pub value: Value,
    /// The ordering value of `max_by` / `min_by`; null otherwise.
    pub by: Value,
    /// The event time.
    pub time: Timestamp,
    /// Arrival number, breaking event-time ties for `first` / `last`.
    pub seq: u64,
}

/// Why an observation or merge was refused: the float result of
/// `function` would become infinite (or NaN), which Eddy values never hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{function}` would leave the finite number range (magnitude above 1.8e308)")]
pub struct NonFinite {
    /// The aggregate function.
    pub function: &'static str,
}

impl NonFinite {
    /// The error for the aggregate named `name`.
    pub fn named(self, name: &str) -> AggregateError {
        AggregateError::NonFinite {
            name: name.to_string(),
            function: self.function,
        }
    }
}

/// Folds one event's observations into a window's accumulators: all of
/// them, or (when one would leave the finite range) none, returning the
/// index of the refusing aggregate.
#[inline]
pub fn fold_all(accs: &mut [Accumulator], obs: &[Observation]) -> Result<(), (usize, NonFinite)> {
    admit_all(accs, obs)?;
    for (acc, o) in accs.iter_mut().zip(obs) {
        acc.apply(o);
    }
    Ok(())
}

/// Whether [`fold_all`] would accept the observations; changes nothing.
#[inline]
pub fn admit_all(accs: &[Accumulator], obs: &[Observation]) -> Result<(), (usize, NonFinite)> {
    for (i, (acc, o)) in accs.iter().zip(obs).enumerate() {
        acc.admits(o).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// A value with the position of the event it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped {
    time: Timestamp,
    seq: u64,
    value: Value,
}

/// `max_by` / `min_by` state: the best ordering value and its `x`.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    by: Value,
    time: Timestamp,
    seq: u64,
    value: Value,
}

/// The moment-based statistic an [`Accumulator::Moments`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MomentKind {
    /// Sample standard deviation.
    Stddev,
    /// Sample variance.
    Variance,
    /// Population standard deviation.
    StddevPop,
    /// Population variance.
    VarPop,
}

/// The state of one aggregate. An enum rather than a trait object: the
/// update is a jump on the variant, inlined, with no virtual call, and the
/// small states live inline. Sketches are boxed to keep the enum small.
#[derive(Clone, Debug)]
pub enum Accumulator {
    /// `count()`.
    Count(u64),
    /// `count(x)`.
    CountNonNull(u64),
    /// `sum(x)`.
    Sum(NumericSum),
    /// `avg(x)`.
    Avg(NumericSum),
    /// `min(x)`.
    Min(Option<Value>),
    /// `max(x)`.
    Max(Option<Value>),
    /// `stddev`, `variance`, `stddev_pop`, `var_pop`.
    Moments(Moments, MomentKind),
    /// `first(x)`.
    First(Option<Stamped>),
    /// `last(x)`.
    Last(Option<Stamped>),
    /// `quantile(x, q)` and `median(x)`.
    Quantile(Box<QuantileSketch>, f64),
    /// `count_distinct(x)`.
    CountDistinct(Box<DistinctCount>),
    /// `top_k(x, k)`.
    TopK(Box<SpaceSaving>),
    /// `ewma(x, half_life)`.
    Ewma(Ewma),
    /// `max_by(x, by)`.
    MaxBy(Option<Best>),
    /// `min_by(x, by)`.
    MinBy(Option<Best>),
}

impl Accumulator {
    /// An empty accumulator for `spec`.
    pub fn new(spec: &AggregateSpec) -> Accumulator {
        match spec.function {
            Function::Count => Accumulator::Count(0),
            Function::CountNonNull => Accumulator::CountNonNull(0),
            Function::Sum => Accumulator::Sum(NumericSum::default()),
            Function::Avg => Accumulator::Avg(NumericSum::default()),
            Function::Min => Accumulator::Min(None),
            Function::Max => Accumulator::Max(None),
            Function::Stddev => Accumulator::Moments(Moments::default(), MomentKind::Stddev),
            Function::Variance => Accumulator::Moments(Moments::default(), MomentKind::Variance),
            Function::StddevPop => Accumulator::Moments(Moments::default(), MomentKind::StddevPop),
            Function::VarPop => Accumulator::Moments(Moments::default(), MomentKind::VarPop),
            Function::First => Accumulator::First(None),
            Function::Last => Accumulator::Last(None),
            Function::Quantile(q) => Accumulator::Quantile(Box::default(), q),
            Function::CountDistinct => Accumulator::CountDistinct(Box::default()),
            Function::TopK(k) => Accumulator::TopK(Box::new(SpaceSaving::new(k))),
            Function::Ewma(h) => Accumulator::Ewma(Ewma::new(h)),
            Function::MaxBy => Accumulator::MaxBy(None),
            Function::MinBy => Accumulator::MinBy(None),
        }
    }

    /// Empty accumulators for each spec, in order.
    pub fn for_specs(specs: &[AggregateSpec]) -> Vec<Accumulator> {
        specs.iter().map(Accumulator::new).collect()
    }

    /// Folds in one observation, unless the result would leave the finite
    /// number range (then the accumulator is unchanged). Nulls are skipped
    /// (except by `count()`), and so are values of the wrong type, which
    /// [`AggregateSpec::observe`] already rejects.
    #[inline]
    pub fn update(&mut self, o: &Observation) -> Result<(), NonFinite> {
        if self.can_overflow() {
            let mut next = self.clone();
            next.apply(o);
            next.check()?;
            *self = next;
        } else {
            self.apply(o);
        }
        Ok(())
    }

    /// Whether folding `o` in keeps the result finite; changes nothing.
    #[inline]
    pub fn admits(&self, o: &Observation) -> Result<(), NonFinite> {
        if self.can_overflow() {
            let mut next = self.clone();
            next.apply(o);
            next.check()?;
        }
        Ok(())
    }

    /// Folds in one observation without the range check: only after
    /// [`Accumulator::admits`] said yes (or for aggregates that cannot
    /// overflow).
    #[inline]
    pub fn apply(&mut self, o: &Observation) {
        if let Accumulator::Count(n) = self {
            *n += 1;
            return;
        }
        if o.value.is_null() {
            return;
        }
        match self {
            Accumulator::Count(_) => {}
            Accumulator::CountNonNull(n) => *n += 1,
            Accumulator::Sum(s) | Accumulator::Avg(s) => s.add(&o.value),
            Accumulator::Min(m) => keep(m, &o.value, Ordering::Less),
            Accumulator::Max(m) => keep(m, &o.value, Ordering::Greater),
            Accumulator::Moments(m, _) => {
                if let Some(x) = o.value.as_f64() {
                    m.add(x)
                }
            }
            Accumulator::First(s) => keep_stamped(s, o, Ordering::Less),
            Accumulator::Last(s) => keep_stamped(s, o, Ordering::Greater),
            Accumulator::Quantile(s, _) => {
                if let Some(x) = o.value.as_f64() {
                    s.add(x)
                }
            }
            Accumulator::CountDistinct(d) => d.add(&o.value),
            Accumulator::TopK(t) => t.add(&o.value),
            Accumulator::Ewma(e) => {
                if let Some(x) = o.value.as_f64() {
                    e.add(x, o.time)
                }
            }
            Accumulator::MaxBy(b) => keep_best(b, o, Ordering::Greater),
            Accumulator::MinBy(b) => keep_best(b, o, Ordering::Less),
        }
    }

    /// Whether the result is a float that a value or a merge could push out
    /// of the finite range: `sum`, `avg`, the variance family and `ewma`.
    #[inline]
    pub fn can_overflow(&self) -> bool {
        matches!(
            self,
            Accumulator::Sum(_)
                | Accumulator::Avg(_)
                | Accumulator::Moments(..)
                | Accumulator::Ewma(_)
        )
    }

    /// `Err` when the state or result is no longer a finite number.
    #[inline]
    pub fn check(&self) -> Result<(), NonFinite> {
        let finite = match self {
            Accumulator::Sum(s) | Accumulator::Avg(s) => s.is_finite(),
            Accumulator::Moments(m, _) => m.is_finite(),
            Accumulator::Ewma(e) => e.is_finite(),
            _ => true,
        };
        if finite {
            Ok(())
        } else {
            Err(NonFinite {
                function: self.function_name(),
            })
        }
    }

    /// Evaluates `spec` on `event` (arrival number `seq`) and folds it in;
    /// on error the accumulator is unchanged.
    pub fn update_event(
        &mut self,
        spec: &AggregateSpec,
        event: &eddy_core::Event,
        seq: u64,
    ) -> Result<(), AggregateError> {
        self.update(&spec.observe(event, seq)?)
            .map_err(|e| e.named(&spec.name))
    }

    /// Folds in another accumulator of the same function (partial results
    /// over disjoint events).
    pub fn merge(&mut self, other: &Accumulator) -> Result<(), AggregateError> {
        use Accumulator as A;
        match (&mut *self, other) {
            (A::Count(a), A::Count(b)) | (A::CountNonNull(a), A::CountNonNull(b)) => *a += b,
            (A::Sum(a), A::Sum(b)) | (A::Avg(a), A::Avg(b)) => a.merge(b),
            (A::Min(a), A::Min(Some(b))) => keep(a, b, Ordering::Less),
            (A::Max(a), A::Max(Some(b))) => keep(a, b, Ordering::Greater),
            (A::Min(_), A::Min(None)) | (A::Max(_), A::Max(None)) => {}
            (A::Moments(a, _), A::Moments(b, _)) => a.merge(b),
            (A::First(a), A::First(Some(b))) => merge_stamped(a, b, Ordering::Less),
            (A::Last(a), A::Last(Some(b))) => merge_stamped(a, b, Ordering::Greater),
            (A::First(_), A::First(None)) | (A::Last(_), A::Last(None)) => {}
            (A::Quantile(a, _), A::Quantile(b, _)) => a.merge(b),
            (A::CountDistinct(a), A::CountDistinct(b)) => a.merge(b),
            (A::TopK(a), A::TopK(b)) => a.merge(b),
            (A::Ewma(a), A::Ewma(b)) => a.merge(b),
            (A::MaxBy(a), A::MaxBy(Some(b))) => merge_best(a, b, Ordering::Greater),
            (A::MinBy(a), A::MinBy(Some(b))) => merge_best(a, b, Ordering::Less),
            (A::MaxBy(_), A::MaxBy(None)) | (A::MinBy(_), A::MinBy(None)) => {}
            (a, b) => {
                return Err(AggregateError::MergeMismatch {
                    left: a.function_name(),
                    right: b.function_name(),
                })
            }
        }
        Ok(())
    }

    /// The current result. Empty aggregates give null, except the counts (0)
    /// and `top_k` (an empty list).
    pub fn result(&self) -> Value {
        match self {
            Accumulator::Count(n) | Accumulator::CountNonNull(n) => {
                Value::Int(i64::try_from(*n).unwrap_or(i64::MAX))
            }
            Accumulator::Sum(s) => s.sum(),
            Accumulator::Avg(s) => s.mean(),
            Accumulator::Min(m) | Accumulator::Max(m) => m.clone().unwrap_or_default(),
            Accumulator::Moments(m, kind) => {
                let v = match kind {
                    MomentKind::Stddev => m.sample_variance().map(f64::sqrt),
                    MomentKind::Variance => m.sample_variance(),
                    MomentKind::StddevPop => m.population_variance().map(f64::sqrt),
                    MomentKind::VarPop => m.population_variance(),
                };
                v.map_or(Value::Null, Value::Float)
            }
            Accumulator::First(s) | Accumulator::Last(s) => {
                s.as_ref().map_or(Value::Null, |s| s.value.clone())
            }
            Accumulator::Quantile(s, q) => s.quantile(*q).map_or(Value::Null, Value::Float),
            Accumulator::CountDistinct(d) => {
                Value::Int(i64::try_from(d.estimate()).unwrap_or(i64::MAX))
            }
            Accumulator::TopK(t) => t.result(),
            Accumulator::Ewma(e) => e.value().map_or(Value::Null, Value::Float),
            Accumulator::MaxBy(b) | Accumulator::MinBy(b) => {
                b.as_ref().map_or(Value::Null, |b| b.value.clone())
            }
        }
    }

    /// The aggregate function's name.
    pub fn function_name(&self) -> &'static str {
        match self {
            Accumulator::Count(_) | Accumulator::CountNonNull(_) => "count",
            Accumulator::Sum(_) => "sum",
            Accumulator::Avg(_) => "avg",
            Accumulator::Min(_) => "min",
            Accumulator::Max(_) => "max",
            Accumulator::Moments(_, MomentKind::Stddev) => "stddev",
            Accumulator::Moments(_, MomentKind::Variance) => "variance",
            Accumulator::Moments(_, MomentKind::StddevPop) => "stddev_pop",
            Accumulator::Moments(_, MomentKind::VarPop) => "var_pop",
            Accumulator::First(_) => "first",
            Accumulator::Last(_) => "last",
            Accumulator::Quantile(..) => "quantile",
            Accumulator::CountDistinct(_) => "count_distinct",
            Accumulator::TopK(_) => "top_k",
            Accumulator::Ewma(_) => "ewma",
            Accumulator::MaxBy(_) => "max_by",
            Accumulator::MinBy(_) => "min_by",
        }
    }
}

/// Keeps `v` in `slot` if the slot is empty or `v` compares `want` to it.
#[inline]
fn keep(slot: &mut Option<Value>, v: &Value, want: Ordering) {
    match slot {
        Some(cur) if v.total_cmp(cur) != want => {}
        _ => *slot = Some(v.clone()),
    }
}

/// Position order of events: event time, then arrival.
fn position(time: Timestamp, seq: u64) -> (Timestamp, u64) {
    (time, seq)
}

fn keep_stamped(slot: &mut Option<Stamped>, o: &Observation, want: Ordering) {
    match slot {
        Some(cur) if position(o.time, o.seq).cmp(&position(cur.time, cur.seq)) != want => {}
        _ => {
            *slot = Some(Stamped {
                time: o.time,
                seq: o.seq,
                value: o.value.clone(),
            })
        }
    }
}

fn merge_stamped(slot: &mut Option<Stamped>, other: &Stamped, want: Ordering) {
    match slot {
        Some(cur) if position(other.time, other.seq).cmp(&position(cur.time, cur.seq)) != want => {}
        _ => *slot = Some(other.clone()),
    }
}

/// Whether `(by, time, seq)` beats the current best: a better `by`, or an
/// equal `by` at an earlier position.
fn beats(by: &Value, time: Timestamp, seq: u64, cur: &Best, want: Ordering) -> bool {
    match by.total_cmp(&cur.by) {
        Ordering::Equal => position(time, seq) < position(cur.time, cur.seq),
        o => o == want,
    }
}

fn keep_best(slot: &mut Option<Best>, o: &Observation, want: Ordering) {
    if o.by.is_null() {
        return;
    }
    match slot {
        Some(cur) if !beats(&o.by, o.time, o.seq, cur, want) => {}
        _ => {
            *slot = Some(Best {
                by: o.by.clone(),
                time: o.time,
                seq: o.seq,
                value: o.value.clone(),
            })
        }
    }
}

fn merge_best(slot: &mut Option<Best>, other: &Best, want: Ordering) {
    match slot {
        Some(cur) if !beats(&other.by, other.time, other.seq, cur, want) => {}
        _ => *slot = Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Event, Fields, Sym};

    fn ev(time: Timestamp, fields: &[(&str, Value)]) -> Event {
        let mut f = Fields::default();
        for (k, v) in fields {
            f.push(Sym::intern(k), v.clone());
        }
        Event::new(time, f)
    }

    /// Runs `text` over `events` (arrival order) and returns the result.
    fn run(text: &str, events: &[Event]) -> Value {
        let spec = AggregateSpec::parse("a", text).unwrap();
        let mut acc = Accumulator::new(&spec);
        for (i, e) in events.iter().enumerate() {
            acc.update_event(&spec, e, i as u64).unwrap();
        }
        acc.result()
    }

    fn xs(values: &[Value]) -> Vec<Event> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| ev(i as i64, &[("x", v.clone())]))
            .collect()
    }

    fn float(v: Value) -> f64 {
        v.as_f64().unwrap()
    }

    #[test]
    fn counts_sums_and_means() {
        let e = xs(&[Value::Int(1), Value::Null, Value::Int(5), Value::Float(2.5)]);
        assert_eq!(run("count()", &e), Value::Int(4));
        assert_eq!(run("count(x)", &e), Value::Int(3));
        assert_eq!(run("sum(x)", &e), Value::Float(8.5));
        assert_eq!(run("sum(x)", &e[..3]), Value::Int(6));
        assert!((float(run("avg(x)", &e)) - 8.5 / 3.0).abs() < 1e-12);
        assert_eq!(run("sum(x)", &[]), Value::Null);
        assert_eq!(run("avg(x)", &xs(&[Value::Null])), Value::Null);
        assert_eq!(run("count()", &[]), Value::Int(0));
    }

    #[test]
    fn min_max_over_numbers_and_strings() {
        let nums = xs(&[
            Value::Int(3),
            Value::Float(-1.5),
            Value::Null,
            Value::Int(7),
        ]);
        assert_eq!(run("min(x)", &nums), Value::Float(-1.5));
        assert_eq!(run("max(x)", &nums), Value::Int(7));
        let strs = xs(&[
            Value::str("pear"),
            Value::str("apple"),
            Value::str("zucchini"),
        ]);
        assert_eq!(run("min(x)", &strs), Value::str("apple"));
        assert_eq!(run("max(x)", &strs), Value::str("zucchini"));
        assert_eq!(run("max(x)", &[]), Value::Null);
    }

    #[test]
    fn variance_family() {
        let e = xs(&[2, 4, 4, 4, 5, 5, 7, 9].map(Value::Int));
        assert!((float(run("var_pop(x)", &e)) - 4.0).abs() < 1e-12);
        assert!((float(run("stddev_pop(x)", &e)) - 2.0).abs() < 1e-12);
        assert!((float(run("variance(x)", &e)) - 32.0 / 7.0).abs() < 1e-12);
        assert!((float(run("stddev(x)", &e)) - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(run("stddev(x)", &e[..1]), Value::Null);
        assert_eq!(run("var_pop(x)", &[]), Value::Null);
    }

    #[test]
    fn first_and_last_by_event_time_then_arrival() {
        let e = vec![
            ev(20, &[("x", Value::str("b"))]),
            ev(10, &[("x", Value::str("a"))]),
            ev(10, &[("x", Value::str("a2"))]),
            ev(30, &[("x", Value::Null)]),
            ev(25, &[("x", Value::str("c"))]),
            ev(25, &[("x", Value::str("c2"))]),
        ];
        assert_eq!(run("first(x)", &e), Value::str("a"));
        assert_eq!(run("last(x)", &e), Value::str("c2"));
    }

    #[test]
    fn max_by_and_min_by_break_ties_by_earliest_time() {
        let e = vec![
            ev(5, &[("a", Value::str("late-tie")), ("p", Value::Int(10))]),
            ev(1, &[("a", Value::str("early-tie")), ("p", Value::Int(10))]),
            ev(2, &[("a", Value::str("cheap")), ("p", Value::Int(1))]),
            ev(3, &[("a", Value::str("no price")), ("p", Value::Null)]),
        ];
        assert_eq!(run("max_by(a, p)", &e), Value::str("early-tie"));
        assert_eq!(run("min_by(a, p)", &e), Value::str("cheap"));
    }

    #[test]
    fn sketches_through_the_accumulator() {
        let e = xs(&(1..=1000).map(Value::Int).collect::<Vec<_>>());
        let median = float(run("median(x)", &e));
        assert!((median - 500.0).abs() <= 5.0, "{median}");
        let p99 = float(run("quantile(x, 0.99)", &e));
        assert!((p99 - 990.0).abs() <= 9.9 + 1e-9, "{p99}");
        assert_eq!(run("count_distinct(x)", &e), Value::Int(1000));
        let top = run("top_k(x, 2)", &xs(&[1, 2, 2, 3, 3, 3].map(Value::Int)));
        let Value::List(l) = top else {
            panic!("top_k gives a list")
        };
        let first = match &l[0] {
            Value::Map(m) => (
                m.get(Sym::intern("value")).cloned(),
                m.get(Sym::intern("count")).cloned(),
            ),
            _ => (None, None),
        };
        assert_eq!(first, (Some(Value::Int(3)), Some(Value::Int(3))));
        assert_eq!(l.len(), 2);
        let ewma = float(run("ewma(x, \"1s\")", &xs(&[Value::Int(4), Value::Int(4)])));
        assert!((ewma - 4.0).abs() < 1e-12);
    }

    /// Float results never leave the finite range: the update that would
    /// is refused and changes nothing.
    #[test]
    fn updates_that_would_overflow_are_refused() {
        let big = |x: f64| Observation {
            value: Value::Float(x),
            ..Observation::default()
        };
        for text in ["sum(x)", "avg(x)", "var_pop(x)", "stddev(x)"] {
            let spec = AggregateSpec::parse("a", text).unwrap();
            let mut acc = Accumulator::new(&spec);
            assert!(spec.function.can_overflow() && acc.can_overflow(), "{text}");
            acc.update(&big(1e308)).unwrap();
            let err = acc
                .update(&big(-1e308))
                .and_then(|_| acc.update(&big(1e308)));
            let err = err.and_then(|_| acc.update(&big(1.7e308))).unwrap_err();
            assert_eq!(err.function, acc.function_name(), "{text}");
            assert!(
                !matches!(acc.result(), Value::Float(f) if !f.is_finite()),
                "{text}"
            );
            if text == "sum(x)" {
                assert_eq!(
                    acc.result(),
                    Value::Float(1e308),
                    "unchanged after the refusal"
                );
            }
        }
        let spec = AggregateSpec::parse("total", "sum(x)").unwrap();
        let mut acc = Accumulator::new(&spec);
        let e = ev(1, &[("x", Value::Float(1e308))]);
        acc.update_event(&spec, &e, 0).unwrap();
        let err = acc.update_event(&spec, &e, 1).unwrap_err().to_string();
        assert!(
            err.contains("aggregate `total`") && err.contains("finite"),
            "{err}"
        );
        assert_eq!(acc.result(), Value::Float(1e308));
        // Integer sums are exact (i128) and never refused.
        let mut ints = Accumulator::new(&spec);
        for i in 0..4 {
            ints.update_event(&spec, &ev(i, &[("x", Value::Int(i64::MAX))]), 0)
                .unwrap();
        }
        assert_eq!(ints.result(), Value::Float(4.0 * i64::MAX as f64));
        // Non-finite inputs are refused by observe.
        let inf = ev(1, &[("x", Value::Float(f64::INFINITY))]);
        assert!(spec
            .observe(&inf, 0)
            .unwrap_err()
            .to_string()
            .contains("finite number"));
    }

    /// Every mergeable accumulator: merging partial results over a split of
    /// the events equals one pass over all of them.
    #[test]
    fn merge_equals_single_pass() {
        let specs = [
            "count()",
            "count(x)",
            "sum(x)",
            "avg(x)",
            "min(x)",
            "max(x)",
            "stddev(x)",
            "variance(x)",
            "stddev_pop(x)",
            "var_pop(x)",
            "first(x)",
            "last(x)",
            "median(x)",
            "quantile(x, 0.9)",
            "count_distinct(x)",
            "top_k(x, 3)",
            "ewma(x, \"10ms\")",
            "max_by(x, y)",
            "min_by(x, y)",
        ];
        let events: Vec<Event> = (0..200i64)
            .map(|i| {
                let x = if i % 13 == 0 {
                    Value::Null
                } else {
                    Value::Int((i * 37) % 23)
                };
                ev((i * 7919) % 500, &[("x", x), ("y", Value::Int(i % 5))])
            })
            .collect();
        for text in specs {
            let spec = AggregateSpec::parse("a", text).unwrap();
            let (mut all, mut a, mut b) = (
                Accumulator::new(&spec),
                Accumulator::new(&spec),
                Accumulator::new(&spec),
            );
            for (i, e) in events.iter().enumerate() {
                let o = spec.observe(e, i as u64).unwrap();
                all.update(&o).unwrap();
                if (i / 7) % 2 == 0 {
                    a.update(&o).unwrap()
                } else {
                    b.update(&o).unwrap()
                }
            }
            a.merge(&b).unwrap();
            let (x, y) = (a.result(), all.result());
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) if matches!(x, Value::Float(_)) => {
                    assert!(
                        (p - q).abs() <= 1e-9 * q.abs().max(1.0),
                        "{text}: {p} vs {q}"
                    )
                }
                _ => assert_eq!(x, y, "{text}"),
            }
        }
        let count = Accumulator::new(&AggregateSpec::parse("a", "count()").unwrap());
        let mut sum = Accumulator::new(&AggregateSpec::parse("a", "sum(x)").unwrap());
        assert!(matches!(
            sum.merge(&count),
            Err(AggregateError::MergeMismatch { .. })
        ));
    }
}
