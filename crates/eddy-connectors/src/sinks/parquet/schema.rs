//! Columns: the table schema (declared or inferred), which values each
//! column accepts, and the Arrow builders that collect rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use eddy_core::json::value_to_json_string;
use eddy_core::time::parse_rfc3339;
use eddy_core::{Event, Sym, Value};
use indexmap::IndexMap;
use serde::Deserialize;

/// Arrow field metadata key marking a `json` column, so readers can tell
/// JSON text from plain strings.
pub const ENCODING_KEY: &str = "eddy.encoding";

/// A column's type. Every column is nullable: a missing field or `null` is a
/// null cell.
///
/// An inferred schema takes the first batch's fields in order of first
/// appearance: integers → `int64`, floats → `float64` (also when the batch
/// mixes both), strings → `string`, booleans → `bool`, lists and maps →
/// `json`, and a field that is only ever `null` there → `json`. A later
/// event then needs the same fields; one with a field the first batch did
/// not have is a dead letter (declare a `schema` to choose columns).
///
/// Values must match their column, except that an integer fits a `float64`
/// column (widened) and a `timestamp_ms` column (epoch milliseconds), and
/// RFC 3339 text fits a `timestamp_ms` column. Any other mismatch (a float
/// in an `int64` column, text in a `bool` column, …) makes the event a dead
/// letter, so no value is silently changed.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// 64-bit signed integers.
    Int64,
    /// 64-bit floats; integers are widened.
    Float64,
    /// UTF-8 text.
    String,
    /// Booleans.
    Bool,
    /// UTC timestamps in milliseconds, from epoch milliseconds or RFC 3339.
    TimestampMs,
    /// UTF-8 text holding each value as JSON; accepts any value.
    Json,
}

impl ColumnType {
    fn data_type(self) -> DataType {
        match self {
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::String | ColumnType::Json => DataType::Utf8,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::TimestampMs => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
            ColumnType::TimestampMs => "timestamp_ms",
            ColumnType::Json => "json",
        }
    }

    /// The column an inferred schema gives a value; `None` for null.
    fn of(value: &Value) -> Option<ColumnType> {
        match value {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnType::Bool),
            Value::Int(_) => Some(ColumnType::Int64),
            Value::Float(_) => Some(ColumnType::Float64),
            Value::Str(_) => Some(ColumnType::String),
            Value::List(_) | Value::Map(_) => Some(ColumnType::Json),
        }
    }

    /// What `value` becomes in this column, or `None` if it does not fit.
    fn cell(self, value: &Value) -> Option<Cell<'_>> {
        Some(match (self, value) {
            (_, Value::Null) => Cell::Null,
            (ColumnType::Int64, Value::Int(i)) => Cell::Int(*i),
            (ColumnType::Float64, Value::Float(f)) => Cell::Float(*f),
            (ColumnType::Float64, Value::Int(i)) => Cell::Float(*i as f64),
            (ColumnType::String, Value::Str(s)) => Cell::Text(s),
            (ColumnType::Bool, Value::Bool(b)) => Cell::Bool(*b),
            (ColumnType::TimestampMs, Value::Int(ms)) => Cell::Int(*ms),
            (ColumnType::TimestampMs, Value::Str(s)) => Cell::Int(parse_rfc3339(s)?),
            (ColumnType::Json, v) => Cell::Json(v),
            _ => return None,
        })
    }
}

/// One value on its way into a builder.
enum Cell<'a> {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(&'a str),
    Json(&'a Value),
}

/// A column of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The field it is filled from.
    pub name: Sym,
    /// Its type.
    pub kind: ColumnType,
}

/// The columns every file of one sink instance has.
#[derive(Debug)]
pub struct TableSchema {
    columns: Vec<Column>,
    /// Whether an event may carry fields that have no column (declared
    /// schemas pick columns; inferred ones must not drop data).
    extra_fields_allowed: bool,
    arrow: SchemaRef,
}

impl TableSchema {
    /// The schema a `schema = { ... }` table declares.
    pub fn declared(columns: &IndexMap<String, ColumnType>) -> TableSchema {
        let columns = columns
            .iter()
            .map(|(name, kind)| Column {
                name: Sym::intern(name),
                kind: *kind,
            })
            .collect();
        TableSchema::new(columns, true)
    }

