//! Enrichment: transforms that add meaning to raw events.
//!
//! - [`sentiment`]: a lexicon-and-rules sentiment scorer for text fields
//!   (`type = "sentiment"`).

pub mod sentiment;
