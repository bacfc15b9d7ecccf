//! The `map` transform: sets, renames and removes fields.
//!
//! ```toml
//! [transforms.enrich]
//! type = "map"
//! inputs = ["tx"]
//! remove = ["debug", "user.email"]
//!
//! [transforms.enrich.set]
//! total = "price * qty"
//! "user.tier" = "amount > 1000 ? 'gold' : 'std'"
//!
//! [transforms.enrich.rename]
//! ts = "event_time"
//! ```
//!
//! Steps apply in this order, each in file order:
//!
//! 1. `set`: every expression is evaluated against the **input** event
//!    first, then all are assigned, so one `set` entry never sees another's
//!    result. Assigning `a.b` creates the map `a` when `a` is missing or
//!    null; when `a` holds anything else (a string, a number, a list), the
//!    event goes to `NAME.dead_letters` (``cannot set `a.b`: `a` is a
//!    string``) and nothing of it is emitted.
//! 2. `rename`: moves `old` to `new` (overwriting `new`); a missing `old` is
//!    skipped. As for `set`, a `new` path through a value that is neither a
//!    map nor null sends the event, as it came, to `NAME.dead_letters`.
//! 3. `remove`: deletes the paths; missing paths are skipped.
//!
//! An event on which an expression fails goes, unchanged, to
//! `NAME.dead_letters` with the reason.
//!
//! Field paths are dotted (`user.tier`). In a TOML table, quote them
//! (`"user.tier" = ...`); an unquoted dotted key or a nested table
//! (`[transforms.enrich.set.user]`) means the same thing.

use std::fmt;

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Expression, Fields, Operator, OperatorContext, Sym, Value};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Configuration of a `map` transform.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// Fields to assign, in file order: path → CEL expression evaluated
    /// against the input event.
    #[serde(default, deserialize_with = "expression_table")]
    pub set: Vec<(FieldPath, Expression)>,
    /// Fields to rename, in file order: old path → new path.
    #[serde(default, deserialize_with = "path_table")]
    pub rename: Vec<(FieldPath, FieldPath)>,
    /// Fields to remove.
    #[serde(default)]
    pub remove: Vec<FieldPath>,
}

/// A dotted field path (`user.address.city`), interned when the
/// configuration is read.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    syms: Vec<Sym>,
}

impl FieldPath {
    /// Parses a dotted path; every segment must be non-empty.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        if text.is_empty() {
            return Err("a field path must not be empty".into());
        }
        if text.split('.').any(str::is_empty) {
            return Err(format!("field path `{text}` has an empty segment"));
        }
        Ok(FieldPath {
            text: text.to_string(),
            syms: text.split('.').map(Sym::intern).collect(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The interned segments.
    pub fn syms(&self) -> &[Sym] {
        &self.syms
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({:?})", self.text)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldPath, D::Error> {
        let text = String::deserialize(d)?;
        FieldPath::parse(&text).map_err(de::Error::custom)
    }
}

fn expression_table<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(FieldPath, Expression)>, D::Error> {
    ordered_table(d, |text| {
        Expression::compile(text)
            .map_err(|e| format!("bad expression `{}`: {e}", eddy_core::expr::excerpt(text)))
    })
}

fn path_table<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(FieldPath, FieldPath)>, D::Error> {
    ordered_table(d, FieldPath::parse)
}

/// Reads a table of path → string in file order (a `HashMap` would lose
/// the order that `set` and `rename` apply in). Nested tables extend the
/// path, so `a.b = "x"` and `[...set.a] b = "x"` both mean `"a.b" = "x"`.
fn ordered_table<'de, D, T>(
    d: D,
    convert: fn(&str) -> Result<T, String>,
) -> Result<Vec<(FieldPath, T)>, D::Error>
where
    D: Deserializer<'de>,
{
    let mut out = Vec::new();
    d.deserialize_map(TableSeed {
        prefix: String::new(),
        out: &mut out,
        convert,
    })?;
    Ok(out)
}

/// One level of an ordered table, with the path leading to it.
struct TableSeed<'o, T> {
    prefix: String,
    out: &'o mut Vec<(FieldPath, T)>,
    convert: fn(&str) -> Result<T, String>,
}

