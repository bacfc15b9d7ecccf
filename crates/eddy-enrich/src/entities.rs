//! The `entities` transform: named things found in a text field.
//!
//! ```toml
//! [transforms.things]
//! type = "entities"
//! inputs = ["messages"]
//! field = "text"
//! target = "entities"                  # default
//! gazetteers = { technology = ["Kafka", "PostgreSQL"], organisation = ["Acme Corp"] }
//! ```
//!
//! `target` becomes a list of `{type, text}` in text order: `email`, `url`
//! (`http://` or `https://`), `ip`, `hostname` (`db-3.prod.example.com`;
//! lower case, ending in a common or internal domain), `ticket` (`ABC-123`; not standards
//! such as `ISO-27001` or `CVE-2024-1234`), `date`
//! (`2024-05-01`, a real calendar date), `amount` (`$1,200.50`, `€3k`,
//! `250 EUR`; with `value` and `currency`) and one type per gazetteer,
//! matched whole-word and ignoring ASCII case, reported with the spelling
//! the gazetteer gives. Where finds overlap the one starting first (then
//! the longest) is kept. Events without the field pass unchanged; a field
//! that is not a string goes to `NAME.dead_letters`.

use std::collections::BTreeMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Fields, Operator, OperatorContext, Sym, Value};
use eddy_ops::transforms::map::FieldPath;
use serde::Deserialize;

use crate::redact::detect::{self, Kind};
use crate::text_field::TextField;

/// One entity found in a text.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    /// Byte offset of its start.
    pub start: usize,
    /// Byte offset after its end.
    pub end: usize,
    /// Its type: a built-in kind or a gazetteer's name.
    pub kind: Arc<str>,
    /// Its text (for gazetteer entries, the gazetteer's spelling).
    pub text: Arc<str>,
    /// For amounts: the number and the ISO currency code.
    pub amount: Option<(f64, &'static str)>,
}

/// Finds entities in texts.
pub struct Extractor {
    gazetteer: Option<AhoCorasick>,
    /// Per gazetteer pattern: its type and canonical spelling.
    entries: Vec<(Arc<str>, Arc<str>)>,
    kinds: [Arc<str>; 7],
    finds: Vec<detect::Find>,
}

const CURRENCY_CODES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "CNY", "INR",
];

impl Extractor {
    /// An extractor with the built-in kinds and `gazetteers` (type → names).
    pub fn new(gazetteers: &BTreeMap<String, Vec<String>>) -> Result<Extractor, String> {
        let mut patterns = Vec::new();
        let mut entries = Vec::new();
        for (kind, names) in gazetteers {
            let kind: Arc<str> = kind.as_str().into();
            for name in names.iter().filter(|n| !n.trim().is_empty()) {
                patterns.push(name.clone());
                entries.push((kind.clone(), Arc::from(name.as_str())));
            }
        }
        let gazetteer = if patterns.is_empty() {
            None
        } else {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .map_err(|e| format!("cannot build the gazetteers: {e}"))?;
            Some(ac)
        };
        let kinds = ["email", "url", "ip", "ticket", "date", "amount", "hostname"].map(Arc::from);
        Ok(Extractor {
            gazetteer,
            entries,
            kinds,
            finds: Vec::new(),
        })
    }

