//! The `redact` transform's configuration and operator (see the module
//! documentation of [`super`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Fields, Operator, OperatorContext, Value};
use eddy_ops::transforms::map::FieldPath;
use serde::{de, Deserialize, Deserializer};

use super::detect::Kind;
use super::{Pseudonymiser, Scrubber};

/// What happens to a whole field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAction {
    /// Replaced by `"[redacted]"`.
    Mask,
    /// Replaced by its keyed pseudonym.
    Hash,
    /// Removed.
    Drop,
}

/// What replaces personal data found in text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextAction {
    /// Its kind: `[email]`.
    #[default]
    Mask,
    /// Its kind and keyed pseudonym: `[email:3f1c…]`.
    Hash,
}

/// Configuration of a `redact` transform.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// Whole fields and what to do with them, by dotted path.
    #[serde(default, deserialize_with = "field_actions")]
    pub fields: Vec<(FieldPath, FieldAction)>,
    /// Fields whose text is searched (default: every string, nested too).
    pub text: Option<Vec<FieldPath>>,
    /// Kinds searched for in text (default: all).
    #[serde(default = "all_kinds", deserialize_with = "kinds")]
    pub detect: Vec<Kind>,
    /// What replaces a find in text.
    #[serde(default)]
    pub action: TextAction,
    /// Environment variable holding the HMAC key of pseudonyms.
    pub key_env: Option<String>,
}

fn all_kinds() -> Vec<Kind> {
    Kind::ALL.to_vec()
}

fn kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Kind>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|name| {
            Kind::parse(name).ok_or_else(|| {
                de::Error::custom(format!(
                    "unknown kind `{name}`: use email, card, iban, phone or ip"
                ))
            })
        })
        .collect()
}

fn field_actions<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(FieldPath, FieldAction)>, D::Error> {
    BTreeMap::<String, FieldAction>::deserialize(d)?
        .into_iter()
        .map(|(path, action)| {
            FieldPath::parse(&path)
                .map(|p| (p, action))
                .map_err(de::Error::custom)
        })
        .collect()
}

impl RedactConfig {
    fn hashes(&self) -> bool {
        self.action == TextAction::Hash || self.fields.iter().any(|(_, a)| *a == FieldAction::Hash)
    }

    /// The pseudonymiser, if anything is hashed: its key comes from
    /// `key_env`, which must be set and non-empty.
    fn pseudonymiser(&self) -> Result<Option<Pseudonymiser>, BuildError> {
        if !self.hashes() {
            return Ok(None);
        }
        let Some(var) = &self.key_env else {
            return Err(BuildError::Config(
                "`hash` needs a key: set `key_env` to the name of an environment variable holding it"
                    .to_string(),
            ));
        };
        match std::env::var(var) {
            Ok(key) if !key.is_empty() => Ok(Some(Pseudonymiser::new(key.as_bytes()))),
            _ => Err(BuildError::Config(format!(
                "the environment variable `{var}` (key_env) holding the pseudonym key is not set or empty"
            ))),
        }
    }
}

impl TransformFactory for RedactConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        let hash = self.pseudonymiser()?;
        let text_hash = hash.clone().filter(|_| self.action == TextAction::Hash);
        Ok(Box::new(RedactOperator {
            fields: self.fields.clone(),
            text: self.text.clone(),
            field_hash: hash,
            scrubber: Scrubber::new(self.detect.clone(), text_hash),
        }))
    }
}

/// The `redact` operator.
pub struct RedactOperator {
    fields: Vec<(FieldPath, FieldAction)>,
    text: Option<Vec<FieldPath>>,
    field_hash: Option<Pseudonymiser>,
    scrubber: Scrubber,
}

impl RedactOperator {
    fn redact(&mut self, fields: &mut Fields) {
        for (path, action) in &self.fields {
            let value = match fields.get_path(path.syms()) {
                None => continue,
                Some(v) => v,
            };
            let replacement = match action {
                FieldAction::Drop => None,
                FieldAction::Mask => Some(Value::str("[redacted]")),
                FieldAction::Hash => {
                    let text = match value {
                        Value::Str(s) => s.to_string(),
                        other => other.to_string(),
                    };
                    self.field_hash
                        .as_ref()
                        .map(|h| Value::str(&h.pseudonym(&text)))
                }
            };
            match replacement {
                Some(v) => fields.insert_path(path.syms(), v),
                None => {
                    fields.remove_path(path.syms());
                }
            }
        }
        match &self.text {
            Some(paths) => {
                for path in paths {
                    let scrubbed = match fields.get_path(path.syms()) {
                        Some(v) => scrub_value(&mut self.scrubber, v),
                        None => None,
                    };
                    if let Some(v) = scrubbed {
                        fields.insert_path(path.syms(), v);
                    }
                }
            }
            None => {
                let scrubbed = scrub_fields(&mut self.scrubber, fields);
                if let Some(f) = scrubbed {
                    *fields = f;
                }
            }
        }
    }
}

