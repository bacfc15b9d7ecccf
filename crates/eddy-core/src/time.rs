//! Time: timestamps, durations written as `"5s"`, RFC 3339 and epoch parsing.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (event time, processing time).
pub type Timestamp = i64;

/// The smallest timestamp: "no watermark yet".
pub const MIN_TIMESTAMP: Timestamp = i64::MIN;
/// The largest timestamp: the watermark of a finished input.
pub const MAX_TIMESTAMP: Timestamp = i64::MAX;

/// The earliest supported event time, 0000-01-01T00:00:00.000Z.
pub const MIN_EVENT_TIME: Timestamp = -62_167_219_200_000;
/// The latest supported event time, 9999-12-31T23:59:59.999Z.
pub const MAX_EVENT_TIME: Timestamp = 253_402_300_799_999;
/// The supported event-time range as text, for error messages.
pub const EVENT_TIME_RANGE: &str = "0000-01-01T00:00:00.000Z ..= 9999-12-31T23:59:59.999Z";

/// The longest duration `parse_duration` accepts: 10 000 years (3652425d),
/// the span of supported event times; anything longer is a typo.
pub const MAX_DURATION_MS: i64 = 3_652_425 * 86_400_000;

/// Whether `t` lies in the supported event-time range.
pub fn is_event_time(t: Timestamp) -> bool {
    (MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&t)
}

/// The current wall-clock time in milliseconds.
pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The current wall-clock time in nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Why text is not a duration; each message quotes the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but white space.
    #[error("empty duration")]
    Empty,
    /// A number with no unit after it.
    #[error("`{0}` has a number without a unit (use ms, s, m, h or d)")]
    MissingUnit(String),
    /// Something other than a number where one should start.
    #[error("`{0}` is not a duration (expected e.g. `500ms`, `5s`, `1m`)")]
    NotADuration(String),
    /// Digits and dots that are not a number.
    #[error("`{0}` has a malformed number")]
    MalformedNumber(String),
    /// A unit other than ms, s, m, min, h, d.
    #[error("`{text}` has unknown unit `{unit}` (use ms, s, m, h or d)")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// Over [`MAX_DURATION_MS`].
    #[error("`{0}` is longer than the longest supported duration ({max}, 10 000 years)", max = format_duration(MAX_DURATION_MS))]
    TooLong(String),
}

impl crate::error::Classify for DurationError {
    fn domain(&self) -> crate::error::Domain {
        crate::error::Domain::Config
    }

    fn retryable(&self) -> bool {
        false
    }
}

/// Parses a duration such as `250ms`, `5s`, `1m`, `2h`, `1d`, `1.5h` or
/// `1m30s` into milliseconds (fractions rounded to the nearest one). A
/// duration over [`MAX_DURATION_MS`] is an error, never saturated.
pub fn parse_duration(text: &str) -> Result<i64, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::MissingUnit(s.to_string()))?;
        if digits == 0 {
            return Err(DurationError::NotADuration(s.to_string()));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::MalformedNumber(s.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            unit => {
                return Err(DurationError::UnknownUnit {
                    text: s.to_string(),
                    unit: unit.to_string(),
                })
            }
        };
        rest = &rest[unit_len..];
        let ms = (number * factor).round();
        // The float comparison also rejects an infinite product; the cast
        // is exact below 2^53.
        total = if ms <= MAX_DURATION_MS as f64 {
            total
                .checked_add(ms as i64)
                .filter(|t| *t <= MAX_DURATION_MS)
        } else {
            None
        }
        .ok_or_else(|| DurationError::TooLong(s.to_string()))?;
    }
    Ok(total)
}

/// Formats milliseconds as the shortest duration text (`90s` → `1m30s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days in `month` (1–12) of proleptic Gregorian `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.250Z`, offsets allowed,
/// a space instead of `T` accepted) into milliseconds since the epoch.
/// Dates that do not exist (`2023-02-29`), leap seconds (`:60`), offsets
/// beyond `±23:59` and instants outside the supported event-time range
/// ([`MIN_EVENT_TIME`]..=[`MAX_EVENT_TIME`]) are rejected.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    parse_rfc3339_unbounded(s).filter(|t| is_event_time(*t))
}

