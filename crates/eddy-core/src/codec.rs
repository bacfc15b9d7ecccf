//! A compact binary encoding for state: [`Value`], [`Fields`], [`Event`]
//! and whatever operators keep in state tables (accumulators, sketches).
//!
//! It lives in the core so that operators can implement [`Encode`] and
//! [`Decode`] for their own state without depending on the state crate.
//!
//! Integers are LEB128 varints (signed ones zigzagged), floats their 8 bytes,
//! every value starts with a one-byte type tag. Field names are written as
//! text the first time an [`Encoder`] meets them and as a small index after
//! that, so a stream of records of one shape spells each name once; an
//! encoder used for a single record pays the text once per record.
//!
//! Decoding is safe on untrusted bytes: every length is checked against the
//! bytes that remain before anything is allocated (so a decoder never
//! allocates more than a small multiple of its input), nesting is bounded by
//! [`MAX_DEPTH`], and errors are returned, never panicked.
//!
//! ```
//! use eddy_core::codec::{decode_from, encode_to_vec};
//! use eddy_core::{Fields, Sym, Value};
//!
//! let mut fields = Fields::default();
//! fields.push(Sym::intern("merchant"), Value::str("m-1"));
//! fields.push(Sym::intern("n"), Value::Int(3));
//! let bytes = encode_to_vec(&fields);
//! assert_eq!(decode_from::<Fields>(&bytes).unwrap(), fields);
//! ```

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::event::{Event, Fields, Value};
use crate::symbol::Sym;

/// Deepest nesting of lists and maps a decoder accepts: deep enough for any
/// event a pipeline builds, shallow enough for a worker thread's stack.
pub const MAX_DEPTH: usize = 64;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end in the middle of a record.
    #[error("truncated: {needed} more bytes needed at offset {offset}")]
    Truncated {
        /// Where the read started.
        offset: usize,
        /// How many bytes it needed past the end.
        needed: usize,
    },
    /// A type tag this codec does not know.
    #[error("unknown {what} tag {tag} at offset {offset}")]
    UnknownTag {
        /// What was being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
        /// Where.
        offset: usize,
    },
    /// A varint longer than 10 bytes or past 64 bits.
    #[error("malformed varint at offset {0}")]
    Varint(usize),
    /// Text that is not UTF-8.
    #[error("text is not UTF-8 at offset {0}")]
    Utf8(usize),
    /// Lists or maps nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A field-name index that was never defined.
    #[error("field name #{0} was never defined")]
    UnknownName(u64),
    /// The process already holds [`crate::MAX_SYMBOLS`] field names.
    #[error("too many distinct field names")]
    TooManyNames,
    /// A number out of the range its type allows.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// Bytes left over after a complete record.
    #[error("{0} bytes left after the record")]
    Trailing(usize),
}

/// Writes records into a byte buffer.
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
    names: FxHashMap<Sym, u64>,
}

impl Encoder {
    /// An empty encoder with a fresh field-name dictionary.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes, consuming the encoder.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Empties the buffer but keeps the field-name dictionary, so the next
    /// bytes continue the same stream.
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Forgets the field names written so far: what follows decodes on its
    /// own, with a fresh [`Decoder`].
    pub fn reset_names(&mut self) {
        self.names.clear();
    }

