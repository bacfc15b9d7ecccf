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
    check_workers, parse_document, ComponentDoc, PipelineDoc, PipelineSettings, Section,
    MAX_BATCH_SIZE,
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

/// Deserialises a component body (its table without `type` and `inputs`)
/// into its config struct, keeping the file's spans in errors.
pub fn deserialize_body<T: serde::de::DeserializeOwned>(
    body: &Spanned<toml::de::DeValue<'_>>,
) -> Result<T, Diagnostic> {
    let span = body.span();
    T::deserialize(toml::de::ValueDeserializer::from(body.clone()))
        .map_err(|e| Diagnostic::from_toml(&e, span))
}