    /// The entities of `text`, in text order, none overlapping.
    pub fn extract(&mut self, text: &str) -> Vec<Entity> {
        let mut found = Vec::new();
        detect::find_all(text, &[Kind::Email, Kind::Ip], &mut self.finds);
        for f in &self.finds {
            let kind = if f.kind == Kind::Email { 0 } else { 2 };
            found.push(self.entity(text, f.range.start, f.range.end, kind));
        }
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
            let hit = boundary
                .then(|| {
                    url(b, i)
                        .map(|end| (end, 1))
                        .or_else(|| ticket(b, i).map(|end| (end, 3)))
                        .or_else(|| date(b, i).map(|end| (end, 4)))
                        .or_else(|| hostname(b, i).map(|end| (end, 6)))
                })
                .flatten();
            match hit {
                Some((end, kind)) => {
                    found.push(self.entity(text, i, end, kind));
                    i = end;
                }
                None => i += 1,
            }
        }
        amounts(text, &mut found, &self.kinds[5]);
        if let Some(ac) = &self.gazetteer {
            for m in ac.find_iter(text) {
                let whole_word = (m.start() == 0 || !b[m.start() - 1].is_ascii_alphanumeric())
                    && b.get(m.end()).is_none_or(|c| !c.is_ascii_alphanumeric());
                if whole_word {
                    let (kind, name) = &self.entries[m.pattern().as_usize()];
                    found.push(Entity {
                        start: m.start(),
                        end: m.end(),
                        kind: kind.clone(),
                        text: name.clone(),
                        amount: None,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut kept: Vec<Entity> = Vec::with_capacity(found.len());
        for e in found {
            if kept.last().is_none_or(|k| e.start >= k.end) {
                kept.push(e);
            }
        }
        kept
    }

    fn entity(&self, text: &str, start: usize, end: usize, kind: usize) -> Entity {
        Entity {
            start,
            end,
            kind: self.kinds[kind].clone(),
            text: text[start..end].into(),
            amount: None,
        }
    }
}

/// A URL starting at `i`: `http://` or `https://` and what follows up to
/// white space, less trailing punctuation.
fn url(b: &[u8], i: usize) -> Option<usize> {
    let rest = &b[i..];
    let scheme = if rest.starts_with(b"https://") {
        8
    } else if rest.starts_with(b"http://") {
        7
    } else {
        return None;
    };
    let mut end = i + scheme;
    while end < b.len() && !b[end].is_ascii_whitespace() && b[end] != b'"' && b[end] != b'<' {
        end += 1;
    }
    while end > i + scheme
        && matches!(
            b[end - 1],
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b')' | b']' | b'\''
        )
    {
        end -= 1;
    }
    (end > i + scheme + 2).then_some(end)
}

/// The last labels a host name may end with: common top-level domains
/// and the suffixes of internal networks. A list, because `node.js` or
/// `config.yaml` look like host names too.
const HOST_SUFFIXES: &[&[u8]] = &[
    b"app",
    b"au",
    b"ca",
    b"cloud",
    b"cluster",
    b"co",
    b"com",
    b"corp",
    b"de",
    b"dev",
    b"eu",
    b"fr",
    b"home",
    b"internal",
    b"io",
    b"jp",
    b"lan",
    b"local",
    b"net",
    b"nl",
    b"org",
    b"svc",
    b"uk",
    b"us",
];

/// A host name starting at `i`: two or more dot-separated labels of lower
/// case letters, digits and inner dashes, the last one in
/// [`HOST_SUFFIXES`] (a sentence's closing dot is not part of it).
fn hostname(b: &[u8], i: usize) -> Option<usize> {
    let label = |start: usize| {
        let mut end = start;
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'-')
        {
            end += 1;
        }
        let ok = end > start && b[start] != b'-' && b[end - 1] != b'-';
        ok.then_some(end)
    };
    let mut end = label(i)?;
    let mut labels = 1;
    let mut last = i;
    while b.get(end) == Some(&b'.') {
        let Some(next) = label(end + 1) else { break };
        last = end + 1;
        end = next;
        labels += 1;
    }
    let free = b
        .get(end)
        .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'@' && *c != b'_');
    (labels >= 2 && free && HOST_SUFFIXES.contains(&&b[last..end])).then_some(end)
}

/// Prefixes of standards and identifiers written like ticket ids
/// (`ISO-27001`, `RFC-9110`, `CVE-2024-1234`, `SHA-256`), which are not
/// tickets.
const NOT_TICKETS: &[&[u8]] = &[
    b"ANSI", b"CVE", b"CWE", b"EN", b"IEC", b"IEEE", b"ISO", b"NIST", b"PCI", b"RFC", b"SHA",
    b"SSL", b"TLS", b"UTF",
];

/// A ticket id starting at `i`: 2–10 capitals or digits (a capital first),
/// a dash and 1–7 digits; not a standard's number ([`NOT_TICKETS`]).
fn ticket(b: &[u8], i: usize) -> Option<usize> {
    if !b[i].is_ascii_uppercase() {
        return None;
    }
    let mut j = i;
    while j < b.len() && (b[j].is_ascii_uppercase() || b[j].is_ascii_digit()) && j - i < 10 {
        j += 1;
    }
    if j - i < 2 || b.get(j) != Some(&b'-') || NOT_TICKETS.contains(&&b[i..j]) {
        return None;
    }
    let digits_start = j + 1;
    let mut end = digits_start;
    while end < b.len() && b[end].is_ascii_digit() && end - digits_start < 7 {
        end += 1;
    }
    let ok = end > digits_start && !b.get(end).is_some_and(u8::is_ascii_alphanumeric);
    ok.then_some(end)
}

/// An ISO date (`YYYY-MM-DD`, a real calendar day) starting at `i`.
fn date(b: &[u8], i: usize) -> Option<usize> {
    let s = b.get(i..i + 10)?;
    let digits = |r: std::ops::Range<usize>| {
        s[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if s[4] != b'-' || s[7] != b'-' || b.get(i + 10).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let ok = (1..=12).contains(&m) && d >= 1 && d <= days[(m - 1) as usize];
    ok.then_some(i + 10)
}

/// Amounts: a currency symbol before a number (`$1,200.50`, `€3k`), or an
/// ISO code before or after one (`USD 40`, `250 EUR`).
fn amounts(text: &str, found: &mut Vec<Entity>, kind: &Arc<str>) {
    let b = text.as_bytes();
    let symbols: [(&str, &'static str); 4] =
        [("$", "USD"), ("€", "EUR"), ("£", "GBP"), ("¥", "JPY")];
    let mut push = |start: usize, end: usize, value: f64, currency: &'static str| {
        found.push(Entity {
            start,
            end,
            kind: kind.clone(),
            text: text[start..end].into(),
            amount: Some((value, currency)),
        });
    };
    let mut i = 0;
    while i < b.len() {
        if let Some(&(sym, code)) = symbols
            .iter()
            .find(|(s, _)| b[i..].starts_with(s.as_bytes()))
        {
            if let Some((end, value)) = number(b, i + sym.len()) {
                push(i, end, value, code);
                i = end;
                continue;
            }
        }
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary && b[i].is_ascii_uppercase() {
            if let Some(&code) = CURRENCY_CODES
                .iter()
                .find(|c| b[i..].starts_with(c.as_bytes()))
            {
                if b.get(i + 3) == Some(&b' ') {
                    if let Some((end, value)) = number(b, i + 4) {
                        push(i, end, value, code);
                        i = end;
                        continue;
                    }
                }
            }
        }
        if boundary && b[i].is_ascii_digit() {
            if let Some((end, value)) = number(b, i) {
                if b.get(end) == Some(&b' ') {
                    if let Some(&code) = code_after(b, end) {
                        push(i, end + 4, value, code);
                        i = end + 4;
                        continue;
                    }
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

/// The ISO currency code after the space at `end`.
fn code_after(b: &[u8], end: usize) -> Option<&'static &'static str> {
    CURRENCY_CODES.iter().find(|c| {
        b.get(end + 1..)
            .is_some_and(|r| r.starts_with(c.as_bytes()))
            && !b.get(end + 4).is_some_and(u8::is_ascii_alphanumeric)
    })
}

/// A number at `i` (`1,200.50`, `3.5k`, `2M`): its end and value.
fn number(b: &[u8], i: usize) -> Option<(usize, f64)> {
    let mut j = i;
    let mut digits = String::new();
    while j < b.len() {
        let c = b[j];
        if c.is_ascii_digit() || c == b'.' {
            digits.push(c as char);
        } else if c == b',' && b.get(j + 1).is_some_and(u8::is_ascii_digit) && !digits.is_empty() {
            // A thousands separator.
        } else {
            break;
        }
        j += 1;
    }
    while digits.ends_with('.') {
        digits.pop();
        j -= 1;
    }
    let mut value: f64 = digits.parse().ok()?;
    let scale = match b.get(j) {
        Some(b'k' | b'K') => 1e3,
        Some(b'M') => 1e6,
        Some(b'B') => 1e9,
        _ => 1.0,
    };
    if scale != 1.0 && !b.get(j + 1).is_some_and(u8::is_ascii_alphanumeric) {
        value *= scale;
        j += 1;
    }
    if b.get(j).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some((j, value))
}

/// Configuration of an `entities` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitiesConfig {
    /// Dotted path of the text.
    pub field: FieldPath,
    /// Where the list of entities goes (default `entities`).
    #[serde(default = "default_target")]
    pub target: FieldPath,
    /// Entity type → the names that are of that type.
    #[serde(default)]
    pub gazetteers: BTreeMap<String, Vec<String>>,
}

fn default_target() -> FieldPath {
    FieldPath::parse("entities").expect("a valid path")
}

impl TransformFactory for EntitiesConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(EntitiesOperator {
            text: TextField::new(&cx.name, &self.field, &self.target),
            extractor: Extractor::new(&self.gazetteers).map_err(BuildError::Config)?,
            keys: [
                Sym::intern("type"),
                Sym::intern("text"),
                Sym::intern("value"),
                Sym::intern("currency"),
            ],
        }))
    }
}

/// The `entities` operator.
pub struct EntitiesOperator {
    text: TextField,
    extractor: Extractor,
    /// `type`, `text`, `value`, `currency`.
    keys: [Sym; 4],
}

impl Operator for EntitiesOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let Self {
            text,
            extractor,
            keys,
        } = self;
        text.apply(batch, out, |t| {
            let list = extractor
                .extract(t)
                .into_iter()
                .map(|e| {
                    let mut f = Fields::with_capacity(4);
                    f.push(keys[0], Value::Str(e.kind));
                    f.push(keys[1], Value::Str(e.text));
                    if let Some((value, currency)) = e.amount {
                        f.push(keys[2], Value::Float(value));
                        f.push(keys[3], Value::str(currency));
                    }
                    Value::Map(Arc::new(f))
                })
                .collect();
            Value::List(Arc::new(list))
        });
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::json::JsonDecoder;
    use eddy_core::state::GroupRange;
    use eddy_core::{Event, Output};

    use super::*;

    #[test]
    fn the_operator_lists_entities_and_dead_letters_non_text() {
        let cfg = EntitiesConfig {
            field: FieldPath::parse("text").unwrap(),
            target: default_target(),
            gazetteers: BTreeMap::new(),
        };
        let mut op = cfg.build(&BuildContext::single("things")).unwrap();
        let mut cx = eddy_state::context(GroupRange::all());
        let mut dec = JsonDecoder::new();
        let events = [
            r#"{"text": "see OPS-7, $5"}"#,
            r#"{"n": 1}"#,
            r#"{"text": 3}"#,
        ]
        .iter()
        .map(|l| Event::new(0, dec.decode(l.as_bytes()).unwrap()))
        .collect();
        let mut out = Collector::new();
        op.process(0, Batch::new(events, 0), &mut cx, &mut out);
        let main = out.take(Output::MAIN);
        let json = |e: &Event| Value::Map(Arc::new(e.fields.clone())).to_string();
        assert_eq!(
            json(&main[0]),
            r#"{"text":"see OPS-7, $5","entities":[{"type":"ticket","text":"OPS-7"},{"type":"amount","text":"$5","value":5.0,"currency":"USD"}]}"#
        );
        assert_eq!(json(&main[1]), r#"{"n":1}"#);
        assert_eq!(out.take(Output::DEAD_LETTERS).len(), 1);
    }

    fn found(text: &str) -> Vec<(String, String)> {
        let gazetteers = BTreeMap::from([
            (
                "technology".to_string(),
                vec!["Kafka".to_string(), "PostgreSQL".to_string()],
            ),
            ("organisation".to_string(), vec!["Acme Corp".to_string()]),
        ]);
        Extractor::new(&gazetteers)
            .unwrap()
            .extract(text)
            .into_iter()
            .map(|e| (e.kind.to_string(), e.text.to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn finds_every_kind_in_text_order() {
        let text = "ACME-42: acme corp moved kafka to https://ops.example.com/run?id=7. \
                    Paid $1,200.50 and 250 EUR on 2024-02-29; mail ops@example.com from 10.0.0.8 \
                    or db-3.prod.example.com.";
        assert_eq!(
            found(text),
            pairs(&[
                ("ticket", "ACME-42"),
                ("organisation", "Acme Corp"),
                ("technology", "Kafka"),
                ("url", "https://ops.example.com/run?id=7"),
                ("amount", "$1,200.50"),
                ("amount", "250 EUR"),
                ("date", "2024-02-29"),
                ("email", "ops@example.com"),
                ("ip", "10.0.0.8"),
                ("hostname", "db-3.prod.example.com"),
            ])
        );
    }

    #[test]
    fn near_misses_are_not_entities() {
        for text in [
            "the kafkaesque postgresqlish acmecorp",
            "2023-02-29 is no date, 2024-13-01 neither",
            "A-1 is too short a project key, ab-12 is not capitals",
            "12 apples, version 1.2, costs nothing",
            "ISO-27001, RFC-9110, CVE-2024-1234 and SHA-256 are standards",
            "node.js, config.yaml, e.g. v2.3.1 and readme.md are no hosts",
            "",
        ] {
            assert_eq!(found(text), [], "{text}");
        }
    }

    proptest::proptest! {
        /// Any text, multi-byte characters included, gives entities whose
        /// text is where they say it is.
        #[test]
        fn any_text_extracts_without_panicking(text in "\\PC{0,60}|[0-9 $€£.,:@A-Z-]{0,60}") {
            let mut x = Extractor::new(&BTreeMap::new()).unwrap();
            for e in x.extract(&text) {
                proptest::prop_assert_eq!(&text[e.start..e.end], &*e.text);
            }
        }
    }

    #[test]
    fn amounts_carry_value_and_currency() {
        let mut x = Extractor::new(&BTreeMap::new()).unwrap();
        let got: Vec<_> = x
            .extract("budget €3k, then USD 40 and £2.5M.")
            .into_iter()
            .map(|e| e.amount.unwrap())
            .collect();
        assert_eq!(got, [(3000.0, "EUR"), (40.0, "USD"), (2_500_000.0, "GBP")]);
    }
}
