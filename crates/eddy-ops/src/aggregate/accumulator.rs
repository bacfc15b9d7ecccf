//! Accumulators: the incremental state of one aggregate in one window.
//!
//! Every accumulator's result depends only on the multiset of observations
//! folded or merged into it, not on their order (see the rules in the
//! [module docs](super)); ties are decided by [`value_order`].

use std::cmp::Ordering;

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use eddy_core::{Timestamp, Value};

use super::distinct::DistinctCount;
use super::ewma::Ewma;
use super::moments::Moments;
use super::order::{value_order, value_order_loose};
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

/// `first` / `last` state: a value with its event time.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped {
    time: Timestamp,
    value: Value,
}

/// `max_by` / `min_by` state: the best ordering value and its `x`.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    by: Value,
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
    /// `stddev`, `variance`, `stddev_pop`, `var_pop` (boxed: three exact
    /// sums would triple the size of every accumulator).
    Moments(Box<Moments>, MomentKind),
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
            Function::Stddev => Accumulator::Moments(Box::default(), MomentKind::Stddev),
            Function::Variance => Accumulator::Moments(Box::default(), MomentKind::Variance),
            Function::StddevPop => Accumulator::Moments(Box::default(), MomentKind::StddevPop),
            Function::VarPop => Accumulator::Moments(Box::default(), MomentKind::VarPop),
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
        if self.surely_admits(o) {
            self.apply(o);
        } else {
            let mut next = self.clone();
            next.apply(o);
            next.check()?;
            *self = next;
        }
        Ok(())
    }

    /// Whether folding `o` in keeps the result finite; changes nothing.
    #[inline]
    pub fn admits(&self, o: &Observation) -> Result<(), NonFinite> {
        if !self.surely_admits(o) {
            let mut next = self.clone();
            next.apply(o);
            next.check()?;
        }
        Ok(())
    }

    /// Whether folding `o` in keeps the result finite, decided cheaply
    /// from magnitudes; `false` means "compute and check".
    #[inline]
    fn surely_admits(&self, o: &Observation) -> bool {
        let x = || o.value.as_f64().unwrap_or(0.0);
        match self {
            Accumulator::Sum(s) | Accumulator::Avg(s) => s.surely_admits(&o.value),
            Accumulator::Moments(m, _) => m.surely_admits(x()),
            Accumulator::Ewma(e) => e.surely_admits(x()),
            _ => true,
        }
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

    /// Evaluates `spec` on `event` and folds it in; on error the
    /// accumulator is unchanged.
    pub fn update_event(
        &mut self,
        spec: &AggregateSpec,
        event: &eddy_core::Event,
    ) -> Result<(), AggregateError> {
        self.update(&spec.observe(event)?)
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

/// Keeps `v` in `slot` if the slot is empty or `v` compares `want` to it
/// in the value order (a strict total order: the kept value is the same
/// whatever order the values came in).
#[inline]
fn keep(slot: &mut Option<Value>, v: &Value, want: Ordering) {
    match slot {
        Some(cur) if value_order(v, cur) != want => {}
        _ => *slot = Some(v.clone()),
    }
}

/// `first` (`want` = Less) / `last` (Greater): by event time, then among
/// equal times by the value itself, smallest for `first`, largest for
/// `last`. Arrival order is never consulted: it differs between workers.
fn stamped_beats(time: Timestamp, value: &Value, cur: &Stamped, want: Ordering) -> bool {
    time.cmp(&cur.time)
        .then_with(|| value_order(value, &cur.value))
        == want
}

fn keep_stamped(slot: &mut Option<Stamped>, o: &Observation, want: Ordering) {
    match slot {
        Some(cur) if !stamped_beats(o.time, &o.value, cur, want) => {}
        _ => {
            *slot = Some(Stamped {
                time: o.time,
                value: o.value.clone(),
            })
        }
    }
}

fn merge_stamped(slot: &mut Option<Stamped>, other: &Stamped, want: Ordering) {
    match slot {
        Some(cur) if !stamped_beats(other.time, &other.value, cur, want) => {}
        _ => *slot = Some(other.clone()),
    }
}

/// Whether `(by, x)` beats the current best of `max_by` (`want` =
/// Greater) / `min_by` (Less): a better `by`, or an equal `by` (numbers
/// equal in value count as equal, 10 and 10.0) with a smaller `x`; when the
/// `x`s are the same value too, the result is that value either way.
fn beats(by: &Value, x: &Value, cur: &Best, want: Ordering) -> bool {
    match value_order_loose(by, &cur.by) {
        Ordering::Equal => value_order(x, &cur.value) == Ordering::Less,
        o => o == want,
    }
}

fn keep_best(slot: &mut Option<Best>, o: &Observation, want: Ordering) {
    if o.by.is_null() {
        return;
    }
    match slot {
        Some(cur) if !beats(&o.by, &o.value, cur, want) => {}
        _ => {
            *slot = Some(Best {
                by: o.by.clone(),
                value: o.value.clone(),
            })
        }
    }
}

fn merge_best(slot: &mut Option<Best>, other: &Best, want: Ordering) {
    match slot {
        Some(cur) if !beats(&other.by, &other.value, cur, want) => {}
        _ => *slot = Some(other.clone()),
    }
}

impl Accumulator {
    /// A one-byte code of the variant (and moment kind), the tag of the
    /// self-describing encoding.
    fn tag(&self) -> u8 {
        match self {
            Accumulator::Count(_) => 0,
            Accumulator::CountNonNull(_) => 1,
            Accumulator::Sum(_) => 2,
            Accumulator::Avg(_) => 3,
            Accumulator::Min(_) => 4,
            Accumulator::Max(_) => 5,
            Accumulator::Moments(_, MomentKind::Stddev) => 6,
            Accumulator::Moments(_, MomentKind::Variance) => 7,
            Accumulator::Moments(_, MomentKind::StddevPop) => 8,
            Accumulator::Moments(_, MomentKind::VarPop) => 9,
            Accumulator::First(_) => 10,
            Accumulator::Last(_) => 11,
            Accumulator::Quantile(..) => 12,
            Accumulator::CountDistinct(_) => 13,
            Accumulator::TopK(_) => 14,
            Accumulator::Ewma(_) => 15,
            Accumulator::MaxBy(_) => 16,
            Accumulator::MinBy(_) => 17,
        }
    }

    /// Writes the state without its variant: the reader knows the
    /// aggregate (a window's specs), see [`Accumulator::decode_state`].
    pub fn encode_state(&self, enc: &mut Encoder) {
        match self {
            Accumulator::Count(n) | Accumulator::CountNonNull(n) => enc.varint(*n),
            Accumulator::Sum(s) | Accumulator::Avg(s) => enc.put(s),
            Accumulator::Min(m) | Accumulator::Max(m) => enc.put(m),
            Accumulator::Moments(m, _) => enc.put(&**m),
            Accumulator::First(s) | Accumulator::Last(s) => match s {
                None => enc.u8(0),
                Some(s) => {
                    enc.u8(1);
                    enc.zigzag(s.time);
                    enc.put(&s.value);
                }
            },
            Accumulator::Quantile(s, _) => enc.put(&**s),
            Accumulator::CountDistinct(d) => enc.put(&**d),
            Accumulator::TopK(t) => enc.put(&**t),
            Accumulator::Ewma(e) => enc.put(e),
            Accumulator::MaxBy(b) | Accumulator::MinBy(b) => match b {
                None => enc.u8(0),
                Some(b) => {
                    enc.u8(1);
                    enc.put(&b.by);
                    enc.put(&b.value);
                }
            },
        }
    }

    /// Reads a state written by [`Accumulator::encode_state`] for the
    /// aggregate of `like` (an accumulator of the same spec, whose
    /// parameters the state must match).
    pub fn decode_state(like: &Accumulator, dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let opt = |dec: &mut Decoder<'_>| super::codec::get_bool(dec, "option flag");
        Ok(match like {
            Accumulator::Count(_) => Accumulator::Count(dec.varint()?),
            Accumulator::CountNonNull(_) => Accumulator::CountNonNull(dec.varint()?),
            Accumulator::Sum(_) => Accumulator::Sum(dec.get()?),
            Accumulator::Avg(_) => Accumulator::Avg(dec.get()?),
            Accumulator::Min(_) => Accumulator::Min(dec.get()?),
            Accumulator::Max(_) => Accumulator::Max(dec.get()?),
            Accumulator::Moments(_, kind) => Accumulator::Moments(Box::new(dec.get()?), *kind),
            Accumulator::First(_) | Accumulator::Last(_) => {
                let s = if opt(dec)? {
                    Some(Stamped {
                        time: dec.zigzag()?,
                        value: dec.get()?,
                    })
                } else {
                    None
                };
                if matches!(like, Accumulator::First(_)) {
                    Accumulator::First(s)
                } else {
                    Accumulator::Last(s)
                }
            }
            Accumulator::Quantile(_, q) => Accumulator::Quantile(Box::new(dec.get()?), *q),
            Accumulator::CountDistinct(_) => Accumulator::CountDistinct(Box::new(dec.get()?)),
            Accumulator::TopK(like) => {
                let t: SpaceSaving = dec.get()?;
                if (t.k(), t.capacity()) != (like.k(), like.capacity()) {
                    return Err(DecodeError::OutOfRange(
                        "top_k size (the aggregate changed)",
                    ));
                }
                Accumulator::TopK(Box::new(t))
            }
            Accumulator::Ewma(like) => {
                let e: Ewma = dec.get()?;
                if e.half_life() != like.half_life() {
                    return Err(DecodeError::OutOfRange(
                        "ewma half-life (the aggregate changed)",
                    ));
                }
                Accumulator::Ewma(e)
            }
            Accumulator::MaxBy(_) | Accumulator::MinBy(_) => {
                let b = if opt(dec)? {
                    Some(Best {
                        by: dec.get()?,
                        value: dec.get()?,
                    })
                } else {
                    None
                };
                if matches!(like, Accumulator::MaxBy(_)) {
                    Accumulator::MaxBy(b)
                } else {
                    Accumulator::MinBy(b)
                }
            }
        })
    }

    /// An empty accumulator of the variant `tag`, with placeholder
    /// parameters (the state read next carries the real ones).
    fn empty_for_tag(tag: u8, q: f64) -> Option<Accumulator> {
        Some(match tag {
            0 => Accumulator::Count(0),
            1 => Accumulator::CountNonNull(0),
            2 => Accumulator::Sum(NumericSum::default()),
            3 => Accumulator::Avg(NumericSum::default()),
            4 => Accumulator::Min(None),
            5 => Accumulator::Max(None),
            6 => Accumulator::Moments(Box::default(), MomentKind::Stddev),
            7 => Accumulator::Moments(Box::default(), MomentKind::Variance),
            8 => Accumulator::Moments(Box::default(), MomentKind::StddevPop),
            9 => Accumulator::Moments(Box::default(), MomentKind::VarPop),
            10 => Accumulator::First(None),
            11 => Accumulator::Last(None),
            12 => Accumulator::Quantile(Box::default(), q),
            13 => Accumulator::CountDistinct(Box::default()),
            14 => Accumulator::TopK(Box::new(SpaceSaving::new(1))),
            15 => Accumulator::Ewma(Ewma::new(1)),
            16 => Accumulator::MaxBy(None),
            17 => Accumulator::MinBy(None),
            _ => return None,
        })
    }
}

impl Encode for Accumulator {
    /// The variant tag, the quantile's q for `quantile`, then the state.
    fn encode(&self, enc: &mut Encoder) {
        enc.u8(self.tag());
        if let Accumulator::Quantile(_, q) = self {
            enc.f64(*q);
        }
        self.encode_state(enc);
    }
}

impl Decode for Accumulator {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let offset = dec.position();
        let tag = dec.u8()?;
        let q = if tag == 12 {
            let q = dec.f64()?;
            if !(0.0..=1.0).contains(&q) {
                return Err(DecodeError::OutOfRange("quantile q"));
            }
            q
        } else {
            0.0
        };
        let like = Accumulator::empty_for_tag(tag, q).ok_or(DecodeError::UnknownTag {
            what: "accumulator",
            tag,
            offset,
        })?;
        // Self-described: the parameters are those the state carries.
        match like {
            Accumulator::TopK(_) => Ok(Accumulator::TopK(Box::new(dec.get()?))),
            Accumulator::Ewma(_) => Ok(Accumulator::Ewma(dec.get()?)),
            like => Accumulator::decode_state(&like, dec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Event, Fields, Sym};
    use proptest::prelude::*;

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
        for e in events {
            acc.update_event(&spec, e).unwrap();
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

    /// A value's exact identity: `Debug` tells 1 from 1.0, -0.0 from 0.0
    /// and prints every double distinctly.
    fn bits(v: &Value) -> String {
        format!("{v:?}")
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
    fn first_and_last_by_event_time_then_value() {
        let e = vec![
            ev(20, &[("x", Value::str("b"))]),
            ev(10, &[("x", Value::str("a2"))]),
            ev(10, &[("x", Value::str("a"))]),
            ev(30, &[("x", Value::Null)]),
            ev(25, &[("x", Value::str("c2"))]),
            ev(25, &[("x", Value::str("c"))]),
        ];
        for order in [e.clone(), e.iter().rev().cloned().collect()] {
            assert_eq!(run("first(x)", &order), Value::str("a"));
            assert_eq!(run("last(x)", &order), Value::str("c2"));
        }
        // 1 and 1.0 at the same time: the integer sorts first.
        let twins = vec![
            ev(1, &[("x", Value::Float(1.0))]),
            ev(1, &[("x", Value::Int(1))]),
        ];
        assert_eq!(run("first(x)", &twins), Value::Int(1));
        assert_eq!(run("last(x)", &twins), Value::Float(1.0));
    }

    #[test]
    fn max_by_and_min_by_break_ties_by_the_smallest_value() {
        let e = vec![
            ev(1, &[("a", Value::str("b-tie")), ("p", Value::Int(10))]),
            ev(5, &[("a", Value::str("a-tie")), ("p", Value::Float(10.0))]),
            ev(2, &[("a", Value::str("cheap")), ("p", Value::Int(1))]),
            ev(3, &[("a", Value::str("no price")), ("p", Value::Null)]),
            ev(
                4,
                &[("a", Value::str("also cheap")), ("p", Value::Float(1.0))],
            ),
        ];
        for order in [e.clone(), e.iter().rev().cloned().collect()] {
            // 10 and 10.0 are equal prices: the smaller `a` wins.
            assert_eq!(run("max_by(a, p)", &order), Value::str("a-tie"));
            assert_eq!(run("min_by(a, p)", &order), Value::str("also cheap"));
        }
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
        acc.update_event(&spec, &e).unwrap();
        let err = acc.update_event(&spec, &e).unwrap_err().to_string();
        assert!(
            err.contains("aggregate `total`") && err.contains("finite"),
            "{err}"
        );
        assert_eq!(acc.result(), Value::Float(1e308));
        // Integer sums are exact (i128) and never refused.
        let mut ints = Accumulator::new(&spec);
        for i in 0..4 {
            ints.update_event(&spec, &ev(i, &[("x", Value::Int(i64::MAX))]))
                .unwrap();
        }
        assert_eq!(ints.result(), Value::Float(4.0 * i64::MAX as f64));
        // Non-finite inputs are refused by observe.
        let inf = ev(1, &[("x", Value::Float(f64::INFINITY))]);
        assert!(spec
            .observe(&inf)
            .unwrap_err()
            .to_string()
            .contains("finite number"));
    }

    /// Every mergeable accumulator: merging partial results over a split of
    /// the events equals one pass over all of them.
    #[test]
    fn merge_equals_single_pass() {
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
        for text in SPECS {
            let spec = AggregateSpec::parse("a", text).unwrap();
            let (mut all, mut a, mut b) = (
                Accumulator::new(&spec),
                Accumulator::new(&spec),
                Accumulator::new(&spec),
            );
            for (i, e) in events.iter().enumerate() {
                let o = spec.observe(e).unwrap();
                all.update(&o).unwrap();
                if (i / 7) % 2 == 0 {
                    a.update(&o).unwrap()
                } else {
                    b.update(&o).unwrap()
                }
            }
            a.merge(&b).unwrap();
            assert_eq!(bits(&a.result()), bits(&all.result()), "{text}");
        }
        let count = Accumulator::new(&AggregateSpec::parse("a", "count()").unwrap());
        let mut sum = Accumulator::new(&AggregateSpec::parse("a", "sum(x)").unwrap());
        assert!(matches!(
            sum.merge(&count),
            Err(AggregateError::MergeMismatch { .. })
        ));
    }

    /// Every aggregate, on every kind of input the property test feeds.
    const SPECS: [&str; 21] = [
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
        "ewma(x, \"1ms\")",
        "max_by(x, y)",
        "min_by(x, y)",
        "sum(y)",
    ];

    /// Numbers with many ties and twins (1 and 1.0, 0.0 and -0.0), values
    /// of every size, and cancellation (1e16, 1, -1e16).
    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0i64..4).prop_map(Value::Int),
            prop::sample::select(vec![
                0.0, -0.0, 1.0, 0.1, 0.5, 1e16, -1e16, -1.0, 3e-310, 7e140
            ])
            .prop_map(Value::Float),
            (-1e6f64..1e6).prop_map(Value::Float),
            // Any magnitude whose variance stays finite (|x| < 1e150).
            (-10.0f64..10.0, -320i32..140).prop_map(|(m, e)| Value::Float(m * 10f64.powi(e))),
            Just(Value::Null),
        ]
    }

    /// An observation: `x`, `y` (the `by` of max_by / min_by) and a time
    /// with many ties.
    fn observation() -> impl Strategy<Value = Observation> {
        (number(), number(), prop_oneof![0i64..4, 0i64..200_000])
            .prop_map(|(value, by, time)| Observation { value, by, time })
    }

    /// Folds `obs` into one accumulator per chunk (cut at `cuts`), then
    /// merges the chunks pairwise in an order drawn from `seed` (any merge
    /// tree).
    fn split_and_merge(
        spec: &AggregateSpec,
        obs: &[Observation],
        cuts: &[usize],
        seed: u64,
    ) -> Value {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (obs.len() + 1)).collect();
        bounds.extend([0, obs.len()]);
        bounds.sort_unstable();
        let mut parts: Vec<Accumulator> = bounds
            .windows(2)
            .map(|w| {
                let mut acc = Accumulator::new(spec);
                for o in &obs[w[0]..w[1]] {
                    acc.update(o).unwrap();
                }
                acc
            })
            .collect();
        let mut rng = SmallRng::seed_from_u64(seed);
        while parts.len() > 1 {
            let from = parts.swap_remove(rng.random_range(0..parts.len()));
            let into = rng.random_range(0..parts.len());
            parts[into].merge(&from).unwrap();
        }
        parts[0].result()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Determinism: every aggregate gives the same result, bit for bit,
        /// for any order of the same observations and for any split into
        /// partial accumulators merged in any order.
        #[test]
        fn results_depend_only_on_the_multiset(
            obs in prop::collection::vec(observation(), 0..60),
            seed in any::<u64>(),
            cuts in prop::collection::vec(any::<usize>(), 0..5),
        ) {
            use rand::rngs::SmallRng;
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            let mut shuffled = obs.clone();
            shuffled.shuffle(&mut SmallRng::seed_from_u64(seed));
            for text in SPECS {
                let spec = AggregateSpec::parse("a", text).unwrap();
                let mut acc = Accumulator::new(&spec);
                for o in &obs {
                    acc.update(o).unwrap();
                }
                let want = bits(&acc.result());
                let mut other = Accumulator::new(&spec);
                for o in &shuffled {
                    other.update(o).unwrap();
                }
                prop_assert_eq!(&bits(&other.result()), &want, "{} permuted", text);
                let merged = split_and_merge(&spec, &shuffled, &cuts, seed ^ 1);
                prop_assert_eq!(&bits(&merged), &want, "{} merged", text);
            }
        }
    }

    /// Every aggregate that the codec tests feed: the property-test list
    /// plus sketches beyond their exact range.
    fn codec_specs() -> Vec<AggregateSpec> {
        SPECS
            .iter()
            .chain(&["top_k(x, 1)", "quantile(x, 0.5)"])
            .map(|t| AggregateSpec::parse("a", t).unwrap())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Encoding then decoding gives the same state: the same result,
        /// the same bytes again, and the same results after more updates,
        /// both self-described and by the spec.
        #[test]
        fn accumulators_round_trip(
            obs in prop::collection::vec(observation(), 0..60),
            more in prop::collection::vec(observation(), 0..30),
        ) {
            use eddy_core::codec::{decode_from, encode_to_vec};
            for spec in codec_specs() {
                let mut acc = Accumulator::new(&spec);
                for o in &obs {
                    acc.update(o).unwrap();
                }
                let bytes = encode_to_vec(&acc);
                let mut back: Accumulator = decode_from(&bytes).unwrap();
                prop_assert_eq!(bits(&back.result()), bits(&acc.result()), "{}", spec.text);
                prop_assert_eq!(&encode_to_vec(&back), &bytes, "{}", spec.text);
                let mut enc = Encoder::new();
                acc.encode_state(&mut enc);
                let state = enc.into_bytes();
                let mut dec = Decoder::new(&state);
                let mut by_spec = Accumulator::decode_state(&Accumulator::new(&spec), &mut dec).unwrap();
                prop_assert!(dec.is_empty());
                for o in &more {
                    let want = acc.update(o).is_ok();
                    prop_assert_eq!(back.update(o).is_ok(), want);
                    prop_assert_eq!(by_spec.update(o).is_ok(), want);
                }
                prop_assert_eq!(bits(&back.result()), bits(&acc.result()), "{} updated", spec.text);
                prop_assert_eq!(bits(&by_spec.result()), bits(&acc.result()), "{} updated", spec.text);
                prop_assert_eq!(encode_to_vec(&back), encode_to_vec(&acc), "{} updated", spec.text);
            }
        }

        /// Truncated, flipped or random bytes decode to an error or to some
        /// accumulator that can be used, never to a panic.
        #[test]
        fn bad_bytes_never_panic(
            obs in prop::collection::vec(observation(), 0..40),
            cut in any::<usize>(),
            flip in any::<(usize, u8)>(),
            noise in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            use eddy_core::codec::{decode_from, encode_to_vec};
            for spec in codec_specs() {
                let mut acc = Accumulator::new(&spec);
                for o in &obs {
                    acc.update(o).unwrap();
                }
                let bytes = encode_to_vec(&acc);
                if !bytes.is_empty() {
                    let cut = cut % bytes.len();
                    prop_assert!(decode_from::<Accumulator>(&bytes[..cut]).is_err());
                    let mut flipped = bytes.clone();
                    flipped[flip.0 % bytes.len()] ^= flip.1 | 1;
                    if let Ok(mut a) = decode_from::<Accumulator>(&flipped) {
                        exercise(&mut a, &obs);
                    }
                }
                let mut dec = Decoder::new(&noise);
                if let Ok(mut a) = Accumulator::decode_state(&acc, &mut dec) {
                    exercise(&mut a, &obs);
                }
                if let Ok(mut a) = decode_from::<Accumulator>(&noise) {
                    exercise(&mut a, &obs);
                }
            }
        }
    }

    /// Reads, updates, merges and re-encodes a decoded accumulator.
    fn exercise(a: &mut Accumulator, obs: &[Observation]) {
        let _ = a.result();
        for o in obs {
            let _ = a.update(o);
        }
        let copy = a.clone();
        let _ = a.merge(&copy);
        let _ = a.result();
        let _ = eddy_core::codec::encode_to_vec(&*a);
    }
}

/// Update cost of the float sums, in release mode:
/// `cargo test -p eddy-ops --release -- --ignored update_cost --nocapture`.
#[cfg(test)]
mod timing {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::time::Instant;

    /// Best of five passes over `obs`, in nanoseconds per value.
    fn ns_per_value(text: &str, obs: &[Observation]) -> f64 {
        let spec = AggregateSpec::parse("a", text).unwrap();
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let mut acc = Accumulator::new(&spec);
            let start = Instant::now();
            for o in obs {
                acc.update(std::hint::black_box(o)).unwrap();
            }
            std::hint::black_box(acc.result());
            best = best.min(start.elapsed().as_nanos() as f64 / obs.len() as f64);
        }
        best
    }

    #[test]
    #[ignore = "timing; run in release mode"]
    fn update_cost() {
        let mut rng = SmallRng::seed_from_u64(7);
        let obs: Vec<Observation> = (0..2_000_000)
            .map(|_| Observation {
                // Prices with cents, as a float.
                value: Value::Float(rng.random_range(0..1_000_000) as f64 / 100.0),
                ..Observation::default()
            })
            .collect();
        for text in ["sum(x)", "avg(x)", "variance(x)"] {
            println!("{text}: {:.2} ns/value", ns_per_value(text, &obs));
        }
    }
}
