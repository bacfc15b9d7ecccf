//! JSON decoding straight into [`Fields`] and encoding of events as JSON.
//!
//! Decoding goes through `serde_json` with a visitor that builds Eddy values
//! directly (no intermediate `serde_json::Value`) and caches interned field
//! names per decoder, so a homogeneous stream interns each key once.

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
}

/// Why a JSON document could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonError {
    /// The text is not valid JSON.
    #[error("invalid JSON: {0}")]
    Syntax(String),
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

    /// Decodes one JSON object from bytes (validating UTF-8).
    pub fn decode(&mut self, text: &[u8]) -> Result<Fields, JsonError> {
        let mut de = serde_json::Deserializer::from_slice(text);
        self.finish(&mut de)
    }

    /// Decodes one JSON object from text already known to be UTF-8, skipping
    /// a second validation.
    pub fn decode_str(&mut self, text: &str) -> Result<Fields, JsonError> {
        let mut de = serde_json::Deserializer::from_str(text);
        self.finish(&mut de)
    }

    fn finish<'de, R: serde_json::de::Read<'de>>(
        &mut self,
        de: &mut serde_json::Deserializer<R>,
    ) -> Result<Fields, JsonError> {
        let fields = TopSeed { dec: self }
            .deserialize(&mut *de)
            .map_err(|e| JsonError::Syntax(e.to_string()))?;
        de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
        fields.map_err(JsonError::NotAnObject)
    }

    /// Interns `key`; the flag says whether it matched the positional cache.
    fn key(&mut self, pos: Option<usize>, key: &str) -> Option<(Sym, bool)> {
        if let Some(p) = pos {
            if let Some(s) = self.positional.get(p) {
                if s.as_str() == key {
                    return Some((*s, true));
                }
            }
        }
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
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::str(v))
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
    let mut fields = Fields::with_capacity(if top { dec.positional.len().max(4) } else { 4 });
    let mut pos = 0usize;
    // While every key so far matched the (duplicate-free) positional cache,
    // a further match cannot repeat an earlier key, so it is appended
    // without the duplicate scan.
    let mut all_hits = top;
    while let Some(key) = map.next_key::<KeyStr<'de>>()? {
        let (sym, hit) = dec
            .key(top.then_some(pos), key.as_str())
            .ok_or_else(|| serde::de::Error::custom("too many distinct field names"))?;
        all_hits &= hit;
        let value = map.next_value_seed(ValueSeed { dec: &mut *dec })?;
        if all_hits {
            fields.push(sym, value);
        } else {
            fields.insert(sym, value);
        }
        pos += 1;
    }
    Ok(fields)
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

/// Appends `value` as JSON to `out`. Non-finite floats become `null`.
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

    proptest! {
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
