//! A direct reader for the common case of [`JsonDecoder::decode`]: one pass
//! over the bytes that builds Eddy values without going through serde's
//! visitors, finds the end of each string eight bytes at a time (skipped
//! fields are mostly long strings: URLs, free text), and checks UTF-8 only
//! where it can be broken: outside strings JSON allows nothing but ASCII,
//! and a string is checked only when it holds a byte above 0x7F, or when
//! it is kept (to make it text).
//!
//! It gives up (`None`) wherever a decision is subtle: any malformed input,
//! an integer literal outside the `i64` range, a surrogate escape in a
//! skipped string, nesting deeper than [`MAX_DEPTH`], too many field names.
//! The caller then decodes the document through `serde_json`, which gives
//! the same fields or the error message. So whichever path reads a document,
//! it decodes to the same fields or fails with the same error; the property
//! test below checks this against the `serde_json` path.

use std::borrow::Cow;
use std::sync::Arc;

use super::JsonDecoder;
use crate::event::{Fields, Value};

/// Nesting beyond this is left to `serde_json` (whose own limit is 128).
const MAX_DEPTH: usize = 100;

/// Decodes `bytes` as one JSON object, or `None` when `serde_json` must
/// (or when they are not UTF-8).
pub(super) fn read_top(dec: &mut JsonDecoder, bytes: &[u8]) -> Option<Fields> {
    let mut r = Reader { bytes, pos: 0 };
    r.ws();
    r.eat(b'{')?;
    let fields = r.object(dec, 0, true)?;
    r.ws();
    (r.pos == r.bytes.len()).then_some(fields)
}

