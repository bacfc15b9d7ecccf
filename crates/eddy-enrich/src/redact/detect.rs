//! Finding personal data in text: e-mail addresses, phone numbers, payment
//! card numbers (Luhn-checked), IBANs (mod-97-checked) and IP addresses.
//!
//! Hand-written scanners rather than regular expressions, in one pass: a
//! candidate starts at a word boundary with a telling byte (`@`, a digit, a
//! capital, a hex digit, `+`, `(`, `:`), so most words are rejected after a
//! byte or two, and checksums keep digit runs that are not card numbers or
//! IBANs intact.

use std::net::Ipv6Addr;
use std::ops::Range;

/// A kind of personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `name@example.com`.
    Email,
    /// A payment card number: 13–19 digits, spaces or dashes between
    /// groups, passing the Luhn check.
    Card,
    /// An IBAN: country, check digits and 11–30 letters or digits, spaces
    /// between groups of four allowed, passing the mod-97 check.
    Iban,
    /// A phone number: `+` and 8–15 digits (spaces, dashes, dots and
    /// brackets between), or the North American `(555) 123-4567`,
    /// `555-123-4567`, `555.123.4567`.
    Phone,
    /// An IPv4 (`10.1.2.3`) or IPv6 (`2001:db8::1`) address.
    Ip,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [Kind::Email, Kind::Iban, Kind::Card, Kind::Phone, Kind::Ip];

    /// The name used in configuration and masks.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Card => "card",
            Kind::Iban => "iban",
            Kind::Phone => "phone",
            Kind::Ip => "ip",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One find: where it is and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Find {
    /// Byte range in the text.
    pub range: Range<usize>,
    /// What was found.
    pub kind: Kind,
}

/// Every find of the `kinds` in `text`, in order, none overlapping.
pub fn find_all(text: &str, kinds: &[Kind], out: &mut Vec<Find>) {
    out.clear();
    let b = text.as_bytes();
    let want = |k: Kind| kinds.contains(&k);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let found = if c == b'@' && want(Kind::Email) {
            email(b, i).map(|r| (r, Kind::Email))
        } else if c.is_ascii_alphanumeric() || c == b'+' || c == b'(' || c == b':' {
            // A candidate starts only at a word boundary.
            if i > 0 && b[i - 1].is_ascii_alphanumeric() && c.is_ascii_alphanumeric() {
                None
            } else {
                at_start(b, i, &want)
            }
        } else {
            None
        };
        match found {
            Some((range, kind)) => {
                // An e-mail's local part was scanned already; drop finds in it.
                while out.last().is_some_and(|f| f.range.end > range.start) {
                    out.pop();
                }
                i = range.end;
                out.push(Find { range, kind });
            }
            None => i += 1,
        }
    }
}

/// A find that starts at `i` (not an e-mail).
fn at_start(b: &[u8], i: usize, want: &dyn Fn(Kind) -> bool) -> Option<(Range<usize>, Kind)> {
    let c = b[i];
    if c.is_ascii_uppercase() && want(Kind::Iban) {
        if let Some(end) = iban(b, i) {
            return Some((i..end, Kind::Iban));
        }
    }
    if c.is_ascii_digit() && want(Kind::Card) {
        if let Some(end) = card(b, i) {
            return Some((i..end, Kind::Card));
        }
    }
    if (c.is_ascii_digit() || c == b'+' || c == b'(') && want(Kind::Phone) {
        if let Some(end) = phone(b, i) {
            return Some((i..end, Kind::Phone));
        }
    }
    if (c.is_ascii_hexdigit() || c == b':') && want(Kind::Ip) {
        if let Some(end) = ip(b, i) {
            return Some((i..end, Kind::Ip));
        }
    }
    None
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// The e-mail address around the `@` at `at`.
fn email(b: &[u8], at: usize) -> Option<Range<usize>> {
    let mut start = at;
    while start > 0 && is_local(b[start - 1]) {
        start -= 1;
    }
    let mut end = at + 1;
    while end < b.len() && is_domain(b[end]) {
        end += 1;
    }
    // A sentence's full stop is not part of the domain.
    while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &b[at + 1..end];
    let tld = domain.rsplit(|&c| c == b'.').next()?;
    let dotted =
        domain.contains(&b'.') && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic);
    (start < at && dotted && !domain.starts_with(b".")).then_some(start..end)
}

/// Longest digit run a card number may have.
const MAX_CARD_DIGITS: usize = 19;

