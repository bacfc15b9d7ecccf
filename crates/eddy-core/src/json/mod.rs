//! JSON decoding straight into [`Fields`] and encoding of events as JSON.
//!
//! Decoding builds Eddy values directly (no intermediate `serde_json::Value`)
//! and caches interned field names per decoder, so a homogeneous stream
//! interns each key once. Well-formed documents are read by a direct reader
//! ([`scan`]); whatever it leaves, errors included, goes through `serde_json`
//! with a visitor, which decides the result.
//!
//! Numbers are never silently changed. An integer literal inside the signed
//! 64-bit range is an `int`; an integer literal outside it (no fraction, no
//! exponent, e.g. `123456789012345678901234567890` or `18446744073709551615`)
//! is kept exactly, as its decimal text (a string value); a number written
//! with a fraction or an exponent (`1e19`, `2.5`) is a `double`.
//!
//! `serde_json` hands integers beyond `u64` to the visitor as `f64`, already
//! rounded. Rather than pay for exact number parsing on every record, the
//! visitor flags an integral `f64` of magnitude at least 2^63 (the only way
//! such a literal can show up); only then is the text scanned for those
//! literals, which are quoted and the document decoded again.

mod scan;

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::event::{Fields, Value};
use crate::symbol::Sym;

/// Decodes JSON objects into [`Fields`], remembering interned keys.
#[derive(Default)]
pub struct JsonDecoder {
    /// Keys seen at each top-level position in the previous object.
    positional: Vec<Sym>,
    cache: FxHashMap<Box<str>, Sym>,
    /// Set while decoding when a `f64` may stand for an integer literal
    /// outside the `i64` range; the text is then scanned and decoded again.
    big_int_seen: bool,
    /// The only top-level fields kept, when set (the others are skipped
    /// unread: nothing downstream reads them).
    keep: Option<Vec<Sym>>,
    /// The last string at each top-level position: a repeated value
    /// (`"type":"bid"`, a status) shares it instead of allocating anew.
    recent: Vec<Option<crate::event::Str>>,
}

/// Why a JSON document could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonError {
    /// The text is not valid JSON.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// Not UTF-8, from the byte at this offset on.
    #[error("not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// Valid JSON, but not an object at the top level.
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// Too many distinct field names.
    #[error("too many distinct field names")]
    TooManyFields,
}

impl JsonDecoder {
    /// A decoder with an empty key cache.
    pub fn new() -> JsonDecoder {
        JsonDecoder::default()
    }

    /// Keeps only the top-level fields `keep` (all when `None`): the others
    /// are parsed past without building values, which is what a source
    /// does when the pipeline reads only some fields.
    pub fn keep_only(&mut self, keep: Option<Vec<Sym>>) {
        self.keep = keep;
    }

    /// Decodes one JSON object from bytes, which must be UTF-8 throughout
    /// (skipped fields included).
    pub fn decode(&mut self, text: &[u8]) -> Result<Fields, JsonError> {
        if let Some(fields) = scan::read_top(self, text) {
            return Ok(fields);
        }
        let text = std::str::from_utf8(text).map_err(|e| JsonError::NotUtf8(e.valid_up_to()))?;
        self.decode_serde(text.as_bytes())
    }

    /// Decodes one JSON object from text.
    pub fn decode_str(&mut self, text: &str) -> Result<Fields, JsonError> {
        self.decode(text.as_bytes())
    }

