use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// Texts and their scores (compound, positive, negative, neutral), one or
/// more per rule: intensifiers and dampeners, capitals, negations (`not`,
/// `n't`, `no`, `nor`, `never so`, `without a doubt`), `least`, `but`,
/// phrases, emoticons, emoji, `!` and `?`.
const SAMPLES: &[(&str, f64, f64, f64, f64)] = &[
    ("The book was good.", 0.4404, 0.492, 0.0, 0.508),
    ("The book was only kind of good.", 0.3832, 0.303, 0.0, 0.697),
    (
        "At least it isn't a horrible book.",
        0.431,
        0.322,
        0.0,
        0.678,
    ),
    (
        "The plot was good, but the characters are uncompelling and the dialog is not great.",
        -0.7042,
        0.094,
        0.327,
        0.579,
    ),
    ("Today SUX!", -0.5461, 0.0, 0.779, 0.221),
    (
        "Today only kinda sux! But I'll get by, lol",
        0.5249,
        0.317,
        0.127,
        0.556,
    ),
    ("Make sure you :) or :D today!", 0.8633, 0.706, 0.0, 0.294),
    (
        "Catch utf-8 emoji such as 💘 and 💋 and 😁",
        0.875,
        0.417,
        0.0,
        0.583,
    ),
    ("Not bad at all", 0.431, 0.487, 0.0, 0.513),
    (
        "The deployment was VERY SMART, handsome, and FUNNY!!!",
        0.9342,
        0.724,
        0.0,
        0.276,
    ),
    (
        "The release is not good, nor is it great.",
        -0.6908,
        0.0,
        0.449,
        0.551,
    ),
    (
        "There is no problem with the new build",
        0.3089,
        0.244,
        0.0,
        0.756,
    ),
    (
        "Never so happy with a vendor before",
        0.6948,
        0.441,
        0.0,
        0.559,
    ),
    (
        "Without a doubt the best quarter we have had",
        0.7438,
        0.474,
        0.0,
        0.526,
    ),
    ("The new dashboard is the bomb", 0.6124, 0.444, 0.0, 0.556),
    ("Is the service down again??? Why???", 0.0, 0.0, 0.0, 1.0),
    (
        "I hardly noticed any improvement in latency",
        0.4091,
        0.313,
        0.0,
        0.687,
    ),
    (
        "The outage was extremely bad and the support was terrible",
        -0.6361,
        0.163,
        0.415,
        0.422,
    ),
    (
        "Revenue barely grew, but the margins are excellent",
        0.7227,
        0.419,
        0.0,
        0.581,
    ),
    ("The team did not fail to deliver", 0.431, 0.322, 0.0, 0.678),
    (
        "I am not at all sure this is a good idea",
        0.2354,
        0.209,
        0.142,
        0.649,
    ),
    (
        "It's the least helpful answer I have seen",
        -0.3252,
        0.0,
        0.25,
        0.75,
    ),
    ("This is at least a reasonable plan", 0.0, 0.0, 0.0, 1.0),
    ("Budget review went fine.", 0.2023, 0.375, 0.0, 0.625),
    ("", 0.0, 0.0, 0.0, 0.0),
    ("?!?!", 0.0, 0.0, 0.0, 1.0),
];

#[test]
fn samples_score_as_expected() {
    let mut scorer = Scorer::default();
    let mut wrong = Vec::new();
    for &(text, compound, positive, negative, neutral) in SAMPLES {
        let want = Polarity {
            compound,
            positive,
            negative,
            neutral,
        };
        let got = scorer.score(text);
        if got != want {
            wrong.push(format!("{text:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn labels_follow_the_compound_score() {
    let mut scorer = Scorer::default();
    assert_eq!(scorer.score("The book was good.").label(), "positive");
    assert_eq!(scorer.score("The book was bad.").label(), "negative");
    assert_eq!(scorer.score("The book was blue.").label(), "neutral");
}

#[test]
fn added_words_count_and_override() {
    let lexicon = Lexicon::builtin();
    let base = lexicon.len();
    let mut plain = Scorer::new(lexicon.clone());
    assert_eq!(plain.score("another outage tonight").compound, 0.0);
    let domain = lexicon.with_words([("Outage", -2.5), ("good", -1.0)]);
    assert_eq!(domain.len(), base + 1);
    let mut scorer = Scorer::new(Arc::new(domain));
    assert!(scorer.score("another OUTAGE tonight").compound < -0.3);
    assert!(scorer.score("good").compound < 0.0);
}

#[test]
fn the_builtin_lexicon_is_whole() {
    let lexicon = Lexicon::builtin();
    assert_eq!(lexicon.len(), 7506, "distinct words of the file");
    assert!(lexicon.emoji('😁').is_some());
}

/// A megabyte of text is scored like any other, once per word.
#[test]
fn long_texts_score() {
    let text = "great service but slow delivery ".repeat(32 * 1024);
    let p = Scorer::default().score(&text);
    assert!((-1.0..=1.0).contains(&p.compound));
    assert!((p.positive + p.negative + p.neutral - 1.0).abs() < 0.01);
}

proptest! {
    /// Any text, however odd, gives scores in range that sum to one.
    #[test]
    fn any_text_gives_a_valid_polarity(text in "\\PC{0,60}|[a-zA-Z!?:() ']{0,80}") {
        let p = Scorer::default().score(&text);
        prop_assert!((-1.0..=1.0).contains(&p.compound));
        let shares = p.positive + p.negative + p.neutral;
        prop_assert!(shares == 0.0 || (shares - 1.0).abs() < 0.01, "{p:?}");
    }
}

/// The human-rated tweets kept beside the repository (`shared/data/sentiment`
/// next to it or next to any directory above it), or in
/// `EDDY_SENTIMENT_DIR`. The data is not part of the repository; without it
/// the test says so and checks nothing.
fn shared_tweets() -> Option<PathBuf> {
    let found = match std::env::var_os("EDDY_SENTIMENT_DIR") {
        Some(dir) => Some(PathBuf::from(dir).join(corpus::TWEETS)),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("shared/data/sentiment").join(corpus::TWEETS))
            .find(|p| p.exists()),
    };
    if found.is_none() {
        eprintln!("no rated tweets (shared/data/sentiment): nothing to compare with");
    }
    found
}

/// The scores follow the human ratings of the tweets (Pearson r).
#[test]
fn scores_follow_human_ratings_of_tweets() {
    let Some(path) = shared_tweets() else { return };
    let rated = corpus::read_rated(&path).unwrap();
    assert_eq!(rated.len(), 4200);
    let r = corpus::correlation(&mut Scorer::default(), &rated);
    assert!(r >= 0.87, "r = {r}");
}
