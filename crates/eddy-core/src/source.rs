//! The source interface, event-time assignment and watermark generation.

use serde::Deserialize;

use crate::component::WatermarkSpec;
use crate::config::Duration;
use crate::event::{Event, Fields, Value};
use crate::operator::{dead_letter, with_position};
use crate::symbol::Sym;
use crate::time::{parse_rfc3339, Timestamp, MIN_TIMESTAMP};

/// What one poll of a source produced.
#[derive(Debug)]
pub enum SourcePoll {
    /// Events read (possibly none when only dead letters were produced).
    Ready(SourceBatch),
    /// Nothing available right now; poll again later.
    Pending,
    /// A bounded source has no more events.
    Finished,
}

/// Events read by one poll, with the dead letters that decoding produced.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// Decoded events with their event time set.
    pub events: Vec<Event>,
    /// Records that could not be decoded, as dead-letter events.
    pub dead_letters: Vec<Event>,
    /// The partition the events came from, for per-partition watermarks.
    pub partition: u32,
}

/// A position in a source that can be resumed from (offsets, line numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    /// Partition id.
    pub partition: u32,
    /// Offset within the partition of the next record to read.
    pub offset: u64,
}

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An I/O failure, with the path or address it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being read.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Any other failure; `retryable` says whether polling again can help.
    #[error("{message}")]
    Other {
        /// What went wrong.
        message: String,
        /// Whether retrying can succeed.
        retryable: bool,
    },
}

/// A source split: one instance runs per worker and reads its share.
pub trait Source: Send {
    /// Reads up to `max` events.
    fn poll(&mut self, max: usize) -> Result<SourcePoll, SourceError>;

    /// Positions to store in a checkpoint (empty where not resumable).
    fn positions(&self) -> Vec<SourcePosition> {
        Vec::new()
    }

    /// The partitions this instance now owns, when that changed since the
    /// last call (Kafka rebalances). Owned partitions hold the watermark
    /// back until they have data or go idle, as Flink's per-split
    /// watermarks do, so a partition read later cannot make events late;
    /// partitions no longer owned stop holding it. `None`: unchanged, or
    /// a source whose partitions appear with their data.
    fn assignment_changed(&mut self) -> Option<Vec<u32>> {
        None
    }

    /// Resumes from positions stored in a checkpoint.
    fn seek(&mut self, _positions: &[SourcePosition]) -> Result<(), SourceError> {
        Ok(())
    }

    /// Acknowledges that everything up to the given positions is fully
    /// processed (Kafka commits offsets here).
    fn commit(&mut self, _positions: &[SourcePosition]) -> Result<(), SourceError> {
        Ok(())
    }
}

/// How the event time of a decoded record is found.
#[derive(Clone, Debug, PartialEq)]
pub enum EventTimeConfig {
    /// `event_time = "ingestion"`: stamp events when they are read.
    Ingestion,
    /// `event_time = { field = "ts", ... }`.
    Field(EventTimeField),
}

impl<'de> Deserialize<'de> for EventTimeConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EventTimeConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"ingestion\" or a table such as { field = \"ts\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EventTimeConfig, E> {
                match v {
                    "ingestion" => Ok(EventTimeConfig::Ingestion),
                    other => Err(E::custom(format!(
                        "unknown event_time mode `{other}`: use \"ingestion\" or {{ field = \"ts\" }}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EventTimeConfig, A::Error> {
                EventTimeField::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(EventTimeConfig::Field)
            }
        }
        d.deserialize_any(V)
    }
}

/// Event time taken from a field.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventTimeField {
    /// The field holding the time; a dotted path reaches into objects.
    pub field: String,
    /// How the field is written: `auto` (epoch seconds, milliseconds or
    /// RFC 3339, decided per value), `epoch_s`, `epoch_ms` or `rfc3339`.
    #[serde(default)]
    pub format: TimeFormat,
    /// How far out of order events may arrive; the watermark trails the
    /// largest time seen by this much.
    #[serde(default)]
    pub max_out_of_orderness: Option<Duration>,
    /// After this long without events an input is idle and stops holding
    /// back the watermark.
    #[serde(default)]
    pub idle_timeout: Option<Duration>,
}

/// How a time field is written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Numbers below 10^11 are seconds, larger ones milliseconds; strings RFC 3339.
    #[default]
    Auto,
    /// Seconds since the epoch (fractions allowed).
    EpochS,
    /// Milliseconds since the epoch.
    EpochMs,
    /// RFC 3339 text.
    Rfc3339,
}

/// Assigns event time to decoded records, per a source's `event_time`.
#[derive(Clone, Debug)]
pub struct TimestampAssigner {
    path: Option<Vec<Sym>>,
    format: TimeFormat,
    /// Watermark lag behind the largest time seen (ms).
    pub max_out_of_orderness: i64,
    /// Idle timeout (ms), if any.
    pub idle_timeout: Option<i64>,
}

impl TimestampAssigner {
    /// Ingestion time: every record gets the time it was read.
    pub fn ingestion() -> TimestampAssigner {
        TimestampAssigner {
            path: None,
            format: TimeFormat::Auto,
            max_out_of_orderness: 0,
            idle_timeout: None,
        }
    }

