//! The source interface, event-time assignment and watermark generation.

use serde::Deserialize;

use crate::component::WatermarkSpec;
use crate::config::Duration;
use crate::event::{Event, Fields, Value};
use crate::operator::{dead_letter, with_position};
use crate::symbol::Sym;
use crate::time::{
    is_event_time, parse_rfc3339_unbounded, Timestamp, EVENT_TIME_RANGE, MAX_EVENT_TIME,
    MIN_EVENT_TIME, MIN_TIMESTAMP,
};

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
    pub partition: PartitionId,
    /// No later event of this partition will be earlier than this time:
    /// the watermark may move to just before it with no event (an
    /// ingestion-time source tells its clock this way while no data
    /// comes, so what waits for the watermark is not held back).
    pub progress: Option<Timestamp>,
}

/// A source's name for one of its partitions: the same in every run, so a
/// checkpoint's positions and watermarks find their partition again.
pub type PartitionId = u64;

/// A position in a source that can be resumed from (offsets, line numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    /// Partition id.
    pub partition: PartitionId,
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

impl crate::error::Classify for SourceError {
    fn domain(&self) -> crate::error::Domain {
        crate::error::Domain::Input
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Other {
                retryable: true,
                ..
            }
        )
    }
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
    fn assignment_changed(&mut self) -> Option<Vec<PartitionId>> {
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

    /// Whether records get the time they were read (not a field's).
    pub fn is_ingestion(&self) -> bool {
        self.path.is_none()
    }

    /// The top-level fields a source keeps when the pipeline reads only
    /// `projection` of its events: those and the event-time field. `None`
    /// (keep all) without a projection.
    pub fn keep(&self, projection: Option<&[Sym]>) -> Option<Vec<Sym>> {
        let mut keep = projection?.to_vec();
        if let Some(first) = self.path.as_ref().and_then(|p| p.first()) {
            if !keep.contains(first) {
                keep.push(*first);
            }
        }
        Some(keep)
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
    pub fn time_of(&self, fields: &Fields, now: Timestamp) -> Result<Timestamp, EventTimeError> {
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
            .ok_or_else(|| EventTimeError::Missing { field: name() })?;
        parse_time_value(value, self.format).map_err(|e| {
            let (field, value) = (name(), crate::json::value_to_json_string(value));
            match e {
                TimeValueError::Unparsable => EventTimeError::Unparsable { field, value },
                TimeValueError::OutOfRange => EventTimeError::OutOfRange { field, value },
            }
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
                    reason.to_string(),
                    Value::Map(std::sync::Arc::new(fields)),
                    now,
                ),
                source,
                position(),
            )),
        }
    }
}

/// Why a decoded record has no event time; the record becomes a dead
/// letter with this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventTimeError {
    /// The configured field is absent.
    #[error("missing time field `{field}`")]
    Missing {
        /// The field's dotted path.
        field: String,
    },
    /// The field holds something that is not a time in the format.
    #[error("time field `{field}` has unparsable value {value}")]
    Unparsable {
        /// The field's dotted path.
        field: String,
        /// The value as JSON.
        value: String,
    },
    /// A time outside the supported range.
    #[error(
        "time field `{field}` has value {value} outside the supported range {EVENT_TIME_RANGE}"
    )]
    OutOfRange {
        /// The field's dotted path.
        field: String,
        /// The value as JSON.
        value: String,
    },
}

impl crate::error::Classify for EventTimeError {
    fn domain(&self) -> crate::error::Domain {
        crate::error::Domain::Input
    }

    fn retryable(&self) -> bool {
        false
    }
}

/// Why a value is not an event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeValueError {
    /// Not a number or time text in the expected format.
    #[error("not a time")]
    Unparsable,
    /// A time, but outside [`MIN_EVENT_TIME`]..=[`MAX_EVENT_TIME`] (or too
    /// large to convert): rejected rather than clamped or wrapped.
    #[error("outside the supported range {EVENT_TIME_RANGE}")]
    OutOfRange,
}

/// Numbers below this magnitude are seconds in [`TimeFormat::Auto`].
const AUTO_SECONDS_BELOW: i64 = 100_000_000_000;

