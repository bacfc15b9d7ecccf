//! PII protection: the `redact` transform masks, pseudonymises or drops
//! personal data so that sinks and screens downstream never see it.
//!
//! ```toml
//! [transforms.scrub]
//! type = "redact"
//! inputs = ["events"]
//! fields = { "user.email" = "hash", "user.ssn" = "drop", card = "mask" }
//! text = ["message", "comment"]     # default: every string, nested too
//! detect = ["email", "card", "iban", "phone", "ip"]   # default: all
//! action = "mask"                   # or "hash", for what is found in text
//! key_env = "EDDY_REDACT_KEY"       # HMAC key, needed by "hash"
//! ```
//!
//! Whole `fields` are replaced by `"[redacted]"` (`mask`), by a keyed
//! pseudonym (`hash`: the first 16 hex digits of HMAC-SHA256 over the
//! value's text) or removed (`drop`). Then personal data inside text (see
//! [`detect::Kind`]) is replaced by `[email]`, `[card]`, … (`mask`) or
//! `[email:<pseudonym>]` (`hash`). Pseudonyms are stable for a key, so
//! redacted records still join and group: the same address always gives
//! the same pseudonym, whether found in a field or in text.

pub mod detect;
pub mod transform;

use std::fmt::Write;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use detect::{Find, Kind};

/// Keyed pseudonyms: HMAC-SHA256, cut to 64 bits in hex.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl Pseudonymiser {
    /// A pseudonymiser keyed by `key` (any length; empty is refused by the
    /// configuration).
    pub fn new(key: &[u8]) -> Pseudonymiser {
        Pseudonymiser {
            mac: Hmac::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    /// The pseudonym of `text`, appended to `out`.
    pub fn write(&self, text: &str, out: &mut String) {
        let mut mac = self.mac.clone();
        mac.update(text.as_bytes());
        for byte in &mac.finalize().into_bytes()[..8] {
            let _ = write!(out, "{byte:02x}");
        }
    }

    /// The pseudonym of `text`.
    pub fn pseudonym(&self, text: &str) -> String {
        let mut out = String::with_capacity(16);
        self.write(text, &mut out);
        out
    }
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(..)")
    }
}

/// Finds and replaces personal data in text, reusing its buffers.
#[derive(Debug)]
pub struct Scrubber {
    kinds: Vec<Kind>,
    hash: Option<Pseudonymiser>,
    finds: Vec<Find>,
}

impl Scrubber {
    /// Looks for `kinds`; replaces each find by its kind (`[email]`), or
    /// with `hash` by its kind and pseudonym (`[email:…]`).
    pub fn new(kinds: Vec<Kind>, hash: Option<Pseudonymiser>) -> Scrubber {
        Scrubber {
            kinds,
            hash,
            finds: Vec::new(),
        }
    }

    /// `text` with its personal data replaced, or `None` if it has none.
    pub fn scrub(&mut self, text: &str) -> Option<String> {
        detect::find_all(text, &self.kinds, &mut self.finds);
        if self.finds.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in &self.finds {
            out.push_str(&text[at..f.range.start]);
            out.push('[');
            out.push_str(f.kind.name());
            if let Some(h) = &self.hash {
                out.push(':');
                h.write(&text[f.range.clone()], &mut out);
            }
            out.push(']');
            at = f.range.end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests;
