//! Records to events: payload decoding, schema checks, metadata and
//! dead letters.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use eddy_core::json::JsonDecoder;
use eddy_core::metrics::Counter;
use eddy_core::operator::{dead_letter, with_position};
use eddy_core::source::{PartitionId, TimestampAssigner};
use eddy_core::time::format_rfc3339;
use eddy_core::{Event, Fields, Sym, Value};

use super::config::PayloadFormat;
use super::fetch::RawRecord;
use super::PartitionNames;
use crate::schema::{AvroDecoder, ConfluentAvroDecoder, JsonSchemaValidator, SchemaConfig};

/// Turns records into events; kept apart from the consumer so a record
/// borrowed from it can be decoded while this is mutated.
pub(super) struct Records {
    pub(super) name: String,
    pub(super) format: PayloadFormat,
    pub(super) metadata: bool,
    pub(super) max_record_bytes: usize,
    pub(super) decoder: PayloadDecoder,
    pub(super) assigner: TimestampAssigner,
    pub(super) partitions: PartitionNames,
    /// Next offset to read per partition id.
    pub(super) next_offset: HashMap<PartitionId, i64>,
    pub(super) records_in: Counter,
    pub(super) bytes_in: Counter,
    pub(super) dead_letters: Counter,
}

impl Records {
    /// Notes that partition `id` was read up to `last` (its records, in
    /// order, are being decoded), `records` records and `bytes` bytes.
    pub(super) fn read(&mut self, id: PartitionId, last: &RawRecord<'_>, records: u64, bytes: u64) {
        match self.next_offset.entry(id) {
            Entry::Occupied(mut o) => *o.get_mut() = last.offset() + 1,
            Entry::Vacant(v) => {
                v.insert(last.offset() + 1);
                self.partitions.name(id, last.topic(), last.partition());
            }
        }
        self.records_in.add(records);
        self.bytes_in.add(bytes);
    }

    /// Decodes one record into `events` and `dead` (see [`Records::read`]
    /// for its offset and counts).
    pub(super) fn decode(
        &mut self,
        msg: &RawRecord<'_>,
        now: i64,
        events: &mut Vec<Event>,
        dead: &mut Vec<Event>,
    ) {
        let payload = msg.payload();
        let position = || format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
        // Avro payloads are binary: base64 keeps them intact for replay.
        let binary = matches!(
            self.format,
            PayloadFormat::Avro | PayloadFormat::ConfluentAvro
        );
        let dead_letter_of = |reason: String, raw: &[u8]| {
            let raw = if binary {
                Value::str(&crate::schema::base64_text(raw))
            } else {
                Value::str(&String::from_utf8_lossy(raw))
            };
            let mut dl = with_position(
                dead_letter("decode", reason, raw, now),
                &self.name,
                position(),
            );
            dl.fields
                .push(eddy_core::sym!("topic"), Value::str(msg.topic()));
            dl.fields.push(
                eddy_core::sym!("partition"),
                Value::Int(i64::from(msg.partition())),
            );
            dl.fields
                .push(eddy_core::sym!("offset"), Value::Int(msg.offset()));
            // Decoding is deterministic: one attempt, failed now.
            dl.fields.push(eddy_core::sym!("attempts"), Value::Int(1));
            dl.fields.push(
                eddy_core::sym!("first_failure"),
                Value::str(&format_rfc3339(now)),
            );
            dl
        };
        if payload.len() > self.max_record_bytes {
            let reason = format!(
                "record is {} bytes; the limit is {} (max_record_bytes)",
                payload.len(),
                self.max_record_bytes
            );
            let excerpt = &payload[..payload.len().min(1024)];
            dead.push(dead_letter_of(reason, excerpt));
            return;
        }
        let meta = self.metadata.then(|| metadata(msg));
        let mut one = |bytes: &[u8]| match self.decoder.decode(bytes) {
            Ok(mut fields) => {
                if let Some(m) = &meta {
                    fields.insert(eddy_core::sym!("kafka"), m.clone());
                }
                match self.assigner.time_of(&fields, now) {
                    Ok(t) => events.push(Event::new(t, fields)),
                    Err(reason) => dead.push(dead_letter_of(reason.to_string(), bytes)),
                }
            }
            Err(e) => dead.push(dead_letter_of(e, bytes)),
        };
        match self.format {
            PayloadFormat::Json | PayloadFormat::Avro | PayloadFormat::ConfluentAvro => {
                one(payload)
            }
            PayloadFormat::Ndjson => {
                for line in payload.split(|&b| b == b'\n') {
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        one(line);
                    }
                }
            }
        }
    }
}

