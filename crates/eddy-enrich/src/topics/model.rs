//! Keywords by TF-IDF and online clustering of texts into topics: the
//! state one key's texts build up, and what it makes of each new text.
//!
//! Document frequencies grow with every text; a text's terms are weighted
//! `tf × idf` with `idf = ln((1 + N) / (1 + df)) + 1` (N texts seen, this
//! one included) and normalised. A text joins the topic whose centroid is
//! most similar (cosine), if at least `threshold`; otherwise it starts a
//! new topic. Centroids are running means of their texts' vectors over
//! the last `memory` texts (so a topic follows its vocabulary's drift),
//! trimmed to their heaviest terms. Vectors are lists sorted by a fixed
//! hash of each term, so comparing them compares integers. Every choice
//! among equals is made by a fixed order (weights, then terms, then ids),
//! sums run in id order and state is sorted when encoded, so a restored
//! model continues exactly as the uninterrupted one.

use std::hash::Hasher;
use std::sync::Arc;

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use rustc_hash::{FxHashMap, FxHasher};

/// Terms a centroid keeps.
const CENTROID_TERMS: usize = 32;

/// The model's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Keywords reported per text.
    pub keywords: usize,
    /// Terms reported per topic.
    pub topic_terms: usize,
    /// Least similarity for a text to join a topic.
    pub threshold: f64,
    /// Topics kept per key; the least recently joined one makes room.
    pub max_topics: usize,
    /// Texts a centroid averages over.
    pub memory: u64,
    /// Distinct terms whose document frequency is kept.
    pub max_vocabulary: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            keywords: 5,
            topic_terms: 5,
            threshold: 0.25,
            max_topics: 50,
            memory: 200,
            max_vocabulary: 50_000,
        }
    }
}

/// A term's id: a fixed hash of its text, so that vectors compare by
/// integers. Two terms whose ids collide (about one pair in 10^9 among
/// 50,000 terms) count as one.
fn term_id(term: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(term.as_bytes());
    h.finish()
}

/// A weighted term of a vector.
#[derive(Clone, Debug, PartialEq)]
struct Weighted {
    id: u64,
    weight: f64,
    term: Arc<str>,
}

/// A sparse vector, sorted by term id.
type Vector = Vec<Weighted>;

/// One topic.
#[derive(Clone, Debug, PartialEq)]
struct Topic {
    id: u64,
    /// Term weights of its mean text.
    centroid: Vector,
    /// The centroid's length, kept with it.
    norm: f64,
    /// Texts it holds.
    size: u64,
    /// Event time of its latest text.
    last_seen: i64,
}

/// What the model made of one text.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// The text's heaviest terms, heaviest first.
    pub keywords: Vec<Arc<str>>,
    /// Its topic (`None` for a text without terms).
    pub topic: Option<TopicView>,
}

/// The topic a text joined, as it is after the text.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicView {
    /// Its id, unique per key (1, 2, ...).
    pub id: u64,
    /// Its heaviest terms.
    pub terms: Vec<Arc<str>>,
    /// Texts it holds.
    pub size: u64,
    /// The text's similarity to it (1 for a new topic).
    pub similarity: f64,
    /// Whether the text started it.
    pub new: bool,
}

/// One key's topic state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicModel {
    /// Texts seen.
    docs: u64,
    /// Texts each term (by id) occurred in.
    df: FxHashMap<u64, u64>,
    /// Sorted by id (new topics get the next id; eviction keeps the order).
    topics: Vec<Topic>,
    next_id: u64,
    /// Term id → the topics whose centroid holds it (id, weight), by id:
    /// a text is compared only with topics sharing a term with it. Derived
    /// from the centroids (rebuilt on restore, not stored).
    postings: FxHashMap<u64, Vec<(u64, f64)>>,
}

/// The `n` heaviest terms of `v` (ties by term).
fn heaviest(v: &[Weighted], n: usize) -> Vec<Arc<str>> {
    let mut refs: Vec<&Weighted> = v.iter().collect();
    if n < refs.len() {
        refs.select_nth_unstable_by(n, |a, b| heavier(a, b));
        refs.truncate(n);
    }
    refs.sort_unstable_by(|a, b| heavier(a, b));
    refs.into_iter().map(|w| w.term.clone()).collect()
}

/// The order of terms by weight: heaviest first, then by term.
fn heavier(a: &Weighted, b: &Weighted) -> std::cmp::Ordering {
    b.weight
        .total_cmp(&a.weight)
        .then_with(|| a.term.cmp(&b.term))
}