    /// Decodes through `serde_json`: the path for everything the direct
    /// reader leaves (see [`scan`]), errors included.
    fn decode_serde(&mut self, text: &[u8]) -> Result<Fields, JsonError> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let first = self.finish(&mut de);
        self.exact_big_ints(text, first)
    }

    fn finish<'de, R: serde_json::de::Read<'de>>(
        &mut self,
        de: &mut serde_json::Deserializer<R>,
    ) -> Result<Fields, JsonError> {
        self.big_int_seen = false;
        let fields = TopSeed { dec: self }
            .deserialize(&mut *de)
            .map_err(|e| JsonError::Syntax(e.to_string()))?;
        de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
        fields.map_err(JsonError::NotAnObject)
    }

    /// Replaces the first decoding with one that keeps integer literals
    /// outside the `i64` range exactly, when the first may have rounded one
    /// (the flag) or rejected one as out of range (beyond `f64`).
    fn exact_big_ints(
        &mut self,
        text: &[u8],
        first: Result<Fields, JsonError>,
    ) -> Result<Fields, JsonError> {
        let suspect = match &first {
            Ok(_) => self.big_int_seen,
            Err(JsonError::Syntax(m)) => m.starts_with("number out of range"),
            Err(_) => false,
        };
        if !suspect {
            return first;
        }
        let Some(quoted) = quote_big_ints(text) else {
            return first;
        };
        let mut de = serde_json::Deserializer::from_slice(&quoted);
        // The quoted text can only fail where the original did; its error
        // would name shifted columns, so the original one is kept.
        self.finish(&mut de).or(first)
    }

    /// Room for a top-level object's fields: as many as the previous one
    /// had, or as the projection keeps.
    fn top_capacity(&self) -> usize {
        let seen = self.positional.len().max(4);
        self.keep.as_ref().map_or(seen, |k| seen.min(k.len()))
    }

    /// The string `v` found at top-level position `at`, shared with the
    /// previous object's string there when equal; `None` when `v` is not
    /// UTF-8 (checked only when it is not that string).
    fn shared_str(&mut self, at: usize, v: &[u8]) -> Option<Value> {
        if self.recent.len() <= at {
            self.recent.resize(at + 1, None);
        }
        Some(match &self.recent[at] {
            Some(s) if s.as_bytes() == v => Value::Str(s.clone()),
            _ => {
                let s: crate::event::Str = std::str::from_utf8(v).ok()?.into();
                self.recent[at] = Some(s.clone());
                Value::Str(s)
            }
        })
    }

    /// Interns `key`; the flag says whether it matched the positional cache.
    /// `None` when there are too many distinct names, or when `key` is not
    /// UTF-8 (checked here, after the positional cache: a key equal to a
    /// cached name is UTF-8).
    fn key(&mut self, pos: Option<usize>, key: &[u8]) -> Option<(Sym, bool)> {
        if let Some(p) = pos {
            if let Some(s) = self.positional.get(p) {
                if s.as_str().as_bytes() == key {
                    return Some((*s, true));
                }
            }
        }
        let key = std::str::from_utf8(key).ok()?;
        let sym = match self.cache.get(key) {
            Some(s) => *s,
            None => {
                let s = Sym::try_intern(key)?;
                if self.cache.len() < 65_536 {
                    self.cache.insert(key.into(), s);
                }
                s
            }
        };
        // Only duplicate-free prefixes are cached, which keeps the
        // positional fast path in `read_object` sound.
        if let Some(p) = pos {
            if p <= self.positional.len() && !self.positional[..p].contains(&sym) {
                self.positional.truncate(p);
                self.positional.push(sym);
            }
        }
        Some((sym, false))
    }
}

struct TopSeed<'a> {
    dec: &'a mut JsonDecoder,
}

struct ValueSeed<'a> {
    dec: &'a mut JsonDecoder,
    /// The top-level position of the value, for [`JsonDecoder::recent`]
    /// (`None` inside lists and nested objects).
    at: Option<usize>,
}