impl<'de, T> DeserializeSeed<'de> for TableSeed<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T> Visitor<'de> for TableSeed<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            f.write_str("a table of field paths")
        } else {
            f.write_str("a string or a table")
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.prefix.is_empty() {
            return Err(E::invalid_type(de::Unexpected::Str(v), &self));
        }
        let path = FieldPath::parse(&self.prefix).map_err(E::custom)?;
        let value = (self.convert)(v).map_err(E::custom)?;
        self.out.push((path, value));
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let prefix = if self.prefix.is_empty() {
                key
            } else {
                format!("{}.{key}", self.prefix)
            };
            map.next_value_seed(TableSeed {
                prefix,
                out: &mut *self.out,
                convert: self.convert,
            })?;
        }
        Ok(())
    }
}

impl TransformFactory for MapConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(Map::new(&cx.name, self)))
    }
}

/// The `map` operator.
pub struct Map {
    name: String,
    set: Vec<(FieldPath, Expression)>,
    rename: Vec<(FieldPath, FieldPath)>,
    remove: Vec<FieldPath>,
    /// Values computed by `set` for the current event, kept between events
    /// so the buffer is allocated once.
    values: Vec<Value>,
    /// Whether a rename target is a dotted path, which an event may block
    /// with a scalar; only then is the input kept for a dead letter.
    rename_may_block: bool,
}

impl Map {
    /// A map operator named `name` (the dead letters' `stage`).
    pub fn new(name: &str, config: &MapConfig) -> Map {
        Map {
            name: name.to_string(),
            set: config.set.clone(),
            rename: config.rename.clone(),
            remove: config.remove.clone(),
            values: Vec::with_capacity(config.set.len()),
            rename_may_block: config.rename.iter().any(|(_, to)| to.syms().len() > 1),
        }
    }
}

impl Operator for Map {
    fn process(
        &mut self,
        _input: usize,
        mut batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let Map {
            name,
            set,
            rename,
            remove,
            values,
            rename_may_block,
        } = self;
        batch.events.retain_mut(|event| {
            let input = rename_may_block.then(|| event.clone());
            values.clear();
            for (path, expr) in set.iter() {
                match expr.eval(event) {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        let reason = format!(
                            "set `{path}` = `{}` failed: {e}",
                            eddy_core::expr::excerpt(expr.source())
                        );
                        out.dead_letter(name, reason, event);
                        return false;
                    }
                }
            }
            if let Some(reason) = blocked_set(&event.fields, set, values) {
                out.dead_letter(name, reason, event);
                return false;
            }
            for ((path, _), v) in set.iter().zip(values.drain(..)) {
                event.fields.insert_path(path.syms(), v);
            }
            for (from, to) in rename.iter() {
                if from != to {
                    if let Some(v) = event.fields.remove_path(from.syms()) {
                        if let Some(reason) = blocked_path(&event.fields, to.syms()) {
                            let reason = format!("cannot rename `{from}` to `{to}`: {reason}");
                            out.dead_letter(name, reason, input.as_ref().unwrap_or(event));
                            return false;
                        }
                        event.fields.insert_path(to.syms(), v);
                    }
                }
            }
            for path in remove.iter() {
                event.fields.remove_path(path.syms());
            }
            true
        });
        if !batch.events.is_empty() {
            out.emit_batch(batch);
        }
    }
}

/// Why the `set` assignments cannot all be made on `fields`, if they cannot:
/// one of them goes through a value that is neither a map nor null. Checked
/// before anything is assigned, so a failing event stays as it came; each
/// assignment sees the ones before it (`a = "1"` then `"a.b"` fails too).
fn blocked_set(
    fields: &Fields,
    set: &[(FieldPath, Expression)],
    values: &[Value],
) -> Option<String> {
    for (i, (path, _)) in set.iter().enumerate() {
        let syms = path.syms();
        for k in 1..syms.len() {
            let prefix = &syms[..k];
            if let Some(v) = value_before(fields, &set[..i], values, prefix) {
                if let Some(why) = not_a_map(prefix, v) {
                    return Some(format!("cannot set `{path}`: {why}"));
                }
            }
        }
    }
    None
}

/// Why `path` cannot be assigned in `fields`, if it cannot: a value on
/// the way is neither a map nor null.
fn blocked_path(fields: &Fields, path: &[Sym]) -> Option<String> {
    (1..path.len()).find_map(|k| {
        let prefix = &path[..k];
        fields.get_path(prefix).and_then(|v| not_a_map(prefix, v))
    })
}