fn ids(v: &[Weighted]) -> Vec<u64> {
    v.iter().map(|w| w.id).collect()
}

fn norm(v: &[Weighted]) -> f64 {
    v.iter().map(|w| w.weight * w.weight).sum::<f64>().sqrt()
}

impl TopicModel {
    /// Learns from the text whose terms are `terms` (in text order,
    /// repeated as they occur) at event time `time`, and says where it
    /// belongs.
    pub fn observe(&mut self, terms: &[Arc<str>], time: i64, s: &Settings) -> Assignment {
        if terms.is_empty() {
            return Assignment {
                keywords: Vec::new(),
                topic: None,
            };
        }
        // Term frequencies, as a vector sorted by id.
        let mut vector: Vector = terms
            .iter()
            .map(|t| Weighted {
                id: term_id(t),
                weight: 1.0,
                term: t.clone(),
            })
            .collect();
        vector.sort_by_key(|w| w.id);
        vector.dedup_by(|later, first| {
            let same = later.id == first.id;
            if same {
                first.weight += 1.0;
            }
            same
        });
        self.docs += 1;
        let n = self.docs as f64;
        for w in &mut vector {
            let df = self.df.entry(w.id).or_default();
            *df += 1;
            w.weight *= ((1.0 + n) / (1.0 + *df as f64)).ln() + 1.0;
        }
        let length = norm(&vector);
        vector.iter_mut().for_each(|w| w.weight /= length);
        let keywords = heaviest(&vector, s.keywords);
        let topic = self.assign(vector, time, s);
        self.prune_vocabulary(s.max_vocabulary);
        Assignment {
            keywords,
            topic: Some(topic),
        }
    }

    fn assign(&mut self, vector: Vector, time: i64, s: &Settings) -> TopicView {
        let best = self.most_similar(&vector);
        let (index, similarity, new) = match best {
            Some((i, sim)) if sim >= s.threshold => {
                let topic = &mut self.topics[i];
                let weight = 1.0 / (topic.size.min(s.memory - 1) + 1) as f64;
                let old = ids(&topic.centroid);
                let merged = trim(merge(std::mem::take(&mut topic.centroid), vector, weight));
                topic.norm = norm(&merged);
                let id = topic.id;
                self.index(id, &old, &merged);
                let topic = &mut self.topics[i];
                topic.centroid = merged;
                let topic = &mut self.topics[i];
                topic.size += 1;
                topic.last_seen = topic.last_seen.max(time);
                (i, sim, false)
            }
            _ => {
                if self.topics.len() >= s.max_topics {
                    self.evict();
                }
                self.next_id += 1;
                let centroid = trim(vector);
                self.index(self.next_id, &[], &centroid);
                self.topics.push(Topic {
                    id: self.next_id,
                    norm: norm(&centroid),
                    centroid,
                    size: 1,
                    last_seen: time,
                });
                (self.topics.len() - 1, 1.0, true)
            }
        };
        let topic = &self.topics[index];
        TopicView {
            id: topic.id,
            terms: heaviest(&topic.centroid, s.topic_terms),
            size: topic.size,
            similarity: (similarity * 1e4).round() / 1e4,
            new,
        }
    }

    /// The index of the topic most similar to the unit vector `v` (cosine;
    /// among equals the lowest id) and the similarity; `None` when no topic
    /// shares a term with it.
    fn most_similar(&self, v: &[Weighted]) -> Option<(usize, f64)> {
        // Dot products per topic index (None: no shared term), summed in
        // the text's id order.
        let mut dots: Vec<Option<f64>> = vec![None; self.topics.len()];
        for w in v {
            let Some(ids) = self.postings.get(&w.id) else {
                continue;
            };
            for (id, weight) in ids {
                let Ok(i) = self.topics.binary_search_by_key(id, |t| t.id) else {
                    continue;
                };
                *dots[i].get_or_insert(0.0) += w.weight * weight;
            }
        }
        dots.into_iter()
            .enumerate()
            .filter_map(|(i, dot)| {
                let n = self.topics[i].norm;
                dot.map(|dot| (i, if n == 0.0 { 0.0 } else { dot / n }))
            })
            .fold(None, |best: Option<(usize, f64)>, (i, sim)| match best {
                Some((_, b)) if b >= sim => best,
                _ => Some((i, sim)),
            })
    }

