//! What the transforms' unit tests share: parsing a config table and
//! driving one operator instance over JSON lines.

use eddy_core::component::{BuildContext, TransformFactory};
use eddy_core::config::{deserialize_body, parse_document};
use eddy_core::json::JsonDecoder;
use eddy_core::state::GroupRange;
use eddy_core::{Batch, Collector, Event, Operator, Output, Sym, Value};
use serde::de::DeserializeOwned;

/// The config of the one component in `toml`, or the deserialiser's message.
pub fn config<T: DeserializeOwned>(toml: &str) -> Result<T, String> {
    let (doc, diags) = parse_document(toml, &[]);
    assert!(diags.is_empty(), "{diags:?}");
    deserialize_body::<T>(&doc.components[0].body).map_err(|d| d.message)
}

/// Prepares and builds `cfg` as node `t` and processes `lines` (JSON
/// objects, event time 0) as one batch; returns the main output and the
/// dead letters.
pub fn run(cfg: &dyn TransformFactory, lines: &[&str]) -> (Vec<Event>, Vec<Event>) {
    let mut op = build(cfg);
    process(&mut *op, lines)
}

/// Prepares and builds `cfg` as node `t`.
pub fn build(cfg: &dyn TransformFactory) -> Box<dyn Operator> {
    build_as(cfg, "t")
}

/// Prepares and builds `cfg` as node `name`.
pub fn build_as(cfg: &dyn TransformFactory, name: &str) -> Box<dyn Operator> {
    let cx = BuildContext::single(name)
        .with_outputs(&cfg.outputs())
        .expect("outputs");
    let prepared = cfg.prepare(&cx.node()).expect("prepares");
    cfg.build(&cx.with_prepared(prepared)).expect("builds")
}

/// Processes `lines` as one batch through `op`.
pub fn process(op: &mut dyn Operator, lines: &[&str]) -> (Vec<Event>, Vec<Event>) {
    let mut cx = eddy_state::context(GroupRange::all());
    let mut dec = JsonDecoder::new();
    let events = lines
        .iter()
        .map(|l| Event::new(0, dec.decode(l.as_bytes()).expect("a JSON object")))
        .collect();
    let mut out = Collector::new();
    op.process(0, Batch::new(events, 0), &mut cx, &mut out);
    (out.take(Output::MAIN), out.take(Output::DEAD_LETTERS))
}

/// The value at a dotted `path` of `e`.
pub fn field<'a>(e: &'a Event, path: &str) -> Option<&'a Value> {
    let path: Vec<Sym> = path.split('.').map(Sym::intern).collect();
    e.fields.get_path(&path)
}

/// The id `cfg`'s output `name` gets when built.
pub fn output_of(cfg: &dyn TransformFactory, name: &str) -> Output {
    BuildContext::single("t")
        .with_outputs(&cfg.outputs())
        .and_then(|cx| cx.output(name))
        .expect("a declared output")
}