/// ``"`a.b` is a string"`` when `v`, found at `prefix`, cannot hold fields.
fn not_a_map(prefix: &[Sym], v: &Value) -> Option<String> {
    if matches!(v, Value::Map(_) | Value::Null) {
        return None;
    }
    let at = prefix
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(".");
    let ty = v.type_name();
    let article = if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    Some(format!("`{at}` is {article} {ty}"))
}

/// The value at `prefix` once the `earlier` assignments are made (`None`:
/// missing, or a map the assignments create).
fn value_before<'v>(
    fields: &'v Fields,
    earlier: &[(FieldPath, Expression)],
    values: &'v [Value],
    prefix: &[Sym],
) -> Option<&'v Value> {
    for ((path, _), value) in earlier.iter().zip(values).rev() {
        let p = path.syms();
        if prefix.starts_with(p) {
            // Assigned at or above `prefix`: look inside the new value.
            let mut v = value;
            for seg in &prefix[p.len()..] {
                match v {
                    Value::Map(m) => v = m.get(*seg)?,
                    _ => return None,
                }
            }
            return Some(v);
        }
        if p.starts_with(prefix) {
            // Assigned below `prefix`, which is therefore a map by now.
            return None;
        }
    }
    fields.get_path(prefix)
}

#[cfg(test)]
mod tests {
    use crate::test_util::driven_box;
    use eddy_core::config::{deserialize_body, line_col, parse_document};
    use eddy_core::json::fields_to_json_string;
    use eddy_core::{Event, Output};
    use proptest::prelude::*;

    use super::*;

    fn config(text: &str) -> MapConfig {
        let (doc, diags) = parse_document(text, &[]);
        assert!(diags.is_empty(), "{diags:?}");
        deserialize_body(&doc.components[0].body).unwrap()
    }

    fn run(config: &MapConfig, lines: &[&str]) -> (Vec<String>, Vec<Event>) {
        let events = crate::test_util::events(lines);
        let mut op = driven_box(config.build(&BuildContext::single("m")).unwrap());
        let mut out = Collector::new();
        op.process(0, Batch::new(events, 9), &mut out);
        let main = out.take(Output::MAIN);
        if !main.is_empty() {
            assert_eq!(out.origin_ns, 9, "the batch origin is passed through");
        }
        let main = main
            .iter()
            .map(|e| fields_to_json_string(&e.fields))
            .collect();
        (main, out.take(Output::DEAD_LETTERS))
    }

    const PIPELINE: &str = r#"
[transforms.m]
type = "map"
inputs = ["tx"]
remove = ["debug", "user.email"]

[transforms.m.set]
total = "price * qty"
"user.tier" = "total > 10 ? 'gold' : 'std'"
price = "price + 1"
flags.big = "price * qty > 10"

[transforms.m.rename]
ts = "event_time"
"user.id" = "user_id"
"#;

    #[test]
    fn tables_keep_file_order_and_nested_keys_extend_the_path() {
        let c = config(PIPELINE);
        let set: Vec<&str> = c.set.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(set, ["total", "user.tier", "price", "flags.big"]);
        let rename: Vec<(&str, &str)> = c
            .rename
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(rename, [("ts", "event_time"), ("user.id", "user_id")]);
        assert_eq!(c.remove[1].syms().len(), 2);
    }

    #[test]
    fn set_sees_the_input_then_rename_then_remove() {
        let c = config(PIPELINE);
        let (main, dead) = run(
            &c,
            &[
                r#"{"price": 4, "qty": 3, "ts": 1, "debug": true, "total": 100, "user": {"id": 7, "email": "e"}}"#,
                r#"{"price": 1, "qty": 2, "total": 0}"#,
            ],
        );
        assert!(dead.is_empty());
        assert_eq!(
            main,
            [
                // `user.tier` used the input's `total` (100), not the new 12.
                r#"{"price":5,"qty":3,"total":12,"user":{"tier":"gold"},"flags":{"big":true},"event_time":1,"user_id":7}"#,
                r#"{"price":2,"qty":2,"total":2,"user":{"tier":"std"},"flags":{"big":false}}"#,
            ]
        );
    }

