//! Helpers shared by the generators: config parsing, seeding and throttling.

use std::time::Instant;

use eddy_core::time::parse_rfc3339;
use eddy_core::Timestamp;
use serde::{Deserialize, Deserializer};

/// Synthetic event time at which generators start by default in
/// as-fast-as-possible mode (2024-01-01T00:00:00Z), so equal seeds give
/// byte-identical streams.
pub(crate) const DEFAULT_START_TIME: Timestamp = 1_704_067_200_000;

/// Deserialises an optional RFC 3339 timestamp into milliseconds.
pub(crate) fn opt_rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let text = String::deserialize(d)?;
    parse_rfc3339(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not an RFC 3339 time (e.g. \"2024-05-01T12:00:00Z\")"
        ))
    })
}

/// Deserialises an optional rate that must be a positive, finite number.
pub(crate) fn opt_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    positive(d).map(Some)
}

/// Deserialises a positive, finite number.
pub(crate) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be a positive number, found {v}"
        )))
    }
}

/// SplitMix64: a strong 64-bit mixer used to derive independent seeds.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A token bucket that releases `rate` events per wall-clock second.
#[derive(Debug)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    tokens: f64,
}

impl Throttle {
    pub(crate) fn new() -> Throttle {
        Throttle {
            last: None,
            tokens: 1.0,
        }
    }

    /// How many events may be emitted now at `rate` events/s (at most `max`).
    /// Unused credit is capped at one second's worth.
    pub(crate) fn allowance(&mut self, rate: f64, max: usize) -> usize {
        let now = Instant::now();
        if let Some(last) = self.last {
            let dt = now.duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * rate).min(rate.max(1.0));
        }
        self.last = Some(now);
        (self.tokens.floor().max(0.0) as usize).min(max)
    }

    /// Records that `n` events were emitted.
    pub(crate) fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_releases_tokens_over_time() {
        let mut t = Throttle::new();
        assert_eq!(t.allowance(1000.0, 100), 1);
        t.spend(1);
        assert_eq!(t.allowance(1000.0, 100), 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let n = t.allowance(1000.0, 100);
        assert!((10..=100).contains(&n), "{n}");
    }

    #[test]
    fn mixer_spreads_adjacent_inputs() {
        assert_ne!(mix64(1) >> 32, mix64(2) >> 32);
    }
}
