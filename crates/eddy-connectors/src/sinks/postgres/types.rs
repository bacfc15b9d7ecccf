//! Column types and the binary `COPY` encoding of Eddy values for them.
//!
//! Binary `COPY` requires each field in exactly the column type's binary
//! form, so values are converted here, per column, before anything is sent:
//! a value that cannot be converted rejects only its event, with a reason
//! naming the column, the column's type and the value's type.

use eddy_core::json::write_value;
use eddy_core::time::parse_rfc3339;
use eddy_core::Value;

/// Milliseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_MS: i64 = 946_684_800_000;

/// A column type the sink can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgType {
    /// `boolean`
    Bool,
    /// `smallint`
    Int2,
    /// `integer`
    Int4,
    /// `bigint`
    Int8,
    /// `real`
    Float4,
    /// `double precision`
    Float8,
    /// `numeric`
    Numeric,
    /// `text`, `varchar`, `char`, `name`
    Text,
    /// `json`
    Json,
    /// `jsonb`
    Jsonb,
    /// `timestamp with time zone`
    Timestamptz,
    /// `timestamp without time zone` (written as UTC wall-clock time)
    Timestamp,
}

impl PgType {
    /// The types accepted, for hints.
    pub const SUPPORTED: &'static str = "supported: boolean, smallint, integer, bigint, real, \
        double precision, numeric, text, varchar, char, json, jsonb, timestamptz, timestamp";

    /// Reads a type name as `format_type` prints it or as a user writes it
    /// (`int8`, `varchar(20)`, `timestamptz`, ...).
    pub fn parse(name: &str) -> Option<PgType> {
        let lower = name.trim().to_ascii_lowercase();
        // Modifiers (`varchar(20)`, `numeric(10,2)`) do not change the
        // binary form.
        let base = match lower.find('(') {
            Some(i) => {
                let after = lower[i..].find(')').map_or("", |j| &lower[i + j + 1..]);
                format!("{}{}", lower[..i].trim_end(), after)
            }
            None => lower,
        };
        Some(match base.trim() {
            "boolean" | "bool" => PgType::Bool,
            "smallint" | "int2" => PgType::Int2,
            "integer" | "int" | "int4" => PgType::Int4,
            "bigint" | "int8" => PgType::Int8,
            "real" | "float4" => PgType::Float4,
            "double precision" | "float8" | "float" => PgType::Float8,
            "numeric" | "decimal" => PgType::Numeric,
            "text" | "character varying" | "varchar" | "character" | "char" | "bpchar" | "name" => {
                PgType::Text
            }
            "json" => PgType::Json,
            "jsonb" => PgType::Jsonb,
            "timestamp with time zone" | "timestamptz" => PgType::Timestamptz,
            "timestamp without time zone" | "timestamp" => PgType::Timestamp,
            _ => return None,
        })
    }

    /// The SQL name, for `CREATE TABLE` and messages.
    pub fn sql(self) -> &'static str {
        match self {
            PgType::Bool => "boolean",
            PgType::Int2 => "smallint",
            PgType::Int4 => "integer",
            PgType::Int8 => "bigint",
            PgType::Float4 => "real",
            PgType::Float8 => "double precision",
            PgType::Numeric => "numeric",
            PgType::Text => "text",
            PgType::Json => "json",
            PgType::Jsonb => "jsonb",
            PgType::Timestamptz => "timestamptz",
            PgType::Timestamp => "timestamp",
        }
    }
}

/// Appends `value` as one binary `COPY` field (length, then bytes) for a
/// column of type `ty`; `Err` says why it cannot be (nothing is appended
/// then that the caller needs to keep: it truncates the row).
pub fn encode(ty: PgType, value: &Value, out: &mut Vec<u8>) -> Result<(), &'static str> {
    if value.is_null() {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    match (ty, value) {
        (PgType::Bool, Value::Bool(b)) => field(out, &[u8::from(*b)]),
        (PgType::Int2, Value::Int(_) | Value::Float(_)) => {
            let v = integral(value).and_then(|i| i16::try_from(i).ok());
            field(out, &v.ok_or("not a whole number in range")?.to_be_bytes());
        }
        (PgType::Int4, Value::Int(_) | Value::Float(_)) => {
            let v = integral(value).and_then(|i| i32::try_from(i).ok());
            field(out, &v.ok_or("not a whole number in range")?.to_be_bytes());
        }
        (PgType::Int8, Value::Int(_) | Value::Float(_)) => {
            field(
                out,
                &integral(value).ok_or("not a whole number")?.to_be_bytes(),
            );
        }
        (PgType::Float4, Value::Int(_) | Value::Float(_)) => {
            let v = value.as_f64().unwrap_or_default() as f32;
            field(out, &v.to_be_bytes());
        }
        (PgType::Float8, Value::Int(_) | Value::Float(_)) => {
            field(out, &value.as_f64().unwrap_or_default().to_be_bytes());
        }
        (PgType::Numeric, Value::Int(i)) => numeric(out, &i.to_string()),
        (PgType::Numeric, Value::Float(f)) if f.is_nan() => {
            // NaN: no digits, sign 0xC000.
            field(out, &[0, 0, 0, 0, 0xC0, 0, 0, 0]);
        }
        (PgType::Numeric, Value::Float(f)) if f.is_finite() => numeric(out, &f.to_string()),
        (PgType::Text, Value::Str(s)) => field(out, s.as_bytes()),
        (PgType::Text, Value::Int(_) | Value::Float(_) | Value::Bool(_)) => {
            field(out, value.to_string().as_bytes());
        }
        (PgType::Text | PgType::Json, Value::List(_) | Value::Map(_)) | (PgType::Json, _) => {
            with_length(out, |out| write_value(out, value));
        }
        (PgType::Jsonb, _) => with_length(out, |out| {
            // jsonb's binary form: a version byte, then the JSON text.
            out.push(1);
            write_value(out, value);
        }),
        (PgType::Timestamptz | PgType::Timestamp, _) => {
            let ms = match value {
                Value::Str(s) => parse_rfc3339(s).ok_or("not an RFC 3339 time")?,
                // Eddy's event times are epoch milliseconds.
                Value::Int(ms) => *ms,
                _ => return Err("not a time"),
            };
            let us = ms
                .checked_sub(PG_EPOCH_MS)
                .and_then(|d| d.checked_mul(1000))
                .ok_or("out of range for a timestamp")?;
            field(out, &us.to_be_bytes());
        }
        _ => return Err("incompatible"),
    }
    Ok(())
}

