//! The `topics` transform: keywords of each text and the emerging topic it
//! belongs to.
//!
//! ```toml
//! [transforms.themes]
//! type = "topics"
//! inputs = ["messages"]
//! field = "text"
//! key = "team"              # topics per team (default: one set for all)
//! target = "topics"         # default
//! threshold = 0.25          # least cosine similarity to join a topic
//! max_topics = 50           # per key; the least recently joined makes room
//! ```
//!
//! `target` becomes `{keywords, topic, terms, size, similarity, new}`: the
//! text's heaviest terms by TF-IDF (document frequencies learnt from the
//! texts seen so far), the id of its topic (1, 2, ... per key), that
//! topic's heaviest terms and size, how similar the text was to it, and
//! whether the text started it: a burst of `new` topics, or a topic whose
//! `size` climbs fast, is something people started talking about. A text
//! without terms gets `keywords = []` and no topic. Tuning: `keywords` and
//! `topic_terms` (how many to report, default 5), `memory` (texts a topic's
//! centroid averages over, default 200), `max_vocabulary` (default 50,000).
//!
//! The model of each key is keyed state: checkpointed and restored. As
//! with `anomaly`, `order = "event_time"` (default) feeds each key's texts
//! to its model in event-time order once the watermark passes them, so
//! topics do not depend on worker count or arrival order (late events go to
//! `NAME.late`); `order = "arrival"` assigns at once. Events without the
//! field pass unchanged; a field that is not a string is a dead letter.

mod model;
mod text;

use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::Arc;

use eddy_core::component::{
    BuildContext, BuildError, Partitioning, TransformFactory, ValidateContext,
};
use eddy_core::config::{Diagnostic, Spanned};
use eddy_core::output::{Output, OutputSpec};
use eddy_core::state::{KeyGroup, TimeDomain, Timer};
use eddy_core::{
    Batch, Collector, Event, Fields, NamedTable, Operator, OperatorContext, Sym, Value,
};
use eddy_ops::transforms::key::KeyEvaluator;
use eddy_ops::transforms::map::FieldPath;
use eddy_ops::transforms::ordered::{late_output, Order, OrderedEvents, Release};
use eddy_ops::transforms::window::KeyExprs;
use eddy_state::ValueTable;
use serde::Deserialize;

pub use model::{Assignment, Settings, TopicModel};

pub use eddy_ops::transforms::ordered::LATE;

/// Configuration of a `topics` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Dotted path of the text.
    pub field: FieldPath,
    /// What topics are kept per (default: one set for every event).
    #[serde(default)]
    pub key: KeyExprs,
    /// Where the result goes (default `topics`).
    #[serde(default = "default_target")]
    pub target: FieldPath,
    /// Least similarity to join a topic (0..1, default 0.25).
    pub threshold: Option<Spanned<f64>>,
    /// Topics kept per key (default 50).
    pub max_topics: Option<NonZeroUsize>,
    /// Keywords reported per text (default 5).
    pub keywords: Option<usize>,
    /// Terms reported per topic (default 5).
    pub topic_terms: Option<usize>,
    /// Texts a topic's centroid averages over (default 200).
    pub memory: Option<NonZeroU64>,
    /// Distinct terms whose document frequency is kept (default 50,000).
    pub max_vocabulary: Option<NonZeroUsize>,
    /// Event time (default) or arrival order.
    #[serde(default)]
    pub order: Order,
}

fn default_target() -> FieldPath {
    FieldPath::parse("topics").expect("a valid path")
}

impl TopicsConfig {
    /// The model's settings, defaults filled in.
    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        Settings {
            keywords: self.keywords.unwrap_or(d.keywords),
            topic_terms: self.topic_terms.unwrap_or(d.topic_terms),
            threshold: self
                .threshold
                .as_ref()
                .map_or(d.threshold, |t| *t.get_ref()),
            max_topics: self.max_topics.map_or(d.max_topics, NonZeroUsize::get),
            memory: self.memory.map_or(d.memory, NonZeroU64::get),
            max_vocabulary: self
                .max_vocabulary
                .map_or(d.max_vocabulary, NonZeroUsize::get),
        }
    }
}

