//! The terms of a text for keywords and topics: lower-cased words of at
//! least three letters or digits (not only digits), without URLs, e-mail
//! addresses and the common English words that carry no topic.

use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashSet;

/// Words too common to say what a text is about.
const STOPWORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "and",
    "any",
    "are",
    "aren",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "can",
    "cannot",
    "could",
    "couldn",
    "did",
    "didn",
    "does",
    "doesn",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "into",
    "isn",
    "its",
    "itself",
    "just",
    "let",
    "more",
    "most",
    "mustn",
    "myself",
    "nor",
    "not",
    "now",
    "off",
    "once",
    "only",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "shan",
    "she",
    "should",
    "shouldn",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "too",
    "under",
    "until",
    "very",
    "was",
    "wasn",
    "were",
    "weren",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "won",
    "would",
    "wouldn",
    "yes",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

fn is_stopword(word: &str) -> bool {
    static SET: OnceLock<FxHashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| STOPWORDS.iter().copied().collect())
        .contains(word)
}

/// The terms of `text`, in text order, repeated as they occur. URLs and
/// e-mail addresses are skipped whole: their parts (`https`, `com`) say
/// nothing about the topic.
pub fn terms(text: &str) -> Vec<Arc<str>> {
    let mut lower = String::new();
    let mut out = Vec::new();
    let words = text
        .split_whitespace()
        .filter(|w| !w.contains("://") && !w.contains('@'));
    for word in words {
        // Most words are ASCII: split and lower-case them by bytes.
        let ascii = word.is_ascii();
        let pieces = word.split(|c: char| {
            if ascii {
                !c.is_ascii_alphanumeric()
            } else {
                !c.is_alphanumeric()
            }
        });
        for w in pieces {
            let short = if ascii {
                w.len() < 3
            } else {
                w.chars().nth(2).is_none()
            };
            if short || w.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            lower.clear();
            if ascii {
                lower.push_str(w);
                lower.make_ascii_lowercase();
            } else {
                lower.extend(w.chars().flat_map(char::to_lowercase));
            }
            if !is_stopword(&lower) {
                out.push(Arc::from(lower.as_str()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stopword_list_is_sorted_and_unique() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn words_are_lower_cased_and_noise_dropped() {
        assert_eq!(
            terms("The Payment-gateway TIMED out at 10:45 for 3 of our café users, again!"),
            ["payment", "gateway", "timed", "café", "users"].map(Arc::<str>::from)
        );
        assert!(terms("").is_empty());
        assert!(terms("a an of 123 4567").is_empty());
        assert_eq!(
            terms("Ask ops@example.com, see https://wiki.example.com/runbooks/7 now"),
            ["ask", "see"].map(Arc::<str>::from)
        );
    }
}
