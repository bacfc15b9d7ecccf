//! Helpers shared by the operators' unit tests.

use eddy_core::json::JsonDecoder;
use eddy_core::Event;

/// Decodes JSON lines into events whose event time is their index.
pub(crate) fn events(lines: &[&str]) -> Vec<Event> {
    let mut dec = JsonDecoder::new();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| Event::new(i as i64, dec.decode(l.as_bytes()).unwrap()))
        .collect()
}
