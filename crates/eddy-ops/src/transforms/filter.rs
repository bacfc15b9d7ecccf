//! The `filter` transform: keeps the events whose condition is true.
//!
//! ```toml
//! [transforms.big]
//! type = "filter"
//! inputs = ["tx"]
//! condition = "amount > 10000 && user.country != 'AR'"
//! ```
//!
//! Events for which the condition cannot be evaluated (a missing field in
//! arithmetic, a non-boolean result) go to `NAME.dead_letters` with the
//! reason; they are not kept.

use eddy_core::component::{BuildContext, BuildError, FieldsRead, TransformFactory};
use eddy_core::{Batch, Collector, Expression, Operator, OperatorContext};
use serde::Deserialize;

/// Configuration of a `filter` transform.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The CEL condition; events for which it is `true` are kept.
    pub condition: Expression,
}

impl TransformFactory for FilterConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(Filter {
            name: cx.name.clone(),
            condition: self.condition.clone(),
        }))
    }

    /// The condition's fields; the events kept go on as they came.
    fn fields_read(&self) -> Option<FieldsRead> {
        Some(FieldsRead {
            fields: self.condition.fields_read(),
            passes_on: true,
        })
    }
}

/// The `filter` operator.
pub struct Filter {
    name: String,
    condition: Expression,
}

impl Filter {
    /// A filter named `name` (the dead letters' `stage`) keeping events
    /// that satisfy `condition`.
    pub fn new(name: &str, condition: Expression) -> Filter {
        Filter {
            name: name.to_string(),
            condition,
        }
    }
}

impl Operator for Filter {
    fn process(
        &mut self,
        _input: usize,
        mut batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let (name, condition) = (&self.name, &self.condition);
        // Filtering in place keeps the batch's allocation for the output.
        batch
            .events
            .retain(|event| match condition.eval_bool(event) {
                Ok(keep) => keep,
                Err(e) => {
                    let reason = format!(
                        "condition `{}` failed: {e}",
                        eddy_core::expr::excerpt(condition.source())
                    );
                    out.dead_letter(name, reason, event);
                    false
                }
            });
        if !batch.events.is_empty() {
            out.emit_batch(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::driven_box;
    use eddy_core::config::{deserialize_body, line_col, parse_document};

    use eddy_core::{Event, Output, Sym, Value};

    use super::*;

    fn batch(lines: &[&str], origin_ns: u64) -> Batch {
        Batch::new(crate::test_util::events(lines), origin_ns)
    }

    fn run(condition: &str, lines: &[&str]) -> (Vec<Event>, Vec<Event>, u64) {
        let config = FilterConfig {
            condition: Expression::compile(condition).unwrap(),
        };
        let mut op = driven_box(config.build(&BuildContext::single("big")).unwrap());
        let mut out = Collector::new();
        op.process(0, batch(lines, 42), &mut out);
        (
            out.take(Output::MAIN),
            out.take(Output::DEAD_LETTERS),
            out.origin_ns,
        )
    }

    #[test]
    fn keeps_matching_events_and_dead_letters_failures() {
        let (main, dead, origin) = run(
            "amount > 10",
            &[
                r#"{"id": 1, "amount": 5}"#,
                r#"{"id": 2, "amount": 50}"#,
                r#"{"id": 3}"#,
                r#"{"id": 4, "amount": 11.5}"#,
            ],
        );
        let ids: Vec<_> = main
            .iter()
            .map(|e| e.get(Sym::intern("id")).cloned())
            .collect();
        assert_eq!(ids, [Some(Value::Int(2)), Some(Value::Int(4))]);
        assert_eq!(main[0].time, 1, "event time is preserved");
        assert_eq!(origin, 42, "the batch origin is passed through");
        assert_eq!(dead.len(), 1);
        let reason = dead[0].get(Sym::intern("reason")).and_then(Value::as_str);
        assert_eq!(
            reason,
            Some("condition `amount > 10` failed: field `amount` is missing or null")
        );
        assert_eq!(
            dead[0].get(Sym::intern("stage")).and_then(Value::as_str),
            Some("big")
        );
        let original = dead[0].get(Sym::intern("event"));
        assert!(
            matches!(original, Some(Value::Map(m)) if m.get(Sym::intern("id")) == Some(&Value::Int(3)))
        );
    }

    #[test]
    fn a_non_boolean_condition_is_a_dead_letter() {
        let (main, dead, _) = run("name", &[r#"{"name": "x"}"#]);
        assert!(main.is_empty());
        let reason = dead[0].get(Sym::intern("reason")).and_then(Value::as_str);
        assert_eq!(
            reason,
            Some("condition `name` failed: condition `name` produced string (\"x\"), not a bool")
        );
    }

    #[test]
    fn an_empty_result_emits_nothing() {
        let (main, dead, _) = run("false", &[r#"{"a": 1}"#]);
        assert!(main.is_empty() && dead.is_empty());
    }

    const PIPELINE: &str = r#"
[sources.tx]
type = "file"
path = "tx.ndjson"

[transforms.big]
type = "filter"
inputs = ["tx"]
condition = "amount > frob(1)"
"#;

    #[test]
    fn bad_expressions_are_reported_at_their_position_in_the_file() {
        let (doc, diags) = parse_document(PIPELINE, &[]);
        assert!(diags.is_empty(), "{diags:?}");
        let body = &doc.components[1].body;
        let err = deserialize_body::<FilterConfig>(body).unwrap_err();
        assert!(
            err.message.contains(
                "bad expression `amount > frob(1)`: unknown function `frob` at column 10"
            ),
            "{}",
            err.message
        );
        assert_eq!(line_col(PIPELINE, err.span.start), (9, 13));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = "[transforms.f]\ntype = \"filter\"\ncondition = \"true\"\nconditon = \"x\"\n";
        let (doc, _) = parse_document(text, &[]);
        let err = deserialize_body::<FilterConfig>(&doc.components[0].body).unwrap_err();
        assert!(
            err.message.starts_with("unknown field `conditon`"),
            "{}",
            err.message
        );
        assert_eq!(err.hint.as_deref(), Some("did you mean `condition`?"));
    }
}
