//! Enrichment: transforms that add meaning to raw events.
//!
//! - [`entities`]: e-mails, URLs, IPs, tickets, dates, amounts and
//!   gazetteer names in text (`type = "entities"`).
//! - [`metadata`]: processing time, age, size, source, category and a
//!   correlation hint on every event (`type = "enrich"`).
//! - [`sentiment`]: a lexicon-and-rules sentiment scorer for text fields
//!   (`type = "sentiment"`).
//! - [`redact`]: masking, pseudonymising or dropping personal data
//!   (`type = "redact"`).

pub mod entities;
pub mod metadata;
pub mod redact;
pub mod sentiment;
mod text_field;