/// The top-level value: an object's fields, or the type name of whatever
/// else was found.
impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Result<Fields, &'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Result<Fields, &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("bool"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("int"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("int"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("double"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("string"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Err("list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_object(self.dec, map, true).map(Ok)
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        // Above i64::MAX: kept exactly as decimal text (see the module doc).
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::str(&v.to_string()),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // 2^63: an integer literal outside the i64 range arrives here rounded.
        if v.fract() == 0.0 && v.abs() >= 9_223_372_036_854_775_808.0 {
            self.dec.big_int_seen = true;
        }
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        let shared = self.at.and_then(|at| self.dec.shared_str(at, v.as_bytes()));
        Ok(shared.unwrap_or_else(|| Value::str(v)))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(v) = seq.next_element_seed(ValueSeed {
            dec: &mut *self.dec,
            at: None,
        })? {
            out.push(v);
        }
        Ok(Value::List(Arc::new(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        read_object(self.dec, map, false).map(|f| Value::Map(Arc::new(f)))
    }
}

/// Reads an object's entries; `top` enables the positional key cache.
fn read_object<'de, A: MapAccess<'de>>(
    dec: &mut JsonDecoder,
    mut map: A,
    top: bool,
) -> Result<Fields, A::Error> {
    let mut fields = Fields::with_capacity(if top { dec.top_capacity() } else { 4 });
    let mut pos = 0usize;
    // While every key so far matched the (duplicate-free) positional cache,
    // a further match cannot repeat an earlier key, so it is appended
    // without the duplicate scan.
    let mut all_hits = top;
    while let Some(key) = map.next_key::<KeyStr<'de>>()? {
        let (sym, hit) = dec
            .key(top.then_some(pos), key.as_str().as_bytes())
            .ok_or_else(|| serde::de::Error::custom("too many distinct field names"))?;
        all_hits &= hit;
        if top && dec.keep.as_ref().is_some_and(|k| !k.contains(&sym)) {
            map.next_value::<serde::de::IgnoredAny>()?;
            pos += 1;
            continue;
        }
        let value = map.next_value_seed(ValueSeed {
            dec: &mut *dec,
            at: top.then_some(pos),
        })?;
        if all_hits {
            fields.push(sym, value);
        } else {
            fields.insert(sym, value);
        }
        pos += 1;
    }
    Ok(fields)
}

/// A copy of `text` with every integer literal outside the `i64` range in a
/// value position quoted, or `None` when there is none. Strings are skipped
/// (escapes included) and a literal followed by `.`, `e` or `E` is a float.
/// Only value positions are touched, so a malformed document (say a bare
/// number as an object key) stays malformed.
fn quote_big_ints(text: &[u8]) -> Option<Vec<u8>> {
    // Per open container: is it an object? Bounded by the input length.
    let mut stack: Vec<bool> = Vec::new();
    // The last structural byte outside strings (`None` at the start).
    let mut last: Option<u8> = None;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                last = Some(b'"');
                continue;
            }
            b'{' | b'[' => stack.push(b == b'{'),
            b'}' | b']' => {
                stack.pop();
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let digits = start + usize::from(b == b'-');
                let mut end = digits;
                while end < text.len() && text[end].is_ascii_digit() {
                    end += 1;
                }
                let is_value = match last {
                    None | Some(b':') | Some(b'[') => true,
                    Some(b',') => stack.last() == Some(&false),
                    _ => false,
                };
                let float = matches!(text.get(end), Some(b'.' | b'e' | b'E'));
                // JSON's grammar: no leading zeros, at least one digit.
                let well_formed = end > digits && (text[digits] != b'0' || end == digits + 1);
                if is_value && !float && well_formed && !fits_i64(&text[start..end]) {
                    let buf = out.get_or_insert_with(|| Vec::with_capacity(text.len() + 8));
                    buf.extend_from_slice(&text[copied..start]);
                    buf.push(b'"');
                    buf.extend_from_slice(&text[start..end]);
                    buf.push(b'"');
                    copied = end;
                }
                i = end.max(i + 1);
                last = Some(b'0');
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        last = Some(b);
        i += 1;
    }
    let mut buf = out?;
    buf.extend_from_slice(&text[copied.min(text.len())..]);
    Some(buf)
}

/// Whether an ASCII `-?digits` literal lies in the `i64` range.
fn fits_i64(literal: &[u8]) -> bool {
    std::str::from_utf8(literal)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .is_some()
}

