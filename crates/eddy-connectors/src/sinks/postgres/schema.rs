//! The target table: its name as SQL, its columns read from the catalog, and
//! the `CREATE TABLE` derived from a batch when it does not exist yet.

use eddy_core::time::parse_rfc3339;
use eddy_core::{Event, Sym, Value};

use super::types::PgType;

/// A possibly schema-qualified table name, each part already case-folded
/// or unquoted, so it can be quoted again safely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    /// Schema, when given.
    pub schema: Option<String>,
    /// Table.
    pub name: String,
}

impl TableName {
    /// Parses `table`, `schema.table` or quoted parts (`"My Table"`).
    pub fn parse(text: &str) -> Result<TableName, String> {
        let mut parts = Vec::new();
        let mut rest = text.trim();
        loop {
            let (part, after) = if let Some(quoted) = rest.strip_prefix('"') {
                // `""` is an escaped quote inside a quoted identifier.
                let mut part = String::new();
                let mut chars = quoted.char_indices().peekable();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    if c == '"' {
                        if chars.peek().is_some_and(|(_, n)| *n == '"') {
                            chars.next();
                            part.push('"');
                        } else {
                            end = Some(i + 1);
                            break;
                        }
                    } else {
                        part.push(c);
                    }
                }
                let end = end.ok_or_else(|| format!("table `{text}`: unterminated quote"))?;
                (part, &quoted[end..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                let part = rest[..end].trim();
                let valid = part
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && part
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
                if !valid {
                    return Err(format!(
                        "table `{text}`: `{part}` is not a valid name (quote it with \"...\")"
                    ));
                }
                (part.to_lowercase(), &rest[end..])
            };
            parts.push(part);
            match after.trim_start().strip_prefix('.') {
                Some(next) => rest = next.trim_start(),
                None if after.trim().is_empty() => break,
                None => return Err(format!("table `{text}`: unexpected `{}`", after.trim())),
            }
        }
        match parts.len() {
            1 => Ok(TableName {
                schema: None,
                name: parts.remove(0),
            }),
            2 => {
                let name = parts.remove(1);
                Ok(TableName {
                    schema: Some(parts.remove(0)),
                    name,
                })
            }
            _ => Err(format!(
                "table `{text}`: expected `table` or `schema.table`"
            )),
        }
    }

    /// The name quoted for SQL text.
    pub fn sql(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote(s), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

/// Quotes an identifier.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// One column of the target table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Its name, also the event field it takes.
    pub name: String,
    /// The field symbol of the same name.
    pub sym: Sym,
    /// Its type, `Err(type name)` when the sink cannot write it.
    pub ty: Result<PgType, String>,
}

/// The catalog query for a table's writable columns in order: name, type,
/// and whether the column is generated (never written).
pub const COLUMNS_SQL: &str = "SELECT a.attname::text, format_type(a.atttypid, NULL), \
     a.attgenerated <> '' \
     FROM pg_attribute a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attnum";

/// Columns from catalog rows of (name, type name, generated).
pub fn columns_from_catalog(rows: Vec<(String, String, bool)>) -> Vec<Column> {
    rows.into_iter()
        .filter(|(_, _, generated)| !generated)
        .map(|(name, ty, _)| Column {
            sym: Sym::intern(&name),
            ty: PgType::parse(&ty).ok_or(ty),
            name,
        })
        .collect()
}

/// Whether a string field of this name holding an RFC 3339 time becomes a
/// `timestamptz` column.
fn is_time_name(name: &str) -> bool {
    matches!(name, "window_start" | "window_end" | "time" | "timestamp") || name.ends_with("_at")
}

/// The type a created column gets for `value` in field `name`.
fn infer(name: &str, value: &Value) -> Option<PgType> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => PgType::Bool,
        Value::Int(_) => PgType::Int8,
        Value::Float(_) => PgType::Float8,
        Value::Str(s) if is_time_name(name) && parse_rfc3339(s).is_some() => PgType::Timestamptz,
        Value::Str(_) => PgType::Text,
        Value::List(_) | Value::Map(_) => PgType::Jsonb,
    })
}

/// The columns to create: `declared` when given, else the fields of
/// `events` in order of first appearance, typed by their first non-null
/// value (all-null fields become `text`).
pub fn columns_to_create(
    declared: Option<&[(String, PgType)]>,
    events: &[Event],
) -> Vec<(String, PgType)> {
    if let Some(d) = declared {
        return d.to_vec();
    }
    let mut out: Vec<(Sym, Option<PgType>)> = Vec::new();
    for e in events {
        for (sym, value) in e.fields.iter() {
            match out.iter_mut().find(|(s, _)| *s == sym) {
                Some((_, ty @ None)) => *ty = infer(sym.as_str(), value),
                Some(_) => {}
                None => out.push((sym, infer(sym.as_str(), value))),
            }
        }
    }
    out.into_iter()
        .map(|(s, ty)| (s.as_str().to_string(), ty.unwrap_or(PgType::Text)))
        .collect()
}

/// `CREATE TABLE IF NOT EXISTS` for `columns`, with `key` as primary key.
pub fn create_table_sql(table: &TableName, columns: &[(String, PgType)], key: &[String]) -> String {
    let mut defs: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{} {}", quote(name), ty.sql()))
        .collect();
    if !key.is_empty() {
        let key: Vec<String> = key.iter().map(|k| quote(k)).collect();
        defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        table.sql(),
        defs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::Fields;

    #[test]
    fn table_names_fold_and_quote() {
        let t = TableName::parse("Analytics.Results").unwrap();
        assert_eq!(t.sql(), "\"analytics\".\"results\"");
        let t = TableName::parse("\"My \"\"Big\"\" Table\"").unwrap();
        assert_eq!(t.name, "My \"Big\" Table");
        assert_eq!(t.sql(), "\"My \"\"Big\"\" Table\"");
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("drop table x;").is_err());
        assert!(TableName::parse("\"open").is_err());
    }

    #[test]
    fn created_columns_follow_the_first_batch() {
        let mut f = Fields::default();
        f.push(
            Sym::intern("window_start"),
            Value::str("2024-01-01T00:00:00Z"),
        );
        f.push(Sym::intern("user"), Value::str("ann"));
        f.push(Sym::intern("seen_at"), Value::str("not a time"));
        f.push(Sym::intern("n"), Value::Int(1));
        f.push(Sym::intern("avg"), Value::Null);
        let mut g = Fields::default();
        g.push(Sym::intern("avg"), Value::Float(1.5));
        g.push(Sym::intern("tags"), Value::List(Default::default()));
        let cols = columns_to_create(None, &[Event::new(0, f), Event::new(0, g)]);
        let types: Vec<(&str, &str)> = cols.iter().map(|(n, t)| (n.as_str(), t.sql())).collect();
        assert_eq!(
            types,
            [
                ("window_start", "timestamptz"),
                ("user", "text"),
                ("seen_at", "text"),
                ("n", "bigint"),
                ("avg", "double precision"),
                ("tags", "jsonb")
            ]
        );
        let t = TableName::parse("r").unwrap();
        assert_eq!(
            create_table_sql(&t, &cols[..2], &["user".to_string()]),
            "CREATE TABLE IF NOT EXISTS \"r\" (\"window_start\" timestamptz, \"user\" text, PRIMARY KEY (\"user\"))"
        );
    }
}
