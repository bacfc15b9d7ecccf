//! The `sentiment` transform: scores a text field and adds the result.
//!
//! ```toml
//! [transforms.mood]
//! type = "sentiment"
//! inputs = ["messages"]
//! field = "text"               # dotted path of the text
//! target = "sentiment"         # where the scores go (default)
//! words = { outage = -2.5, rollback = -1.2 }   # added to the lexicon
//! ```
//!
//! `target` becomes a map `{compound, positive, negative, neutral, label}`:
//! `compound` in −1..1 (rounded to 4 decimals), the three proportions
//! (3 decimals), and `label` `positive` (compound ≥ 0.05), `negative`
//! (≤ −0.05) or `neutral`. Events without the field (or with it null)
//! pass unchanged; a field that is not a string sends the event to
//! `NAME.dead_letters` with the reason. `words` gives domain words a
//! valence from −4 to +4, or overrides a built-in one.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Fields, Operator, OperatorContext, Sym, Value};
use eddy_ops::transforms::map::FieldPath;
use serde::{de, Deserialize, Deserializer};

use super::{Lexicon, Polarity, Scorer};
use crate::text_field::TextField;

/// Configuration of a `sentiment` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentConfig {
    /// Dotted path of the text to score.
    pub field: FieldPath,
    /// Where the scores go (default `sentiment`).
    #[serde(default = "default_target")]
    pub target: FieldPath,
    /// Words added to the lexicon or given another valence (−4..+4).
    #[serde(default, deserialize_with = "words")]
    pub words: BTreeMap<String, f64>,
}

fn default_target() -> FieldPath {
    FieldPath::parse("sentiment").expect("a valid path")
}

fn words<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let words = BTreeMap::<String, f64>::deserialize(d)?;
    for (word, &valence) in &words {
        if !(-4.0..=4.0).contains(&valence) {
            return Err(de::Error::custom(format!(
                "the valence of `{word}` is {valence}; valences run from -4 (most negative) to 4"
            )));
        }
        if word.trim().is_empty() || word.contains(char::is_whitespace) {
            return Err(de::Error::custom(format!(
                "`{word}` is not one word; the lexicon matches single words"
            )));
        }
    }
    Ok(words)
}

impl TransformFactory for SentimentConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        let builtin = Lexicon::builtin();
        let lexicon = if self.words.is_empty() {
            builtin
        } else {
            Arc::new(builtin.with_words(self.words.iter().map(|(w, &v)| (w.as_str(), v))))
        };
        Ok(Box::new(SentimentOperator {
            text: TextField::new(&cx.name, &self.field, &self.target),
            scorer: Scorer::new(lexicon),
            keys: Keys::new(),
        }))
    }
}

/// Field names of the result map, interned once.
struct Keys {
    compound: Sym,
    positive: Sym,
    negative: Sym,
    neutral: Sym,
    label: Sym,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            compound: Sym::intern("compound"),
            positive: Sym::intern("positive"),
            negative: Sym::intern("negative"),
            neutral: Sym::intern("neutral"),
            label: Sym::intern("label"),
        }
    }

    fn map(&self, p: &Polarity) -> Value {
        let mut f = Fields::default();
        f.insert(self.compound, Value::Float(p.compound));
        f.insert(self.positive, Value::Float(p.positive));
        f.insert(self.negative, Value::Float(p.negative));
        f.insert(self.neutral, Value::Float(p.neutral));
        f.insert(self.label, Value::str(p.label()));
        Value::Map(Arc::new(f))
    }
}

/// The `sentiment` operator.
pub struct SentimentOperator {
    text: TextField,
    scorer: Scorer,
    keys: Keys,
}

impl Operator for SentimentOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let Self { text, scorer, keys } = self;
        text.apply(batch, out, |t| keys.map(&scorer.score(t)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{field as get, run};

    fn config(text: &str) -> Result<SentimentConfig, String> {
        crate::test_support::config(text)
    }

    const TABLE: &str = "[transforms.mood]\ntype = \"sentiment\"\n";

    #[test]
    fn scores_go_to_the_target_and_odd_fields_to_dead_letters() {
        let cfg = config(&format!(
            "{TABLE}field = \"msg.body\"\ntarget = \"nlp.mood\"\nwords = {{ outage = -2.5 }}\n"
        ))
        .unwrap();
        let (main, dead) = run(
            &cfg,
            &[
                r#"{"id": 1, "msg": {"body": "The book was good."}}"#,
                r#"{"id": 2, "msg": {"body": "another outage"}}"#,
                r#"{"id": 3}"#,
                r#"{"id": 4, "msg": {"body": 42}}"#,
            ],
        );
        assert_eq!(main.len(), 3);
        assert_eq!(
            get(&main[0], "nlp.mood.compound"),
            Some(&Value::Float(0.4404))
        );
        assert_eq!(
            get(&main[0], "nlp.mood.positive"),
            Some(&Value::Float(0.492))
        );
        assert_eq!(
            get(&main[0], "nlp.mood.label").and_then(Value::as_str),
            Some("positive")
        );
        assert_eq!(
            get(&main[1], "nlp.mood.label").and_then(Value::as_str),
            Some("negative")
        );
        assert_eq!(
            get(&main[2], "nlp"),
            None,
            "events without the text pass unchanged"
        );
        assert_eq!(dead.len(), 1);
        assert_eq!(
            get(&dead[0], "reason").and_then(Value::as_str),
            Some("field `msg.body` is of type int, not a string")
        );
    }

    #[test]
    fn bad_words_are_refused() {
        let err = config(&format!(
            "{TABLE}field = \"t\"\nwords = {{ outage = -7 }}\n"
        ))
        .unwrap_err();
        assert!(err.contains("the valence of `outage` is -7"), "{err}");
        let err = config(&format!(
            "{TABLE}field = \"t\"\nwords = {{ \"very bad\" = -3 }}\n"
        ))
        .unwrap_err();
        assert!(err.contains("is not one word"), "{err}");
        let err = config(&format!("{TABLE}target = \"t\"\n")).unwrap_err();
        assert!(err.contains("missing field `field`"), "{err}");
    }
}
