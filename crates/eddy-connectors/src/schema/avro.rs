//! Avro binary datums straight into Eddy values.
//!
//! Schemas are parsed by `apache-avro`, but datums are decoded here: its
//! decoder (0.21) reads a string, boolean or union cut short by the end of
//! the record as `null` instead of failing, which would let truncated or
//! mis-framed records through as events with missing fields; it also
//! builds an intermediate value tree. This decoder fails on any short read,
//! bounds every length by the bytes left, and builds [`Value`]s directly.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use eddy_core::{Fields, Sym, Value};

/// Named types may refer to themselves; past this nesting depth a record
/// is rejected instead of recursing further on input-controlled data.
const MAX_DEPTH: usize = 128;

/// A parsed Avro schema and its named types, ready to decode datums.
pub(super) struct AvroSchema {
    root: Schema,
    /// Named types (records, enums, fixed) by full and by simple name, for
    /// `Schema::Ref`.
    names: HashMap<String, Schema>,
}

impl AvroSchema {
    pub(super) fn new(root: Schema) -> AvroSchema {
        let mut names = HashMap::new();
        collect_names(&root, &mut names);
        AvroSchema { root, names }
    }

    /// Decodes one datum, which must be a record and use every byte.
    pub(super) fn decode(&self, bytes: &[u8]) -> Result<Fields, String> {
        let mut r = Reader { bytes, pos: 0 };
        let value = self
            .value(&self.root, &mut r, 0)
            .map_err(|e| format!("invalid Avro datum: {e}"))?;
        // Leftover bytes mean the writer used another schema: the fields
        // read so far are probably misinterpreted too.
        if r.pos != bytes.len() {
            return Err(format!(
                "invalid Avro datum: {} bytes left after the record (written with another schema?)",
                bytes.len() - r.pos
            ));
        }
        match value {
            Value::Map(fields) => Ok(Arc::unwrap_or_clone(fields)),
            other => Err(format!(
                "expected an Avro record at the top level, found {}",
                other.type_name()
            )),
        }
    }

    fn value(&self, schema: &Schema, r: &mut Reader<'_>, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => match r.take(1)? {
                [0] => Value::Bool(false),
                [1] => Value::Bool(true),
                [b, ..] => return Err(format!("boolean byte {b} at offset {}", r.pos - 1)),
                [] => return Err("short read".into()),
            },
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::LocalTimestampMillis => Value::Int(r.long()?),
            Schema::TimestampMicros | Schema::LocalTimestampMicros => {
                Value::Int(r.long()?.div_euclid(1_000))
            }
            Schema::TimestampNanos | Schema::LocalTimestampNanos => {
                Value::Int(r.long()?.div_euclid(1_000_000))
            }
            Schema::Float => Value::Float(f64::from(f32::from_le_bytes(r.array()?))),
            Schema::Double => Value::Float(f64::from_le_bytes(r.array()?)),
            Schema::String => Value::str(r.string()?),
            Schema::Uuid => {
                let b = r.bytes()?;
                match <[u8; 16]>::try_from(b) {
                    Ok(raw) => Value::str(&uuid_text(&raw)),
                    Err(_) => Value::str(
                        std::str::from_utf8(b).map_err(|_| "uuid is not UTF-8".to_string())?,
                    ),
                }
            }
            Schema::Bytes | Schema::BigDecimal => base64(r.bytes()?),
            Schema::Fixed(f) => base64(r.take(f.size)?),
            Schema::Decimal(d) => {
                let raw = match &*d.inner {
                    Schema::Fixed(f) => r.take(f.size)?,
                    _ => r.bytes()?,
                };
                decimal_text(raw, d.scale).map_or_else(|| base64(raw), |t| Value::str(&t))
            }
            Schema::Duration => {
                let raw: [u8; 12] = r.array()?;
                let part = |i: usize| {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(&raw[i * 4..i * 4 + 4]);
                    Value::Int(i64::from(u32::from_le_bytes(b)))
                };
                let mut f = Fields::with_capacity(3);
                f.push(Sym::intern("months"), part(0));
                f.push(Sym::intern("days"), part(1));
                f.push(Sym::intern("millis"), part(2));
                Value::Map(Arc::new(f))
            }
            Schema::Enum(e) => {
                let i = r.long()?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| format!("enum index {i} out of range for `{}`", e.name))?;
                Value::str(symbol)
            }
            Schema::Union(u) => {
                let i = r.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union index {i} out of range"))?;
                self.value(branch, r, depth + 1)?
            }
            Schema::Array(a) => {
                let mut items = Vec::new();
                r.blocks(|r| {
                    items.push(self.value(&a.items, r, depth + 1)?);
                    Ok(())
                })?;
                Value::List(Arc::new(items))
            }
            Schema::Map(m) => {
                let mut f = Fields::default();
                r.blocks(|r| {
                    let key = r.string()?;
                    let key = Sym::try_intern(key).ok_or("too many distinct field names")?;
                    let v = self.value(&m.types, r, depth + 1)?;
                    f.push(key, v);
                    Ok(())
                })?;
                Value::Map(Arc::new(f))
            }
            Schema::Record(rec) => {
                let mut f = Fields::with_capacity(rec.fields.len());
                for field in &rec.fields {
                    let v = self.value(&field.schema, r, depth + 1)?;
                    // Record field names come from the schema: a bounded set.
                    f.push(Sym::intern(&field.name), v);
                }
                Value::Map(Arc::new(f))
            }
            Schema::Ref { name } => {
                let target = self
                    .names
                    .get(&name.fullname(None))
                    .or_else(|| self.names.get(&name.name))
                    .ok_or_else(|| format!("unknown named type `{}`", name.fullname(None)))?;
                self.value(target, r, depth + 1)?
            }
        })
    }
}