/// `value` with the personal data in its strings replaced, or `None` if it
/// has none (values without any are never copied).
fn scrub_value(s: &mut Scrubber, value: &Value) -> Option<Value> {
    match value {
        Value::Str(text) => s.scrub(text).map(|t| Value::Str(t.into())),
        Value::List(items) => {
            let mut copy: Option<Vec<Value>> = None;
            for (i, item) in items.iter().enumerate() {
                if let Some(new) = scrub_value(s, item) {
                    copy.get_or_insert_with(|| items.to_vec())[i] = new;
                }
            }
            copy.map(|list| Value::List(Arc::new(list)))
        }
        Value::Map(fields) => scrub_fields(s, fields).map(|f| Value::Map(Arc::new(f))),
        _ => None,
    }
}

/// `fields` with the personal data in their strings replaced, or `None`.
fn scrub_fields(s: &mut Scrubber, fields: &Fields) -> Option<Fields> {
    let mut copy: Option<Fields> = None;
    for (name, value) in fields.iter() {
        if let Some(new) = scrub_value(s, value) {
            copy.get_or_insert_with(|| fields.clone()).insert(name, new);
        }
    }
    copy
}

impl Operator for RedactOperator {
    fn process(
        &mut self,
        _input: usize,
        mut batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        for event in &mut batch.events {
            self.redact(&mut event.fields);
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

    fn config(body: &str) -> Result<RedactConfig, String> {
        let text = format!("[transforms.scrub]\ntype = \"redact\"\n{body}");
        let (doc, diags) = parse_document(&text, &[]);
        assert!(diags.is_empty(), "{diags:?}");
        deserialize_body::<RedactConfig>(&doc.components[0].body).map_err(|d| d.message)
    }

    fn run(cfg: &RedactConfig, line: &str) -> String {
        let mut op = cfg.build(&BuildContext::single("scrub")).unwrap();
        let mut cx = eddy_state::context(GroupRange::all());
        let event = Event::new(0, JsonDecoder::new().decode(line.as_bytes()).unwrap());
        let mut out = Collector::new();
        op.process(0, Batch::new(vec![event], 0), &mut cx, &mut out);
        let main = out.take(Output::MAIN);
        assert_eq!(main.len(), 1);
        Value::Map(Arc::new(main[0].fields.clone())).to_string()
    }

    const EVENT: &str = r#"{"user": {"email": "ann@example.com", "ssn": "078-05-1120", "name": "Ann"},
        "card": "4111111111111111",
        "notes": ["call +1 415 555 0100", "fine"], "msg": "paid from DE89370400440532013000"}"#;

    #[test]
    fn fields_are_masked_hashed_or_dropped_and_all_text_scrubbed() {
        std::env::set_var("EDDY_TEST_REDACT_KEY", "secret");
        let cfg = config(
            "fields = { \"user.email\" = \"hash\", \"user.ssn\" = \"drop\", card = \"mask\" }\n\
             key_env = \"EDDY_TEST_REDACT_KEY\"\n",
        )
        .unwrap();
        let out = run(&cfg, EVENT);
        let pseudonym = Pseudonymiser::new(b"secret").pseudonym("ann@example.com");
        assert_eq!(
            out,
            format!(
                r#"{{"user":{{"email":"{pseudonym}","name":"Ann"}},"card":"[redacted]","notes":["call [phone]","fine"],"msg":"paid from [iban]"}}"#
            )
        );
    }

    #[test]
    fn only_the_listed_text_fields_and_kinds_are_searched() {
        let cfg = config("text = [\"msg\", \"notes\"]\ndetect = [\"phone\"]\n").unwrap();
        let out = run(&cfg, EVENT);
        assert!(out.contains("call [phone]"), "{out}");
        assert!(
            out.contains("DE89370400440532013000"),
            "IBANs not searched: {out}"
        );
        assert!(out.contains("ann@example.com"), "user not searched: {out}");
    }

    #[test]
    fn hashing_needs_a_key_and_names_are_checked() {
        let cfg = config("action = \"hash\"\n").unwrap();
        let err = cfg.build(&BuildContext::single("scrub")).err().unwrap();
        assert!(err.to_string().contains("set `key_env`"), "{err}");
        let cfg = config("action = \"hash\"\nkey_env = \"EDDY_TEST_NO_SUCH_KEY\"\n").unwrap();
        let err = cfg.build(&BuildContext::single("scrub")).err().unwrap();
        assert!(err.to_string().contains("`EDDY_TEST_NO_SUCH_KEY`"), "{err}");
        let err = config("detect = [\"ssn\"]\n").unwrap_err();
        assert!(err.contains("unknown kind `ssn`"), "{err}");
        let err = config("fields = { \"a..b\" = \"mask\" }\n").unwrap_err();
        assert!(err.contains("empty segment"), "{err}");
        let err = config("fields = { a = \"blur\" }\n").unwrap_err();
        assert!(err.contains("unknown variant `blur`"), "{err}");
    }
}
