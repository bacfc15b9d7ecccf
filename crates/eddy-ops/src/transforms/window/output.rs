//! Building result events.
//!
//! A result has, in order: `window_start`, `window_end` (RFC 3339 strings),
//! the key field(s), then the aggregates in config order. Its event time is
//! `window_end - 1`, the last instant the window covers.

use std::cell::RefCell;

use eddy_core::time::format_rfc3339;
use eddy_core::{Event, Expression, Fields, Sym, Timestamp, Value};

use crate::aggregate::{Accumulator, AggregateSpec};

/// The output field name of each key expression: the last segment of a
/// plain field path (`merchant`, `user.id` → `id`), otherwise `key` for the
/// first expression and `key_N` for the one at position N; a path name
/// already taken falls back to `key_N` too.
pub fn key_field_names(keys: &[Expression]) -> Vec<Sym> {
    let mut names: Vec<Sym> = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let positional = || {
            if i == 0 {
                Sym::intern("key")
            } else {
                Sym::intern(&format!("key_{i}"))
            }
        };
        let name = match k.as_path().and_then(|p| p.last()) {
            Some(last) if !names.contains(last) => *last,
            _ => positional(),
        };
        names.push(name);
    }
    names
}

/// Field names of a window's results.
#[derive(Clone, Debug)]
pub(crate) struct Output {
    start: Sym,
    end: Sym,
    keys: Vec<Sym>,
    aggregates: Vec<Sym>,
    /// The last window's bounds as text: a firing's results share them
    /// instead of formatting and allocating two strings each.
    bounds: RefCell<Option<(Timestamp, Timestamp, Value, Value)>>,
}

impl Output {
    pub(crate) fn new(keys: &[Expression], specs: &[AggregateSpec]) -> Output {
        Output {
            start: Sym::intern("window_start"),
            end: Sym::intern("window_end"),
            keys: key_field_names(keys),
            aggregates: specs.iter().map(|s| s.field).collect(),
            bounds: RefCell::new(None),
        }
    }

    /// `start` and `end` as RFC 3339 text values.
    fn bounds(&self, start: Timestamp, end: Timestamp) -> (Value, Value) {
        let mut cached = self.bounds.borrow_mut();
        match &*cached {
            Some((s, e, sv, ev)) if (*s, *e) == (start, end) => (sv.clone(), ev.clone()),
            _ => {
                let text = (
                    Value::str(&format_rfc3339(start)),
                    Value::str(&format_rfc3339(end)),
                );
                *cached = Some((start, end, text.0.clone(), text.1.clone()));
                text
            }
        }
    }

    /// The result of window `[start, end)` for `key`.
    pub(crate) fn event(
        &self,
        start: Timestamp,
        end: Timestamp,
        key: &[Value],
        accs: &[Accumulator],
    ) -> Event {
        let mut f = Fields::with_capacity(2 + self.keys.len() + self.aggregates.len());
        let (start_text, end_text) = self.bounds(start, end);
        f.push(self.start, start_text);
        f.push(self.end, end_text);
        for (name, v) in self.keys.iter().zip(key) {
            f.push(*name, v.clone());
        }
        for (name, acc) in self.aggregates.iter().zip(accs) {
            f.push(*name, acc.result());
        }
        Event::new(end.saturating_sub(1), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_follow_paths_then_positions() {
        let keys: Vec<Expression> = ["merchant", "user.id", "a + 1", "other.id"]
            .iter()
            .map(|s| Expression::compile(s).unwrap())
            .collect();
        let names: Vec<&str> = key_field_names(&keys).iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["merchant", "id", "key_2", "key_3"]);
        let one = [Expression::compile("amount > 10").unwrap()];
        assert_eq!(key_field_names(&one)[0].as_str(), "key");
    }
}
