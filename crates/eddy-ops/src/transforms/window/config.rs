//! The `[transforms.NAME]` table of a `type = "window"` transform.

use std::fmt;

use eddy_core::component::{
    BuildContext, BuildError, FieldsRead, Partitioning, TransformFactory, ValidateContext,
};
use eddy_core::config::{Diagnostic, Duration, Spanned};
use eddy_core::limits::Limits;
use eddy_core::{Expression, Operator, OutputSpec};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::operator::WindowOperator;
use super::output::key_field_names;
use crate::aggregate::AggregateSpec;

/// The output late events go to: `NAME.late`.
pub const LATE: &str = "late";

/// Configuration of a `window` transform: group events by key into
/// windows and compute aggregates per key and window.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// What to group by: one CEL expression (`key = "merchant"`) or several
    /// (`key = ["merchant", "user.country"]`). Without a key all events
    /// share one group (and run on a single worker).
    #[serde(default)]
    pub key: KeyExprs,
    /// The window shape, an inline table with exactly one of:
    /// `{ tumbling = "1m" }`, `{ sliding = "5m", every = "1m" }`,
    /// `{ session = "30s" }` (closes after this gap without events),
    /// `{ global = true, count = 100 }` (fires and clears every 100 events
    /// per key) or `{ global = true, every = "10s" }` (emits running totals
    /// per key at every 10 s boundary, covering the events before it; never
    /// clears).
    pub window: Spanned<WindowKind>,
    /// Which clock places events in windows and closes them: `"event"`
    /// (default; the event time, windows close on watermarks) or
    /// `"processing"` (the time the window operator sees the event, windows
    /// close by the wall clock).
    #[serde(default)]
    pub time: TimeDomain,
    /// How long after a window closes late events still update it (each
    /// update re-emits the window's result). Events later than that go to
    /// the `NAME.late` output unchanged. Default: none.
    #[serde(default = "no_lateness")]
    pub allowed_lateness: Duration,
    /// Output field name → aggregate, in output order, e.g.
    /// `{ n = "count()", total = "sum(amount)", p99 = "quantile(amount, 0.99)" }`.
    pub aggregates: Spanned<Aggregates>,
    /// Global windows only: state of a key not updated for this long (in
    /// the window's time domain) is dropped; a partial `count` window is
    /// emitted first, an `every` key once its latest period is also past
    /// `allowed_lateness`. Without `ttl` a global window keeps at most
    /// `[pipeline.limits] max_keys` keys per instance; events of further
    /// keys go to `NAME.dead_letters`.
    #[serde(default)]
    pub ttl: Option<Duration>,
    /// `{ global = true, every = ".." }` only: which keys a boundary emits.
    /// `"changed"` (default): the keys with events since their last result.
    /// `"all"`: every key with events before the boundary, at each
    /// boundary where any key changed (a boundary nothing changed at emits
    /// nothing, so a watermark jump costs no more than the data).
    #[serde(default)]
    pub emit: Option<Emit>,
    /// Tumbling and sliding windows: emit only the best `n` keys of each
    /// window by one of the aggregates, each result with its `rank` (1 is
    /// best), instead of every key's result; e.g. `top = { n = 3, by =
    /// "volume" }` (largest first; `order = "asc"` for the smallest). Ties
    /// go to the smaller key. A late event that changes a fired window
    /// re-emits its ranking. The ranking is over every key, so a `top`
    /// window runs on one worker (the stages before it still spread).
    #[serde(default)]
    pub top: Option<Spanned<TopConfig>>,
}

/// The `top = { n, by, order }` table of a window.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopConfig {
    /// Keys emitted per window (1 to 10,000).
    pub n: u64,
    /// The aggregate (its output name) keys are ranked by.
    pub by: String,
    /// `"desc"` (default: largest first) or `"asc"`.
    #[serde(default)]
    pub order: Order,
}

/// Which end of a ranking comes first.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Largest first.
    #[default]
    Desc,
    /// Smallest first.
    Asc,
}

/// The most keys `top` may keep per window.
const MAX_TOP: u64 = 10_000;

/// Which keys a global `every` window emits at a boundary.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// Keys whose total changed since their last result.
    #[default]
    Changed,
    /// Every key, whenever a boundary fires.
    All,
}

fn no_lateness() -> Duration {
    Duration::from_ms(0)
}

/// Which clock drives a window.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeDomain {
    /// Event time and watermarks.
    #[default]
    Event,
    /// The operator's wall clock.
    Processing,
}

/// A window shape.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "RawWindow")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window length.
        size: Duration,
    },
    /// Windows of `size` starting every `every`: `[k·every, k·every + size)`.
    Sliding {
        /// Window length.
        size: Duration,
        /// Distance between window starts.
        every: Duration,
    },
    /// Per-key activity sessions that close after `gap` without events.
    Session {
        /// Inactivity gap.
        gap: Duration,
    },
    /// One window per key, fired and cleared every `count` events.
    GlobalCount {
        /// Events per firing.
        count: u64,
    },
    /// One window per key, emitting running totals every `every`.
    GlobalEvery {
        /// Emission interval.
        every: Duration,
    },
}

