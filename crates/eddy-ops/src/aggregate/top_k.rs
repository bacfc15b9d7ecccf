//! Heavy hitters by Space-Saving (Metwally, Agrawal and El Abbadi), with the
//! mergeable-summaries merge of Agarwal et al.
//!
//! `top_k(x, k)` keeps `capacity = max(10·k, 100)` counters per window and
//! key ([`SpaceSaving::new`]; `k` is at most 10,000). A value that has a
//! counter is incremented; a new value takes over the smallest counter and
//! inherits its count as its possible overestimate. Hence, with N values
//! seen, every reported count satisfies `true ≤ count ≤ true + N/capacity`,
//! and every value occurring more than N/capacity times is reported.
//!
//! Determinism: results are ordered by count, largest first, then by value
//! ascending in the [value order](super::order). While the number of
//! distinct values does not exceed the capacity, nothing is ever evicted,
//! the counts are exact and the summary (hence the result) depends only on
//! the multiset of values, whatever their order and however partial
//! summaries were merged. Beyond the capacity, Space-Saving is inherently
//! order-dependent: which values hold counters, and their overestimates,
//! depend on the order of arrival and of merges (the bound above still
//! holds for every order). Evictions then take the smallest count and,
//! among equal counts, the value that sorts last, so the same arrival and
//! merge order always gives the same result.

use std::cmp::Ordering;
use std::sync::Arc;

use eddy_core::{Fields, Value};
use rustc_hash::FxHashMap;

use super::order::value_order;

#[derive(Clone, Debug)]
struct Counter {
    value: Value,
    count: u64,
    /// Upper bound of the overestimate in `count`.
    error: u64,
}

/// A Space-Saving summary answering `top_k`.
#[derive(Clone, Debug)]
pub struct SpaceSaving {
    k: usize,
    capacity: usize,
    /// Values seen (the N of the error bound).
    total: u64,
    /// Some count was ever evicted or dropped: counts may be overestimates
    /// and a missing value may have occurred.
    lossy: bool,
    counters: Vec<Counter>,
    /// Counter index by value.
    index: FxHashMap<Value, usize>,
    /// A binary min-heap of counter indices ordered by count, so the
    /// smallest counter is found in O(1) and repaired in O(log capacity).
    heap: Vec<usize>,
    /// Position of each counter in `heap`.
    pos: Vec<usize>,
}

impl SpaceSaving {
    /// A summary reporting `k` values, with `max(10·k, 100)` counters (the
    /// capacity `top_k(x, k)` documents).
    pub fn new(k: usize) -> SpaceSaving {
        SpaceSaving::with_capacity(k, k.saturating_mul(10).max(100))
    }

    /// A summary reporting `k` values with `capacity` counters (at least k).
    pub fn with_capacity(k: usize, capacity: usize) -> SpaceSaving {
        SpaceSaving {
            k,
            capacity: capacity.max(k).max(1),
            total: 0,
            lossy: false,
            counters: Vec::new(),
            index: FxHashMap::default(),
            heap: Vec::new(),
            pos: Vec::new(),
        }
    }

    /// The number of values reported.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The number of counters.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of values seen.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The largest possible overestimate of any reported count: N/capacity.
    pub fn error_bound(&self) -> u64 {
        self.total / self.capacity as u64
    }

    /// Counts one occurrence of `v`.
    pub fn add(&mut self, v: &Value) {
        self.add_count(v, 1, 0);
    }

    fn add_count(&mut self, v: &Value, count: u64, error: u64) {
        self.total += count;
        if let Some(&i) = self.index.get(v) {
            let c = &mut self.counters[i];
            c.count += count;
            c.error += error;
            // Values that are equal but written differently (1 and 1.0)
            // share a counter, shown as the one that sorts first.
            if value_order(v, &c.value) == Ordering::Less {
                c.value = v.clone();
            }
            self.sift_down(self.pos[i]);
        } else if self.counters.len() < self.capacity {
            let i = self.counters.len();
            self.counters.push(Counter {
                value: v.clone(),
                count,
                error,
            });
            self.index.insert(v.clone(), i);
            self.heap.push(i);
            self.pos.push(self.heap.len() - 1);
            self.sift_up(self.heap.len() - 1);
        } else if let Some(&i) = self.heap.first() {
            // Replace the smallest counter: the new value may have occurred
            // up to `min` times before, uncounted.
            let min = self.counters[i].count;
            self.lossy = true;
            let old = std::mem::replace(&mut self.counters[i].value, v.clone());
            self.index.remove(&old);
            self.index.insert(v.clone(), i);
            self.counters[i].count = min + count;
            self.counters[i].error = min + error;
            self.sift_down(0);
        }
    }

