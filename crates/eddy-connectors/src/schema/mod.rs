//! Record schemas shared by sources: JSON Schema validation and Avro payloads.
//!
//! ```toml
//! [sources.payments]
//! type = "kafka"
//! # JSON records checked against a JSON Schema (any draft the file names):
//! schema = { json_schema = "schemas/payment.json" }
//! # or plain Avro binary datums, one per record:
//! # format = "avro"
//! # schema = { avro = "schemas/payment.avsc" }
//! # or the Confluent wire format, schemas looked up as `DIR/<id>.avsc`:
//! # format = "confluent_avro"
//! # schema = { registry_dir = "schemas/registry" }
//! ```
//!
//! Schema files are read when the pipeline is validated and again when it is
//! built, so a missing or malformed file stops the run before any record is
//! read. A record that violates its schema is a *decode* failure: the source
//! sends it to its dead letters with the reason, it never stops the run.
//!
//! JSON Schema validation runs on the decoded event (converted to a
//! `serde_json::Value`, which is what the `jsonschema` crate checks), so the
//! payload is parsed once; `json_schema` therefore also applies to Avro
//! records. Avro values become Eddy values as follows: records and maps →
//! maps, arrays → lists, unions → the value of the branch, enums → strings,
//! `bytes` and `fixed` → base64 strings (lossless, unlike a lossy UTF-8
//! reading), `decimal` → its exact decimal text (`"12.34"`), int and long →
//! ints, float and double → floats, `timestamp-*` and `local-timestamp-*` →
//! ints in milliseconds, `date` → days since the epoch, `time-millis` → ms,
//! `time-micros` → µs, `uuid` → its text, `duration` → `{months, days,
//! millis}`. Datums are decoded by this module (see `avro.rs` for why), with
//! schemas parsed by `apache-avro`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_core::{Fields, Value};

use self::avro::AvroSchema;

mod avro;
use serde::Deserialize;

/// Where a source's record schemas come from (`schema = { .. }`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// A JSON Schema file every decoded record must satisfy; records that
    /// do not go to dead letters with the failing JSON pointer and keyword.
    #[serde(default)]
    pub json_schema: Option<PathBuf>,
    /// The Avro schema (`.avsc`) of `format = "avro"` records.
    #[serde(default)]
    pub avro: Option<PathBuf>,
    /// For `format = "confluent_avro"`: a directory holding one `<id>.avsc`
    /// file per schema id (a snapshot of a schema registry).
    #[serde(default)]
    pub registry_dir: Option<PathBuf>,
}

/// A schema file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file (or directory) cannot be read.
    #[error("cannot read schema `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is not a valid schema.
    #[error("invalid schema `{}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// At most this many violations are named in one dead letter's reason.
const MAX_REPORTED_VIOLATIONS: usize = 3;

/// A compiled JSON Schema.
pub struct JsonSchemaValidator {
    validator: jsonschema::Validator,
}

impl JsonSchemaValidator {
    /// Reads and compiles the JSON Schema in `path`. Remote `$ref`s are not
    /// fetched (the crate is built without HTTP retrieval).
    pub fn load(path: &Path) -> Result<JsonSchemaValidator, SchemaError> {
        let text = read(path)?;
        let invalid = |message: String| SchemaError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let schema: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| invalid(e.to_string()))?;
        Ok(JsonSchemaValidator { validator })
    }

    /// Checks an event; the error names each failing JSON pointer, what is
    /// wrong there and the keyword, e.g.
    /// `/amount: "abc" is not of type "number" (type)`.
    pub fn check(&self, fields: &Fields) -> Result<(), String> {
        let instance = fields_to_json(fields);
        if self.validator.is_valid(&instance) {
            return Ok(());
        }
        let mut reasons = Vec::new();
        let mut total = 0usize;
        for error in self.validator.iter_errors(&instance) {
            total += 1;
            if reasons.len() < MAX_REPORTED_VIOLATIONS {
                let pointer = match error.instance_path().as_str() {
                    "" => "/",
                    p => p,
                };
                // The schema path ends with the keyword that failed.
                let keyword = error
                    .schema_path()
                    .as_str()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                reasons.push(format!("{pointer}: {error} ({keyword})"));
            }
        }
        let mut reason = format!("schema violation: {}", reasons.join("; "));
        if total > reasons.len() {
            reason.push_str(&format!(" and {} more", total - reasons.len()));
        }
        Err(reason)
    }
}