/// An integer, or a float without a fractional part that fits in i64.
fn integral(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        _ => None,
    }
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Writes a length placeholder, the bytes `body` appends, then the length.
fn with_length(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Encodes a plain decimal (`-12.034`, as `i64` and `f64` print) in
/// `numeric`'s binary form: base-10000 digit groups around the decimal
/// point, the weight of the first group, the sign and the display scale.
fn numeric(out: &mut Vec<u8>, decimal: &str) {
    let (negative, digits) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut groups: Vec<i16> = Vec::new();
    // Integer part: groups of four from the right.
    let int = int.as_bytes();
    let lead = int.len() % 4;
    let mut chunks: Vec<&[u8]> = Vec::new();
    if lead > 0 {
        chunks.push(&int[..lead]);
    }
    chunks.extend(int[lead..].chunks(4));
    let int_groups = chunks.len() as i16;
    groups.extend(chunks.iter().map(|c| group(c, c.len())));
    // Fraction: groups of four from the left, padded with zeros.
    groups.extend(frac.as_bytes().chunks(4).map(|c| group(c, 4)));
    let mut weight = int_groups - 1;
    let first = groups.iter().position(|&g| g != 0).unwrap_or(groups.len());
    groups.drain(..first);
    weight -= first as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    with_length(out, |out| {
        out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&(frac.len() as u16).to_be_bytes());
        for g in &groups {
            out.extend_from_slice(&g.to_be_bytes());
        }
    });
}

/// The value of up to four ASCII digits, as if padded on the right to `width`.
fn group(digits: &[u8], width: usize) -> i16 {
    let mut v: i16 = 0;
    for i in 0..width {
        let d = digits
            .get(i)
            .map_or(0, |b| i16::from(b.wrapping_sub(b'0') % 10));
        v = v * 10 + d;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ty: PgType, v: Value) -> Result<Vec<u8>, &'static str> {
        let mut out = Vec::new();
        encode(ty, &v, &mut out).map(|()| out)
    }

    #[test]
    fn type_names_parse_with_aliases_and_modifiers() {
        assert_eq!(PgType::parse("bigint"), Some(PgType::Int8));
        assert_eq!(PgType::parse("VARCHAR(20)"), Some(PgType::Text));
        assert_eq!(PgType::parse("numeric(10,2)"), Some(PgType::Numeric));
        assert_eq!(
            PgType::parse("timestamp(3) with time zone"),
            Some(PgType::Timestamptz)
        );
        assert_eq!(PgType::parse("uuid"), None);
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(
            enc(PgType::Int2, Value::Int(-2)).unwrap(),
            [0, 0, 0, 2, 0xff, 0xfe]
        );
        assert!(enc(PgType::Int2, Value::Int(40_000)).is_err());
        assert!(enc(PgType::Int4, Value::Float(2.5)).is_err());
        assert_eq!(enc(PgType::Int8, Value::Float(3.0)).unwrap().len(), 12);
        assert!(enc(PgType::Int8, Value::str("3")).is_err());
        assert_eq!(enc(PgType::Int8, Value::Null).unwrap(), [0xff; 4]);
    }

    #[test]
    fn numerics_use_base_10000_groups() {
        // 12345.678 → groups [1, 2345, 6780], weight 1, dscale 3.
        let mut out = Vec::new();
        numeric(&mut out, "12345.678");
        assert_eq!(
            out,
            [0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        // -0.05 → group [500], weight -1, negative, dscale 2.
        let mut out = Vec::new();
        numeric(&mut out, "-0.05");
        assert_eq!(
            out,
            [0, 0, 0, 10, 0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4]
        );
        // Zero: no groups, positive.
        let mut out = Vec::new();
        numeric(&mut out, "-0");
        assert_eq!(out, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn times_count_microseconds_from_2000() {
        let out = enc(PgType::Timestamptz, Value::str("2000-01-01T00:00:01Z")).unwrap();
        assert_eq!(out[4..], 1_000_000i64.to_be_bytes());
        assert!(enc(PgType::Timestamptz, Value::str("yesterday")).is_err());
        let out = enc(PgType::Timestamp, Value::Int(PG_EPOCH_MS + 2)).unwrap();
        assert_eq!(out[4..], 2000i64.to_be_bytes());
    }

    #[test]
    fn jsonb_has_a_version_byte() {
        let out = enc(PgType::Jsonb, Value::str("a")).unwrap();
        assert_eq!(out, [0, 0, 0, 4, 1, b'"', b'a', b'"']);
        assert!(enc(PgType::Bool, Value::Int(1)).is_err());
    }
}