/// Interprets a time value per `format`, in milliseconds since the epoch.
/// Every conversion is checked: a value outside the supported event-time
/// range, in any format, is an error and never wraps or saturates.
pub fn parse_time_value(value: &Value, format: TimeFormat) -> Result<Timestamp, TimeValueError> {
    use TimeValueError::*;
    let in_range = |t: Timestamp| {
        if is_event_time(t) {
            Ok(t)
        } else {
            Err(OutOfRange)
        }
    };
    match (value, format) {
        (Value::Str(s), TimeFormat::Auto | TimeFormat::Rfc3339) => match parse_rfc3339_unbounded(s)
        {
            Some(t) => in_range(t),
            // A JSON integer beyond i64 arrives as its text (see `json`).
            None if format == TimeFormat::Auto
                && is_integer_text(s)
                && s.parse::<i64>().is_err() =>
            {
                Err(OutOfRange)
            }
            None => Err(Unparsable),
        },
        (Value::Str(s), _) => {
            // Integer text first, so `"9007199254740993"` is not rounded.
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => parse_time_value(&Value::Int(i), format),
                Err(_) => match s.parse::<f64>() {
                    Ok(f) => parse_time_value(&Value::Float(f), format),
                    // All digits yet no i64: an integer beyond the range.
                    Err(_) if is_integer_text(s) => Err(OutOfRange),
                    Err(_) => Err(Unparsable),
                },
            }
        }
        (Value::Int(i), TimeFormat::EpochMs) => in_range(*i),
        (Value::Int(i), TimeFormat::EpochS) => in_range(i.checked_mul(1000).ok_or(OutOfRange)?),
        (Value::Int(i), TimeFormat::Auto) => {
            // `unsigned_abs` because `abs` overflows on i64::MIN.
            if i.unsigned_abs() < AUTO_SECONDS_BELOW.unsigned_abs() {
                in_range(i * 1000)
            } else {
                in_range(*i)
            }
        }
        (Value::Float(f), _) if !f.is_finite() => Err(Unparsable),
        (Value::Float(f), TimeFormat::EpochMs) => float_ms(*f),
        (Value::Float(f), TimeFormat::EpochS) => float_ms(f * 1000.0),
        (Value::Float(f), TimeFormat::Auto) => {
            if f.abs() < AUTO_SECONDS_BELOW as f64 {
                float_ms(f * 1000.0)
            } else {
                float_ms(*f)
            }
        }
        _ => Err(Unparsable),
    }
}

/// Milliseconds from a float, range-checked before the cast (which would
/// saturate); the fraction of a millisecond is dropped towards the past.
fn float_ms(ms: f64) -> Result<Timestamp, TimeValueError> {
    let ms = ms.floor();
    // Both bounds are below 2^53, so exact as floats; NaN fails the test.
    if (MIN_EVENT_TIME as f64..=MAX_EVENT_TIME as f64).contains(&ms) {
        Ok(ms as i64)
    } else {
        Err(TimeValueError::OutOfRange)
    }
}

