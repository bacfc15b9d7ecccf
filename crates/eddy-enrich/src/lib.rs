//! Enrichment: transforms that add meaning to raw events.
//!
//! - [`sentiment`]: a lexicon-and-rules sentiment scorer for text fields
//!   (`type = "sentiment"`).
//! - [`redact`]: masking, pseudonymising or dropping personal data
//!   (`type = "redact"`).

pub mod redact;
pub mod sentiment;