/// A Luhn-valid card number starting at `i`: digits with single spaces or
/// dashes between groups. The digits go to a buffer on the stack, as every
/// word starting with a digit is a candidate.
fn card(b: &[u8], i: usize) -> Option<usize> {
    let mut digits = [0u8; MAX_CARD_DIGITS + 1];
    let (mut n, mut end, mut j) = (0, i, i);
    while j < b.len() && n <= MAX_CARD_DIGITS {
        let c = b[j];
        if c.is_ascii_digit() {
            digits[n] = c - b'0';
            n += 1;
            j += 1;
            end = j;
        } else if matches!(c, b' ' | b'-') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
            j += 1;
        } else {
            break;
        }
    }
    let ok = (13..=MAX_CARD_DIGITS).contains(&n)
        && !b.get(end).is_some_and(u8::is_ascii_alphanumeric)
        && luhn(&digits[..n]);
    ok.then_some(end)
}

/// Whether `digits` pass the Luhn check.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// A valid IBAN starting at `i`.
fn iban(b: &[u8], i: usize) -> Option<usize> {
    let head = b.get(i..i + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    let mut chars = Vec::with_capacity(34);
    let (mut j, mut end) = (i, i);
    while j < b.len() && chars.len() < 34 {
        let c = b[j];
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            chars.push(c);
            j += 1;
            end = j;
        } else if c == b' '
            && j + 1 < b.len()
            && (b[j + 1].is_ascii_uppercase() || b[j + 1].is_ascii_digit())
        {
            // Spaces only between groups of four.
            if (chars.len()) % 4 != 0 {
                break;
            }
            j += 1;
        } else {
            break;
        }
    }
    if b.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    // The longest prefix (of 15 characters or more) that passes the check:
    // a grouped IBAN may be followed by an unrelated word in capitals.
    (15..=chars.len())
        .rev()
        .find(|&n| iban_checksum(&chars[..n]))
        .map(|n| position_after(b, i, n))
}

/// The byte offset after the `n`-th IBAN character counted from `i`.
fn position_after(b: &[u8], i: usize, n: usize) -> usize {
    let mut seen = 0;
    let mut j = i;
    while seen < n {
        if b[j] != b' ' {
            seen += 1;
        }
        j += 1;
    }
    j
}

/// Whether an IBAN's characters pass the mod-97 check.
pub fn iban_checksum(chars: &[u8]) -> bool {
    if chars.len() < 15 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// A phone number starting at `i`.
fn phone(b: &[u8], i: usize) -> Option<usize> {
    if b[i] == b'+' {
        let mut digits = 0;
        let (mut j, mut end) = (i + 1, i + 1);
        while j < b.len() {
            let c = b[j];
            if c.is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')') && j + 1 < b.len() {
                j += 1;
            } else {
                break;
            }
        }
        let ok = (8..=15).contains(&digits)
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            && !b.get(end).is_some_and(u8::is_ascii_alphanumeric);
        return ok.then_some(end);
    }
    // North American: (ddd) ddd-dddd, ddd-ddd-dddd, ddd.ddd.dddd, ddd ddd dddd.
    let digits = |from: usize, n: usize| {
        b.get(from..from + n)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let (area_end, sep) = if b[i] == b'(' {
        if !(digits(i + 1, 3) && b.get(i + 4) == Some(&b')')) {
            return None;
        }
        let sep = *b.get(i + 5)?;
        (i + 5, sep)
    } else {
        if !digits(i, 3) {
            return None;
        }
        (i + 3, *b.get(i + 3)?)
    };
    if !matches!(sep, b' ' | b'-' | b'.') || !digits(area_end + 1, 3) {
        return None;
    }
    let second = area_end + 4;
    let sep2 = *b.get(second)?;
    let same = sep2 == sep || (b[i] == b'(' && sep2 == b'-');
    let end = second + 5;
    let ok =
        same && digits(second + 1, 4) && !b.get(end).is_some_and(|c| c.is_ascii_alphanumeric());
    ok.then_some(end)
}

/// An IP address starting at `i`.
fn ip(b: &[u8], i: usize) -> Option<usize> {
    let mut end = i;
    while end < b.len() && (b[end].is_ascii_hexdigit() || matches!(b[end], b'.' | b':')) {
        end += 1;
    }
    // A full stop or colon ending a sentence is not part of the address.
    while end > i && matches!(b[end - 1], b'.') {
        end -= 1;
    }
    if b.get(end).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let s = std::str::from_utf8(&b[i..end]).ok()?;
    if s.contains(':') {
        let colons = s.bytes().filter(|&c| c == b':').count();
        let valid = colons >= 2
            && s.bytes().any(|c| c.is_ascii_hexdigit())
            && s.parse::<Ipv6Addr>().is_ok();
        return valid.then_some(end);
    }
    ipv4(s).then_some(end)
}

/// Whether `s` is a dotted-quad IPv4 address (no leading zeros).
fn ipv4(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        let ok = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|c| c.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
            && part.parse::<u16>().is_ok_and(|n| n <= 255);
        if !ok {
            return false;
        }
    }
    parts == 4
}