impl TransformFactory for TopicsConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(TopicsOperator {
            name: cx.name.clone(),
            field: self.field.clone(),
            target: self.target.clone(),
            keys: KeyEvaluator::new(self.key.0.clone()),
            settings: self.settings(),
            order: self.order,
            late: cx.output(LATE)?,
            models: ValueTable::new(None),
            pending: OrderedEvents::new(Release::UpToWatermark),
            syms: ["keywords", "topic", "terms", "size", "similarity", "new"].map(Sym::intern),
        }))
    }

    fn partitioning(&self, _input: usize) -> Partitioning {
        self.key.partitioning()
    }

    fn outputs(&self) -> Vec<OutputSpec> {
        vec![late_output()]
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        if let Some(t) = &self.threshold {
            if !(0.0..=1.0).contains(t.get_ref()) {
                diags.push(
                    Diagnostic::new(
                        t.span(),
                        format!("threshold {} is not in 0..1", t.get_ref()),
                    )
                    .hint("a cosine similarity: 0.2-0.4 suits short texts"),
                );
            }
        }
        diags
    }
}

/// The running `topics` transform (one instance per worker).
pub struct TopicsOperator {
    name: String,
    field: FieldPath,
    target: FieldPath,
    keys: KeyEvaluator,
    settings: Settings,
    order: Order,
    late: Output,
    /// Each key's model.
    models: ValueTable<TopicModel>,
    /// `order = "event_time"`: each key's events waiting for the watermark.
    pending: OrderedEvents,
    /// keywords, topic, terms, size, similarity, new.
    syms: [Sym; 6],
}

fn strings(list: Vec<Arc<str>>) -> Value {
    Value::List(Arc::new(list.into_iter().map(Value::Str).collect()))
}

impl TopicsOperator {
    /// Feeds `event`'s text to its key's model and emits the event with
    /// what the model made of it.
    fn assign(&mut self, g: KeyGroup, key: &[u8], mut event: Event, out: &mut Collector) {
        let terms = match event.fields.get_path(self.field.syms()) {
            None | Some(Value::Null) => {
                out.push(Output::MAIN, event);
                return;
            }
            Some(Value::Str(text)) => text::terms(text),
            Some(other) => {
                let reason = format!(
                    "field `{}` is of type {}, not a string",
                    self.field,
                    other.type_name()
                );
                out.dead_letter(&self.name, reason, &event);
                return;
            }
        };
        let s = &self.settings;
        let model = self.models.update(g, key, event.time, TopicModel::default);
        let Assignment { keywords, topic } = model.observe(&terms, event.time, s);
        let [kw, id, topic_terms, size, similarity, new] = self.syms;
        let mut f = Fields::with_capacity(6);
        f.push(kw, strings(keywords));
        if let Some(t) = topic {
            f.push(id, Value::Int(t.id as i64));
            f.push(topic_terms, strings(t.terms));
            f.push(size, Value::Int(t.size as i64));
            f.push(similarity, Value::Float(t.similarity));
            f.push(new, Value::Bool(t.new));
        }
        event
            .fields
            .insert_path(self.target.syms(), Value::Map(Arc::new(f)));
        out.push(Output::MAIN, event);
    }
}

impl Operator for TopicsOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let now = self.pending.admit(
            batch,
            self.order,
            &mut self.keys,
            &self.name,
            self.late,
            cx,
            out,
        );
        for (g, key, event) in now {
            self.assign(g, &key, event, out);
        }
    }

    fn on_timer(
        &mut self,
        _domain: TimeDomain,
        timer: Timer,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        for event in self.pending.release(&timer, cx) {
            self.assign(timer.group, &timer.key, event, out);
        }
    }

    fn tables(&mut self) -> Vec<NamedTable<'_>> {
        vec![
            ("models", &mut self.models),
            ("pending", self.pending.table()),
        ]
    }
}

#[cfg(test)]
mod tests;