    /// Regression (hardening): a rename into `a.b` replaced a scalar `a`
    /// with a map without a word, as `set` did.
    #[test]
    fn renaming_through_a_scalar_is_a_dead_letter_with_the_input() {
        let c = config(
            "[transforms.m]\ntype = \"map\"\ninputs = [\"x\"]\n\
             set = { n = \"1\" }\nrename = { x = \"a.b\", a = \"a.c\" }\n",
        );
        let (main, dead) = run(
            &c,
            &[
                r#"{"x": 1, "a": "s", "k": 1}"#,
                r#"{"x": 2, "a": {"z": 0}, "k": 2}"#,
                r#"{"x": 3, "k": 3}"#,
            ],
        );
        // `a = "a.c"` moves the map itself; only the string blocks.
        assert_eq!(
            main,
            [
                r#"{"k":2,"n":1,"a":{"c":{"z":0,"b":2}}}"#,
                r#"{"k":3,"n":1,"a":{"c":{"b":3}}}"#,
            ]
        );
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].get(Sym::intern("reason")).and_then(Value::as_str),
            Some("cannot rename `x` to `a.b`: `a` is a string")
        );
        // The dead letter holds the event as it came, before `set`.
        assert_eq!(
            dead[0]
                .get(Sym::intern("event"))
                .map(eddy_core::json::value_to_json_string),
            Some(r#"{"x":1,"a":"s","k":1}"#.to_string())
        );
    }

    #[test]
    fn evaluation_errors_are_dead_letters_with_the_event_unchanged() {
        let c = config(PIPELINE);
        let (main, dead) = run(
            &c,
            &[r#"{"price": 4}"#, r#"{"price": 1, "qty": 1, "total": 0}"#],
        );
        assert_eq!(main.len(), 1);
        assert_eq!(dead.len(), 1);
        let reason = dead[0].get(Sym::intern("reason")).and_then(Value::as_str);
        assert_eq!(
            reason,
            Some("set `total` = `price * qty` failed: field `qty` is missing or null")
        );
        let original = dead[0].get(Sym::intern("event"));
        assert!(matches!(original, Some(Value::Map(m)) if m.len() == 1));
    }

    #[test]
    fn a_dotted_set_through_a_scalar_is_a_dead_letter_and_emits_nothing() {
        let c = config(
            "[transforms.m]\ntype = \"map\"\n[transforms.m.set]\nx = \"1\"\n\"a.b\" = \"1\"\n",
        );
        let cases = [
            (r#"{"a": "s"}"#, Some("cannot set `a.b`: `a` is a string")),
            (r#"{"a": 7}"#, Some("cannot set `a.b`: `a` is an int")),
            (r#"{"a": 2.5}"#, Some("cannot set `a.b`: `a` is a double")),
            (r#"{"a": [1]}"#, Some("cannot set `a.b`: `a` is a list")),
            (r#"{"a": true}"#, Some("cannot set `a.b`: `a` is a bool")),
            (r#"{"a": null}"#, None),
            (r#"{}"#, None),
            (r#"{"a": {"c": 1}}"#, None),
        ];
        for (input, want) in cases {
            let (main, dead) = run(&c, &[input]);
            match want {
                Some(reason) => {
                    assert!(main.is_empty(), "{input}: {main:?}");
                    assert_eq!(dead.len(), 1, "{input}");
                    let got = dead[0].get(Sym::intern("reason")).and_then(Value::as_str);
                    assert_eq!(got, Some(reason), "{input}");
                    // The event is the input, untouched (no `x`).
                    let event = dead[0].get(Sym::intern("event"));
                    assert!(
                        matches!(event, Some(Value::Map(m)) if m.len() == 1),
                        "{input}"
                    );
                }
                None => {
                    assert!(dead.is_empty(), "{input}: {dead:?}");
                    assert_eq!(main.len(), 1);
                    assert!(main[0].contains(r#""a":{"#), "{}", main[0]);
                }
            }
        }
        // An earlier assignment counts: `a` is an int by the time `a.b` is set.
        let c = config(
            "[transforms.m]\ntype = \"map\"\n[transforms.m.set]\na = \"1\"\n\"a.b.c\" = \"1\"\n",
        );
        let (main, dead) = run(&c, &[r#"{"a": {"b": {}}}"#]);
        assert!(main.is_empty());
        let got = dead[0].get(Sym::intern("reason")).and_then(Value::as_str);
        assert_eq!(got, Some("cannot set `a.b.c`: `a` is an int"));
        let c = config("[transforms.m]\ntype = \"map\"\n[transforms.m.set]\na = \"{'b': 'x'}\"\n\"a.b.c\" = \"1\"\n");
        let (_, dead) = run(&c, &[r#"{}"#]);
        let got = dead[0].get(Sym::intern("reason")).and_then(Value::as_str);
        assert_eq!(got, Some("cannot set `a.b.c`: `a.b` is a string"));
    }

    fn json_scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("1".to_string()),
            Just("\"s\"".to_string()),
            Just("[1]".to_string()),
            Just("{}".to_string()),
            Just("{\"b\": 2}".to_string()),
            Just("{\"b\": \"t\"}".to_string()),
        ]
    }

    proptest! {
        /// Every event comes out with every `set` applied, or goes to dead
        /// letters unchanged: never both, never neither.
        #[test]
        fn set_applies_fully_or_dead_letters_the_input(
            a in json_scalar(),
            paths in prop::collection::vec(prop::sample::select(vec!["a", "a.b", "a.b.c", "x", "x.y", "a.c"]), 1..5),
        ) {
            let mut text = String::from("[transforms.m]\ntype = \"map\"\n[transforms.m.set]\n");
            let mut seen = Vec::new();
            for (i, p) in paths.iter().enumerate() {
                if !seen.contains(p) {
                    seen.push(*p);
                    text.push_str(&format!("\"{p}\" = \"{i}\"\n"));
                }
            }
            let c = config(&text);
            let input = format!(r#"{{"a": {a}}}"#);
            let events = crate::test_util::events(&[input.as_str()]);
            let mut op = driven_box(c.build(&BuildContext::single("m")).unwrap());
            let mut out = Collector::new();
            op.process(0, Batch::new(events.clone(), 0), &mut out);
            let main = out.take(Output::MAIN);
            let dead = out.take(Output::DEAD_LETTERS);
            prop_assert_eq!(main.len() + dead.len(), 1, "{} {:?}", input, seen);
            if let Some(e) = main.first() {
                // Oracle: assigning in order, every path reads back its value
                // unless a later assignment replaced it or something above it.
                for (i, p) in seen.iter().enumerate() {
                    let later = seen[i + 1..].iter().any(|q| {
                        q == p || p.starts_with(&format!("{q}.")) || q.starts_with(&format!("{p}."))
                    });
                    if !later {
                        let syms: Vec<Sym> = p.split('.').map(Sym::intern).collect();
                        let want = Value::Int(paths.iter().position(|x| x == p).unwrap() as i64);
                        prop_assert_eq!(e.fields.get_path(&syms), Some(&want), "{} {:?}", p, seen);
                    }
                }
            } else {
                let original = dead[0].get(Sym::intern("event")).cloned();
                let input_map = Value::Map(std::sync::Arc::new(events[0].fields.clone()));
                prop_assert_eq!(original, Some(input_map));
            }
        }
    }

    #[test]
    fn bad_expressions_and_paths_are_reported_at_their_position() {
        let text =
            "[transforms.m]\ntype = \"map\"\n\n[transforms.m.set]\nok = \"1\"\nbad = \"nope(1)\"\n";
        let (doc, _) = parse_document(text, &[]);
        let err = deserialize_body::<MapConfig>(&doc.components[0].body).unwrap_err();
        assert!(
            err.message
                .contains("bad expression `nope(1)`: unknown function `nope` at column 1"),
            "{}",
            err.message
        );
        assert_eq!(line_col(text, err.span.start).0, 6);

        let text = "[transforms.m]\ntype = \"map\"\nremove = [\"a..b\"]\n";
        let (doc, _) = parse_document(text, &[]);
        let err = deserialize_body::<MapConfig>(&doc.components[0].body).unwrap_err();
        assert!(err
            .message
            .contains("field path `a..b` has an empty segment"));
        assert_eq!(line_col(text, err.span.start).0, 3);

        let text = "[transforms.m]\ntype = \"map\"\nset = \"x\"\n";
        let (doc, _) = parse_document(text, &[]);
        let err = deserialize_body::<MapConfig>(&doc.components[0].body).unwrap_err();
        assert!(
            err.message.contains("a table of field paths"),
            "{}",
            err.message
        );
    }
}
