//! A reference table in memory: rows by the text of their key, read from
//! CSV or NDJSON files or from text cells (database rows).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use eddy_core::json::JsonDecoder;
use eddy_core::{Fields, Sym, Value};
use rustc_hash::FxHashMap;

/// Rows by key; each row is a map of its fields (the key column included).
#[derive(Debug, Default)]
pub struct Table {
    rows: FxHashMap<Box<str>, Value>,
    /// Rows whose key an earlier row already had (the first one is kept).
    pub duplicates: usize,
    /// Rows without a key (skipped).
    pub keyless: usize,
}

impl Table {
    /// The row whose key reads as `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.rows.get(key)
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds a row under the key found in its `column`.
    fn add(&mut self, column: Sym, row: Fields) {
        match row.get(column).and_then(key_text) {
            None => self.keyless += 1,
            Some(key) => {
                if self.rows.contains_key(key.as_str()) {
                    self.duplicates += 1;
                } else {
                    self.rows.insert(key.into(), Value::Map(Arc::new(row)));
                }
            }
        }
    }

    /// A table from rows of text cells (`None`: SQL NULL), typed as CSV
    /// cells are.
    pub fn from_text_rows<'a>(
        column: &str,
        names: &[Sym],
        rows: impl Iterator<Item = Vec<Option<&'a str>>>,
    ) -> Table {
        let mut table = Table::default();
        let column = Sym::intern(column);
        for cells in rows {
            let mut row = Fields::with_capacity(names.len());
            for (name, cell) in names.iter().zip(cells) {
                row.push(*name, cell.map_or(Value::Null, typed));
            }
            table.add(column, row);
        }
        table
    }

    /// Reads `path` as CSV (a header row, then one row per line) or, for
    /// `.ndjson`, `.jsonl` and `.json`, as one JSON object per line.
    pub fn read(path: &Path, column: &str) -> Result<Table, String> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => read_ndjson(path, column),
            _ => read_csv(path, column),
        }
    }
}

fn read_csv(path: &Path, column: &str) -> Result<Table, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| e.to_string())?;
    let names: Vec<Sym> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| Sym::intern(h.trim()))
        .collect();
    if !names.contains(&Sym::intern(column)) {
        return Err(format!(
            "the header has no column `{column}` (it has {})",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        records.push(record);
    }
    let rows = records.iter().map(|r| r.iter().map(Some).collect());
    Ok(Table::from_text_rows(column, &names, rows))
}

fn read_ndjson(path: &Path, column: &str) -> Result<Table, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut table = Table::default();
    let mut decoder = JsonDecoder::new();
    let column = Sym::intern(column);
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let row = decoder
            .decode_str(&line)
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        table.add(column, row);
    }
    Ok(table)
}

/// The text a key value is matched by: strings as they are, integers and
/// booleans as written, integral floats as integers (`7.0` finds `7`).
/// Null, lists and maps have no key.
pub fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some((*f as i64).to_string()),
        Value::Float(f) if f.is_finite() => Some(f.to_string()),
        _ => None,
    }
}

/// A CSV cell as a value: empty → null, `true`/`false` → bool, integers
/// without leading zeros → int (so `007` and ZIP codes stay text),
/// decimals → float, anything else → string.
pub fn typed(cell: &str) -> Value {
    let t = cell.trim();
    if t.is_empty() {
        return Value::Null;
    }
    match t {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    let numeric = digits.starts_with(|c: char| c.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b"._eE+-".contains(&b));
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if numeric && !leading_zero {
        if let Ok(i) = t.parse::<i64>() {
            return Value::Int(i);
        }
        if let Ok(f) = t.parse::<f64>() {
            if f.is_finite() {
                return Value::Float(f);
            }
        }
    }
    Value::str(cell)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn cells_are_typed_without_mangling_codes() {
        assert_eq!(typed("42"), Value::Int(42));
        assert_eq!(typed("-3"), Value::Int(-3));
        assert_eq!(typed("2.5"), Value::Float(2.5));
        assert_eq!(typed("0.5"), Value::Float(0.5));
        assert_eq!(typed("1e3"), Value::Float(1000.0));
        assert_eq!(typed("true"), Value::Bool(true));
        assert_eq!(typed(""), Value::Null);
        assert_eq!(typed("007"), Value::str("007"));
        assert_eq!(typed("inf"), Value::str("inf"));
        assert_eq!(typed("NaN"), Value::str("NaN"));
        assert_eq!(typed("12-34"), Value::str("12-34"));
        assert_eq!(typed("M-17"), Value::str("M-17"));
    }

    #[test]
    fn keys_match_across_types() {
        assert_eq!(key_text(&Value::Int(7)).as_deref(), Some("7"));
        assert_eq!(key_text(&Value::Float(7.0)).as_deref(), Some("7"));
        assert_eq!(key_text(&Value::Float(7.5)).as_deref(), Some("7.5"));
        assert_eq!(key_text(&Value::str("7")).as_deref(), Some("7"));
        assert_eq!(key_text(&Value::Null), None);
    }

    #[test]
    fn csv_and_ndjson_files_give_the_same_table() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("m.csv");
        fs::write(
            &csv,
            "id,name,risk\n7,\"Acme, Inc.\",0.2\nM-2,Globex,\n7,Duplicate,1\n,No key,0\n",
        )
        .unwrap();
        let nd = dir.path().join("m.ndjson");
        fs::write(
            &nd,
            "{\"id\":7,\"name\":\"Acme, Inc.\",\"risk\":0.2}\n\n{\"id\":\"M-2\",\"name\":\"Globex\",\"risk\":null}\n{\"id\":7,\"name\":\"Duplicate\",\"risk\":1}\n{\"name\":\"No key\"}\n",
        )
        .unwrap();
        for path in [&csv, &nd] {
            let t = Table::read(path, "id").unwrap();
            assert_eq!((t.len(), t.duplicates, t.keyless), (2, 1, 1), "{path:?}");
            assert_eq!(
                t.get("7").unwrap().to_string(),
                r#"{"id":7,"name":"Acme, Inc.","risk":0.2}"#
            );
            assert_eq!(
                t.get("M-2").unwrap().to_string(),
                r#"{"id":"M-2","name":"Globex","risk":null}"#
            );
        }
        let err = Table::read(&csv, "merchant").unwrap_err();
        assert_eq!(
            err,
            "the header has no column `merchant` (it has `id`, `name`, `risk`)"
        );
        fs::write(&nd, "{\"id\":1}\n{broken\n").unwrap();
        let err = Table::read(&nd, "id").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
    }
}