/// [`parse_rfc3339`] without the range check: an offset can move a valid
/// text just outside the range (`0000-01-01T00:00:00+01:00`).
pub(crate) fn parse_rfc3339_unbounded(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let m = h * 60 + m;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        None => 0,
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1_000 + millis)
}

/// A timestamp broken into UTC calendar fields, for names that sort by time
/// (rotated files, `day=…/hour=…` partition directories).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcDateTime {
    /// Proleptic Gregorian year.
    pub year: i64,
    /// 1–12.
    pub month: i64,
    /// 1–31.
    pub day: i64,
    /// 0–23.
    pub hour: i64,
    /// 0–59.
    pub minute: i64,
    /// 0–59.
    pub second: i64,
    /// 0–999.
    pub millis: i64,
}

impl UtcDateTime {
    /// The UTC calendar fields of `ts` (milliseconds since the epoch).
    pub fn from_timestamp(ts: Timestamp) -> UtcDateTime {
        let secs = ts.div_euclid(1_000);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        UtcDateTime {
            year,
            month,
            day,
            hour: sod / 3_600,
            minute: sod % 3_600 / 60,
            second: sod % 60,
            millis: ts.rem_euclid(1_000),
        }
    }
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_rfc3339(ts: Timestamp) -> String {
    let t = UtcDateTime::from_timestamp(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("5s"), Ok(5_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000));
        assert!(parse_duration("5")
            .unwrap_err()
            .to_string()
            .contains("without a unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(format_duration(90_000), "1m30s");
    }

    #[test]
    fn absurd_durations_are_errors_not_saturated() {
        for text in [
            "99999999999999999999d",
            "3652426d",
            "3652425d1ms",
            "9223372036854775807ms",
            "1000000000000000000000000000000000000000000000000h",
        ] {
            let e = parse_duration(text).unwrap_err().to_string();
            assert!(
                e.contains("longest supported duration (3652425d"),
                "{text}: {e}"
            );
        }
        assert_eq!(parse_duration("3652425d"), Ok(MAX_DURATION_MS));
        assert_eq!(parse_duration("0.5ms"), Ok(1));
    }

    #[test]
    fn rfc3339_rejects_impossible_fields() {
        for text in [
            "2024-05-01T12:00:00+25:00",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00-23:60",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-06-31T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00.000+00:01",
            "9999-12-31T23:59:59.999-00:01",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2024-05-01T12:00:00-23:59").is_some());
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(MIN_EVENT_TIME));
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59.999Z"),
            Some(MAX_EVENT_TIME)
        );
        assert_eq!(format_rfc3339(MIN_EVENT_TIME), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(MAX_EVENT_TIME), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.25Z"),
            Some(1_714_564_800_250)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01 12:00:00"),
            Some(1_714_564_800_000)
        );
        assert_eq!(parse_rfc3339("2024-13-01T12:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(ts in MIN_EVENT_TIME..=MAX_EVENT_TIME) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(ts)), Some(ts));
        }

        #[test]
        fn rfc3339_accepts_exactly_the_real_dates(y in 0i64..=9999, m in 1i64..=12, d in 1i64..=31) {
            // Oracle: calendar arithmetic normalises a day that does not
            // exist into another date, so it fails to come back unchanged.
            let real = civil_from_days(days_from_civil(y, m, d)) == (y, m, d);
            let text = format!("{y:04}-{m:02}-{d:02}T00:00:00Z");
            prop_assert_eq!(parse_rfc3339(&text).is_some(), real);
        }

        #[test]
        fn durations_round_trip(ms in 0..=MAX_DURATION_MS) {
            prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }

        #[test]
        fn durations_over_the_limit_are_errors(ms in (MAX_DURATION_MS + 1)..=i64::MAX) {
            let text = format!("{ms}ms");
            prop_assert!(parse_duration(&text).is_err());
            prop_assert!(parse_duration(&format_duration(ms)).is_err());
        }
    }
}
