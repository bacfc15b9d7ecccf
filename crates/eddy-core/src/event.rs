//! The event model: dynamically typed values, events and batches.
//!
//! An [`Event`] is an event-time stamp plus an ordered list of named fields.
//! Field names are [`Sym`]s, so a lookup is a short scan of pointer
//! comparisons; strings, lists and maps are reference counted, so copying an
//! event into a window key or a side output never copies text.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::symbol::Sym;
use crate::time::Timestamp;

/// A shared, immutable string.
pub type Str = Arc<str>;

/// A field value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Absent or JSON `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(Str),
    /// An ordered list.
    List(Arc<Vec<Value>>),
    /// A nested object.
    Map(Arc<Fields>),
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as an integer, if it is an integer or an integral float.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The CEL-style type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "double",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// A total order across all values: numbers compare numerically (ints and
    /// floats together), then by type rank. Used by min/max, sorting and keys.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Int(a), Float(b)) => (*a as f64).total_cmp(b),
            (Float(a), Int(b)) => a.total_cmp(&(*b as f64)),
            (Str(a), Str(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (List(a), List(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    let o = x.total_cmp(y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }

    /// Where the value's type sorts among types: null, bool, numbers,
    /// strings, lists, maps (both value orders put types in this order).
    pub fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::Str(_) => 3,
            Value::List(_) => 4,
            Value::Map(_) => 5,
        }
    }
}

/// Equality as used for keys and `==`: `1 == 1.0`, NaN equals itself.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits() || a == b,
            (Int(a), Float(b)) | (Float(b), Int(a)) => (*a as f64) == *b,
            (Str(a), Str(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => state.write_u8(0),
            Value::Bool(b) => state.write_u8(*b as u8 + 1),
            // Integral floats hash like the integer they equal.
            Value::Int(i) => state.write_i64(*i),
            Value::Float(f) => match Value::Float(*f).as_i64() {
                Some(i) => state.write_i64(i),
                None => state.write_u64(f.to_bits()),
            },
            Value::Str(s) => s.hash(state),
            Value::List(l) => l.hash(state),
            Value::Map(m) => {
                for (k, v) in m.iter() {
                    k.hash(state);
                    v.hash(state);
                }
            }
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::str(v)
    }
}
impl From<Str> for Value {
    fn from(v: Str) -> Self {
        Value::Str(v)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => f.write_str(&crate::json::value_to_json_string(other)),
        }
    }
}

/// An insertion-ordered map from field name to value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(Vec<(Sym, Value)>);

impl Fields {
    /// An empty field list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Fields {
        Fields(Vec::with_capacity(n))
    }

    /// The value of `name`, if present.
    #[inline]
    pub fn get(&self, name: Sym) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// A mutable reference to the value of `name`, if present.
    pub fn get_mut(&mut self, name: Sym) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Sets `name` to `value`, replacing an existing value in place.
    #[inline]
    pub fn insert(&mut self, name: Sym, value: Value) {
        match self.get_mut(name) {
            Some(slot) => *slot = value,
            None => self.0.push((name, value)),
        }
    }

    /// Appends a field known not to be present yet (decoders, generators).
    #[inline]
    pub fn push(&mut self, name: Sym, value: Value) {
        self.0.push((name, value));
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: Sym) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| *k == name)?;
        Some(self.0.remove(i).1)
    }

    /// Renames a field in place; returns whether it existed.
    pub fn rename(&mut self, from: Sym, to: Sym) -> bool {
        if from == to {
            return self.get(from).is_some();
        }
        let Some(value) = self.remove(from) else {
            return false;
        };
        self.insert(to, value);
        true
    }

    /// Iterates fields in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (Sym, &Value)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Follows a dotted path (`user.id`) through nested maps.
    pub fn get_path(&self, path: &[Sym]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.get(*first)?;
        for seg in rest {
            match v {
                Value::Map(m) => v = m.get(*seg)?,
                _ => return None,
            }
        }
        Some(v)
    }

    /// Sets a dotted path, creating nested maps as needed.
    pub fn insert_path(&mut self, path: &[Sym], value: Value) {
        match path {
            [] => {}
            [one] => self.insert(*one, value),
            [first, rest @ ..] => {
                if !matches!(self.get(*first), Some(Value::Map(_))) {
                    self.insert(*first, Value::Map(Arc::new(Fields::default())));
                }
                if let Some(Value::Map(m)) = self.get_mut(*first) {
                    Arc::make_mut(m).insert_path(rest, value);
                }
            }
        }
    }

    /// Removes a dotted path; returns the removed value.
    pub fn remove_path(&mut self, path: &[Sym]) -> Option<Value> {
        match path {
            [] => None,
            [one] => self.remove(*one),
            [first, rest @ ..] => match self.get_mut(*first)? {
                Value::Map(m) => Arc::make_mut(m).remove_path(rest),
                _ => None,
            },
        }
    }
}

