//! The rules that turn tokens into a sentiment: each word's valence from the
//! lexicon, raised by capitals and intensifiers, flipped by negations,
//! weighed around a contrastive `but`, then summed and squashed.

use super::lexicon::{Lexicon, Role};
use super::tokens::{Token, Tokens};

/// Factor a negation applies to the valence after it.
const NEGATION: f64 = -0.74;
/// What a word in capitals adds when the rest of the text is not.
const CAPITALS: f64 = 0.733;
/// What each `!` adds (at most four count).
const EXCLAMATION: f64 = 0.292;
/// What each `?` adds when there are two or three.
const QUESTION: f64 = 0.18;
/// The cap of what question marks add.
const MAX_QUESTIONS: f64 = 0.96;
/// Scale of the squashing of the summed valence into −1..1.
const ALPHA: f64 = 15.0;

/// The sentiment of one text.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Polarity {
    /// Overall sentiment, −1 (most negative) to +1 (most positive).
    pub compound: f64,
    /// Share of the text's sentiment that is positive (0..1).
    pub positive: f64,
    /// Share that is negative (0..1).
    pub negative: f64,
    /// Share that is neutral (0..1).
    pub neutral: f64,
}

impl Polarity {
    /// `positive`, `negative` or `neutral` by the compound score, with the
    /// customary ±0.05 boundaries.
    pub fn label(&self) -> &'static str {
        if self.compound >= 0.05 {
            "positive"
        } else if self.compound <= -0.05 {
            "negative"
        } else {
            "neutral"
        }
    }
}

/// The valence of every token of `t` (0 for words without sentiment).
pub(crate) fn valences(lexicon: &Lexicon, t: &Tokens, phrase: &mut String, out: &mut Vec<f64>) {
    out.clear();
    let toks = &t.tokens;
    let n = toks.len();
    let capitals = toks.iter().filter(|t| t.upper).count();
    // Capitals stand out only when some words are not in capitals.
    let shouting = capitals > 0 && capitals < n;
    for (i, tok) in toks.iter().enumerate() {
        let w = &tok.word;
        let kind_of =
            w.role == Role::Kind && toks.get(i + 1).is_some_and(|n| n.word.role == Role::Of);
        let valence = match w.valence {
            Some(base) if w.booster == 0.0 && !kind_of => {
                word_valence(lexicon, t, i, base, shouting, phrase)
            }
            _ => 0.0,
        };
        out.push(valence);
    }
    if let Some(but) = toks.iter().position(|t| t.word.role == Role::But) {
        for (i, v) in out.iter_mut().enumerate() {
            if i < but {
                *v *= 0.5;
            } else if i > but {
                *v *= 1.5;
            }
        }
    }
}

/// The valence of the lexicon word at `i`, whose own valence is `base`,
/// in the context of the words before and after it.
fn word_valence(
    lexicon: &Lexicon,
    t: &Tokens,
    i: usize,
    base: f64,
    shouting: bool,
    phrase: &mut String,
) -> f64 {
    let toks = &t.tokens;
    let role = |j: usize| toks[j].word.role;
    let mut v = base;
    // `no` before another sentiment word negates it rather than counting.
    if role(i) == Role::No && toks.get(i + 1).is_some_and(|n| n.word.valence.is_some()) {
        v = 0.0;
    }
    if (i > 0 && role(i - 1) == Role::No)
        || (i > 1 && role(i - 2) == Role::No)
        || (i > 2 && role(i - 3) == Role::No && matches!(role(i - 1), Role::Or | Role::Nor))
    {
        v = base * NEGATION;
    }
    if toks[i].upper && shouting {
        v += if v > 0.0 { CAPITALS } else { -CAPITALS };
    }
    // The three words before: intensifiers (weaker with distance),
    // negations, and phrases.
    for back in 0..3 {
        if i <= back {
            break;
        }
        let before = &toks[i - back - 1];
        if before.word.valence.is_some() {
            continue;
        }
        let scale = [1.0, 0.95, 0.9][back];
        v += scale * booster(before, v, shouting);
        v = negation(toks, i, back, v);
        if back == 2 {
            v = phrases(lexicon, t, i, v, phrase);
        }
    }
    // `least` before a word negates it, but not `at least` or `very least`.
    if i > 0 && role(i - 1) == Role::Least && toks[i - 1].word.valence.is_none() {
        let idiom = i > 1 && matches!(role(i - 2), Role::At | Role::Very);
        if !idiom {
            v *= NEGATION;
        }
    }
    v
}