/// `-?digits`, as in a JSON integer kept as text beyond the `i64` range.
fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
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

    /// The largest event time observed (`MIN_TIMESTAMP`: none yet).
    pub fn max_seen(&self) -> Timestamp {
        self.max_seen
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

    use proptest::prelude::*;

    const FORMATS: [TimeFormat; 4] = [
        TimeFormat::Auto,
        TimeFormat::EpochS,
        TimeFormat::EpochMs,
        TimeFormat::Rfc3339,
    ];
    const EPOCH_FORMATS: [TimeFormat; 3] =
        [TimeFormat::Auto, TimeFormat::EpochS, TimeFormat::EpochMs];

    #[test]
    fn epoch_formats() {
        assert_eq!(
            parse_time_value(&Value::Int(1_700_000_000), TimeFormat::Auto),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time_value(&Value::Int(1_700_000_000_123), TimeFormat::Auto),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_time_value(&Value::Float(1.5), TimeFormat::EpochS),
            Ok(1_500)
        );
        assert_eq!(
            parse_time_value(&Value::str("1970-01-01T00:00:01Z"), TimeFormat::Auto),
            Ok(1_000)
        );
        assert_eq!(
            parse_time_value(&Value::str("9007199254740993"), TimeFormat::EpochMs),
            Err(TimeValueError::OutOfRange)
        );
        assert_eq!(
            parse_time_value(&Value::str(" 1700000000123 "), TimeFormat::EpochMs),
            Ok(1_700_000_000_123)
        );
        for f in FORMATS {
            assert_eq!(
                parse_time_value(&Value::Bool(true), f),
                Err(TimeValueError::Unparsable)
            );
        }
        assert_eq!(
            parse_time_value(&Value::Int(5), TimeFormat::Rfc3339),
            Err(TimeValueError::Unparsable)
        );
    }

    #[test]
    fn extreme_values_are_rejected_not_wrapped() {
        let out = Err(TimeValueError::OutOfRange);
        for f in EPOCH_FORMATS {
            for v in [
                Value::Int(i64::MIN),
                Value::Int(i64::MIN + 1),
                Value::Int(i64::MAX),
                Value::Float(1e300),
                Value::Float(-1e300),
                Value::Float(9.3e18),
                Value::str("123456789012345678901234567890"),
            ] {
                assert_eq!(parse_time_value(&v, f), out, "{v:?} as {f:?}");
            }
        }
        // In `auto`, text is RFC 3339 (epoch numbers must be numbers).
        let min_text = Value::str("-9223372036854775808");
        assert_eq!(parse_time_value(&min_text, TimeFormat::EpochS), out);
        assert_eq!(parse_time_value(&min_text, TimeFormat::EpochMs), out);
        assert_eq!(
            parse_time_value(&min_text, TimeFormat::Auto),
            Err(TimeValueError::Unparsable)
        );
        assert_eq!(
            parse_time_value(&Value::Int(MAX_EVENT_TIME), TimeFormat::EpochMs),
            Ok(MAX_EVENT_TIME)
        );
        assert_eq!(
            parse_time_value(&Value::Int(MAX_EVENT_TIME + 1), TimeFormat::EpochMs),
            out
        );
        assert_eq!(
            parse_time_value(&Value::Int(MIN_EVENT_TIME), TimeFormat::Auto),
            Ok(MIN_EVENT_TIME)
        );
        assert_eq!(
            parse_time_value(&Value::Int(MIN_EVENT_TIME - 1), TimeFormat::Auto),
            out
        );
        assert_eq!(
            parse_time_value(
                &Value::Float(MAX_EVENT_TIME as f64 + 0.5),
                TimeFormat::EpochMs
            ),
            Ok(MAX_EVENT_TIME)
        );
        assert_eq!(
            parse_time_value(&Value::Float(-0.5), TimeFormat::EpochMs),
            Ok(-1)
        );
        // RFC 3339 text moved outside the range by its offset.
        assert_eq!(
            parse_time_value(
                &Value::str("0000-01-01T00:00:00+00:01"),
                TimeFormat::Rfc3339
            ),
            out
        );
        assert_eq!(
            parse_time_value(
                &Value::str("9999-12-31T23:59:59.999-00:01"),
                TimeFormat::Auto
            ),
            out
        );
    }

    #[test]
    fn out_of_range_time_becomes_a_dead_letter_naming_field_value_and_range() {
        let a = TimestampAssigner {
            path: Some(vec![Sym::intern("ts")]),
            format: TimeFormat::Auto,
            max_out_of_orderness: 0,
            idle_timeout: None,
        };
        let mut fields = Fields::default();
        fields.insert(Sym::intern("ts"), Value::Int(i64::MIN));
        let dl = a.assign(fields, 5, "file", || "line 1".into()).unwrap_err();
        assert_eq!(
            dl.get(Sym::intern("reason")),
            Some(&Value::str(&format!(
                "time field `ts` has value -9223372036854775808 outside the supported range {EVENT_TIME_RANGE}"
            )))
        );
    }

    /// The millisecond an epoch integer means, computed wide so it cannot overflow.
    fn oracle_ms(i: i64, f: TimeFormat) -> i128 {
        let i = i as i128;
        match f {
            TimeFormat::EpochS => i * 1000,
            TimeFormat::Auto if i.abs() < 100_000_000_000 => i * 1000,
            _ => i,
        }
    }

    fn any_epoch_int() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            -300_000_000_000_000i64..300_000_000_000_000,
            -400_000_000_000i64..400_000_000_000,
        ]
    }

    proptest! {
        #[test]
        fn epoch_ints_convert_exactly_or_are_rejected(i in any_epoch_int()) {
            for f in EPOCH_FORMATS {
                let want = oracle_ms(i, f);
                let got = parse_time_value(&Value::Int(i), f);
                if (MIN_EVENT_TIME as i128..=MAX_EVENT_TIME as i128).contains(&want) {
                    prop_assert_eq!(got, Ok(want as i64));
                } else {
                    prop_assert_eq!(got, Err(TimeValueError::OutOfRange));
                }
                // Same answer when the number arrives as text.
                prop_assert_eq!(parse_time_value(&Value::str(&i.to_string()), f).ok(),
                    if f == TimeFormat::Auto { None } else { got.ok() });
            }
        }

        #[test]
        fn integral_floats_agree_with_ints(i in -(1i64 << 53)..(1i64 << 53)) {
            for f in EPOCH_FORMATS {
                prop_assert_eq!(
                    parse_time_value(&Value::Float(i as f64), f),
                    parse_time_value(&Value::Int(i), f)
                );
            }
        }

        #[test]
        fn huge_floats_are_rejected(m in 1e15f64..f64::MAX, neg in any::<bool>()) {
            let v = if neg { -m } else { m };
            for f in EPOCH_FORMATS {
                prop_assert_eq!(parse_time_value(&Value::Float(v), f), Err(TimeValueError::OutOfRange));
                prop_assert_eq!(parse_time_value(&Value::str(&v.to_string()), f).ok(), None);
            }
        }
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