    /// The schema of `events`' fields (see [`ColumnType`]); `None` if they
    /// have no fields at all.
    pub fn infer(events: &[Event]) -> Option<TableSchema> {
        let mut seen: Vec<(Sym, Option<ColumnType>)> = Vec::new();
        for event in events {
            for (name, value) in event.fields.iter() {
                let kind = ColumnType::of(value);
                match seen.iter_mut().find(|(n, _)| *n == name) {
                    None => seen.push((name, kind)),
                    Some((_, slot)) => {
                        *slot = match (*slot, kind) {
                            (None, k) => k,
                            (Some(ColumnType::Int64), Some(ColumnType::Float64)) => {
                                Some(ColumnType::Float64)
                            }
                            (k, _) => k,
                        }
                    }
                }
            }
        }
        if seen.is_empty() {
            return None;
        }
        let columns = seen
            .into_iter()
            .map(|(name, kind)| Column {
                name,
                kind: kind.unwrap_or(ColumnType::Json),
            })
            .collect();
        Some(TableSchema::new(columns, false))
    }

    fn new(columns: Vec<Column>, extra_fields_allowed: bool) -> TableSchema {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| {
                let field = Field::new(c.name.as_str(), c.kind.data_type(), true);
                if c.kind == ColumnType::Json {
                    field.with_metadata(HashMap::from([(
                        ENCODING_KEY.to_string(),
                        "json".to_string(),
                    )]))
                } else {
                    field
                }
            })
            .collect();
        TableSchema {
            columns,
            extra_fields_allowed,
            arrow: Arc::new(Schema::new(fields)),
        }
    }

    /// The Arrow schema of the files.
    pub fn arrow(&self) -> &SchemaRef {
        &self.arrow
    }

    /// Whether `event` fits; the reason it does not, for its dead letter.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        for c in &self.columns {
            if let Some(value) = event.fields.get(c.name) {
                if c.kind.cell(value).is_none() {
                    return Err(mismatch(c, value));
                }
            }
        }
        if !self.extra_fields_allowed {
            if let Some((name, _)) = event
                .fields
                .iter()
                .find(|(name, _)| !self.columns.iter().any(|c| c.name == *name))
            {
                return Err(format!(
                    "field `{name}` is not in the schema inferred from the first batch; \
                     declare the columns with `schema`"
                ));
            }
        }
        Ok(())
    }
}

fn mismatch(column: &Column, value: &Value) -> String {
    let what = match (column.kind, value) {
        (ColumnType::TimestampMs, Value::Str(_)) => "text that is not an RFC 3339 time",
        _ => value.type_name(),
    };
    format!(
        "field `{}` is {what}, which does not fit its {} column",
        column.name,
        column.kind.name()
    )
}

/// Rows collected for one file, column by column.
pub struct RowBuffer {
    builders: Vec<Builder>,
    rows: usize,
}

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Bool(BooleanBuilder),
    Time(TimestampMillisecondBuilder),
}

impl RowBuffer {
    /// An empty buffer for `schema`'s columns.
    pub fn new(schema: &TableSchema) -> RowBuffer {
        let builders = schema
            .columns
            .iter()
            .map(|c| match c.kind {
                ColumnType::Int64 => Builder::Int(Int64Builder::new()),
                ColumnType::Float64 => Builder::Float(Float64Builder::new()),
                ColumnType::String | ColumnType::Json => Builder::Text(StringBuilder::new()),
                ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
                ColumnType::TimestampMs => Builder::Time(TimestampMillisecondBuilder::new()),
            })
            .collect();
        RowBuffer { builders, rows: 0 }
    }