    /// Builds the assigner for a source's `event_time` (ingestion time when absent).
    pub fn from_config(cfg: Option<&EventTimeConfig>) -> TimestampAssigner {
        match cfg {
            None | Some(EventTimeConfig::Ingestion) => Self::ingestion(),
            Some(EventTimeConfig::Field(f)) => TimestampAssigner {
                path: Some(f.field.split('.').map(Sym::intern).collect()),
                format: f.format,
                max_out_of_orderness: f.max_out_of_orderness.map(|d| d.ms()).unwrap_or(0),
                idle_timeout: f.idle_timeout.map(|d| d.ms()),
            },
        }
    }

    /// The watermark settings of a source using this assigner.
    pub fn watermarks(&self) -> WatermarkSpec {
        WatermarkSpec {
            max_out_of_orderness: self.max_out_of_orderness,
            idle_timeout: self.idle_timeout,
        }
    }

    /// The event time of `fields`, or why it has none. `now` is the ingestion time.
    pub fn time_of(&self, fields: &Fields, now: Timestamp) -> Result<Timestamp, String> {
        let Some(path) = &self.path else {
            return Ok(now);
        };
        let name = || {
            path.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(".")
        };
        let value = fields
            .get_path(path)
            .ok_or_else(|| format!("missing time field `{}`", name()))?;
        parse_time_value(value, self.format).ok_or_else(|| {
            format!(
                "time field `{}` has unparsable value {}",
                name(),
                crate::json::value_to_json_string(value)
            )
        })
    }

    /// Builds an event from decoded fields, or a dead letter naming `source`
    /// and `position` when the time is missing or unparsable.
    pub fn assign(
        &self,
        fields: Fields,
        now: Timestamp,
        source: &str,
        position: impl FnOnce() -> String,
    ) -> Result<Event, Event> {
        match self.time_of(&fields, now) {
            Ok(t) => Ok(Event::new(t, fields)),
            Err(reason) => Err(with_position(
                dead_letter(
                    "decode",
                    reason,
                    Value::Map(std::sync::Arc::new(fields)),
                    now,
                ),
                source,
                position(),
            )),
        }
    }
}

/// Interprets a time value per `format`.
pub fn parse_time_value(value: &Value, format: TimeFormat) -> Option<Timestamp> {
    match (value, format) {
        (Value::Str(s), TimeFormat::Auto | TimeFormat::Rfc3339) => parse_rfc3339(s),
        (Value::Str(s), _) => parse_time_value(&Value::Float(s.trim().parse().ok()?), format),
        (Value::Int(i), TimeFormat::EpochMs) => Some(*i),
        (Value::Int(i), TimeFormat::EpochS) => i.checked_mul(1000),
        (Value::Int(i), TimeFormat::Auto) => Some(if i.abs() < 100_000_000_000 {
            i * 1000
        } else {
            *i
        }),
        (Value::Float(f), TimeFormat::EpochMs) if f.is_finite() => Some(*f as i64),
        (Value::Float(f), TimeFormat::EpochS) if f.is_finite() => Some((f * 1000.0) as i64),
        (Value::Float(f), TimeFormat::Auto) if f.is_finite() => Some(if f.abs() < 1e11 {
            (f * 1000.0) as i64
        } else {
            *f as i64
        }),
        _ => None,
    }
}

/// Bounded-out-of-orderness watermarks for one input partition.
#[derive(Clone, Debug)]
pub struct WatermarkGenerator {
    bound: i64,
    max_seen: Timestamp,
}

impl WatermarkGenerator {
    /// A generator that lets events arrive up to `bound` ms out of order.
    pub fn new(bound: i64) -> WatermarkGenerator {
        WatermarkGenerator {
            bound,
            max_seen: MIN_TIMESTAMP,
        }
    }

    /// Observes an event time.
    #[inline]
    pub fn observe(&mut self, t: Timestamp) {
        self.max_seen = self.max_seen.max(t);
    }

    /// The current watermark: every later event should be after it. It is
    /// one millisecond below `max_seen - bound` because another event with
    /// exactly that time may still come.
    pub fn watermark(&self) -> Timestamp {
        if self.max_seen == MIN_TIMESTAMP {
            MIN_TIMESTAMP
        } else {
            self.max_seen.saturating_sub(self.bound).saturating_sub(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formats() {
        assert_eq!(
            parse_time_value(&Value::Int(1_700_000_000), TimeFormat::Auto),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_time_value(&Value::Int(1_700_000_000_123), TimeFormat::Auto),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_time_value(&Value::Float(1.5), TimeFormat::EpochS),
            Some(1_500)
        );
        assert_eq!(
            parse_time_value(&Value::str("1970-01-01T00:00:01Z"), TimeFormat::Auto),
            Some(1_000)
        );
        assert_eq!(parse_time_value(&Value::Bool(true), TimeFormat::Auto), None);
    }

    #[test]
    fn missing_time_field_becomes_a_dead_letter() {
        let a = TimestampAssigner {
            path: Some(vec![Sym::intern("ts")]),
            format: TimeFormat::Auto,
            max_out_of_orderness: 0,
            idle_timeout: None,
        };
        let dl = a
            .assign(Fields::default(), 5, "file", || "line 3".into())
            .unwrap_err();
        assert_eq!(
            dl.get(Sym::intern("reason")),
            Some(&Value::str("missing time field `ts`"))
        );
        assert_eq!(dl.get(Sym::intern("position")), Some(&Value::str("line 3")));
    }

    #[test]
    fn watermark_trails_max_by_bound() {
        let mut w = WatermarkGenerator::new(100);
        assert_eq!(w.watermark(), MIN_TIMESTAMP);
        w.observe(1_000);
        w.observe(500);
        assert_eq!(w.watermark(), 899);
    }
}