    /// The count a value missing from this summary may have had: 0 while
    /// nothing was ever evicted (the counts are exact), else the smallest
    /// count kept.
    fn floor(&self) -> u64 {
        if !self.lossy {
            0
        } else {
            self.heap.first().map_or(0, |&i| self.counters[i].count)
        }
    }

    /// Merges another summary: each value's counts add up, a value missing
    /// on one side is charged that side's smallest count (its possible
    /// uncounted occurrences), then the `capacity` largest are kept. The
    /// N/capacity bound holds for the combined N.
    pub fn merge(&mut self, other: &SpaceSaving) {
        let (floor_a, floor_b) = (self.floor(), other.floor());
        let mut merged: FxHashMap<Value, (u64, u64)> = FxHashMap::default();
        for c in &self.counters {
            let (count, error) = match other.index.get(&c.value) {
                Some(&j) => (other.counters[j].count, other.counters[j].error),
                None => (floor_b, floor_b),
            };
            merged.insert(c.value.clone(), (c.count + count, c.error + error));
        }
        for c in &other.counters {
            match merged.get_key_value(&c.value) {
                // Keep the representative that sorts first (1 before 1.0).
                Some((ours, _)) if value_order(&c.value, ours) == Ordering::Less => {
                    if let Some((_, counts)) = merged.remove_entry(&c.value) {
                        merged.insert(c.value.clone(), counts);
                    }
                }
                Some(_) => {}
                None => {
                    merged.insert(c.value.clone(), (c.count + floor_a, c.error + floor_a));
                }
            }
        }
        let mut all: Vec<(Value, u64, u64)> =
            merged.into_iter().map(|(v, (c, e))| (v, c, e)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| value_order(&a.0, &b.0)));
        let dropped = all.len() > self.capacity;
        all.truncate(self.capacity);
        let total = self.total + other.total;
        let lossy = self.lossy || other.lossy || dropped;
        let (k, capacity) = (self.k, self.capacity);
        *self = SpaceSaving::with_capacity(k, capacity);
        for (v, c, e) in all {
            self.add_count(&v, c, e);
        }
        self.total = total;
        self.lossy = lossy;
    }

    /// The `k` largest counts as `(value, count)`, by count descending, then
    /// by value ascending (the value order of [`super::order`]).
    pub fn top(&self) -> Vec<(&Value, u64)> {
        let mut all: Vec<(&Value, u64)> =
            self.counters.iter().map(|c| (&c.value, c.count)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| value_order(a.0, b.0)));
        all.truncate(self.k);
        all
    }

    /// The result: a list of `{value, count}` maps, largest count first.
    pub fn result(&self) -> Value {
        let value = eddy_core::sym!("value");
        let count = eddy_core::sym!("count");
        let list = self
            .top()
            .into_iter()
            .map(|(v, c)| {
                let mut f = Fields::with_capacity(2);
                f.push(value, v.clone());
                f.push(count, Value::Int(i64::try_from(c).unwrap_or(i64::MAX)));
                Value::Map(Arc::new(f))
            })
            .collect();
        Value::List(Arc::new(list))
    }

    /// Heap order: the counter evicted first is the smallest count and,
    /// among equal counts, the value that sorts last (the one `top` would
    /// report last).
    fn less(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.counters[self.heap[a]], &self.counters[self.heap[b]]);
        x.count
            .cmp(&y.count)
            .then_with(|| value_order(&y.value, &x.value))
            == Ordering::Less
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a]] = a;
        self.pos[self.heap[b]] = b;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < self.heap.len() && self.less(l, smallest) {
                smallest = l;
            }
            if r < self.heap.len() && self.less(r, smallest) {
                smallest = r;
            }
            if smallest == i {
                break;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }
}