fn collect_names(schema: &Schema, names: &mut HashMap<String, Schema>) {
    let mut add = |name: &apache_avro::schema::Name| {
        names.insert(name.fullname(None), schema.clone());
        names
            .entry(name.name.clone())
            .or_insert_with(|| schema.clone());
    };
    match schema {
        Schema::Record(r) => {
            add(&r.name);
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => add(&e.name),
        Schema::Fixed(f) => add(&f.name),
        Schema::Decimal(d) => collect_names(&d.inner, names),
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, names);
            }
        }
        _ => {}
    }
}

fn base64(bytes: &[u8]) -> Value {
    Value::str(&super::base64_text(bytes))
}

/// `8-4-4-4-12` lowercase hex.
fn uuid_text(raw: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A decimal's big-endian two's-complement unscaled value as text with
/// `scale` digits after the point (exact, unlike a float); `None` past
/// 16 bytes.
fn decimal_text(raw: &[u8], scale: usize) -> Option<String> {
    if raw.len() > 16 {
        return None;
    }
    let mut unscaled: i128 = if raw.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for &b in raw {
        unscaled = (unscaled << 8) | i128::from(b);
    }
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return Some(format!("{sign}{digits}"));
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    Some(format!("{sign}{int}.{frac}"))
}

/// A cursor over one datum's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "record ends at byte {}, {n} more bytes expected at {}",
                    self.bytes.len(),
                    self.pos
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A zig-zag varint (ints and longs are encoded alike).
    fn long(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let [b] = self.array::<1>()?;
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(format!("varint longer than 10 bytes at {}", self.pos))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<&'a str, String> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| format!("string at {at} is not UTF-8"))
    }

    /// Reads an array's or map's blocks: a count, then that many items
    /// (a negative count is followed by the block's byte size), until a
    /// zero count.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut total: usize = 0;
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            let count = count.unsigned_abs();
            // Items of type null take no bytes, so the count alone could
            // make this loop run for ever; no real record holds more items
            // than it has bytes.
            total = total.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
            if total > self.bytes.len() {
                return Err(format!(
                    "{total} items in a {}-byte record",
                    self.bytes.len()
                ));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(decimal_text(&[0x04, 0xd2], 2).as_deref(), Some("12.34"));
        assert_eq!(decimal_text(&[0xfb, 0x2e], 2).as_deref(), Some("-12.34"));
        assert_eq!(decimal_text(&[0x05], 3).as_deref(), Some("0.005"));
        assert_eq!(decimal_text(&[0xff], 0).as_deref(), Some("-1"));
        assert_eq!(decimal_text(&[], 1).as_deref(), Some("0.0"));
        assert_eq!(decimal_text(&[1; 17], 1), None);
    }

    #[test]
    fn varints_zig_zag() {
        let long = |b: &[u8]| Reader { bytes: b, pos: 0 }.long();
        assert_eq!(long(&[0]), Ok(0));
        assert_eq!(long(&[1]), Ok(-1));
        assert_eq!(long(&[2]), Ok(1));
        assert_eq!(long(&[0x7f]), Ok(-64));
        assert_eq!(long(&[0x80, 0x01]), Ok(64));
        assert_eq!(
            long(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Ok(i64::MAX)
        );
        assert_eq!(
            long(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Ok(i64::MIN)
        );
        assert!(long(&[0x80]).is_err());
        assert!(long(&[0x80; 11]).is_err());
    }

    #[test]
    fn uuids_print_hyphenated() {
        let raw: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(uuid_text(&raw), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }
}
