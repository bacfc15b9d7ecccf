//! Pipeline configuration: the TOML document, durations, spans and
//! diagnostics.
//!
//! A pipeline file has `[sources.NAME]`, `[transforms.NAME]`, `[sinks.NAME]`
//! (and later `[alerts.NAME]`, `[receivers.NAME]`) tables plus an optional
//! `[pipeline]` table. This module splits the file into [`ComponentDoc`]s with
//! their spans; each component's own config struct is deserialised from its
//! body by the registry, so every component's errors are reported, each with
//! its line and column.

mod checkpoint;
mod diagnostic;
mod document;

pub use checkpoint::CheckpointSettings;
pub use diagnostic::{closest, config_text, line_col, Diagnostic, Diagnostics};
pub use document::{
    check_workers, parse_document, ApiKeySettings, ComponentDoc, PipelineDoc, PipelineSettings,
    RateLimitSettings, Role, Section, ServerSettings, MAX_BATCH_SIZE,
};
pub use toml::Spanned;

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A duration written as text (`"500ms"`, `"5s"`, `"1m"`), in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(i64);

impl Duration {
    /// A duration of `ms` milliseconds.
    pub fn from_ms(ms: i64) -> Duration {
        Duration(ms)
    }

    /// Milliseconds.
    pub fn ms(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::time::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        match crate::time::parse_duration(&text) {
            Ok(ms) if ms > 0 => Ok(Duration(ms)),
            Ok(_) => Err(serde::de::Error::custom(format!(
                "bad duration `{text}`: must be positive"
            ))),
            Err(e) => Err(serde::de::Error::custom(format!("bad duration: {e}"))),
        }
    }
}

/// A wait written as text that may be zero (`"0s"`: at once), in
/// milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delay(i64);

impl Delay {
    /// Milliseconds.
    pub fn ms(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Delay, D::Error> {
        let text = String::deserialize(d)?;
        match crate::time::parse_duration(&text) {
            Ok(ms) if ms >= 0 => Ok(Delay(ms)),
            Ok(_) => Err(serde::de::Error::custom(format!(
                "bad duration `{text}`: must not be negative"
            ))),
            Err(e) => Err(serde::de::Error::custom(format!("bad duration: {e}"))),
        }
    }
}

/// A size in bytes written as text (`"64MiB"`, `"512KiB"`, `"2GiB"`,
/// `"1000000"`): binary units, `B` optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// Bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `text`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => {
                return Err(format!(
                "bad size `{text}`: write a whole number with B, KiB, MiB, GiB or TiB (\"64MiB\")"
            ))
            }
        };
        number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|&n| n > 0)
            .map(ByteSize)
            .ok_or_else(|| format!("bad size `{text}`: must be a positive whole number of bytes"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        let text = String::deserialize(d)?;
        ByteSize::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Deserialises a component body (its table without `type` and `inputs`)
/// into its config struct, keeping the file's spans in errors.
pub fn deserialize_body<T: serde::de::DeserializeOwned>(
    body: &Spanned<toml::de::DeValue<'_>>,
) -> Result<T, Diagnostic> {
    let span = body.span();
    T::deserialize(toml::de::ValueDeserializer::from(body.clone()))
        .map_err(|e| Diagnostic::from_toml(&e, span))
}

#[cfg(test)]
mod tests {
    use super::ByteSize;

    #[test]
    fn sizes_parse_in_binary_units_and_bad_ones_say_what_is_accepted() {
        let parse = |t: &str| ByteSize::parse(t).map(ByteSize::bytes);
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("2 GiB"), Ok(2 << 30));
        assert_eq!(parse("1000"), Ok(1000));
        assert_eq!(parse("512B"), Ok(512));
        for bad in ["64MB", "0", "-1KiB", "1.5GiB", "", "99999999999TiB"] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains(bad.trim()) && e.contains("bad size"),
                "{bad}: {e}"
            );
        }
    }
}
