use proptest::prelude::*;

use super::detect::{find_all, iban_checksum, luhn, Find, Kind};
use super::*;

fn kinds_in(text: &str) -> Vec<(Kind, String)> {
    let mut finds: Vec<Find> = Vec::new();
    find_all(text, &Kind::ALL, &mut finds);
    finds
        .into_iter()
        .map(|f| (f.kind, text[f.range].to_string()))
        .collect()
}

#[test]
fn finds_each_kind_and_nothing_else() {
    let text = "Mail ann.lee+ops@example.co.uk, card 4111 1111 1111 1111 or 5500-0000-0000-0004; \
                IBAN GB82 WEST 1234 5698 7654 32 and DE89370400440532013000. \
                Call +44 20 7946 0958 or (555) 123-4567 or 555.123.4567. \
                Hosts 10.0.12.7 and 2001:db8::8a2e:370:7334.";
    assert_eq!(
        kinds_in(text),
        [
            (Kind::Email, "ann.lee+ops@example.co.uk".into()),
            (Kind::Card, "4111 1111 1111 1111".into()),
            (Kind::Card, "5500-0000-0000-0004".into()),
            (Kind::Iban, "GB82 WEST 1234 5698 7654 32".into()),
            (Kind::Iban, "DE89370400440532013000".into()),
            (Kind::Phone, "+44 20 7946 0958".into()),
            (Kind::Phone, "(555) 123-4567".into()),
            (Kind::Phone, "555.123.4567".into()),
            (Kind::Ip, "10.0.12.7".into()),
            (Kind::Ip, "2001:db8::8a2e:370:7334".into()),
        ]
    );
}

#[test]
fn ordinary_text_and_numbers_are_left_alone() {
    for text in [
        "order 4111111111111112 (fails the Luhn check)",
        "invoice 2024-05-01 12:00:00, total 1234.56 EUR",
        "GB82 WEST 1234 5698 7654 33 has a wrong check digit",
        "version 1.2.3, 999.1.1.1, 10.0.0 and a@b",
        "ratio 3:2 and the time 12:30",
        "user@localhost is not routable",
        "",
    ] {
        assert_eq!(kinds_in(text), [], "{text}");
    }
}

#[test]
fn checksums() {
    let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
    assert!(luhn(&digits("79927398713")));
    assert!(!luhn(&digits("79927398710")));
    assert!(iban_checksum(b"GB82WEST12345698765432"));
    assert!(!iban_checksum(b"GB82WEST12345698765433"));
    assert!(!iban_checksum(b"GB82"));
}

#[test]
fn scrubbing_masks_or_pseudonymises() {
    let mut mask = Scrubber::new(Kind::ALL.to_vec(), None);
    assert_eq!(
        mask.scrub("write to bob@example.com, not 10.1.2.3.")
            .as_deref(),
        Some("write to [email], not [ip].")
    );
    assert_eq!(mask.scrub("nothing here"), None);
    let key = Pseudonymiser::new(b"k1");
    let mut hash = Scrubber::new(vec![Kind::Email], Some(key.clone()));
    let a = hash.scrub("from bob@example.com").unwrap();
    let b = hash.scrub("to bob@example.com!").unwrap();
    let p = key.pseudonym("bob@example.com");
    assert_eq!(a, format!("from [email:{p}]"));
    assert_eq!(
        b,
        format!("to [email:{p}]!"),
        "stable, so records still join"
    );
    assert_eq!(p.len(), 16);
    assert_ne!(
        Pseudonymiser::new(b"k2").pseudonym("bob@example.com"),
        p,
        "keyed"
    );
}

proptest! {
    /// Generated cards, IBANs and e-mail addresses, plain or grouped, in
    /// any surrounding words: none is left after scrubbing.
    #[test]
    fn generated_pii_never_survives(p in eddy_testkit::pii::pii()) {
        prop_assert!(iban_checksum(p.iban.as_bytes()));
        let text = format!(
            "{} {} {} {}; {} {}",
            p.before, p.card_text, p.after, p.iban_text, p.email, p.after
        );
        let mut scrubber = Scrubber::new(Kind::ALL.to_vec(), None);
        let out = scrubber.scrub(&text).unwrap_or_else(|| text.clone());
        let digits_only: String = out.chars().filter(char::is_ascii_alphanumeric).collect();
        prop_assert!(!digits_only.contains(&p.card), "card {} left in {out}", p.card);
        prop_assert!(!digits_only.contains(&p.iban), "IBAN {} left in {out}", p.iban);
        prop_assert!(!out.contains(&p.email), "{} left in {out}", p.email);
    }

    /// Any text scrubs without panicking, and text without finds is kept.
    #[test]
    fn any_text_scrubs(text in "\\PC{0,80}|[0-9 +().:@a-f-]{0,60}") {
        let mut scrubber = Scrubber::new(Kind::ALL.to_vec(), None);
        if let Some(out) = scrubber.scrub(&text) {
            prop_assert!(out.contains('['));
        }
    }
}
