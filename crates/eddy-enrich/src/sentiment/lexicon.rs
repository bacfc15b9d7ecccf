//! The word list the scorer reads: valences, intensifiers, negations and the
//! few words and phrases its rules single out.
//!
//! The valences and emoji descriptions are the VADER lexicon (MIT licence,
//! `data/LICENSE-VADER.txt`), embedded so the binary needs no data files.

use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

const VALENCES: &str = include_str!("../../data/vader_lexicon.tsv");
const EMOJI: &str = include_str!("../../data/emoji_lexicon.tsv");

/// How much an intensifier raises the valence of the word after it.
pub(crate) const BOOST: f64 = 0.293;

/// Intensifiers (`very good`) and dampeners (`slightly good`).
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", BOOST),
    ("amazingly", BOOST),
    ("awfully", BOOST),
    ("completely", BOOST),
    ("considerable", BOOST),
    ("considerably", BOOST),
    ("decidedly", BOOST),
    ("deeply", BOOST),
    ("effing", BOOST),
    ("enormous", BOOST),
    ("enormously", BOOST),
    ("entirely", BOOST),
    ("especially", BOOST),
    ("exceptional", BOOST),
    ("exceptionally", BOOST),
    ("extreme", BOOST),
    ("extremely", BOOST),
    ("fabulously", BOOST),
    ("flipping", BOOST),
    ("flippin", BOOST),
    ("frackin", BOOST),
    ("fracking", BOOST),
    ("fricking", BOOST),
    ("frickin", BOOST),
    ("frigging", BOOST),
    ("friggin", BOOST),
    ("fully", BOOST),
    ("fuckin", BOOST),
    ("fucking", BOOST),
    ("fuggin", BOOST),
    ("fugging", BOOST),
    ("greatly", BOOST),
    ("hella", BOOST),
    ("highly", BOOST),
    ("hugely", BOOST),
    ("incredible", BOOST),
    ("incredibly", BOOST),
    ("intensely", BOOST),
    ("major", BOOST),
    ("majorly", BOOST),
    ("more", BOOST),
    ("most", BOOST),
    ("particularly", BOOST),
    ("purely", BOOST),
    ("quite", BOOST),
    ("really", BOOST),
    ("remarkably", BOOST),
    ("so", BOOST),
    ("substantially", BOOST),
    ("thoroughly", BOOST),
    ("total", BOOST),
    ("totally", BOOST),
    ("tremendous", BOOST),
    ("tremendously", BOOST),
    ("uber", BOOST),
    ("unbelievably", BOOST),
    ("unusually", BOOST),
    ("utter", BOOST),
    ("utterly", BOOST),
    ("very", BOOST),
    ("almost", -BOOST),
    ("barely", -BOOST),
    ("hardly", -BOOST),
    ("kinda", -BOOST),
    ("kindof", -BOOST),
    ("kind-of", -BOOST),
    ("less", -BOOST),
    ("little", -BOOST),
    ("marginal", -BOOST),
    ("marginally", -BOOST),
    ("occasional", -BOOST),
    ("occasionally", -BOOST),
    ("partly", -BOOST),
    ("scarce", -BOOST),
    ("scarcely", -BOOST),
    ("slight", -BOOST),
    ("slightly", -BOOST),
    ("somewhat", -BOOST),
    ("sorta", -BOOST),
    ("sortof", -BOOST),
    ("sort-of", -BOOST),
];

/// Dampeners of more than one word; they act on the word after them.
const BOOSTER_PHRASES: &[(&str, f64)] = &[
    ("just enough", -BOOST),
    ("kind of", -BOOST),
    ("sort of", -BOOST),
];

/// Phrases whose meaning is not that of their words (`the bomb`).
const PHRASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

/// Words that flip the valence of what follows them.
const NEGATIONS: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Words a rule looks for by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Role {
    #[default]
    Plain,
    No,
    Kind,
    Of,
    Least,
    At,
    Very,
    Never,
    So,
    This,
    Without,
    Doubt,
    Or,
    Nor,
    But,
}

const ROLES: &[(&str, Role)] = &[
    ("no", Role::No),
    ("kind", Role::Kind),
    ("of", Role::Of),
    ("least", Role::Least),
    ("at", Role::At),
    ("very", Role::Very),
    ("never", Role::Never),
    ("so", Role::So),
    ("this", Role::This),
    ("without", Role::Without),
    ("doubt", Role::Doubt),
    ("or", Role::Or),
    ("nor", Role::Nor),
    ("but", Role::But),
];