/// A map key, borrowed from the input when it has no escapes.
enum KeyStr<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl KeyStr<'_> {
    fn as_str(&self) -> &str {
        match self {
            KeyStr::Borrowed(s) => s,
            KeyStr::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for KeyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<KeyStr<'de>, E> {
                Ok(KeyStr::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyStr<'de>, E> {
                Ok(KeyStr::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Appends `fields` as a JSON object to `out`.
pub fn write_fields(out: &mut Vec<u8>, fields: &Fields) {
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k.as_str());
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

/// Appends `value` as JSON to `out`. Non-finite floats become `null`; a
/// float always keeps a fraction or an exponent, so it reads back as a float.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                let _ = write!(out, "{f:.1}");
            } else if f.fract() == 0.0 {
                // With an exponent, so it reads back as a double, not as an
                // integer literal (an int, or text beyond the i64 range).
                let _ = write!(out, "{f:e}");
            } else {
                let _ = write!(out, "{f}");
            }
        }
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::Str(s) => write_str(out, s),
        Value::List(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v);
            }
            out.push(b']');
        }
        Value::Map(m) => write_fields(out, m),
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{:04x}", b);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Renders a value as a JSON string.
pub fn value_to_json_string(value: &Value) -> String {
    let mut out = Vec::new();
    write_value(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// Renders fields as a JSON object string.
pub fn fields_to_json_string(fields: &Fields) -> String {
    let mut out = Vec::new();
    write_fields(&mut out, fields);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_string_repeated_at_a_top_level_position_is_shared() {
        let mut d = JsonDecoder::new();
        let str_of = |f: &Fields, k: &str| match f.get(Sym::intern(k)) {
            Some(Value::Str(s)) => s.clone(),
            other => panic!("{other:?}"),
        };
        let a = d.decode_str(r#"{"t":"bid","n":["bid"]}"#).unwrap();
        let b = d.decode_str(r#"{"t":"bid","n":["bid"]}"#).unwrap();
        let c = d.decode_str(r#"{"t":"ask","n":["bid"]}"#).unwrap();
        assert!(Arc::ptr_eq(&str_of(&a, "t"), &str_of(&b, "t")));
        assert_eq!(&*str_of(&c, "t"), "ask");
        // Inside lists and nested objects nothing is shared.
        let inner = |f: &Fields| match f.get(Sym::intern("n")) {
            Some(Value::List(l)) => match &l[0] {
                Value::Str(s) => s.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert!(!Arc::ptr_eq(&inner(&a), &inner(&b)));
    }

    #[test]
    fn keep_only_skips_the_other_top_level_fields() {
        let mut d = JsonDecoder::new();
        d.keep_only(Some(vec![Sym::intern("a"), Sym::intern("c")]));
        let text = r#"{"a":1,"b":{"deep":[1,"x\"y"]},"c":"s","d":99999999999999999999999}"#;
        for _ in 0..2 {
            // Twice: the second object takes the positional key cache.
            let f = d.decode_str(text).unwrap();
            assert_eq!(f.len(), 2);
            assert_eq!(f.get(Sym::intern("a")), Some(&Value::Int(1)));
            assert_eq!(f.get(Sym::intern("c")), Some(&Value::str("s")));
        }
        // Skipped values are still checked: bad JSON stays bad.
        assert!(d.decode_str(r#"{"a":1,"b":[1,}"#).is_err());
        d.keep_only(None);
        assert_eq!(d.decode_str(text).unwrap().len(), 4);
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_nested_objects() {
        let mut d = JsonDecoder::new();
        let f = d
            .decode(br#"{"a":1,"b":{"c":"x\"y"},"d":[1.5,null,true]}"#)
            .unwrap();
        assert_eq!(f.get(Sym::intern("a")), Some(&Value::Int(1)));
        assert_eq!(
            fields_to_json_string(&f),
            r#"{"a":1,"b":{"c":"x\"y"},"d":[1.5,null,true]}"#
        );
        // A second object with other keys at the same positions.
        let g = d.decode(br#"{"z":2,"a":3}"#).unwrap();
        assert_eq!(g.get(Sym::intern("a")), Some(&Value::Int(3)));
        assert_eq!(g.get(Sym::intern("z")), Some(&Value::Int(2)));
    }

    #[test]
    fn rejects_bad_input_with_reason() {
        let mut d = JsonDecoder::new();
        assert!(matches!(d.decode(b"{\"a\":"), Err(JsonError::Syntax(_))));
        assert_eq!(d.decode(b"[1]"), Err(JsonError::NotAnObject("list")));
        assert!(matches!(
            d.decode(b"{} trailing"),
            Err(JsonError::Syntax(_))
        ));
    }

    fn field(f: &Fields, name: &str) -> Value {
        f.get(Sym::intern(name)).cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn integers_beyond_i64_are_kept_exactly() {
        let mut d = JsonDecoder::new();
        let text = r#"{"a":123456789012345678901234567890,"u":18446744073709551615,"n":-9223372036854775809,"min":-9223372036854775808,"max":9223372036854775807,"f":1e19,"g":1.0e30,"h":12345678901234567890.5}"#;
        for f in [
            d.decode(text.as_bytes()).unwrap(),
            d.decode_str(text).unwrap(),
        ] {
            assert_eq!(field(&f, "a"), Value::str("123456789012345678901234567890"));
            assert_eq!(field(&f, "u"), Value::str(&u64::MAX.to_string()));
            assert_eq!(field(&f, "n"), Value::str("-9223372036854775809"));
            assert_eq!(field(&f, "min"), Value::Int(i64::MIN));
            assert_eq!(field(&f, "max"), Value::Int(i64::MAX));
            assert_eq!(field(&f, "f"), Value::Float(1e19));
            let g: f64 = serde_json::from_str("1.0e30").unwrap();
            assert_eq!(field(&f, "g"), Value::Float(g));
            assert_eq!(field(&f, "h"), Value::Float(12345678901234567890.5));
        }
        // Above i64::MAX but within u64: never a float either.
        let f = d.decode(br#"{"v":9223372036854775808}"#).unwrap();
        assert_eq!(field(&f, "v"), Value::str("9223372036854775808"));
    }

    #[test]
    fn big_integers_nested_and_beside_tricky_strings() {
        let mut d = JsonDecoder::new();
        let text = r#"{"s\"99999999999999999999":"x\" 99999999999999999999 \\","l":[1,-99999999999999999999,{"m":[99999999999999999999e0,99999999999999999999]}],"t":"\\"}"#;
        let f = d.decode(text.as_bytes()).unwrap();
        assert_eq!(
            fields_to_json_string(&f),
            r#"{"s\"99999999999999999999":"x\" 99999999999999999999 \\","l":[1,"-99999999999999999999",{"m":[1e20,"99999999999999999999"]}],"t":"\\"}"#
        );
    }

    #[test]
    fn integers_beyond_f64_are_kept_exactly() {
        let big = "9".repeat(400);
        let mut d = JsonDecoder::new();
        let f = d
            .decode(format!(r#"{{"a":[{big}],"b":-{big}}}"#).as_bytes())
            .unwrap();
        assert_eq!(
            field(&f, "a"),
            Value::List(Arc::new(vec![Value::str(&big)]))
        );
        assert_eq!(field(&f, "b"), Value::str(&format!("-{big}")));
        // Out of range as a float stays an error; malformed stays malformed.
        assert!(d
            .decode(format!(r#"{{"a":{big}.5e999}}"#).as_bytes())
            .is_err());
        assert!(d.decode(format!(r#"{{{big}:1}}"#).as_bytes()).is_err());
        assert!(d.decode(format!(r#"{{"a":0{big}}}"#).as_bytes()).is_err());
        assert!(d.decode(format!(r#"{{"a":{big}"#).as_bytes()).is_err());
    }

    /// A generated JSON value: its text and what Eddy must decode it to.
    fn json_value() -> impl Strategy<Value = (String, Value)> {
        let int = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|u| u.to_string()),
            any::<u128>().prop_map(|u| format!("-{u}")),
            any::<u128>().prop_map(|u| u.to_string()),
            "[1-9][0-9]{18,40}",
        ]
        .prop_map(|t| {
            // Oracle: the token's own text decides, not a float detour.
            let v = t
                .parse::<i64>()
                .map(Value::Int)
                .unwrap_or_else(|_| Value::str(&t));
            (t, v)
        });
        let float = prop_oneof![
            ("[1-9][0-9]{0,25}", "[0-9]{1,3}").prop_map(|(a, b)| format!("{a}.{b}")),
            ("-?[1-9][0-9]{0,25}", 0u32..30).prop_map(|(a, e)| format!("{a}e{e}")),
        ]
        .prop_map(|t| {
            let v = serde_json::from_str::<f64>(&t).unwrap();
            (t, Value::Float(v))
        });
        let string = "[0-9a\"\\\\ .eE-]{0,12}".prop_map(|s| {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            (String::from_utf8(out).unwrap(), Value::str(&s))
        });
        let leaf = prop_oneof![int, float, string, Just(("null".to_string(), Value::Null))];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                    let text = items
                        .iter()
                        .map(|(t, _)| t.as_str())
                        .collect::<Vec<_>>()
                        .join(" , ");
                    let list = items.into_iter().map(|(_, v)| v).collect();
                    (format!("[ {text} ]"), Value::List(Arc::new(list)))
                }),
                proptest::collection::vec(("[a-c0-9\"]{1,3}", inner), 0..4).prop_map(|entries| {
                    let (text, fields) = object(entries);
                    (text, Value::Map(Arc::new(fields)))
                }),
            ]
        })
    }

    /// Renders entries as an object and builds the fields it must decode to.
    fn object(entries: Vec<(String, (String, Value))>) -> (String, Fields) {
        let mut fields = Fields::default();
        let mut parts = Vec::new();
        for (k, (t, v)) in entries {
            let mut key = Vec::new();
            write_str(&mut key, &k);
            parts.push(format!("{}:\n{t}", String::from_utf8(key).unwrap()));
            fields.insert(Sym::intern(&k), v);
        }
        (format!("{{{}}}", parts.join(",")), fields)
    }

    proptest! {
        #[test]
        fn numbers_match_the_token_oracle(
            entries in proptest::collection::vec(("[a-c0-9\"]{1,3}", json_value()), 0..5)
        ) {
            let (text, expected) = object(entries);
            let mut d = JsonDecoder::new();
            prop_assert_eq!(d.decode(text.as_bytes()), Ok(expected.clone()));
            prop_assert_eq!(d.decode_str(&text), Ok(expected));
        }

        #[test]
        fn floats_read_back_as_floats(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let mut fields = Fields::default();
            fields.insert(Sym::intern("f"), Value::Float(f));
            let text = fields_to_json_string(&fields);
            let back = JsonDecoder::new().decode(text.as_bytes()).unwrap();
            match field(&back, "f") {
                Value::Float(g) => prop_assert!((g - f).abs() <= f.abs() * 1e-15, "{} became {}", f, g),
                other => prop_assert!(false, "{} became {:?} via {}", f, other, text),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = JsonDecoder::new();
            let _ = d.decode(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                prop_assert_eq!(d.decode(&bytes).is_ok(), d.decode_str(text).is_ok());
            }
        }

        #[test]
        fn decoded_objects_round_trip(keys in proptest::collection::vec("[a-c]{1,2}", 0..6), n in any::<i64>()) {
            // Duplicate keys keep the last value, as in JSON.parse.
            let text = format!("{{{}}}", keys.iter().enumerate().map(|(i, k)| format!("\"{k}\":{}", n.wrapping_add(i as i64))).collect::<Vec<_>>().join(","));
            let mut d = JsonDecoder::new();
            let first = d.decode(text.as_bytes()).unwrap();
            let again = d.decode(text.as_bytes()).unwrap();
            prop_assert_eq!(&first, &again);
            let mut expected: Vec<(String, i64)> = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let v = n.wrapping_add(i as i64);
                match expected.iter_mut().find(|(ek, _)| ek == k) {
                    Some(e) => e.1 = v,
                    None => expected.push((k.clone(), v)),
                }
            }
            let got: Vec<(String, i64)> = first.iter().map(|(k, v)| (k.as_str().to_string(), v.as_i64().unwrap())).collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn strings_round_trip(s in ".*") {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
