//! The `language` transform: which language a text field is written in.
//!
//! ```toml
//! [transforms.lang]
//! type = "language"
//! inputs = ["messages"]
//! field = "text"
//! target = "language"              # default
//! only = ["eng", "spa", "deu"]     # optional: the languages to choose from
//! ```
//!
//! `target` becomes `{code, name, script, confidence, reliable}`: the ISO
//! 639-3 code (`eng`), the English name, the writing system, a confidence
//! in 0..1 and whether the guess is reliable. A text too short or too
//! mixed to tell gets code `und` (undetermined), confidence 0. Trigram
//! profiles of 70 languages, no model files; `only` narrows the choice to
//! the languages the data can hold, which makes short texts surer. Only the
//! first 4 KiB of a text are read: a language does not change after that
//! often enough to pay for reading a megabyte. Events without the field
//! pass unchanged; a field that is not a string goes to `NAME.dead_letters`.

use std::sync::Arc;

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Fields, Operator, OperatorContext, Sym, Value};
use eddy_ops::transforms::map::FieldPath;
use serde::{de, Deserialize, Deserializer};
use whatlang::{Detector, Lang};

use crate::text_field::{prefix, TextField};

/// How much of a text is read (bytes, cut back to a character boundary).
const PREFIX: usize = 4096;

/// Configuration of a `language` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageConfig {
    /// Dotted path of the text.
    pub field: FieldPath,
    /// Where the result goes (default `language`).
    #[serde(default = "default_target")]
    pub target: FieldPath,
    /// ISO 639-3 codes of the languages to choose from (default: all).
    #[serde(default, deserialize_with = "languages")]
    pub only: Vec<Lang>,
}

fn default_target() -> FieldPath {
    FieldPath::parse("language").expect("a valid path")
}

fn languages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Lang>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|code| {
            Lang::from_code(code.as_str()).ok_or_else(|| {
                de::Error::custom(format!(
                    "`{code}` is not a language code known here; use ISO 639-3 codes such as \
                     `eng`, `spa`, `deu`, `fra`, `cmn`"
                ))
            })
        })
        .collect()
}

impl TransformFactory for LanguageConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        let detector = if self.only.is_empty() {
            Detector::new()
        } else {
            Detector::with_allowlist(self.only.clone())
        };
        Ok(Box::new(LanguageOperator {
            text: TextField::new(&cx.name, &self.field, &self.target),
            detector,
            keys: ["code", "name", "script", "confidence", "reliable"].map(Sym::intern),
        }))
    }
}

/// The `language` operator.
pub struct LanguageOperator {
    text: TextField,
    detector: Detector,
    keys: [Sym; 5],
}

/// What `detector` makes of `text`, as the result map.
fn identify(detector: &Detector, keys: &[Sym; 5], text: &str) -> Value {
    let [code, name, script, confidence, reliable] = *keys;
    let mut f = Fields::default();
    match detector.detect(prefix(text, PREFIX)) {
        Some(info) => {
            f.insert(code, Value::str(info.lang().code()));
            f.insert(name, Value::str(info.lang().eng_name()));
            f.insert(script, Value::str(info.script().name()));
            let c = (info.confidence() * 1e4).round() / 1e4;
            f.insert(confidence, Value::Float(c));
            f.insert(reliable, Value::Bool(info.is_reliable()));
        }
        None => {
            f.insert(code, Value::str("und"));
            f.insert(name, Value::str("Undetermined"));
            f.insert(script, Value::Null);
            f.insert(confidence, Value::Float(0.0));
            f.insert(reliable, Value::Bool(false));
        }
    }
    Value::Map(Arc::new(f))
}

impl Operator for LanguageOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let Self {
            text,
            detector,
            keys,
        } = self;
        text.apply(batch, out, |t| identify(detector, keys, t));
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::Event;

    use super::*;
    use crate::test_support::{field, run};

    fn config(text: &str) -> Result<LanguageConfig, String> {
        crate::test_support::config(text)
    }

    const TABLE: &str = "[transforms.lang]\ntype = \"language\"\nfield = \"text\"\n";

    fn code(e: &Event) -> &str {
        field(e, "language.code").and_then(Value::as_str).unwrap()
    }

    #[test]
    fn tells_languages_apart_and_says_when_it_cannot() {
        let cfg = config(TABLE).unwrap();
        let (main, dead) = run(
            &cfg,
            &[
                r#"{"text": "The deployment failed again and the team is rolling back the release tonight."}"#,
                r#"{"text": "El despliegue falló otra vez y el equipo revierte la versión esta noche."}"#,
                r#"{"text": "Die Bereitstellung ist wieder fehlgeschlagen und das Team setzt heute Abend zurück."}"#,
                r#"{"text": "Le déploiement a encore échoué et l'équipe annule la version ce soir."}"#,
                r#"{"text": "Развертывание снова не удалось, и команда откатывает выпуск сегодня вечером."}"#,
                r#"{"text": ""}"#,
                r#"{"text": "42 !!"}"#,
                r#"{"other": 1}"#,
                r#"{"text": ["not", "text"]}"#,
            ],
        );
        let codes: Vec<&str> = main[..7].iter().map(code).collect();
        assert_eq!(
            codes,
            ["eng", "spa", "deu", "fra", "rus", "und", "und"],
            "{main:?}"
        );
        assert_eq!(
            field(&main[4], "language.script").and_then(Value::as_str),
            Some("Cyrillic")
        );
        assert_eq!(
            field(&main[0], "language.reliable"),
            Some(&Value::Bool(true))
        );
        let c = field(&main[0], "language.confidence").and_then(Value::as_f64);
        assert!(c.is_some_and(|c| c > 0.5 && c <= 1.0), "{c:?}");
        assert_eq!(
            field(&main[5], "language.confidence"),
            Some(&Value::Float(0.0))
        );
        assert_eq!(field(&main[7], "language"), None, "no text: unchanged");
        assert_eq!(main.len(), 8);
        assert_eq!(dead.len(), 1);
    }

    #[test]
    fn only_narrows_the_choice_and_unknown_codes_are_refused() {
        // Close languages: without a list this Portuguese-like Spanish
        // sentence may go either way; with the list it must be one of them.
        let cfg = config(&format!("{TABLE}only = [\"eng\", \"spa\"]\n")).unwrap();
        let (main, _) = run(&cfg, &[r#"{"text": "uma nova versão"}"#]);
        assert!(["eng", "spa"].contains(&code(&main[0])), "{main:?}");

        let err = config(&format!("{TABLE}only = [\"english\"]\n")).unwrap_err();
        assert!(err.contains("`english` is not a language code"), "{err}");
    }

    #[test]
    fn long_texts_are_read_from_their_start_only() {
        let long = "é".repeat(PREFIX); // 2 bytes each: the cut falls inside one
        assert_eq!(prefix(&long, PREFIX).len(), PREFIX);
        let odd = format!("a{long}");
        assert_eq!(prefix(&odd, PREFIX).len(), PREFIX - 1);
        let cfg = config(TABLE).unwrap();
        let text = "The service is healthy again after the restart. ".repeat(25_000);
        let line = format!(r#"{{"text": "{text}"}}"#);
        let (main, _) = run(&cfg, &[&line]);
        assert_eq!(code(&main[0]), "eng");
    }
}
