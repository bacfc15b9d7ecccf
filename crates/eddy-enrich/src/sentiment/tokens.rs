//! Splitting a text into the words the rules read.
//!
//! Emoji become their descriptions (`😁` → `beaming face with smiling
//! eyes`), the text is split at white space, and each token loses the ASCII
//! punctuation around it unless that leaves two characters or fewer (so
//! `:)` and `:-(` stay emoticons). Every token is looked up in lower case
//! once; the rules then work on [`Token`]s without touching strings again,
//! except to compare phrases.

use std::ops::Range;

use super::lexicon::{Lexicon, Word};

/// One token and what is known of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    /// Its lower-case text in [`Tokens::lower`].
    lower: (u32, u32),
    /// What the lexicon says about it.
    pub word: Word,
    /// Whether it is written in capitals (`GREAT`).
    pub upper: bool,
    /// Whether it negates what follows (a negation word, or any `n't`).
    pub negated: bool,
}

/// The tokens of one text, with buffers reused from text to text.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// The text with emoji replaced, when it had any.
    replaced: String,
    /// The lower-case tokens, back to back.
    lower: String,
    pub tokens: Vec<Token>,
    /// Number of `!` and `?` in the text.
    pub exclamations: usize,
    pub questions: usize,
}

impl Tokens {
    /// Splits `text` into tokens, replacing what was there.
    pub fn split(&mut self, lexicon: &Lexicon, text: &str) {
        self.tokens.clear();
        self.lower.clear();
        let text = if text.is_ascii() || !self.replace_emoji(lexicon, text) {
            text
        } else {
            &self.replaced
        };
        let (mut exclamations, mut questions) = (0, 0);
        for b in text.bytes() {
            exclamations += usize::from(b == b'!');
            questions += usize::from(b == b'?');
        }
        self.exclamations = exclamations;
        self.questions = questions;
        for raw in text.split_whitespace() {
            let stripped = raw.trim_matches(|c: char| c.is_ascii_punctuation());
            let token = if stripped.chars().nth(2).is_none() {
                raw
            } else {
                stripped
            };
            let start = self.lower.len();
            let upper = push_lower(&mut self.lower, token);
            let lower = &self.lower[start..];
            let word = lexicon.word(lower);
            let negated = word.negation || lower.contains("n't");
            self.tokens.push(Token {
                lower: (start as u32, self.lower.len() as u32),
                word,
                upper,
                negated,
            });
        }
    }

    /// Writes `text` with its emoji replaced into `self.replaced`; false if
    /// it has none (and `text` is to be read as it is).
    fn replace_emoji(&mut self, lexicon: &Lexicon, text: &str) -> bool {
        if !text.chars().any(|c| lexicon.emoji(c).is_some()) {
            return false;
        }
        self.replaced.clear();
        let mut after_space = true;
        for c in text.chars() {
            match lexicon.emoji(c) {
                Some(description) => {
                    if !after_space {
                        self.replaced.push(' ');
                    }
                    self.replaced.push_str(description);
                    after_space = false;
                }
                None => {
                    self.replaced.push(c);
                    after_space = c == ' ';
                }
            }
        }
        true
    }

    /// The lower-case text of token `i`.
    pub fn lower(&self, i: usize) -> &str {
        let (start, end) = self.tokens[i].lower;
        &self.lower[start as usize..end as usize]
    }

    /// Tokens `range` in lower case, joined by single spaces, into `buf`.
    pub fn join(&self, range: Range<usize>, buf: &mut String) {
        buf.clear();
        for i in range {
            if !buf.is_empty() {
                buf.push(' ');
            }
            buf.push_str(self.lower(i));
        }
    }
}

/// Appends `token` in lower case to `out`; returns whether it is written in
/// capitals: it has at least one cased letter and none in lower case.
fn push_lower(out: &mut String, token: &str) -> bool {
    let (mut upper, mut lower) = (false, false);
    if token.is_ascii() {
        for b in token.bytes() {
            upper |= b.is_ascii_uppercase();
            lower |= b.is_ascii_lowercase();
            out.push(b.to_ascii_lowercase() as char);
        }
    } else {
        for c in token.chars() {
            upper |= c.is_uppercase();
            lower |= c.is_lowercase();
            out.extend(c.to_lowercase());
        }
    }
    upper && !lower
}