    /// Writes one byte.
    pub fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Writes an unsigned LEB128 varint.
    pub fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.buf.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.buf.push(n as u8);
    }

    /// Writes a signed integer, zigzagged so small magnitudes stay short.
    pub fn zigzag(&mut self, n: i64) {
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    /// Writes a float's 8 bytes.
    pub fn f64(&mut self, f: f64) {
        self.buf.extend_from_slice(&f.to_le_bytes());
    }

    /// Writes a length-prefixed byte string.
    pub fn bytes_field(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// Writes a length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.bytes_field(s.as_bytes());
    }

    /// Writes a field name: `index << 1` if this encoder wrote it before,
    /// else `len << 1 | 1` and the text.
    pub fn name(&mut self, name: Sym) {
        if let Some(&i) = self.names.get(&name) {
            self.varint(i << 1);
            return;
        }
        let i = self.names.len() as u64;
        self.names.insert(name, i);
        let text = name.as_str();
        self.varint(((text.len() as u64) << 1) | 1);
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// Writes anything that encodes itself.
    pub fn put<T: Encode + ?Sized>(&mut self, value: &T) {
        value.encode(self);
    }
}

/// Reads records from a byte slice.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    names: Vec<Sym>,
    depth: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `bytes` with an empty field-name dictionary.
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder {
            bytes,
            pos: 0,
            names: Vec::new(),
            depth: 0,
        }
    }

    /// How many bytes were read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes remain.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    /// Reads `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Reads an unsigned LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            // The tenth byte may carry only the top bit of a u64.
            if shift == 63 && b > 1 {
                return Err(DecodeError::Varint(start));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(DecodeError::Varint(start))
    }

    /// Reads a zigzagged signed integer.
    pub fn zigzag(&mut self) -> Result<i64, DecodeError> {
        let n = self.varint()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    /// Reads a float.
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// Reads a length that counts items of at least `min_item_bytes` bytes
    /// each, refusing one the remaining bytes cannot hold (the guard that
    /// keeps allocations bounded by the input).
    pub fn len(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let n = self.varint()?;
        let room = self.remaining() / min_item_bytes.max(1);
        if n > room as u64 {
            return Err(DecodeError::Truncated {
                offset,
                needed: (n - room as u64).saturating_mul(min_item_bytes.max(1) as u64) as usize,
            });
        }
        Ok(n as usize)
    }

    /// Reads a length-prefixed byte string.
    pub fn bytes_field(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(1)?;
        self.take(n)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let offset = self.pos;
        let b = self.bytes_field()?;
        std::str::from_utf8(b).map_err(|_| DecodeError::Utf8(offset))
    }

    /// Reads a field name written by [`Encoder::name`].
    pub fn name(&mut self) -> Result<Sym, DecodeError> {
        let offset = self.pos;
        let head = self.varint()?;
        if head & 1 == 0 {
            let i = head >> 1;
            return usize::try_from(i)
                .ok()
                .and_then(|i| self.names.get(i).copied())
                .ok_or(DecodeError::UnknownName(i));
        }
        let len = usize::try_from(head >> 1).map_err(|_| DecodeError::OutOfRange("name length"))?;
        let text = self.take(len)?;
        let text = std::str::from_utf8(text).map_err(|_| DecodeError::Utf8(offset))?;
        let sym = Sym::try_intern(text).ok_or(DecodeError::TooManyNames)?;
        self.names.push(sym);
        Ok(sym)
    }

    /// Reads anything that decodes itself.
    pub fn get<T: Decode>(&mut self) -> Result<T, DecodeError> {
        T::decode(self)
    }

    /// Runs `f` one nesting level deeper, failing past [`MAX_DEPTH`].
    pub fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }
}

/// A type that writes itself with an [`Encoder`].
pub trait Encode {
    /// Appends `self` to the encoder.
    fn encode(&self, enc: &mut Encoder);
}

/// A type that reads itself from a [`Decoder`].
pub trait Decode: Sized {
    /// Reads one `Self`; never panics, whatever the bytes.
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError>;
}

/// Encodes one record on its own (field names spelled out once).
pub fn encode_to_vec<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut enc = Encoder::new();
    value.encode(&mut enc);
    enc.into_bytes()
}

/// Decodes one record that must use every byte.
pub fn decode_from<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let out = T::decode(&mut dec)?;
    dec.finish()?;
    Ok(out)
}

mod tag {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const INT: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const STR: u8 = 5;
    pub const LIST: u8 = 6;
    pub const MAP: u8 = 7;
}

impl Encode for Value {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Value::Null => enc.u8(tag::NULL),
            Value::Bool(false) => enc.u8(tag::FALSE),
            Value::Bool(true) => enc.u8(tag::TRUE),
            Value::Int(i) => {
                enc.u8(tag::INT);
                enc.zigzag(*i);
            }
            Value::Float(f) => {
                enc.u8(tag::FLOAT);
                enc.f64(*f);
            }
            Value::Str(s) => {
                enc.u8(tag::STR);
                enc.str(s);
            }
            Value::List(items) => {
                enc.u8(tag::LIST);
                enc.varint(items.len() as u64);
                for v in items.iter() {
                    v.encode(enc);
                }
            }
            Value::Map(fields) => {
                enc.u8(tag::MAP);
                fields.encode(enc);
            }
        }
    }
}