    /// Updates the postings of topic `id` whose centroid's terms went from
    /// `old` to `new` (both sorted by term id).
    fn index(&mut self, id: u64, old: &[u64], new: &[Weighted]) {
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let gone = j == new.len() || (i < old.len() && old[i] < new[j].id);
            if gone {
                if let Some(list) = self.postings.get_mut(&old[i]) {
                    list.retain(|t| t.0 != id);
                    if list.is_empty() {
                        self.postings.remove(&old[i]);
                    }
                }
                i += 1;
                continue;
            }
            let list = self.postings.entry(new[j].id).or_default();
            match list.binary_search_by_key(&id, |t| t.0) {
                Ok(at) => list[at].1 = new[j].weight,
                Err(at) => list.insert(at, (id, new[j].weight)),
            }
            if i < old.len() && old[i] == new[j].id {
                i += 1;
            }
            j += 1;
        }
    }

    /// Drops the topic joined longest ago (then the smallest, then the
    /// oldest id).
    fn evict(&mut self) {
        let oldest = self
            .topics
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| (t.last_seen, t.size, t.id))
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            let topic = self.topics.remove(i);
            self.index(topic.id, &ids(&topic.centroid), &[]);
        }
    }

    /// Keeps the document frequencies of at most `max` terms: first those
    /// seen once go, then the rarest (ties by id).
    fn prune_vocabulary(&mut self, max: usize) {
        if self.df.len() <= max {
            return;
        }
        self.df.retain(|_, df| *df > 1);
        if self.df.len() > max {
            let mut terms: Vec<(u64, u64)> = self.df.drain().collect();
            terms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            terms.truncate(max / 2);
            self.df = terms.into_iter().collect();
        }
    }
}

/// `centroid × (1 − w) + v × w`, sorted by id.
fn merge(centroid: Vector, v: Vector, w: f64) -> Vector {
    let mut out = Vec::with_capacity(centroid.len() + v.len());
    let mut c = centroid.into_iter().peekable();
    let mut v = v.into_iter().peekable();
    loop {
        let next = match (c.peek(), v.peek()) {
            (None, None) => break,
            (Some(x), Some(y)) if x.id == y.id => {
                let y = v.next().map_or(0.0, |y| y.weight);
                c.next().map(|mut x| {
                    x.weight = x.weight * (1.0 - w) + y * w;
                    x
                })
            }
            (Some(x), Some(y)) if x.id > y.id => v.next().map(|mut y| {
                y.weight *= w;
                y
            }),
            (Some(_), _) => c.next().map(|mut x| {
                x.weight *= 1.0 - w;
                x
            }),
            (None, Some(_)) => v.next().map(|mut y| {
                y.weight *= w;
                y
            }),
        };
        out.extend(next);
    }
    out
}

/// The [`CENTROID_TERMS`] heaviest terms of a centroid, by id.
fn trim(mut centroid: Vector) -> Vector {
    if centroid.len() <= CENTROID_TERMS {
        return centroid;
    }
    centroid.select_nth_unstable_by(CENTROID_TERMS, heavier);
    centroid.truncate(CENTROID_TERMS);
    centroid.sort_unstable_by_key(|w| w.id);
    centroid
}

impl Encode for TopicModel {
    fn encode(&self, enc: &mut Encoder) {
        enc.varint(self.docs);
        enc.varint(self.next_id);
        let mut df: Vec<(&u64, &u64)> = self.df.iter().collect();
        df.sort();
        enc.varint(df.len() as u64);
        for (id, n) in df {
            enc.varint(*id);
            enc.varint(*n);
        }
        enc.varint(self.topics.len() as u64);
        for topic in &self.topics {
            enc.varint(topic.id);
            enc.varint(topic.size);
            enc.zigzag(topic.last_seen);
            enc.varint(topic.centroid.len() as u64);
            for w in &topic.centroid {
                enc.str(&w.term);
                enc.f64(w.weight);
            }
        }
    }
}