impl FromIterator<(Sym, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (Sym, Value)>>(iter: I) -> Self {
        Fields(iter.into_iter().collect())
    }
}

/// One event: its event time and its fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// Event time, milliseconds since the Unix epoch.
    pub time: Timestamp,
    /// The event's fields.
    pub fields: Fields,
}

impl Event {
    /// An event at `time` with the given fields.
    pub fn new(time: Timestamp, fields: Fields) -> Event {
        Event { time, fields }
    }

    /// The value of a top-level field.
    #[inline]
    pub fn get(&self, name: Sym) -> Option<&Value> {
        self.fields.get(name)
    }
}

/// A batch of events: the unit that moves between operators and workers.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The events, in arrival order.
    pub events: Vec<Event>,
    /// Wall-clock time (ns since the Unix epoch) at which the oldest source
    /// read that led to this batch happened; used for end-to-end latency.
    pub origin_ns: u64,
    /// The watermark of the source partition these events were read from,
    /// as the events before them in that partition set it
    /// (`MIN_TIMESTAMP`: none, e.g. results an operator emitted on a
    /// watermark). A window judges lateness against it as well as against
    /// its own watermark, so whether an event is late depends on the input
    /// rather than on how channels interleave.
    pub stamp: crate::Timestamp,
}

impl Batch {
    /// A batch of `events` created by a read at `origin_ns`, unstamped.
    pub fn new(events: Vec<Event>, origin_ns: u64) -> Batch {
        Batch {
            events,
            origin_ns,
            stamp: crate::time::MIN_TIMESTAMP,
        }
    }

    /// This batch carrying `stamp` (see [`Batch::stamp`]).
    pub fn stamped(mut self, stamp: crate::Timestamp) -> Batch {
        self.stamp = stamp;
        self
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_integral_floats_are_equal_keys() {
        use std::hash::BuildHasher;
        let h = rustc_hash::FxBuildHasher;
        assert_eq!(Value::Int(3), Value::Float(3.0));
        assert_eq!(h.hash_one(Value::Int(3)), h.hash_one(Value::Float(3.0)));
        assert_ne!(Value::Int(3), Value::str("3"));
    }

    #[test]
    fn nested_paths_insert_and_remove() {
        let mut f = Fields::default();
        let path = [Sym::intern("user"), Sym::intern("id")];
        f.insert_path(&path, Value::Int(7));
        assert_eq!(f.get_path(&path), Some(&Value::Int(7)));
        assert_eq!(f.remove_path(&path), Some(Value::Int(7)));
        assert_eq!(f.get_path(&path), None);
    }

    #[test]
    fn total_order_mixes_ints_and_floats() {
        assert_eq!(Value::Int(2).total_cmp(&Value::Float(2.5)), Ordering::Less);
        assert_eq!(Value::Null.total_cmp(&Value::Int(0)), Ordering::Less);
    }
}