/// The `window = { ... }` table as written, before checking which shape it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    tumbling: Option<Duration>,
    sliding: Option<Duration>,
    every: Option<Duration>,
    session: Option<Duration>,
    global: Option<bool>,
    count: Option<u64>,
}

const SHAPES: &str =
    "use exactly one of `{ tumbling = \"1m\" }`, `{ sliding = \"5m\", every = \"1m\" }`, \
`{ session = \"30s\" }`, `{ global = true, count = 100 }` or `{ global = true, every = \"10s\" }`";

impl TryFrom<RawWindow> for WindowKind {
    type Error = String;

    fn try_from(w: RawWindow) -> Result<WindowKind, String> {
        let global = w.global.unwrap_or(false);
        if w.global == Some(false) {
            return Err(format!("`global = false` is not a window; {SHAPES}"));
        }
        match (w.tumbling, w.sliding, w.session, global, w.every, w.count) {
            (Some(size), None, None, false, None, None) => Ok(WindowKind::Tumbling { size }),
            (None, Some(size), None, false, Some(every), None) => {
                if every > size {
                    return Err(format!(
                        "sliding window `every = \"{every}\"` exceeds its size `sliding = \"{size}\"`: \
                         events between windows would be ignored; use `every` <= `sliding`"
                    ));
                }
                Ok(WindowKind::Sliding { size, every })
            }
            (None, Some(_), None, false, None, None) => Err(
                "a sliding window needs `every` (how often a window starts), e.g. \
                 `{ sliding = \"5m\", every = \"1m\" }`"
                    .into(),
            ),
            (None, None, Some(gap), false, None, None) => Ok(WindowKind::Session { gap }),
            (None, None, None, true, None, Some(count)) if count > 0 => {
                Ok(WindowKind::GlobalCount { count })
            }
            (None, None, None, true, None, Some(_)) => Err("`count` must be at least 1".into()),
            (None, None, None, true, Some(every), None) => Ok(WindowKind::GlobalEvery { every }),
            (None, None, None, true, None, None) => {
                Err("a global window needs a trigger: `count = N` or `every = \"10s\"`".into())
            }
            _ => Err(format!("ambiguous or incomplete window; {SHAPES}")),
        }
    }
}

/// The key expressions (empty: no key).
#[derive(Clone, Debug, Default)]
pub struct KeyExprs(pub Vec<Expression>);

impl KeyExprs {
    /// How a keyed operator's input is partitioned: by the key's hash,
    /// or everything to one worker without a key.
    pub fn partitioning(&self) -> Partitioning {
        if self.0.is_empty() {
            Partitioning::Single
        } else {
            Partitioning::Hash(self.0.clone())
        }
    }
}

impl<'de> Deserialize<'de> for KeyExprs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyExprs, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyExprs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CEL expression or an array of them")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyExprs, E> {
                compile_key(s).map(|e| KeyExprs(vec![e]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyExprs, A::Error> {
                let mut keys = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    keys.push(compile_key(&text)?);
                }
                Ok(KeyExprs(keys))
            }
        }
        d.deserialize_any(V)
    }
}

fn compile_key<E: de::Error>(text: &str) -> Result<Expression, E> {
    Expression::compile(text).map_err(|e| {
        E::custom(format!(
            "bad key expression `{}`: {e}",
            eddy_core::expr::excerpt(text)
        ))
    })
}

/// The aggregates, parsed, in the order written.
#[derive(Clone, Debug, Default)]
pub struct Aggregates(pub Vec<AggregateSpec>);

impl<'de> Deserialize<'de> for Aggregates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Aggregates, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Aggregates;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of name = \"function(args)\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Aggregates, A::Error> {
                let mut specs = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    specs.push(map.next_value_seed(SpecSeed(&name))?);
                }
                if specs.is_empty() {
                    return Err(de::Error::custom(
                        "no aggregates: add e.g. `aggregates = { n = \"count()\" }`",
                    ));
                }
                Ok(Aggregates(specs))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses one spec string while its span is still known.
struct SpecSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for SpecSeed<'_> {
    type Value = AggregateSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AggregateSpec, D::Error> {
        let text = String::deserialize(d)?;
        AggregateSpec::parse(self.0, &text).map_err(de::Error::custom)
    }
}

impl WindowConfig {
    /// The aggregate specs, in output order.
    pub fn specs(&self) -> &[AggregateSpec] {
        &self.aggregates.get_ref().0
    }