impl Decode for Value {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let offset = dec.position();
        Ok(match dec.u8()? {
            tag::NULL => Value::Null,
            tag::FALSE => Value::Bool(false),
            tag::TRUE => Value::Bool(true),
            tag::INT => Value::Int(dec.zigzag()?),
            tag::FLOAT => Value::Float(dec.f64()?),
            tag::STR => Value::Str(Arc::from(dec.str()?)),
            tag::LIST => dec.nested(|dec| {
                // Every value takes at least its tag byte.
                let n = dec.len(1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(Value::decode(dec)?);
                }
                Ok(Value::List(Arc::new(items)))
            })?,
            tag::MAP => dec.nested(|dec| Ok(Value::Map(Arc::new(Fields::decode(dec)?))))?,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "value",
                    tag,
                    offset,
                })
            }
        })
    }
}

impl Encode for Fields {
    fn encode(&self, enc: &mut Encoder) {
        enc.varint(self.len() as u64);
        for (name, value) in self.iter() {
            enc.name(name);
            value.encode(enc);
        }
    }
}

impl Decode for Fields {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        // A field takes at least a name byte and a tag byte.
        let n = dec.len(2)?;
        let mut fields = Fields::with_capacity(n);
        for _ in 0..n {
            let name = dec.name()?;
            // `insert`, not `push`: a repeated name in corrupt input must not
            // create a record with two fields of one name.
            fields.insert(name, Value::decode(dec)?);
        }
        Ok(fields)
    }
}

impl Encode for Event {
    fn encode(&self, enc: &mut Encoder) {
        enc.zigzag(self.time);
        self.fields.encode(enc);
    }
}

impl Decode for Event {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let time = dec.zigzag()?;
        Ok(Event::new(time, Fields::decode(dec)?))
    }
}

impl Encode for i64 {
    fn encode(&self, enc: &mut Encoder) {
        enc.zigzag(*self);
    }
}
impl Decode for i64 {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        dec.zigzag()
    }
}

impl Encode for u64 {
    fn encode(&self, enc: &mut Encoder) {
        enc.varint(*self);
    }
}
impl Decode for u64 {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        dec.varint()
    }
}

impl Encode for f64 {
    fn encode(&self, enc: &mut Encoder) {
        enc.f64(*self);
    }
}
impl Decode for f64 {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        dec.f64()
    }
}

impl Encode for bool {
    fn encode(&self, enc: &mut Encoder) {
        enc.u8(*self as u8);
    }
}
impl Decode for bool {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let offset = dec.position();
        match dec.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag {
                what: "bool",
                tag,
                offset,
            }),
        }
    }
}