/// A cursor over the document.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// After a value inside a container: `,` (more follow, `true`) or the
    /// closing byte (`false`).
    fn next_or_close(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let b = self.peek()?;
        self.pos += 1;
        match b {
            b',' => Some(true),
            b if b == close => Some(false),
            _ => None,
        }
    }

    /// Whether the container just opened closes at once (`{}`, `[]`).
    fn closes_empty(&mut self, close: u8) -> bool {
        self.ws();
        let empty = self.peek() == Some(close);
        self.pos += usize::from(empty);
        empty
    }

    /// Reads an object's entries after its `{`, as `read_object` does on
    /// the `serde_json` path (same key cache, same duplicate handling).
    fn object(&mut self, dec: &mut JsonDecoder, depth: usize, top: bool) -> Option<Fields> {
        let depth = deeper(depth)?;
        let mut fields = Fields::with_capacity(if top { dec.top_capacity() } else { 4 });
        if self.closes_empty(b'}') {
            return Some(fields);
        }
        let mut pos = 0usize;
        let mut all_hits = top;
        loop {
            self.ws();
            self.eat(b'"')?;
            let key = self.raw_string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let (sym, hit) = dec.key(top.then_some(pos), &key)?;
            all_hits &= hit;
            if top && dec.keep.as_ref().is_some_and(|k| !k.contains(&sym)) {
                self.skip(depth)?;
            } else {
                self.value_into(dec, depth, top.then_some(pos), |value| {
                    if all_hits {
                        fields.push(sym, value);
                    } else {
                        fields.insert(sym, value);
                    }
                })?;
            }
            pos += 1;
            if !self.next_or_close(b'}')? {
                return Some(fields);
            }
        }
    }

    /// Reads a value; `at` is its top-level position, if it has one.
    fn value(&mut self, dec: &mut JsonDecoder, depth: usize, at: Option<usize>) -> Option<Value> {
        let mut out = None;
        self.value_into(dec, depth, at, |v| out = Some(v))?;
        out
    }

    /// Reads a value and hands it to `put`, which stores it where it goes
    /// (returned from a call instead, a value was written to the stack in
    /// parts and read back whole: a store-forwarding stall per field).
    fn value_into(
        &mut self,
        dec: &mut JsonDecoder,
        depth: usize,
        at: Option<usize>,
        put: impl FnOnce(Value),
    ) -> Option<()> {
        let value = match self.peek()? {
            b'"' => {
                self.pos += 1;
                let s = self.raw_string()?;
                match at {
                    Some(at) => dec.shared_str(at, &s)?,
                    None => Value::str(std::str::from_utf8(&s).ok()?),
                }
            }
            b'{' | b'[' => self.container(dec, depth)?,
            b't' => self.word(b"true", Value::Bool(true))?,
            b'f' => self.word(b"false", Value::Bool(false))?,
            b'n' => self.word(b"null", Value::Null)?,
            _ => return self.number_into(put),
        };
        put(value);
        Some(())
    }

    /// Reads an object or a list.
    fn container(&mut self, dec: &mut JsonDecoder, depth: usize) -> Option<Value> {
        let open = self.peek()?;
        self.pos += 1;
        if open == b'{' {
            return Some(Value::Map(Arc::new(self.object(dec, depth, false)?)));
        }
        let inner = deeper(depth)?;
        let mut items = Vec::with_capacity(4);
        if !self.closes_empty(b']') {
            loop {
                self.ws();
                items.push(self.value(dec, inner, None)?);
                if !self.next_or_close(b']')? {
                    break;
                }
            }
        }
        Some(Value::List(Arc::new(items)))
    }

    /// Checks a value without building it.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                self.skip_string()
            }
            open @ (b'{' | b'[') => {
                self.pos += 1;
                let inner = deeper(depth)?;
                let close = if open == b'{' { b'}' } else { b']' };
                if self.closes_empty(close) {
                    return Some(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.eat(b'"')?;
                        self.skip_string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip(inner)?;
                    if !self.next_or_close(close)? {
                        return Some(());
                    }
                }
            }
            b't' => self.word(b"true", ()),
            b'f' => self.word(b"false", ()),
            b'n' => self.word(b"null", ()),
            _ => self.number_end().map(|_| ()),
        }
    }

    /// A literal word (`true`, `false`, `null`) standing for `v`.
    fn word<T>(&mut self, word: &[u8], v: T) -> Option<T> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| {
            self.pos = end;
            v
        })
    }

    /// The position of the next `"` or `\` at or after the cursor, and
    /// whether every byte before it is ASCII; `None` when the text ends
    /// first or a control character (invalid inside a JSON string) comes
    /// before it.
    fn plain_run(&self) -> Option<(usize, bool)> {
        let mut end = self.run_from(self.pos, true)?;
        let ascii = self.bytes[end] < 0x80;
        if !ascii {
            end = self.run_from(end, false)?;
        }
        matches!(self.bytes[end], b'"' | b'\\').then_some((end, ascii))
    }

    /// From `i` on, the first quote, backslash or control character (with
    /// `stop_at_high`, or byte above 0x7F). Eight bytes at a time: strings
    /// here are mostly short, where a vector search's set-up costs more
    /// than it saves.
    fn run_from(&self, mut i: usize, stop_at_high: bool) -> Option<usize> {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES * 0x80;
        let high = if stop_at_high { HIGH } else { 0 };
        while let Some(chunk) = self.bytes.get(i..i + 8) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_le_bytes(word);
            // High bit set in each byte that is a quote, a backslash or
            // below 0x20 (or above 0x7F); borrows can only mark bytes above
            // the first one found, so the lowest mark is exact.
            let quote = v ^ (ONES * u64::from(b'"'));
            let backslash = v ^ (ONES * u64::from(b'\\'));
            let marks = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | v.wrapping_sub(ONES * 0x20) & !v
                | v & high)
                & HIGH;
            if marks != 0 {
                return Some(i + (marks.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        while let Some(&b) = self.bytes.get(i) {
            if b < 0x20 || b == b'"' || b == b'\\' || (stop_at_high && b >= 0x80) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Reads a string's content after its opening quote, unescaped, as
    /// bytes not yet checked to be UTF-8.
    fn raw_string(&mut self) -> Option<Cow<'a, [u8]>> {
        let start = self.pos;
        let (end, _) = self.plain_run()?;
        let run = &self.bytes[start..end];
        self.pos = end + 1;
        if self.bytes[end] == b'"' {
            return Some(Cow::Borrowed(run));
        }
        let mut out = Vec::with_capacity(run.len() + 16);
        out.extend_from_slice(run);
        loop {
            let c = self.peek()?;
            self.pos += 1;
            let unescaped = match c {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return None,
            };
            out.extend_from_slice(unescaped.encode_utf8(&mut [0; 4]).as_bytes());
            let start = self.pos;
            let (end, _) = self.plain_run()?;
            out.extend_from_slice(&self.bytes[start..end]);
            self.pos = end + 1;
            if self.bytes[end] == b'"' {
                return Some(Cow::Owned(out));
            }
        }
    }

    /// Checks a string's content after its opening quote.
    fn skip_string(&mut self) -> Option<()> {
        loop {
            let start = self.pos;
            let (end, ascii) = self.plain_run()?;
            if !ascii {
                std::str::from_utf8(&self.bytes[start..end]).ok()?;
            }
            self.pos = end + 1;
            if self.bytes[end] == b'"' {
                return Some(());
            }
            match self.peek()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                b'u' => {
                    self.pos += 1;
                    // Surrogates are left to serde_json, which does not
                    // check them in skipped strings.
                    if (0xD800..0xE000).contains(&self.hex4()?) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut v = 0;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(v)
    }

    /// The character of a `\u` escape after its `u`; a surrogate must be
    /// a high one followed by an escaped low one.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if !(0xD800..0xDC00).contains(&hi) {
            return char::from_u32(hi);
        }
        if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
            return None;
        }
        self.pos += 2;
        let lo = self.hex4()?;
        if !(0xDC00..0xE000).contains(&lo) {
            return None;
        }
        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    }

    /// Moves past a number, checking JSON's grammar; `true` when it is an
    /// integer literal (no fraction, no exponent).
    fn number_end(&mut self) -> Option<bool> {
        self.pos += usize::from(self.peek() == Some(b'-'));
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
            integral = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            self.pos += usize::from(matches!(self.peek(), Some(b'+' | b'-')));
            self.some_digits()?;
            integral = false;
        }
        Some(integral)
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    /// Reads a number as the `serde_json` path does: an integer literal in
    /// the `i64` range is an int (but `-0` a double, as serde_json reads
    /// it); one outside is left to that path; the rest are doubles.
    fn number_into(&mut self, put: impl FnOnce(Value)) -> Option<()> {
        let start = self.pos;
        let integral = self.number_end()?;
        let literal = &self.bytes[start..self.pos];
        if integral {
            let (negative, digits) = match literal.split_first() {
                Some((b'-', digits)) => (true, digits),
                _ => (false, literal),
            };
            // Summed as a negative number, which reaches `i64::MIN`.
            let mut n: i64 = 0;
            for &d in digits {
                n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
            }
            put(match (negative, n) {
                (true, 0) => Value::Float(-0.0),
                (true, n) => Value::Int(n),
                (false, n) => Value::Int(n.checked_neg()?),
            });
            return Some(());
        }
        // Digits, signs, `.`, `e`: ASCII.
        let f: f64 = std::str::from_utf8(literal).ok()?.parse().ok()?;
        f.is_finite().then(|| put(Value::Float(f)))
    }
}

/// One level deeper, unless that is beyond [`MAX_DEPTH`].
fn deeper(depth: usize) -> Option<usize> {
    (depth < MAX_DEPTH).then_some(depth + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the `serde_json` path makes of `text`.
    fn through_serde(text: &str) -> Result<Fields, super::super::JsonError> {
        JsonDecoder::new().decode_serde(text.as_bytes())
    }

    /// The fields as text that tells `-0.0` from `0.0`.
    fn shown(f: &Fields) -> String {
        format!("{f:?}")
    }

    /// Checks the reader against the `serde_json` path on `text`, with and
    /// without a projection, twice each (the second time through warm key
    /// and string caches).
    fn agrees(text: &str) -> Result<(), TestCaseError> {
        let expected = through_serde(text);
        for keep in [
            None,
            Some(vec![crate::Sym::intern("a"), crate::Sym::intern("b")]),
        ] {
            let mut dec = JsonDecoder::new();
            dec.keep_only(keep.clone());
            let mut reference = JsonDecoder::new();
            reference.keep_only(keep);
            let expected = reference.decode_serde(text.as_bytes());
            for _ in 0..2 {
                if let Some(fields) = read_top(&mut dec, text.as_bytes()) {
                    match &expected {
                        Ok(e) => prop_assert_eq!(shown(&fields), shown(e), "{}", text),
                        Err(e) => prop_assert!(false, "{} read, serde_json says {}", text, e),
                    }
                }
            }
        }
        // Whatever the path, decode_str answers as serde_json does.
        prop_assert_eq!(
            JsonDecoder::new().decode_str(text).map(|f| shown(&f)),
            expected.map(|f| shown(&f))
        );
        Ok(())
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a":1,"b":-0,"c":-0.0,"d":1e400,"e":1e-400}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.5E+3,"b":-12,"c":9223372036854775807,"d":-9223372036854775808}"#,
            r#"{"a":9223372036854775808}"#,
            r#" { "a" : [ 1 , { "x" : null } , true , false ] , "b" : "\u00e9\ud83d\ude00\n\"" } "#,
            r#"{"a":"\ud83d"}"#,
            r#"{"z":"\ud83d","a":1}"#,
            r#"{"z":"\udc00x","a":1}"#,
            r#"{"a":"x\qy"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":tru}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{"#,
            "{\"a\":\"tab\tin\"}",
            "{\"z\":\"tab\tin\",\"a\":2}",
            r#"{"a":1,"a":2,"b":3,"a":4}"#,
            r#"{"\u0061":1}"#,
            r#"[1]"#,
            r#""#,
            r#"{"#,
            r#"{}"#,
            r#"{"z":{"y":[{"x":[]}],"w":{}},"a":[[]]}"#,
        ] {
            agrees(text).unwrap();
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(120), "]".repeat(120));
        agrees(&deep).unwrap();
        let deep_skipped = format!("{{\"z\":{}1{}}}", "[".repeat(130), "]".repeat(130));
        agrees(&deep_skipped).unwrap();
    }

    #[test]
    fn reads_the_common_case_itself() {
        let text = r#"{"type":"bid","a":1,"url":"https://x/y?q=1","b":[1.5,"s\"t"]}"#;
        let mut dec = JsonDecoder::new();
        let fields = read_top(&mut dec, text.as_bytes()).expect("read without serde_json");
        assert_eq!(shown(&fields), shown(&through_serde(text).unwrap()));
    }

    /// Bytes the reader takes are UTF-8 throughout, and decode as the
    /// `serde_json` path decodes their text.
    fn agrees_on_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
        let mut dec = JsonDecoder::new();
        dec.keep_only(Some(vec![crate::Sym::intern("a")]));
        if let Some(fields) = read_top(&mut dec, bytes) {
            let text = std::str::from_utf8(bytes);
            prop_assert!(text.is_ok(), "{:?} read, but it is not UTF-8", bytes);
            let mut reference = JsonDecoder::new();
            reference.keep_only(Some(vec![crate::Sym::intern("a")]));
            let expected = reference.decode_serde(bytes);
            prop_assert_eq!(Ok(shown(&fields)), expected.map(|f| shown(&f)));
        }
        Ok(())
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_wherever_they_are() {
        for bytes in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"z\":\"ok \xc3\x28 not\",\"a\":1}",
            b"{\"z\":\"long enough to take whole words \xe2\x82 here\",\"a\":1}",
            b"{\"\xff\":1,\"a\":1}",
            b"{\"a\":1,\"z\":[\"\\n\xf0\x9f\x98\"]}",
        ] {
            assert!(
                read_top(&mut JsonDecoder::new(), bytes).is_none(),
                "{bytes:?}"
            );
            assert!(matches!(
                JsonDecoder::new().decode(bytes),
                Err(super::super::JsonError::NotUtf8(_))
            ));
        }
        // Text beyond ASCII, kept and skipped, whole words and tails.
        let text = r#"{"z":"ça va, 😀 très bien, merci","a":"ünï","é":1}"#;
        agrees(text).unwrap();
    }

    /// Text that is mostly JSON: pieces of valid documents, with bytes
    /// that break them now and then.
    fn jsonish() -> impl Strategy<Value = String> {
        let syntax = prop::sample::select(vec![
            "{", "}", "[", "]", ",", ":", " ", "\"a\":", "\"b\":", "\"c\":", "true", "null", "fals",
        ])
        .prop_map(str::to_string);
        let piece = prop_oneof![
            syntax,
            "\"[a-c\\\\\"/nu0-9dDe\t é😀]{0,6}\"",
            "-?[0-9]{1,21}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?",
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
    }

    /// Well-formed objects, mostly, so the reader's own results are checked
    /// often (not only its refusals).
    fn object_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "-?[0-9]{1,20}",
            "-?[0-9]{1,5}\\.[0-9]{1,5}([eE][+-]?[0-9]{1,3})?",
            "\"([a-z /é😀]|\\\\[\"\\\\/bfnrt]|\\\\u00[0-7][0-9a-fA-F]|\\\\ud83d\\\\ude00){0,8}\"",
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
        ];
        let value = leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(("[a-c]", inner), 0..4)
                    .prop_map(|entries| object_of(&entries, " : ")),
            ]
        });
        proptest::collection::vec(("[a-d]", value), 0..6)
            .prop_map(|entries| object_of(&entries, ":"))
    }

    /// An object of `entries` (key, value text), `colon` between each key
    /// and its value.
    fn object_of(entries: &[(String, String)], colon: &str) -> String {
        let body: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("\"{k}\"{colon}{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_on_objects(text in object_text()) {
            agrees(&text)?;
        }

        #[test]
        fn reads_well_formed_objects_itself(text in object_text()) {
            // Unless an integer may lie beyond 64 bits, whatever serde_json
            // accepts the reader reads without it.
            let longest_digits = text
                .split(|c: char| !c.is_ascii_digit())
                .map(str::len)
                .max()
                .unwrap_or(0);
            if longest_digits <= 18 && through_serde(&text).is_ok() {
                prop_assert!(read_top(&mut JsonDecoder::new(), text.as_bytes()).is_some(), "{}", text);
            }
        }

        #[test]
        fn agrees_with_serde_json_on_near_json(text in jsonish()) {
            agrees(&text)?;
        }

        #[test]
        fn reads_only_utf8(text in object_text(), at in any::<prop::sample::Index>(), byte in 0x80u8..) {
            // A byte above 0x7F put somewhere into a valid object.
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len() + 1);
            bytes.insert(i, byte);
            agrees_on_bytes(&bytes)?;
        }

        #[test]
        fn agrees_with_serde_json_on_broken_objects(text in object_text(), at in any::<prop::sample::Index>(), cut in 0usize..3) {
            // A byte or two removed from a valid object.
            let mut chars: Vec<char> = text.chars().collect();
            if !chars.is_empty() {
                let i = at.index(chars.len());
                let end = (i + cut).min(chars.len());
                chars.drain(i..end);
            }
            agrees(&chars.into_iter().collect::<String>())?;
        }
    }
}