    /// What is wrong with `top`: a window kind without aligned windows, no
    /// key to rank, an `n` out of range, a `by` that names no aggregate.
    fn check_top(&self, top: &Spanned<TopConfig>) -> Vec<Diagnostic> {
        let span = top.span();
        let t = top.get_ref();
        let mut diags = Vec::new();
        if !matches!(
            self.window.get_ref(),
            WindowKind::Tumbling { .. } | WindowKind::Sliding { .. }
        ) {
            diags.push(
                Diagnostic::new(span.clone(), "`top` ranks the keys of tumbling and sliding windows only")
                    .hint("remove `top`, or use `{ tumbling = \"..\" }` or `{ sliding = \"..\", every = \"..\" }`"),
            );
        }
        if self.key.0.is_empty() {
            diags.push(
                Diagnostic::new(
                    span.clone(),
                    "`top` ranks keys, and this window has no `key`",
                )
                .hint("add `key = \"FIELD\"`, or remove `top`"),
            );
        }
        if t.n == 0 || t.n > MAX_TOP {
            diags.push(
                Diagnostic::new(
                    span.clone(),
                    format!("`top` keeps n = {} keys per window", t.n),
                )
                .hint(format!("use an `n` from 1 to {MAX_TOP}")),
            );
        }
        if !self.specs().iter().any(|s| s.name == t.by) {
            let names: Vec<&str> = self.specs().iter().map(|s| s.name.as_str()).collect();
            diags.push(
                Diagnostic::new(
                    span,
                    format!(
                        "`top` ranks by `{}`, which is not an aggregate of this window",
                        t.by
                    ),
                )
                .hint(format!("use one of: {}", names.join(", "))),
            );
        }
        diags
    }
}

impl TransformFactory for WindowConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        let op = WindowOperator::new(self, &cx.name, cx.limits.max_keys, cx.output(LATE)?);
        Ok(Box::new(match &cx.spill {
            Some(spill) => {
                let instance = format!("{}/{}", cx.name, cx.worker);
                op.spill_to(spill, &instance, cx.metrics.counter("spilled_entries", &[]))?
            }
            None => op,
        }))
    }

    /// The fields of its keys and aggregates; its results are new events.
    fn fields_read(&self) -> Option<FieldsRead> {
        let mut fields = Vec::new();
        let exprs = self.key.0.iter().chain(
            self.specs()
                .iter()
                .flat_map(|s| s.input.iter().chain(s.by.iter())),
        );
        for e in exprs {
            for f in e.fields_read() {
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
        }
        Some(FieldsRead {
            fields,
            passes_on: false,
        })
    }

    /// Every input keyed alike; with `top`, all on one worker, which ranks
    /// every key of a window.
    fn partitioning(&self, _input: usize) -> Partitioning {
        if self.top.is_some() {
            return Partitioning::Single;
        }
        self.key.partitioning()
    }

    fn outputs(&self) -> Vec<OutputSpec> {
        vec![OutputSpec::new(
            LATE,
            "events that arrived after their window's allowed lateness, unchanged",
        )]
    }

    /// Output field names must be unique: aggregates may not reuse
    /// `window_start`, `window_end` or a key field's name.
    fn validate(&self, cx: &ValidateContext) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        if let WindowKind::Sliding { size, every } = *self.window.get_ref() {
            let per_event = (size.ms() / every.ms()) as u64;
            if per_event > cx.limits.max_windows_per_event {
                diags.push(
                    Diagnostic::new(
                        self.window.span(),
                        format!(
                            "every event would fall into {per_event} windows (`sliding = \"{size}\"` / \
                             `every = \"{every}\"`), more than the limit of {} \
                             (`[pipeline.limits] max_windows_per_event`)",
                            cx.limits.max_windows_per_event
                        ),
                    )
                    .hint(format!(
                        "use a larger `every`, a tumbling window, or {}",
                        Limits::raise_hint("max_windows_per_event")
                    )),
                );
            }
        }
        if self.emit.is_some() && !matches!(self.window.get_ref(), WindowKind::GlobalEvery { .. }) {
            diags.push(
                Diagnostic::new(
                    self.window.span(),
                    "`emit` applies only to `{ global = true, every = \"..\" }` windows"
                        .to_string(),
                )
                .hint("remove `emit`, or use a global window with `every`"),
            );
        }
        if let Some(top) = &self.top {
            diags.extend(self.check_top(top));
        }
        let mut taken: Vec<String> = vec!["window_start".into(), "window_end".into()];
        if self.top.is_some() {
            taken.push("rank".into());
        }
        taken.extend(
            key_field_names(&self.key.0)
                .iter()
                .map(|s| s.as_str().to_string()),
        );
        let span = self.aggregates.span();
        let clashes = self
            .specs()
            .iter()
            .filter(|s| taken.contains(&s.name))
            .map(|s| {
                Diagnostic::new(
                    span.clone(),
                    format!(
                        "aggregate `{}` has the name of another output field",
                        s.name
                    ),
                )
                .hint(format!(
                    "rename it; the output already has {}",
                    taken.join(", ")
                ))
            });
        diags.extend(clashes);
        diags
    }
}