impl eddy_core::codec::Encode for SpaceSaving {
    /// `k`, capacity, N, lossy, then the counters in their slot order
    /// (which decides nothing but is the summary's own order).
    fn encode(&self, enc: &mut eddy_core::codec::Encoder) {
        enc.varint(self.k as u64);
        enc.varint(self.capacity as u64);
        enc.varint(self.total);
        enc.u8(u8::from(self.lossy));
        enc.varint(self.counters.len() as u64);
        for c in &self.counters {
            enc.put(&c.value);
            enc.varint(c.count);
            enc.varint(c.error);
        }
    }
}

impl eddy_core::codec::Decode for SpaceSaving {
    fn decode(
        dec: &mut eddy_core::codec::Decoder<'_>,
    ) -> Result<Self, eddy_core::codec::DecodeError> {
        use eddy_core::codec::DecodeError;
        let range = |what| DecodeError::OutOfRange(what);
        let k = usize::try_from(dec.varint()?).map_err(|_| range("top_k k"))?;
        let capacity = usize::try_from(dec.varint()?).map_err(|_| range("top_k capacity"))?;
        if k == 0 || capacity < k {
            return Err(range("top_k capacity"));
        }
        let total = dec.varint()?;
        let lossy = super::codec::get_bool(dec, "top_k flag")?;
        let n = dec.len(3)?;
        if n > capacity {
            return Err(range("top_k counters"));
        }
        let mut s = SpaceSaving::with_capacity(k, capacity);
        s.total = total;
        s.lossy = lossy;
        for _ in 0..n {
            let value: Value = dec.get()?;
            let (count, error) = (dec.varint()?, dec.varint()?);
            if error > count || s.index.contains_key(&value) {
                return Err(range("top_k counter"));
            }
            let i = s.counters.len();
            s.counters.push(Counter {
                value: value.clone(),
                count,
                error,
            });
            s.index.insert(value, i);
            s.heap.push(i);
            s.pos.push(i);
            s.sift_up(i);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// A Zipf(1.1)-like stream over `n` values, by inverse CDF sampling.
    fn zipf_stream(len: usize, n: usize, seed: u64) -> Vec<i64> {
        let weights: Vec<f64> = (1..=n).map(|r| 1.0 / (r as f64).powf(1.1)).collect();
        let total: f64 = weights.iter().sum();
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cdf.push(acc);
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..len)
            .map(|_| {
                let u: f64 = rng.random();
                cdf.partition_point(|c| *c < u).min(n - 1) as i64
            })
            .collect()
    }

    fn exact_counts(stream: &[i64]) -> FxHashMap<i64, u64> {
        let mut m = FxHashMap::default();
        for v in stream {
            *m.entry(*v).or_insert(0) += 1;
        }
        m
    }

    fn check(summary: &SpaceSaving, exact: &FxHashMap<i64, u64>, k: usize) {
        let mut truth: Vec<(i64, u64)> = exact.iter().map(|(v, c)| (*v, *c)).collect();
        truth.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let bound = summary.error_bound();
        let top = summary.top();
        assert_eq!(top.len(), k);
        for (v, c) in &top {
            let t = exact.get(&v.as_i64().unwrap_or(-1)).copied().unwrap_or(0);
            assert!(
                t <= *c && *c <= t + bound,
                "{v}: reported {c}, true {t}, bound {bound}"
            );
        }
        // Every value more frequent than the k-th true count plus the bound
        // must be reported.
        let kth = truth[k - 1].1;
        for (v, c) in truth.iter().filter(|(_, c)| *c > kth + bound) {
            assert!(
                top.iter().any(|(x, _)| x.as_i64() == Some(*v)),
                "missed {v} ({c})"
            );
        }
        // The true top values with a clear margin are found.
        for (v, _) in truth.iter().take(3) {
            assert!(
                top.iter().any(|(x, _)| x.as_i64() == Some(*v)),
                "missed heavy {v}"
            );
        }
    }

    #[test]
    fn finds_heavy_hitters_in_a_zipf_stream() {
        let stream = zipf_stream(200_000, 50_000, 11);
        let mut s = SpaceSaving::new(10);
        stream.iter().for_each(|v| s.add(&Value::Int(*v)));
        assert_eq!(s.capacity(), 100);
        check(&s, &exact_counts(&stream), 10);
    }

    #[test]
    fn merged_summaries_keep_the_bound() {
        let stream = zipf_stream(100_000, 20_000, 5);
        let (mut a, mut b) = (SpaceSaving::new(10), SpaceSaving::new(10));
        for (i, v) in stream.iter().enumerate() {
            if i % 2 == 0 {
                a.add(&Value::Int(*v))
            } else {
                b.add(&Value::Int(*v))
            }
        }
        a.merge(&b);
        assert_eq!(a.total(), stream.len() as u64);
        check(&a, &exact_counts(&stream), 10);
    }

    /// Per-value counts of a stream.
    fn truth(stream: &[i64]) -> FxHashMap<i64, u64> {
        exact_counts(stream)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// At the documented capacity max(10·k, 100), with far more distinct
        /// values than counters, single pass or merged: every counter
        /// satisfies `true ≤ count ≤ true + N/capacity`.
        #[test]
        fn counts_stay_within_n_over_capacity(
            k in 1usize..20,
            stream in proptest::collection::vec(
                proptest::prop_oneof![3 => 0i64..20, 2 => 0i64..5_000],
                1..4_000,
            ),
            split in 0usize..4_000,
        ) {
            let exact = truth(&stream);
            let (mut all, mut a, mut b) = (SpaceSaving::new(k), SpaceSaving::new(k), SpaceSaving::new(k));
            proptest::prop_assert_eq!(all.capacity(), (10 * k).max(100));
            for (i, v) in stream.iter().enumerate() {
                all.add(&Value::Int(*v));
                if i < split { a.add(&Value::Int(*v)) } else { b.add(&Value::Int(*v)) }
            }
            a.merge(&b);
            for s in [&all, &a] {
                let bound = stream.len() as u64 / s.capacity() as u64;
                proptest::prop_assert_eq!(s.total(), stream.len() as u64);
                proptest::prop_assert_eq!(s.error_bound(), bound);
                for c in &s.counters {
                    let t = exact.get(&c.value.as_i64().unwrap_or(-1)).copied().unwrap_or(0);
                    proptest::prop_assert!(
                        t <= c.count && c.count <= t + bound,
                        "{}: count {}, true {}, bound {}", c.value, c.count, t, bound
                    );
                }
            }
        }
    }

    #[test]
    fn exact_below_capacity_and_merge_equals_single_pass() {
        let values = ["a", "b", "a", "c", "a", "b", "d"];
        let (mut all, mut x, mut y) = (
            SpaceSaving::new(2),
            SpaceSaving::new(2),
            SpaceSaving::new(2),
        );
        for (i, v) in values.iter().enumerate() {
            all.add(&Value::str(v));
            if i < 3 {
                x.add(&Value::str(v))
            } else {
                y.add(&Value::str(v))
            }
        }
        x.merge(&y);
        assert_eq!(x.result(), all.result());
        let top = all.top();
        assert_eq!(top, vec![(&Value::str("a"), 3), (&Value::str("b"), 2)]);
    }

    /// With exactly `capacity` distinct values, a full summary is still
    /// exact: split and merged in any order it equals the single pass.
    #[test]
    fn a_full_but_exact_summary_merges_exactly() {
        let stream: Vec<i64> = (0..1_000).map(|i| (i * 7919) % 100).collect();
        let mut all = SpaceSaving::new(3);
        stream.iter().for_each(|v| all.add(&Value::Int(*v)));
        for cut in [1, 250, 999] {
            let (mut a, mut b) = (SpaceSaving::new(3), SpaceSaving::new(3));
            stream[..cut].iter().for_each(|v| a.add(&Value::Int(*v)));
            stream[cut..]
                .iter()
                .rev()
                .for_each(|v| b.add(&Value::Int(*v)));
            b.merge(&a);
            assert_eq!(b.result(), all.result(), "cut {cut}");
            assert_eq!(b.floor(), 0, "nothing was evicted");
        }
        // Ties of count: smaller values first.
        let top: Vec<i64> = all.top().iter().filter_map(|(v, _)| v.as_i64()).collect();
        assert_eq!(top, vec![0, 1, 2]);
    }
}
