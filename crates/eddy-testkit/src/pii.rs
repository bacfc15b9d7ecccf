//! Generated personal data for the redaction tests: Luhn-valid card
//! numbers, IBANs with valid check digits and e-mail addresses, written
//! plain or grouped as people write them.

use proptest::prelude::*;

/// One generated set of personal data.
#[derive(Clone, Debug)]
pub struct Pii {
    /// The card number's digits.
    pub card: String,
    /// The card number as written in the text (maybe grouped).
    pub card_text: String,
    /// The IBAN without spaces.
    pub iban: String,
    /// The IBAN as written (maybe grouped by four).
    pub iban_text: String,
    /// An e-mail address.
    pub email: String,
    /// Words to put around them.
    pub before: String,
    /// More words.
    pub after: String,
}

impl Pii {
    /// The secrets as they must not appear in any output: the texts as
    /// written, and the card and IBAN as digits (compare with an output
    /// stripped to letters and digits).
    pub fn secrets(&self) -> [&str; 5] {
        [
            &self.card_text,
            &self.iban_text,
            &self.email,
            &self.card,
            &self.iban,
        ]
    }
}

/// Whether `digits` pass the Luhn check.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
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

/// A Luhn-valid card number of `len` digits (a 4 first) from `body`.
pub fn card_number(body: &[u8], len: usize) -> String {
    let mut digits: Vec<u8> = body.iter().take(len - 1).map(|d| d % 10).collect();
    digits[0] = 4;
    for check in 0..10 {
        digits.push(check);
        if luhn(&digits) {
            break;
        }
        digits.pop();
    }
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// A valid German IBAN with an 18-digit account from `body`.
pub fn iban(body: &[u8]) -> String {
    let bban: String = body
        .iter()
        .take(18)
        .map(|d| char::from(b'0' + d % 10))
        .collect();
    // Check digits: 98 − (BBAN · "DE00" as digits mod 97).
    let rearranged = format!("{bban}131400");
    let rem = rearranged
        .bytes()
        .fold(0u32, |r, c| (r * 10 + u32::from(c - b'0')) % 97);
    format!("DE{:02}{bban}", 98 - rem)
}

/// `s` in groups of four joined by `sep`.
pub fn grouped(s: &str, sep: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Generated personal data, plain or grouped (`""`, `" "` or `"-"`).
pub fn pii() -> impl Strategy<Value = Pii> {
    (
        proptest::collection::vec(0u8..10, 24),
        13usize..=19,
        "[a-z][a-z0-9._]{0,10}[a-z0-9]",
        "[a-z]{2,10}",
        "[A-Za-z ,.;:!]{0,20}",
        "[A-Za-z ,.;:!]{0,20}",
        prop::sample::select(vec!["", " ", "-"]),
    )
        .prop_map(|(body, len, user, host, before, after, sep)| {
            let card = card_number(&body, len);
            let iban = iban(&body);
            Pii {
                card_text: if sep.is_empty() {
                    card.clone()
                } else {
                    grouped(&card, sep)
                },
                iban_text: if sep == " " {
                    grouped(&iban, " ")
                } else {
                    iban.clone()
                },
                card,
                iban,
                email: format!("{user}@{host}.com"),
                before,
                after,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_numbers_pass_their_checks() {
        let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("79927398710")));
        let body: Vec<u8> = (0..24).collect();
        for len in 13..=19 {
            let card = card_number(&body, len);
            assert_eq!(card.len(), len);
            assert!(luhn(&digits(&card)), "{card}");
        }
        assert_eq!(iban(&[0; 24]).len(), 22);
    }
}