/// Decodes plain Avro binary datums written with one schema.
pub struct AvroDecoder {
    schema: AvroSchema,
}

impl AvroDecoder {
    /// Reads and parses the Avro schema (`.avsc`) in `path`.
    pub fn load(path: &Path) -> Result<AvroDecoder, SchemaError> {
        Ok(AvroDecoder {
            schema: parse_avro(path)?,
        })
    }

    /// Decodes one datum, which must be a record and use every byte.
    pub fn decode(&self, bytes: &[u8]) -> Result<Fields, String> {
        self.schema.decode(bytes)
    }
}

/// Decodes records in the Confluent wire format: a zero magic byte, a
/// 4-byte big-endian schema id, then an Avro binary datum. Schemas come from
/// `DIR/<id>.avsc` and are parsed once per id.
pub struct ConfluentAvroDecoder {
    dir: PathBuf,
    /// Parsed schemas, and ids that could not be resolved (so a stream of
    /// records with an unknown id does not read the directory per record;
    /// a schema added later is seen after a restart).
    cache: HashMap<u32, Result<Arc<AvroSchema>, String>>,
}

impl ConfluentAvroDecoder {
    /// A decoder reading schemas from `dir`, which must be a readable
    /// directory.
    pub fn new(dir: &Path) -> Result<ConfluentAvroDecoder, SchemaError> {
        let meta = std::fs::metadata(dir).map_err(|source| SchemaError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SchemaError::Invalid {
                path: dir.to_path_buf(),
                message: "registry_dir must be a directory of <id>.avsc files".into(),
            });
        }
        Ok(ConfluentAvroDecoder {
            dir: dir.to_path_buf(),
            cache: HashMap::new(),
        })
    }

    /// Decodes one framed record.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Fields, String> {
        let (id, datum) = confluent_frame(bytes)?;
        let dir = &self.dir;
        let schema = self
            .cache
            .entry(id)
            .or_insert_with(|| {
                let path = dir.join(format!("{id}.avsc"));
                if !path.is_file() {
                    return Err(format!(
                        "unknown schema id {id}: no {} in registry_dir",
                        path.display()
                    ));
                }
                parse_avro(&path)
                    .map(Arc::new)
                    .map_err(|e| format!("schema id {id}: {e}"))
            })
            .clone()?;
        schema
            .decode(datum)
            .map_err(|e| format!("schema id {id}: {e}"))
    }
}

/// Splits a Confluent-framed record into its schema id and datum.
pub fn confluent_frame(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [magic, ..] if *magic != 0 => Err(format!(
            "not in the Confluent wire format: magic byte is {magic}, expected 0"
        )),
        _ => Err(format!(
            "not in the Confluent wire format: {} bytes, shorter than the 5-byte header",
            bytes.len()
        )),
    }
}

fn read(path: &Path) -> Result<String, SchemaError> {
    std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_avro(path: &Path) -> Result<AvroSchema, SchemaError> {
    let text = read(path)?;
    apache_avro::Schema::parse_str(&text)
        .map(AvroSchema::new)
        .map_err(|e| SchemaError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Binary bytes as standard base64, how Avro `bytes`/`fixed` values and
/// undecodable Avro records are shown.
pub fn base64_text(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An event as a `serde_json::Value`, for JSON Schema validation. Ints stay
/// integers (so `"type": "integer"` holds); non-finite floats become null,
/// as they do when events are written as JSON.
pub fn fields_to_json(fields: &Fields) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.to_string()),
        Value::List(items) => J::Array(items.iter().map(value_to_json).collect()),
        Value::Map(fields) => fields_to_json(fields),
    }
}

#[cfg(test)]
mod tests;
