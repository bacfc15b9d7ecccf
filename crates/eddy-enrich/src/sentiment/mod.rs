//! Sentiment of text: a lexicon-and-rules scorer in the VADER family, and
//! the `sentiment` transform that applies it to a field.
//!
//! Each word of the text gets its valence from the [`Lexicon`]; rules
//! adjust it for capitals (`GREAT`), intensifiers and dampeners before it
//! (`very`, `kind of`), negations up to three words back (`not`, `isn't`,
//! `never so`), `least`, idioms (`the bomb`) and a contrastive `but` (words
//! before it count half, words after it half again); `!` and `?` add
//! emphasis; emoji count as their descriptions. The sum is squashed into a
//! compound score in −1..1, and the words' shares into positive, negative
//! and neutral proportions.
//!
//! The scorer reads each text once, looks each word up once and allocates
//! nothing per text once its buffers have grown.

pub mod corpus;
mod lexicon;
mod score;
mod tokens;
pub mod transform;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use lexicon::Lexicon;
pub use score::Polarity;

/// Scores texts against a lexicon, reusing its buffers from text to text.
#[derive(Debug)]
pub struct Scorer {
    lexicon: Arc<Lexicon>,
    tokens: tokens::Tokens,
    valences: Vec<f64>,
    phrase: String,
}

impl Scorer {
    /// A scorer over `lexicon`.
    pub fn new(lexicon: Arc<Lexicon>) -> Scorer {
        Scorer {
            lexicon,
            tokens: tokens::Tokens::default(),
            valences: Vec::new(),
            phrase: String::new(),
        }
    }

    /// The sentiment of `text`.
    pub fn score(&mut self, text: &str) -> Polarity {
        self.tokens.split(&self.lexicon, text);
        score::valences(
            &self.lexicon,
            &self.tokens,
            &mut self.phrase,
            &mut self.valences,
        );
        score::polarity(&self.valences, &self.tokens)
    }
}

impl Default for Scorer {
    /// A scorer over the built-in lexicon.
    fn default() -> Scorer {
        Scorer::new(Lexicon::builtin())
    }
}
