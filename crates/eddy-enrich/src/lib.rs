//! Enrichment: transforms that add meaning to raw events.
//!
//! - [`entities`]: e-mails, URLs, IPs, tickets, dates, amounts and
//!   gazetteer names in text (`type = "entities"`).
//! - [`geoip`]: where an IP address is, from a MaxMind-format database
//!   (`type = "geoip"`).
//! - [`language`]: which language a text is in (`type = "language"`).
//! - [`lookup`]: rows of reference data joined by key, from files or
//!   PostgreSQL (`type = "lookup"`).
//! - [`metadata`]: processing time, age, size, source, category and a
//!   correlation hint on every event (`type = "enrich"`).
//! - [`sentiment`]: a lexicon-and-rules sentiment scorer for text fields
//!   (`type = "sentiment"`).
//! - [`topics`]: keywords and online topic clustering of texts
//!   (`type = "topics"`).
//! - [`redact`]: masking, pseudonymising or dropping personal data
//!   (`type = "redact"`).

pub mod entities;
pub mod geoip;
pub mod language;
pub mod lookup;
#[cfg(test)]
mod malformed_tests;
pub mod metadata;
pub mod redact;
pub mod reload;
pub mod sentiment;
#[cfg(test)]
mod test_support;
mod text_field;
pub mod topics;