/// What an intensifier or dampener adds to a word of valence `v` after it.
fn booster(tok: &Token, v: f64, shouting: bool) -> f64 {
    let b = tok.word.booster;
    if b == 0.0 {
        return 0.0;
    }
    let mut s = if v < 0.0 { -b } else { b };
    if tok.upper && shouting {
        s += if v > 0.0 { CAPITALS } else { -CAPITALS };
    }
    s
}

/// `v` after the negation (if any) `back + 1` words before word `i`.
fn negation(toks: &[Token], i: usize, back: usize, v: f64) -> f64 {
    let role = |j: usize| toks[j].word.role;
    let so_or_this = |j: usize| matches!(role(j), Role::So | Role::This);
    match back {
        0 if toks[i - 1].negated => v * NEGATION,
        1 if role(i - 2) == Role::Never && so_or_this(i - 1) => v * 1.25,
        1 if role(i - 2) == Role::Without && role(i - 1) == Role::Doubt => v,
        1 if toks[i - 2].negated => v * NEGATION,
        2 if (role(i - 3) == Role::Never && so_or_this(i - 2)) || so_or_this(i - 1) => v * 1.25,
        2 if role(i - 3) == Role::Without
            && (role(i - 2) == Role::Doubt || role(i - 1) == Role::Doubt) =>
        {
            v
        }
        2 if toks[i - 3].negated => v * NEGATION,
        _ => v,
    }
}

/// `v` after the phrases around word `i` (`i >= 3`): a phrase such as
/// `the bomb` replaces it, a dampener such as `kind of` before it adds.
fn phrases(lexicon: &Lexicon, t: &Tokens, i: usize, mut v: f64, buf: &mut String) -> f64 {
    let n = t.tokens.len();
    let lo = i - 3;
    let hi = (i + 3).min(n);
    if !t.tokens[lo..hi].iter().any(|t| t.word.in_phrase) {
        return v;
    }
    let mut lookup = |range: std::ops::Range<usize>, table: fn(&Lexicon, &str) -> Option<f64>| {
        if !t.tokens[range.clone()].iter().all(|t| t.word.in_phrase) {
            return None;
        }
        t.join(range, buf);
        table(lexicon, buf)
    };
    let before = [i - 1..i + 1, i - 2..i + 1, i - 2..i, i - 3..i, i - 3..i - 1];
    if let Some(p) = before.into_iter().find_map(|r| lookup(r, Lexicon::phrase)) {
        v = p;
    }
    if i + 1 < n {
        if let Some(p) = lookup(i..i + 2, Lexicon::phrase) {
            v = p;
        }
    }
    if i + 2 < n {
        if let Some(p) = lookup(i..i + 3, Lexicon::phrase) {
            v = p;
        }
    }
    for r in [i - 3..i, i - 3..i - 1, i - 2..i] {
        if let Some(b) = lookup(r, Lexicon::booster_phrase) {
            v += b;
        }
    }
    v
}

/// Sums token valences into a [`Polarity`], with `!` and `?` emphasis.
pub(crate) fn polarity(valences: &[f64], t: &Tokens) -> Polarity {
    if valences.is_empty() {
        return Polarity::default();
    }
    let emphasis = EXCLAMATION * t.exclamations.min(4) as f64
        + match t.questions {
            0 | 1 => 0.0,
            q @ 2..=3 => QUESTION * q as f64,
            _ => MAX_QUESTIONS,
        };
    let sum: f64 = valences.iter().sum();
    let emphasised = if sum > 0.0 {
        sum + emphasis
    } else if sum < 0.0 {
        sum - emphasis
    } else {
        sum
    };
    let compound = (emphasised / (emphasised * emphasised + ALPHA).sqrt()).clamp(-1.0, 1.0);
    // Each sentiment word counts one more than its valence, as each neutral
    // word counts one.
    let (mut pos, mut neg, mut neutral) = (0.0, 0.0, 0.0);
    for &v in valences {
        if v > 0.0 {
            pos += v + 1.0;
        } else if v < 0.0 {
            neg += 1.0 - v;
        } else {
            neutral += 1.0;
        }
    }
    if pos > neg {
        pos += emphasis;
    } else if pos < neg {
        neg += emphasis;
    }
    let total = pos + neg + neutral;
    Polarity {
        compound: round(compound, 1e4),
        positive: round(pos / total, 1e3),
        negative: round(neg / total, 1e3),
        neutral: round(neutral / total, 1e3),
    }
}

fn round(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}