    /// Rows collected since the last [`RowBuffer::take_batch`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends `event` as a row. Call [`TableSchema::check`] first: a value
    /// that does not fit its column would be stored as null.
    pub fn push(&mut self, schema: &TableSchema, event: &Event) {
        for (c, builder) in schema.columns.iter().zip(&mut self.builders) {
            let cell = event
                .fields
                .get(c.name)
                .and_then(|v| c.kind.cell(v))
                .unwrap_or(Cell::Null);
            match (builder, cell) {
                (Builder::Int(b), Cell::Int(i)) => b.append_value(i),
                (Builder::Float(b), Cell::Float(f)) => b.append_value(f),
                (Builder::Text(b), Cell::Text(s)) => b.append_value(s),
                (Builder::Text(b), Cell::Json(v)) => b.append_value(value_to_json_string(v)),
                (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (Builder::Time(b), Cell::Int(ms)) => b.append_value(ms),
                (Builder::Int(b), _) => b.append_null(),
                (Builder::Float(b), _) => b.append_null(),
                (Builder::Text(b), _) => b.append_null(),
                (Builder::Bool(b), _) => b.append_null(),
                (Builder::Time(b), _) => b.append_null(),
            }
        }
        self.rows += 1;
    }

    /// The collected rows as one record batch; the buffer is empty after.
    pub fn take_batch(&mut self, schema: &TableSchema) -> Result<RecordBatch, ArrowError> {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Float(b) => Arc::new(b.finish()),
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish().with_timezone("UTC")),
                }
            })
            .collect();
        self.rows = 0;
        RecordBatch::try_new(schema.arrow.clone(), arrays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    use arrow_array::Array;
    use eddy_core::Fields;
    use proptest::prelude::*;

    fn event(fields: &[(&str, Value)]) -> Event {
        let mut f = Fields::default();
        for (k, v) in fields {
            f.push(Sym::intern(k), v.clone());
        }
        Event::new(0, f)
    }

    fn kinds(schema: &TableSchema) -> Vec<(&'static str, ColumnType)> {
        schema
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect()
    }

    #[test]
    fn infers_columns_in_order_of_first_appearance() {
        let list = Value::List(Arc::new(vec![Value::Int(1)]));
        let batch = [
            event(&[
                ("n", Value::Int(1)),
                ("x", Value::Int(2)),
                ("never", Value::Null),
            ]),
            event(&[
                ("x", Value::Float(2.5)),
                ("s", Value::str("a")),
                ("b", Value::Bool(true)),
                ("tags", list),
                ("late", Value::Null),
            ]),
            event(&[("late", Value::str("now")), ("n", Value::str("oops"))]),
        ];
        let schema = TableSchema::infer(&batch).unwrap();
        assert_eq!(
            kinds(&schema),
            vec![
                ("n", ColumnType::Int64),
                ("x", ColumnType::Float64),
                ("never", ColumnType::Json),
                ("s", ColumnType::String),
                ("b", ColumnType::Bool),
                ("tags", ColumnType::Json),
                ("late", ColumnType::String),
            ]
        );
        let json = schema.arrow().field_with_name("tags").unwrap().metadata();
        assert_eq!(json.get(ENCODING_KEY).map(String::as_str), Some("json"));
        assert!(schema.arrow().fields().iter().all(|f| f.is_nullable()));
        // The first batch's own misfits are checked like any later event.
        assert!(schema.check(&batch[0]).is_ok());
        assert!(schema.check(&batch[1]).is_ok());
        let err = schema.check(&batch[2]).unwrap_err();
        assert!(
            err.contains("`n` is string") && err.contains("int64"),
            "{err}"
        );
        assert!(TableSchema::infer(&[event(&[])]).is_none());
    }

    #[test]
    fn widens_ints_and_dead_letters_other_mismatches() {
        let schema = TableSchema::infer(&[event(&[
            ("i", Value::Int(1)),
            ("f", Value::Float(0.5)),
            ("s", Value::str("a")),
        ])])
        .unwrap();
        assert!(schema.check(&event(&[("f", Value::Int(3))])).is_ok());
        assert!(schema.check(&event(&[("i", Value::Null)])).is_ok());
        for bad in [
            event(&[("i", Value::Float(1.0))]),
            event(&[("s", Value::Int(1))]),
            event(&[("f", Value::str("1.5"))]),
            event(&[("f", Value::Bool(true))]),
        ] {
            assert!(schema.check(&bad).is_err(), "{bad:?}");
        }
        let err = schema
            .check(&event(&[("other", Value::Int(1))]))
            .unwrap_err();
        assert!(err.contains("`other` is not in the schema"), "{err}");

        // Declared schemas ignore extra fields and accept times as text.
        let declared = TableSchema::declared(&IndexMap::from([
            ("t".to_string(), ColumnType::TimestampMs),
            ("j".to_string(), ColumnType::Json),
        ]));
        let ok = event(&[
            ("t", Value::str("2024-05-01T12:00:00Z")),
            ("j", Value::Int(7)),
            ("extra", Value::Bool(false)),
        ]);
        assert!(declared.check(&ok).is_ok());
        let err = declared
            .check(&event(&[("t", Value::str("yesterday"))]))
            .unwrap_err();
        assert!(err.contains("not an RFC 3339 time"), "{err}");
    }

    #[test]
    fn builds_record_batches() {
        let declared = TableSchema::declared(&IndexMap::from([
            ("t".to_string(), ColumnType::TimestampMs),
            ("f".to_string(), ColumnType::Float64),
            ("j".to_string(), ColumnType::Json),
        ]));
        let mut rows = RowBuffer::new(&declared);
        rows.push(
            &declared,
            &event(&[
                ("t", Value::str("2024-05-01T12:00:00.250Z")),
                ("f", Value::Int(2)),
                ("j", Value::str("x")),
            ]),
        );
        rows.push(&declared, &event(&[("t", Value::Int(5))]));
        assert_eq!(rows.rows(), 2);
        let batch = rows.take_batch(&declared).unwrap();
        assert_eq!(rows.rows(), 0);
        assert_eq!(batch.num_rows(), 2);
        let t = batch.column(0).as_primitive::<TimestampMillisecondType>();
        assert_eq!(t.value(0), 1_714_564_800_250);
        assert_eq!(t.value(1), 5);
        let f = batch.column(1).as_primitive::<Float64Type>();
        assert_eq!(f.value(0), 2.0);
        assert!(f.is_null(1));
        let j = batch.column(2).as_string::<i32>();
        assert_eq!(j.value(0), "\"x\"");
        assert!(j.is_null(1));
        // The buffer is reusable after a batch was taken.
        rows.push(&declared, &event(&[("f", Value::Float(1.5))]));
        assert_eq!(rows.take_batch(&declared).unwrap().num_rows(), 1);
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int),
            (-1e9f64..1e9).prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
            "[a-z]{0,4}".prop_map(|s| Value::str(&s)),
        ]
    }

    proptest! {
        /// Against a brute-force oracle: an event fits the schema inferred
        /// from a batch iff each of its fields' types is the column type, an
        /// int under a float column, or null; every event that fits is
        /// stored exactly (ints widened).
        #[test]
        fn inference_and_checks_match_the_rule(
            rows in proptest::collection::vec(
                proptest::collection::vec((0..4usize, scalar()), 0..4), 1..12),
        ) {
            let names = ["a", "b", "c", "d"];
            let events: Vec<Event> = rows
                .iter()
                .map(|r| {
                    let mut f = Fields::default();
                    for (i, v) in r {
                        f.insert(Sym::intern(names[*i]), v.clone());
                    }
                    Event::new(0, f)
                })
                .collect();
            let Some(schema) = TableSchema::infer(&events) else {
                prop_assert!(events.iter().all(|e| e.fields.is_empty()));
                return Ok(());
            };
            let mut buffer = RowBuffer::new(&schema);
            let mut kept = Vec::new();
            for e in &events {
                let fits = e.fields.iter().all(|(name, v)| {
                    let Some(col) = schema.columns.iter().find(|c| c.name == name) else {
                        return false;
                    };
                    match (col.kind, ColumnType::of(v)) {
                        (_, None) | (ColumnType::Json, _) => true,
                        (ColumnType::Float64, Some(ColumnType::Int64)) => true,
                        (k, Some(t)) => k == t,
                    }
                });
                prop_assert_eq!(schema.check(e).is_ok(), fits);
                if fits {
                    buffer.push(&schema, e);
                    kept.push(e);
                }
            }
            let batch = buffer.take_batch(&schema).unwrap();
            prop_assert_eq!(batch.num_rows(), kept.len());
            for (ci, col) in schema.columns.iter().enumerate() {
                let array = batch.column(ci);
                for (row, e) in kept.iter().enumerate() {
                    let v = e.fields.get(col.name).unwrap_or(&Value::Null);
                    if v.is_null() {
                        prop_assert!(array.is_null(row));
                        continue;
                    }
                    let stored = match col.kind {
                        ColumnType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
                        ColumnType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(row)),
                        ColumnType::Bool => Value::Bool(array.as_boolean().value(row)),
                        ColumnType::String => Value::str(array.as_string::<i32>().value(row)),
                        ColumnType::Json => Value::str(array.as_string::<i32>().value(row)),
                        ColumnType::TimestampMs => unreachable!("never inferred"),
                    };
                    let want = match col.kind {
                        ColumnType::Json => Value::str(&value_to_json_string(v)),
                        ColumnType::Float64 => Value::Float(v.as_f64().unwrap()),
                        _ => v.clone(),
                    };
                    prop_assert_eq!(stored, want);
                }
            }
        }
    }
}