/// Payload bytes to fields, then the optional JSON Schema check.
pub(super) struct PayloadDecoder {
    format: FormatDecoder,
    validator: Option<JsonSchemaValidator>,
}

enum FormatDecoder {
    Json(JsonDecoder),
    Avro(AvroDecoder),
    ConfluentAvro(ConfluentAvroDecoder),
}

impl PayloadDecoder {
    /// Decodes only the top-level fields `keep` of JSON payloads (all when
    /// `None`). Not with a JSON Schema: it validates the whole record.
    pub(super) fn keep_only(&mut self, keep: Option<Vec<eddy_core::Sym>>) {
        if let (FormatDecoder::Json(d), None) = (&mut self.format, &self.validator) {
            d.keep_only(keep);
        }
    }

    /// Reads the schema files `format` and `schema` name; the error says
    /// which file or option is wrong.
    pub(super) fn new(
        format: PayloadFormat,
        schema: &SchemaConfig,
    ) -> Result<PayloadDecoder, String> {
        let misplaced = |option: &str, wanted: &str| {
            Err(format!(
                "`schema.{option}` is for `format = \"{wanted}\"`, not `{}`",
                format_name(format)
            ))
        };
        let decoder = match format {
            PayloadFormat::Json | PayloadFormat::Ndjson => {
                if schema.avro.is_some() {
                    return misplaced("avro", "avro");
                }
                if schema.registry_dir.is_some() {
                    return misplaced("registry_dir", "confluent_avro");
                }
                FormatDecoder::Json(JsonDecoder::new())
            }
            PayloadFormat::Avro => {
                if schema.registry_dir.is_some() {
                    return misplaced("registry_dir", "confluent_avro");
                }
                let Some(path) = &schema.avro else {
                    return Err(
                        "`format = \"avro\"` needs `schema = { avro = \"file.avsc\" }`".into(),
                    );
                };
                FormatDecoder::Avro(AvroDecoder::load(path).map_err(|e| e.to_string())?)
            }
            PayloadFormat::ConfluentAvro => {
                if schema.avro.is_some() {
                    return misplaced("avro", "avro");
                }
                let Some(dir) = &schema.registry_dir else {
                    return Err("`format = \"confluent_avro\"` needs `schema = { registry_dir = \"dir\" }` (holding <id>.avsc files)".into());
                };
                FormatDecoder::ConfluentAvro(
                    ConfluentAvroDecoder::new(dir).map_err(|e| e.to_string())?,
                )
            }
        };
        let validator = match &schema.json_schema {
            Some(path) => Some(JsonSchemaValidator::load(path).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(PayloadDecoder {
            format: decoder,
            validator,
        })
    }

    pub(super) fn decode(&mut self, bytes: &[u8]) -> Result<Fields, String> {
        let fields = match &mut self.format {
            FormatDecoder::Json(d) => d.decode(bytes).map_err(|e| e.to_string())?,
            FormatDecoder::Avro(d) => d.decode(bytes)?,
            FormatDecoder::ConfluentAvro(d) => d.decode(bytes)?,
        };
        if let Some(v) = &self.validator {
            v.check(&fields)?;
        }
        Ok(fields)
    }
}

fn format_name(format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::Json => "json",
        PayloadFormat::Ndjson => "ndjson",
        PayloadFormat::Avro => "avro",
        PayloadFormat::ConfluentAvro => "confluent_avro",
    }
}

/// The `kafka` metadata field of a record.
fn metadata(msg: &RawRecord<'_>) -> Value {
    let mut f = Fields::with_capacity(6);
    f.push(eddy_core::sym!("topic"), Value::str(msg.topic()));
    f.push(
        eddy_core::sym!("partition"),
        Value::Int(i64::from(msg.partition())),
    );
    f.push(eddy_core::sym!("offset"), Value::Int(msg.offset()));
    f.push(
        eddy_core::sym!("timestamp"),
        msg.timestamp_ms().map_or(Value::Null, Value::Int),
    );
    f.push(
        eddy_core::sym!("key"),
        msg.key()
            .map_or(Value::Null, |k| Value::str(&String::from_utf8_lossy(k))),
    );
    let mut headers = Fields::default();
    msg.for_each_header(|name, value| {
        let v = value.map_or(Value::Null, |v| Value::str(&String::from_utf8_lossy(v)));
        headers.push(Sym::intern(name), v);
    });
    f.push(eddy_core::sym!("headers"), Value::Map(Arc::new(headers)));
    Value::Map(Arc::new(f))
}