impl Encode for str {
    fn encode(&self, enc: &mut Encoder) {
        enc.str(self);
    }
}
impl Encode for String {
    fn encode(&self, enc: &mut Encoder) {
        enc.str(self);
    }
}
impl Decode for String {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        dec.str().map(str::to_owned)
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, enc: &mut Encoder) {
        enc.varint(self.len() as u64);
        for item in self {
            item.encode(enc);
        }
    }
}
impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, enc: &mut Encoder) {
        self.as_slice().encode(enc);
    }
}
impl<T: Decode> Decode for Vec<T> {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        // Every encoding here takes at least one byte per item.
        let n = dec.len(1)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(dec.nested(T::decode)?);
        }
        Ok(out)
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            None => enc.u8(0),
            Some(v) => {
                enc.u8(1);
                v.encode(enc);
            }
        }
    }
}
impl<T: Decode> Decode for Option<T> {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let offset = dec.position();
        match dec.u8()? {
            0 => Ok(None),
            1 => Ok(Some(dec.nested(T::decode)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "option",
                tag,
                offset,
            }),
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, enc: &mut Encoder) {
        self.0.encode(enc);
        self.1.encode(enc);
    }
}
impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok((A::decode(dec)?, B::decode(dec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = Sym> {
        prop::sample::select(vec!["a", "merchant", "n", "user", "ts", "é"]).prop_map(Sym::intern)
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            ".{0,12}".prop_map(|s| Value::str(&s)),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(|v| Value::List(Arc::new(v))),
                prop::collection::btree_map(name().prop_map(|s| s.as_str()), inner, 0..5).prop_map(
                    |m| {
                        Value::Map(Arc::new(
                            m.into_iter().map(|(k, v)| (Sym::intern(k), v)).collect(),
                        ))
                    }
                ),
            ]
        })
    }

    /// Equality that tells `1` from `1.0` and compares NaNs by bits, which
    /// `Value`'s key equality does not.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::List(x), Value::List(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
            }
            (Value::Int(_), Value::Float(_)) | (Value::Float(_), Value::Int(_)) => false,
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn values_round_trip(v in value()) {
            let bytes = encode_to_vec(&v);
            let back: Value = decode_from(&bytes).unwrap();
            prop_assert!(same(&v, &back), "{v:?} came back as {back:?}");
        }

        #[test]
        fn event_streams_round_trip_with_one_dictionary(
            events in prop::collection::vec((any::<i64>(), value()), 0..8)
        ) {
            let events: Vec<Event> = events
                .into_iter()
                .map(|(t, v)| {
                    let mut f = Fields::default();
                    f.push(Sym::intern("v"), v);
                    Event::new(t, f)
                })
                .collect();
            let mut enc = Encoder::new();
            for e in &events {
                enc.put(e);
            }
            let bytes = enc.into_bytes();
            let mut dec = Decoder::new(&bytes);
            for e in &events {
                let back: Event = dec.get().unwrap();
                prop_assert_eq!(back.time, e.time);
                prop_assert!(same(
                    &Value::Map(Arc::new(back.fields)),
                    &Value::Map(Arc::new(e.fields.clone()))
                ));
            }
            prop_assert!(dec.finish().is_ok());
        }

        #[test]
        fn integers_and_options_round_trip(
            xs in prop::collection::vec((any::<i64>(), (any::<u64>(), any::<Option<bool>>())), 0..20)
        ) {
            let bytes = encode_to_vec(&xs);
            prop_assert_eq!(decode_from::<Vec<(i64, (u64, Option<bool>))>>(&bytes).ok(), Some(xs));
        }
    }

    #[test]
    fn small_numbers_are_short_and_names_are_spelled_once() {
        assert_eq!(encode_to_vec(&Value::Int(-1)).len(), 2);
        let mut f = Fields::default();
        f.push(Sym::intern("merchant"), Value::Int(1));
        let mut enc = Encoder::new();
        enc.put(&f);
        let first = enc.bytes().len();
        enc.put(&f);
        assert_eq!(enc.bytes().len() - first, 4, "count, index, tag, int");
    }

    #[test]
    fn hostile_lengths_and_nesting_are_errors() {
        // A list claiming 2^62 items in 10 bytes.
        let mut enc = Encoder::new();
        enc.u8(tag::LIST);
        enc.varint(1 << 62);
        assert!(matches!(
            decode_from::<Value>(enc.bytes()),
            Err(DecodeError::Truncated { .. })
        ));
        let deep = [tag::LIST, 1].repeat(MAX_DEPTH + 1);
        assert_eq!(decode_from::<Value>(&deep), Err(DecodeError::TooDeep));
        assert!(matches!(
            decode_from::<Value>(&[0xff; 11]),
            Err(DecodeError::UnknownTag { .. })
        ));
        assert_eq!(decode_from::<u64>(&[0xff; 11]), Err(DecodeError::Varint(0)));
        assert_eq!(
            decode_from::<Value>(&[tag::NULL, 0]),
            Err(DecodeError::Trailing(1))
        );
        assert_eq!(
            decode_from::<Fields>(&[1, 4, 0]),
            Err(DecodeError::UnknownName(2))
        );
    }
}