/// What the lexicon knows of one lower-case word.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Word {
    /// Its valence, −4 (most negative) to +4, if it carries sentiment.
    pub valence: Option<f64>,
    /// Its effect as an intensifier (+) or dampener (−); 0 if neither.
    pub booster: f64,
    /// Whether it negates what follows.
    pub negation: bool,
    /// Whether a rule names it.
    pub role: Role,
    /// Whether it is part of a multi-word phrase (checking phrases is only
    /// worth it when every word of a candidate is).
    pub in_phrase: bool,
}

/// The sentiment lexicon: words, emoji and phrases.
#[derive(Clone, Debug)]
pub struct Lexicon {
    words: FxHashMap<Box<str>, Word>,
    emoji: FxHashMap<char, Box<str>>,
    phrases: FxHashMap<Box<str>, f64>,
    booster_phrases: FxHashMap<Box<str>, f64>,
}

impl Lexicon {
    /// The built-in lexicon, parsed once per process.
    pub fn builtin() -> Arc<Lexicon> {
        static BUILTIN: OnceLock<Arc<Lexicon>> = OnceLock::new();
        BUILTIN.get_or_init(|| Arc::new(Lexicon::parse())).clone()
    }

    fn parse() -> Lexicon {
        let mut words: FxHashMap<Box<str>, Word> = FxHashMap::default();
        for (word, valence) in tsv(VALENCES) {
            if let Ok(v) = valence.parse::<f64>() {
                words.entry(word.into()).or_default().valence = Some(v);
            }
        }
        for &(word, b) in BOOSTERS {
            words.entry(word.into()).or_default().booster = b;
        }
        for &word in NEGATIONS {
            words.entry(word.into()).or_default().negation = true;
        }
        for &(word, role) in ROLES {
            words.entry(word.into()).or_default().role = role;
        }
        for &(phrase, _) in PHRASES.iter().chain(BOOSTER_PHRASES) {
            for word in phrase.split(' ') {
                words.entry(word.into()).or_default().in_phrase = true;
            }
        }
        // Only single code points are replaced, as text is read one
        // character at a time.
        let emoji = tsv(EMOJI)
            .filter_map(|(e, description)| {
                let mut chars = e.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, description.into())),
                    _ => None,
                }
            })
            .collect();
        let table = |list: &[(&str, f64)]| list.iter().map(|&(p, v)| (p.into(), v)).collect();
        Lexicon {
            words,
            emoji,
            phrases: table(PHRASES),
            booster_phrases: table(BOOSTER_PHRASES),
        }
    }

    /// This lexicon with `extra` words added or given new valences (−4..+4).
    /// Words are matched in lower case, so keys are lower-cased here.
    pub fn with_words<'a>(&self, extra: impl IntoIterator<Item = (&'a str, f64)>) -> Lexicon {
        let mut lexicon = self.clone();
        for (word, valence) in extra {
            let word = word.to_lowercase();
            lexicon.words.entry(word.into()).or_default().valence = Some(valence);
        }
        lexicon
    }

    /// Number of words with a valence.
    pub fn len(&self) -> usize {
        self.words.values().filter(|w| w.valence.is_some()).count()
    }

    /// Whether no word has a valence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the lexicon knows of a lower-case word.
    #[inline]
    pub(crate) fn word(&self, lower: &str) -> Word {
        self.words.get(lower).copied().unwrap_or_default()
    }

    /// The description that stands for an emoji.
    #[inline]
    pub(crate) fn emoji(&self, c: char) -> Option<&str> {
        self.emoji.get(&c).map(|d| &**d)
    }

    /// The valence a phrase stands for.
    pub(crate) fn phrase(&self, lower: &str) -> Option<f64> {
        self.phrases.get(lower).copied()
    }

    /// The intensity a multi-word dampener adds.
    pub(crate) fn booster_phrase(&self, lower: &str) -> Option<f64> {
        self.booster_phrases.get(lower).copied()
    }
}

/// The first two tab-separated columns of each non-empty line.
fn tsv(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let mut cols = line.split('\t');
        Some((cols.next()?, cols.next()?.trim()))
    })
}
