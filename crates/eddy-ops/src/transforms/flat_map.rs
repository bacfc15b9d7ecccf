//! The `flat_map` transform: one output event per element of an array
//! field.
//!
//! ```toml
//! [transforms.lines]
//! type = "flat_map"
//! inputs = ["orders"]
//! field = "order.items"
//! as_field = "item"      # default: replace `order.items` itself
//! keep_empty = false
//! ```
//!
//! Each output event is a copy of the input (same time, same fields) in
//! which `as_field` (by default `field` itself) holds one element. An empty
//! array produces no event, or, with `keep_empty = true`, one event with
//! `as_field` set to null (an "outer" flattening). A missing, null or
//! non-array `field` sends the event to `NAME.dead_letters` with the reason.

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Event, Operator, OperatorContext, Value};
use serde::Deserialize;

use super::map::FieldPath;

/// Configuration of a `flat_map` transform.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatMapConfig {
    /// Dotted path of the array field to flatten.
    pub field: FieldPath,
    /// Where each element goes (default: `field`, replacing the array).
    #[serde(default, alias = "as")]
    pub as_field: Option<FieldPath>,
    /// Whether an event with an empty array is kept (with `as_field` null).
    #[serde(default)]
    pub keep_empty: bool,
}

impl TransformFactory for FlatMapConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(FlatMap {
            name: cx.name.clone(),
            target: self.as_field.clone().unwrap_or_else(|| self.field.clone()),
            field: self.field.clone(),
            keep_empty: self.keep_empty,
        }))
    }
}

/// The `flat_map` operator.
pub struct FlatMap {
    name: String,
    field: FieldPath,
    target: FieldPath,
    keep_empty: bool,
}

impl FlatMap {
    /// Emits one event per element of `event`'s array into `outs`, or
    /// returns why it cannot.
    fn explode(&self, mut event: Event, outs: &mut Vec<Event>) -> Result<(), (String, Event)> {
        // Cloning the `Arc` releases the borrow of `event`, which is then
        // moved into the last output instead of being copied.
        let items = match event.fields.get_path(self.field.syms()) {
            Some(Value::List(items)) => items.clone(),
            Some(Value::Null) | None => {
                return Err((format!("field `{}` is missing or null", self.field), event))
            }
            Some(other) => {
                let reason = format!(
                    "field `{}` is of type {}, not an array",
                    self.field,
                    other.type_name()
                );
                return Err((reason, event));
            }
        };
        let target = self.target.syms();
        let Some((last, rest)) = items.split_last() else {
            if self.keep_empty {
                event.fields.insert_path(target, Value::Null);
                outs.push(event);
            }
            return Ok(());
        };
        outs.reserve(items.len());
        for item in rest {
            let mut copy = event.clone();
            copy.fields.insert_path(target, item.clone());
            outs.push(copy);
        }
        event.fields.insert_path(target, last.clone());
        outs.push(event);
        Ok(())
    }
}

impl Operator for FlatMap {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let mut outs = Vec::with_capacity(batch.events.len());
        for event in batch.events {
            if let Err((reason, event)) = self.explode(event, &mut outs) {
                out.dead_letter(&self.name, reason, &event);
            }
        }
        if !outs.is_empty() {
            out.emit_batch(Batch::new(outs, batch.origin_ns));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::driven_box;
    use eddy_core::config::{deserialize_body, line_col, parse_document};
    use eddy_core::json::fields_to_json_string;
    use eddy_core::{Output, Sym};

    use super::*;

    fn config(body: &str) -> Result<FlatMapConfig, eddy_core::config::Diagnostic> {
        let text = format!("[transforms.f]\ntype = \"flat_map\"\n{body}");
        let (doc, diags) = parse_document(&text, &[]);
        assert!(diags.is_empty(), "{diags:?}");
        deserialize_body(&doc.components[0].body)
    }

    fn run(config: &FlatMapConfig, lines: &[&str]) -> (Vec<String>, Vec<Event>) {
        let events = crate::test_util::events(lines);
        let mut op = driven_box(config.build(&BuildContext::single("f")).unwrap());
        let mut out = Collector::new();
        op.process(0, Batch::new(events, 77), &mut out);
        let main = out.take(Output::MAIN);
        if !main.is_empty() {
            assert_eq!(out.origin_ns, 77, "the batch origin is passed through");
        }
        let main = main
            .iter()
            .map(|e| format!("{} {}", e.time, fields_to_json_string(&e.fields)))
            .collect();
        (main, out.take(Output::DEAD_LETTERS))
    }

    fn reason(dead: &Event) -> Option<&str> {
        dead.get(Sym::intern("reason")).and_then(Value::as_str)
    }

    #[test]
    fn replaces_the_array_by_each_element() {
        let c = config("field = \"o.items\"\n").unwrap();
        let (main, dead) = run(
            &c,
            &[
                r#"{"id": 1, "o": {"items": [1, {"sku": "x"}]}}"#,
                r#"{"id": 2, "o": {"items": []}}"#,
                r#"{"id": 3, "o": {"items": [true]}}"#,
            ],
        );
        assert!(dead.is_empty());
        assert_eq!(
            main,
            [
                r#"0 {"id":1,"o":{"items":1}}"#,
                r#"0 {"id":1,"o":{"items":{"sku":"x"}}}"#,
                r#"2 {"id":3,"o":{"items":true}}"#,
            ]
        );
    }

    #[test]
    fn as_field_keeps_the_array_and_keep_empty_emits_null() {
        let c = config("field = \"tags\"\nas = \"tag\"\nkeep_empty = true\n").unwrap();
        let (main, dead) = run(&c, &[r#"{"tags": ["a", "b"]}"#, r#"{"tags": []}"#]);
        assert!(dead.is_empty());
        assert_eq!(
            main,
            [
                r#"0 {"tags":["a","b"],"tag":"a"}"#,
                r#"0 {"tags":["a","b"],"tag":"b"}"#,
                r#"1 {"tags":[],"tag":null}"#,
            ]
        );
    }

    #[test]
    fn non_arrays_are_dead_letters() {
        let c = config("field = \"tags\"\n").unwrap();
        let (main, dead) = run(
            &c,
            &[
                r#"{"tags": "a,b"}"#,
                r#"{"other": 1}"#,
                r#"{"tags": ["x"]}"#,
            ],
        );
        assert_eq!(main, [r#"2 {"tags":"x"}"#]);
        let reasons: Vec<_> = dead.iter().map(reason).collect();
        assert_eq!(
            reasons,
            [
                Some("field `tags` is of type string, not an array"),
                Some("field `tags` is missing or null"),
            ]
        );
        assert_eq!(dead[1].time, 1);
    }

    #[test]
    fn bad_paths_and_keys_are_reported_at_their_position() {
        let err = config("field = \"a.\"\n").unwrap_err();
        assert!(err.message.contains("field path `a.` has an empty segment"));
        // The body starts with two header lines.
        let text = "[transforms.f]\ntype = \"flat_map\"\nfield = \"a.\"\n";
        assert_eq!(line_col(text, err.span.start), (3, 9));
        let err = config("field = \"a\"\nkeep = true\n").unwrap_err();
        assert!(
            err.message.starts_with("unknown field `keep`"),
            "{}",
            err.message
        );
    }
}