impl Decode for TopicModel {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let docs = dec.varint()?;
        let next_id = dec.varint()?;
        let terms = dec.len(2)?;
        let mut df = FxHashMap::default();
        for _ in 0..terms {
            let id = dec.varint()?;
            df.insert(id, dec.varint()?);
        }
        let count = dec.len(4)?;
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            let id = dec.varint()?;
            let size = dec.varint()?;
            let last_seen = dec.zigzag()?;
            let n = dec.len(9)?;
            let mut centroid = Vec::with_capacity(n);
            for _ in 0..n {
                let term: Arc<str> = dec.str()?.into();
                let weight = dec.f64()?;
                centroid.push(Weighted {
                    id: term_id(&term),
                    weight,
                    term,
                });
            }
            centroid.sort_by_key(|w| w.id);
            topics.push(Topic {
                id,
                norm: norm(&centroid),
                centroid,
                size,
                last_seen,
            });
        }
        let mut model = TopicModel {
            docs,
            df,
            topics: Vec::new(),
            next_id,
            postings: FxHashMap::default(),
        };
        for topic in &topics {
            model.index(topic.id, &[], &topic.centroid);
        }
        model.topics = topics;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::codec::{decode_from, encode_to_vec};
    use proptest::prelude::*;

    use super::*;
    use crate::topics::text::terms;

    fn observe(m: &mut TopicModel, text: &str, s: &Settings) -> Assignment {
        m.observe(&terms(text), 0, s)
    }

    #[test]
    fn similar_texts_share_a_topic_and_different_ones_start_their_own() {
        let s = Settings::default();
        let mut m = TopicModel::default();
        let texts = [
            "payment gateway timeout during checkout",
            "checkout payment gateway returns timeout errors",
            "quarterly budget review for the marketing team",
            "payment gateway timeout again at checkout",
            "marketing budget review moved to friday",
        ];
        let topics: Vec<(u64, bool)> = texts
            .iter()
            .map(|t| {
                let a = observe(&mut m, t, &s);
                let v = a.topic.unwrap();
                (v.id, v.new)
            })
            .collect();
        assert_eq!(
            topics,
            [(1, true), (1, false), (2, true), (1, false), (2, false)]
        );
        let last = observe(&mut m, "gateway timeout on payment", &s);
        let topic = last.topic.unwrap();
        assert_eq!(topic.id, 1);
        assert_eq!(topic.size, 4);
        assert!(topic.terms.iter().any(|t| &**t == "gateway"), "{topic:?}");
        assert!(topic.similarity > 0.25 && topic.similarity < 1.0);
    }

    #[test]
    fn keywords_prefer_terms_rare_across_texts() {
        let s = Settings::default();
        let mut m = TopicModel::default();
        for _ in 0..20 {
            observe(&mut m, "deploy service today", &s);
        }
        let a = observe(&mut m, "deploy service rollback rollback", &s);
        assert_eq!(&*a.keywords[0], "rollback");
        assert_eq!(a.keywords.len(), 3);
        assert_eq!(observe(&mut m, "the and of", &s).topic, None);
    }

    #[test]
    fn topics_and_vocabulary_stay_within_their_bounds() {
        let s = Settings {
            max_topics: 3,
            max_vocabulary: 10,
            ..Settings::default()
        };
        let mut m = TopicModel::default();
        for i in 0..50 {
            let text = format!("alpha{i} beta{i} gamma{i}");
            let a = m.observe(&terms(&text), i, &s);
            assert_eq!(
                a.topic.unwrap().id,
                i as u64 + 1,
                "each text is its own topic"
            );
        }
        assert_eq!(m.topics.len(), 3);
        assert!(m.df.len() <= 10);
        let ids: Vec<u64> = m.topics.iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [48, 49, 50],
            "the least recently joined topics made room"
        );
    }

    proptest! {
        /// A model saved and restored at any point continues exactly as
        /// the one never interrupted.
        #[test]
        fn a_restored_model_continues_as_the_uninterrupted_one(
            texts in proptest::collection::vec(
                proptest::collection::vec(prop::sample::select(vec![
                    "payment", "gateway", "timeout", "budget", "review", "deploy",
                    "rollback", "incident", "database", "latency", "release", "customer",
                ]), 0..6),
                1..40,
            ),
            cut in 0usize..40,
        ) {
            let s = Settings { max_topics: 4, max_vocabulary: 8, ..Settings::default() };
            let texts: Vec<Vec<Arc<str>>> = texts
                .iter()
                .map(|t| t.iter().map(|w| Arc::from(*w)).collect())
                .collect();
            let mut whole = TopicModel::default();
            let expected: Vec<Assignment> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| whole.observe(t, i as i64, &s))
                .collect();
            let mut first = TopicModel::default();
            let cut = cut.min(texts.len());
            let mut got: Vec<Assignment> = texts[..cut]
                .iter()
                .enumerate()
                .map(|(i, t)| first.observe(t, i as i64, &s))
                .collect();
            let mut restored: TopicModel = decode_from(&encode_to_vec(&first)).unwrap();
            prop_assert_eq!(&restored, &first);
            got.extend(
                texts[cut..]
                    .iter()
                    .enumerate()
                    .map(|(i, t)| restored.observe(t, (cut + i) as i64, &s)),
            );
            prop_assert_eq!(got, expected);
        }
    }
}
