//! The `enrich` transform: universal metadata on every event.
//!
//! ```toml
//! [transforms.meta]
//! type = "enrich"
//! inputs = ["business"]
//! target = "meta"                       # default
//! source = "'simulator'"                # CEL; optional
//! category = "type"                     # CEL; optional
//! correlation = "project_id"            # CEL; optional
//! ```
//!
//! `target` becomes a map: `processed_at` (processing time, epoch ms),
//! `age_ms` (processing time minus event time: how late the event reached
//! this stage), `size_bytes` (the event's size as JSON) and, when
//! configured, `source`, `category` and `correlation` (a hint that groups
//! related events, such as an order or project id). An expression that
//! cannot be evaluated for an event (a missing field) gives null rather
//! than losing the event. `processed_at` and `age_ms` read the wall clock,
//! so they differ from run to run; everything else depends on the event.

use std::sync::Arc;

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Expression, Fields, Operator, OperatorContext, Sym, Value};
use eddy_ops::transforms::map::FieldPath;
use serde::Deserialize;

/// Configuration of an `enrich` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Where the metadata goes (default `meta`).
    #[serde(default = "default_target")]
    pub target: FieldPath,
    /// Where the event came from.
    pub source: Option<Expression>,
    /// What kind of event it is.
    pub category: Option<Expression>,
    /// A key that related events share.
    pub correlation: Option<Expression>,
}

fn default_target() -> FieldPath {
    FieldPath::parse("meta").expect("a valid path")
}

impl TransformFactory for EnrichConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        let optional = [
            ("source", &self.source),
            ("category", &self.category),
            ("correlation", &self.correlation),
        ];
        Ok(Box::new(EnrichOperator {
            target: self.target.clone(),
            exprs: optional
                .into_iter()
                .filter_map(|(name, e)| Some((Sym::intern(name), e.clone()?)))
                .collect(),
            processed_at: Sym::intern("processed_at"),
            age_ms: Sym::intern("age_ms"),
            size_bytes: Sym::intern("size_bytes"),
            buf: Vec::new(),
        }))
    }
}

/// The `enrich` operator.
pub struct EnrichOperator {
    target: FieldPath,
    exprs: Vec<(Sym, Expression)>,
    processed_at: Sym,
    age_ms: Sym,
    size_bytes: Sym,
    /// Reused to measure each event's JSON size.
    buf: Vec<u8>,
}

impl Operator for EnrichOperator {
    fn process(
        &mut self,
        _input: usize,
        mut batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        // One clock reading per batch: the events of a batch are processed
        // together.
        let now = eddy_core::time::now_ms();
        for event in &mut batch.events {
            self.buf.clear();
            eddy_core::json::write_fields(&mut self.buf, &event.fields);
            let mut meta = Fields::with_capacity(3 + self.exprs.len());
            meta.push(self.processed_at, Value::Int(now));
            meta.push(self.age_ms, Value::Int(now.saturating_sub(event.time)));
            meta.push(self.size_bytes, Value::Int(self.buf.len() as i64));
            for (name, expr) in &self.exprs {
                meta.push(*name, expr.eval(event).unwrap_or(Value::Null));
            }
            event
                .fields
                .insert_path(self.target.syms(), Value::Map(Arc::new(meta)));
        }
        out.emit_batch(batch);
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::config::{deserialize_body, parse_document};
    use eddy_core::json::JsonDecoder;
    use eddy_core::state::GroupRange;
    use eddy_core::{Event, Output};

    use super::*;

    #[test]
    fn metadata_is_added_and_missing_fields_give_null() {
        let text = "[transforms.meta]\ntype = \"enrich\"\nsource = \"'sim'\"\n\
                    category = \"type\"\ncorrelation = \"project_id\"\n";
        let (doc, diags) = parse_document(text, &[]);
        assert!(diags.is_empty(), "{diags:?}");
        let cfg = deserialize_body::<EnrichConfig>(&doc.components[0].body).unwrap();
        let mut op = cfg.build(&BuildContext::single("meta")).unwrap();
        let mut cx = eddy_state::context(GroupRange::all());
        let line = r#"{"type":"commit","n":1}"#;
        let fields = JsonDecoder::new().decode(line.as_bytes()).unwrap();
        let time = eddy_core::time::now_ms() - 60_000;
        let mut out = Collector::new();
        op.process(
            0,
            Batch::new(vec![Event::new(time, fields)], 0),
            &mut cx,
            &mut out,
        );
        let main = out.take(Output::MAIN);
        let Some(Value::Map(meta)) = main[0].get(Sym::intern("meta")) else {
            panic!("no meta in {:?}", main[0]);
        };
        let get = |k: &str| meta.get(Sym::intern(k)).cloned();
        assert_eq!(get("size_bytes"), Some(Value::Int(line.len() as i64)));
        let age = get("age_ms").and_then(|v| v.as_i64()).unwrap();
        assert!((60_000..120_000).contains(&age), "{age}");
        assert_eq!(get("source"), Some(Value::str("sim")));
        assert_eq!(get("category"), Some(Value::str("commit")));
        assert_eq!(get("correlation"), Some(Value::Null));
        assert_eq!(
            get("processed_at").and_then(|v| v.as_i64()),
            Some(time + age)
        );
    }
}
