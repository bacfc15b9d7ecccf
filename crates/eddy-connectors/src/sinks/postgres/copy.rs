//! One batch as a binary `COPY` stream: which columns it fills, the rows,
//! the events rejected on the way, and (for upsert) only the last event of
//! each key, so `ON CONFLICT` never meets the same row twice in a statement.

use std::collections::HashSet;

use eddy_core::{Event, Value};

use super::schema::Column;
use super::types::{encode, PgType};
use crate::sinks::delivery::DeliveryError;

/// Signature, flags and header-extension length of a binary `COPY` stream.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A batch ready to send.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The `COPY ... (FORMAT binary)` payload.
    pub data: Vec<u8>,
    /// Indexes (into the target's columns) of the columns sent, in order.
    pub columns: Vec<usize>,
    /// Rows in `data`.
    pub rows: usize,
    /// Events that could not be encoded, by batch index, with the reason.
    pub rejected: Vec<(usize, String)>,
}

/// The columns a batch writes to and how events map onto them.
#[derive(Debug)]
pub struct Target {
    /// The table's columns, or the configured ones.
    pub columns: Vec<Column>,
    /// Whether the columns were configured (`columns = {...}`): then other
    /// event fields are ignored instead of being an error.
    pub explicit: bool,
    /// Indexes of the key columns (upsert).
    pub key: Vec<usize>,
    /// The table's name, for messages.
    pub table: String,
}

impl Target {
    fn column_of(&self, sym: eddy_core::Sym) -> Option<usize> {
        self.columns.iter().position(|c| c.sym == sym)
    }

    /// Which columns this batch fills: the configured ones, or every column
    /// some event has a field for (others keep their defaults), plus the key.
    fn used_columns(&self, events: &[Event]) -> Result<Vec<(usize, PgType)>, DeliveryError> {
        let mut used = vec![self.explicit; self.columns.len()];
        for &k in &self.key {
            used[k] = true;
        }
        if !self.explicit {
            for e in events {
                for (sym, _) in e.fields.iter() {
                    match self.column_of(sym) {
                        Some(i) => used[i] = true,
                        None => {
                            return Err(DeliveryError::Permanent(format!(
                                "table {} has no column `{sym}` for the events' field `{sym}`",
                                self.table
                            )))
                        }
                    }
                }
            }
        }
        (0..self.columns.len())
            .filter(|&i| used[i])
            .map(|i| {
                let c = &self.columns[i];
                c.ty.as_ref().map(|ty| (i, *ty)).map_err(|ty| {
                    DeliveryError::Permanent(format!(
                        "column `{}` of {} has type {ty}, which the postgres sink cannot write ({})",
                        c.name,
                        self.table,
                        PgType::SUPPORTED
                    ))
                })
            })
            .collect()
    }

    /// Encodes `events` into `data` (reused between batches). With `dedupe`,
    /// only the last event per key is written; the others are superseded
    /// within the batch and count as delivered.
    pub fn encode(
        &self,
        events: &[Event],
        dedupe: bool,
        data: Vec<u8>,
    ) -> Result<Encoded, DeliveryError> {
        let used = self.used_columns(events)?;
        let mut out = Encoded {
            data,
            columns: used.iter().map(|(i, _)| *i).collect(),
            rows: 0,
            rejected: Vec::new(),
        };
        out.data.clear();
        out.data.extend_from_slice(HEADER);
        let keep = if dedupe {
            Some(self.last_per_key(events, &mut out.rejected))
        } else {
            None
        };
        let count = (used.len() as i16).to_be_bytes();
        for (i, e) in events.iter().enumerate() {
            if keep.as_ref().is_some_and(|k| !k[i]) {
                continue;
            }
            let start = out.data.len();
            out.data.extend_from_slice(&count);
            for &(c, ty) in &used {
                let col = &self.columns[c];
                let value = e.fields.get(col.sym).unwrap_or(&Value::Null);
                if let Err(why) = encode(ty, value, &mut out.data) {
                    out.data.truncate(start);
                    out.rejected.push((i, reason(col, ty, value, why)));
                    break;
                }
            }
            if out.data.len() > start {
                out.rows += 1;
            }
        }
        out.data.extend_from_slice(&(-1i16).to_be_bytes());
        Ok(out)
    }

    /// Marks the last event of each key; events with a null or unencodable
    /// key are rejected here.
    fn last_per_key(&self, events: &[Event], rejected: &mut Vec<(usize, String)>) -> Vec<bool> {
        let mut keep = vec![false; events.len()];
        let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(events.len());
        let mut key = Vec::new();
        for (i, e) in events.iter().enumerate().rev() {
            key.clear();
            let mut bad = None;
            for &k in &self.key {
                let col = &self.columns[k];
                let value = e.fields.get(col.sym).unwrap_or(&Value::Null);
                let Ok(ty) = col.ty else { continue };
                if value.is_null() {
                    bad = Some(format!("key column `{}` is null or missing", col.name));
                    break;
                }
                if let Err(why) = encode(ty, value, &mut key) {
                    bad = Some(reason(col, ty, value, why));
                    break;
                }
            }
            match bad {
                Some(r) => rejected.push((i, r)),
                None => {
                    if seen.insert(key.clone()) {
                        keep[i] = true;
                    }
                }
            }
        }
        rejected.reverse();
        keep
    }
}

/// Why `value` does not fit `col`: the column, its type, the value's type
/// and (shortened) the value.
fn reason(col: &Column, ty: PgType, value: &Value, why: &str) -> String {
    let mut shown = value.to_string();
    if shown.len() > 64 {
        let mut cut = 64;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push('…');
    }
    format!(
        "column `{}` ({}) cannot hold {} value {shown:?}: {why}",
        col.name,
        ty.sql(),
        value.type_name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Fields, Sym};

    fn col(name: &str, ty: PgType) -> Column {
        Column {
            name: name.into(),
            sym: Sym::intern(name),
            ty: Ok(ty),
        }
    }

    fn ev(k: &str, n: Value) -> Event {
        let mut f = Fields::default();
        f.push(Sym::intern("k"), Value::str(k));
        f.push(Sym::intern("n"), n);
        Event::new(0, f)
    }

    fn target(key: Vec<usize>) -> Target {
        Target {
            columns: vec![
                col("k", PgType::Text),
                col("n", PgType::Int8),
                col("extra", PgType::Bool),
            ],
            explicit: false,
            key,
            table: "\"t\"".into(),
        }
    }

    #[test]
    fn unconvertible_values_reject_their_event_only() {
        let events = [
            ev("a", Value::Int(1)),
            ev("b", Value::str("x")),
            ev("c", Value::Null),
        ];
        let out = target(vec![]).encode(&events, false, Vec::new()).unwrap();
        assert_eq!(out.columns, [0, 1], "unused columns keep their defaults");
        assert_eq!(out.rows, 2);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, 1);
        assert_eq!(
            out.rejected[0].1,
            "column `n` (bigint) cannot hold string value \"x\": incompatible"
        );
        // Header, 2 rows of (2 + 4+1 + 4+8) and (2 + 4+1 + 4), trailer.
        assert_eq!(out.data.len(), HEADER.len() + 19 + 11 + 2);
    }

    #[test]
    fn upserts_keep_the_last_event_per_key() {
        let events = [
            ev("a", Value::Int(1)),
            ev("b", Value::Int(2)),
            ev("a", Value::Int(3)),
        ];
        let t = target(vec![0]);
        let keep = t.last_per_key(&events, &mut Vec::new());
        assert_eq!(keep, [false, true, true]);
        let out = t.encode(&events, true, Vec::new()).unwrap();
        assert_eq!(out.rows, 2);
    }

    #[test]
    fn a_field_without_a_column_is_a_schema_error() {
        let mut f = Fields::default();
        f.push(Sym::intern("nope"), Value::Int(1));
        let err = target(vec![])
            .encode(&[Event::new(0, f)], false, Vec::new())
            .unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Permanent(m) if m.contains("no column `nope`")),
            "{err:?}"
        );
    }
}
