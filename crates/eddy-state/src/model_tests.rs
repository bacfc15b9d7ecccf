//! Every table kind against a `BTreeMap` model: random operations with a
//! clock that moves forward, TTL expiry, snapshots taken before writes,
//! restores of some key groups, and timers firing in order.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::{
    GroupRange, KeyGroup, ListTable, MapTable, StateTable, TimeDomain, TimerTable, Timers, Ttl,
    ValueTable,
};

const GROUPS: [u32; 4] = [0, 1, 64, 127];
const KEYS: [&[u8]; 3] = [b"a", b"b", b"ab"];

fn group(i: usize) -> KeyGroup {
    KeyGroup::new(GROUPS[i % GROUPS.len()]).unwrap()
}

fn ttl() -> impl Strategy<Value = Option<Ttl>> {
    prop::option::of((1i64..40).prop_map(|after_ms| Ttl {
        after_ms,
        domain: TimeDomain::EventTime,
    }))
}

#[derive(Clone, Debug)]
enum Op {
    Put(usize, usize, i64),
    Add(usize, usize, i64),
    Remove(usize, usize),
    Tick(i64),
    Expire,
    /// Freeze, write once more, check the frozen bytes did not change, then
    /// restore groups `lo..hi` of the frozen state into a fresh table.
    SnapshotRestore(u32, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..3usize, -5i64..5).prop_map(|(g, k, v)| Op::Put(g, k, v)),
        4 => (0..4usize, 0..3usize, -5i64..5).prop_map(|(g, k, v)| Op::Add(g, k, v)),
        2 => (0..4usize, 0..3usize).prop_map(|(g, k)| Op::Remove(g, k)),
        3 => (0i64..15).prop_map(Op::Tick),
        1 => Just(Op::Expire),
        1 => (0u32..129, 0u32..129).prop_map(|(a, b)| Op::SnapshotRestore(a.min(b), a.max(b))),
    ]
}

/// The model: (group, key) → (state, expires at).
type Model<S> = BTreeMap<(u32, Vec<u8>), (S, i64)>;

fn expiry(ttl: Option<Ttl>, now: i64) -> i64 {
    ttl.map_or(i64::MAX, |t| now + t.after_ms)
}

fn visible<S: Clone>(model: &Model<S>, g: KeyGroup, key: &[u8], now: i64) -> Option<S> {
    model
        .get(&(g.get(), key.to_vec()))
        .filter(|(_, e)| now < *e)
        .map(|(s, _)| s.clone())
}

fn visible_group<S: Clone>(model: &Model<S>, g: KeyGroup, now: i64) -> Vec<(Vec<u8>, S)> {
    model
        .iter()
        .filter(|((mg, _), (_, e))| *mg == g.get() && now < *e)
        .map(|((_, k), (s, _))| (k.clone(), s.clone()))
        .collect()
}

fn frozen_bytes(t: &dyn StateTable) -> Vec<u8> {
    let mut out = Vec::new();
    t.snapshot().write(&mut out);
    out
}

proptest! {
    #[test]
    fn value_table_matches_model(ttl in ttl(), ops in prop::collection::vec(op(), 1..60)) {
        let mut table: ValueTable<i64> = ValueTable::new(ttl);
        let mut model: Model<i64> = BTreeMap::new();
        let mut now = 0i64;
        for op in ops {
            match op {
                Op::Put(g, k, v) => {
                    table.put(group(g), KEYS[k], v, now);
                    model.insert((group(g).get(), KEYS[k].to_vec()), (v, expiry(ttl, now)));
                }
                Op::Add(g, k, v) => {
                    *table.update(group(g), KEYS[k], now, || 100) += v;
                    let old = visible(&model, group(g), KEYS[k], now).unwrap_or(100);
                    model.insert((group(g).get(), KEYS[k].to_vec()), (old + v, expiry(ttl, now)));
                }
                Op::Remove(g, k) => {
                    let got = table.remove(group(g), KEYS[k], now);
                    prop_assert_eq!(got, visible(&model, group(g), KEYS[k], now));
                    model.remove(&(group(g).get(), KEYS[k].to_vec()));
                }
                Op::Tick(dt) => now += dt,
                Op::Expire => {
                    let expired = model.values().filter(|(_, e)| now >= *e).count();
                    let stored_before = table.stored();
                    let removed = table.expire(now);
                    model.retain(|_, (_, e)| now < *e);
                    // Lazily removed entries were already gone from the table.
                    prop_assert!(removed <= expired);
                    prop_assert_eq!(table.stored(), stored_before - removed);
                }
                Op::SnapshotRestore(lo, hi) => {
                    let frozen = table.snapshot();
                    let mut before = Vec::new();
                    frozen.write(&mut before);
                    *table.update(group(0), b"zz", now, || 0) += 1;
                    let mut after = Vec::new();
                    frozen.write(&mut after);
                    prop_assert_eq!(&before, &after, "a write changed a snapshot");
                    table.remove(group(0), b"zz", now);
                    let range = GroupRange::new(lo..hi);
                    let mut restored: ValueTable<i64> = ValueTable::new(ttl);
                    restored.restore(&before, &range).unwrap();
                    for g in KeyGroup::all() {
                        let want = if range.contains(g) { visible_group(&model, g, now) } else { vec![] };
                        let got: Vec<_> = restored.iter_group(g, now).map(|(k, v)| (k.to_vec(), *v)).collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
            for g in 0..4 {
                for key in KEYS {
                    prop_assert_eq!(table.get(group(g), key, now).copied(), visible(&model, group(g), key, now));
                }
                let got: Vec<_> = table.iter_group(group(g), now).map(|(k, v)| (k.to_vec(), *v)).collect();
                prop_assert_eq!(got, visible_group(&model, group(g), now));
            }
        }
    }

    #[test]
    fn list_table_matches_model(ttl in ttl(), ops in prop::collection::vec(op(), 1..60)) {
        let mut table: ListTable<i64> = ListTable::new(ttl);
        let mut model: Model<Vec<i64>> = BTreeMap::new();
        let mut now = 0i64;
        for op in ops {
            match op {
                // Put and Add both append here.
                Op::Put(g, k, v) | Op::Add(g, k, v) => {
                    table.push(group(g), KEYS[k], v, now);
                    let mut list = visible(&model, group(g), KEYS[k], now).unwrap_or_default();
                    list.push(v);
                    model.insert((group(g).get(), KEYS[k].to_vec()), (list, expiry(ttl, now)));
                }
                Op::Remove(g, k) => {
                    let got = table.remove(group(g), KEYS[k], now);
                    prop_assert_eq!(got, visible(&model, group(g), KEYS[k], now));
                    model.remove(&(group(g).get(), KEYS[k].to_vec()));
                }
                Op::Tick(dt) => now += dt,
                Op::Expire => {
                    table.expire(now);
                    model.retain(|_, (_, e)| now < *e);
                    prop_assert_eq!(table.stored(), model.len());
                }
                Op::SnapshotRestore(lo, hi) => {
                    let bytes = frozen_bytes(&table);
                    let range = GroupRange::new(lo..hi);
                    let mut restored: ListTable<i64> = ListTable::new(ttl);
                    restored.restore(&bytes, &range).unwrap();
                    for g in KeyGroup::all() {
                        let want = if range.contains(g) { visible_group(&model, g, now) } else { vec![] };
                        let got: Vec<_> = restored.iter_group(g, now).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
            for g in 0..4 {
                for key in KEYS {
                    prop_assert_eq!(
                        table.get(group(g), key, now).to_vec(),
                        visible(&model, group(g), key, now).unwrap_or_default()
                    );
                }
            }
        }
    }

    #[test]
    fn map_table_matches_model(ttl in ttl(), ops in prop::collection::vec(op(), 1..60)) {
        let mut table: MapTable<i64> = MapTable::new(ttl);
        // The user key is KEYS[v mod 3], so maps get several entries.
        let mut model: Model<BTreeMap<Vec<u8>, i64>> = BTreeMap::new();
        let mut now = 0i64;
        for op in ops {
            match op {
                Op::Put(g, k, v) | Op::Add(g, k, v) => {
                    let uk = KEYS[v.rem_euclid(3) as usize];
                    table.put(group(g), KEYS[k], uk, v, now);
                    let mut map = visible(&model, group(g), KEYS[k], now).unwrap_or_default();
                    map.insert(uk.to_vec(), v);
                    model.insert((group(g).get(), KEYS[k].to_vec()), (map, expiry(ttl, now)));
                }
                Op::Remove(g, k) => {
                    let uk = KEYS[k];
                    let got = table.remove(group(g), KEYS[k], uk, now);
                    let mkey = (group(g).get(), KEYS[k].to_vec());
                    let mut map = visible(&model, group(g), KEYS[k], now);
                    prop_assert_eq!(got, map.as_mut().and_then(|m| m.remove(uk)));
                    match map {
                        Some(m) if !m.is_empty() => {
                            model.insert(mkey, (m, expiry(ttl, now)));
                        }
                        _ => {
                            model.remove(&mkey);
                        }
                    }
                }
                Op::Tick(dt) => now += dt,
                Op::Expire => {
                    table.expire(now);
                    model.retain(|_, (_, e)| now < *e);
                    prop_assert_eq!(table.stored(), model.len());
                }
                Op::SnapshotRestore(lo, hi) => {
                    let bytes = frozen_bytes(&table);
                    let range = GroupRange::new(lo..hi);
                    let mut restored: MapTable<i64> = MapTable::new(ttl);
                    restored.restore(&bytes, &range).unwrap();
                    for g in KeyGroup::all() {
                        let want = if range.contains(g) { visible_group(&model, g, now) } else { vec![] };
                        let got: Vec<_> = restored
                            .iter_group(g, now)
                            .map(|(k, m)| (k.to_vec(), m.0.iter().map(|(uk, v)| (uk.to_vec(), *v)).collect()))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
            for g in 0..4 {
                for key in KEYS {
                    let got: BTreeMap<Vec<u8>, i64> =
                        table.entries(group(g), key, now).map(|(k, v)| (k.to_vec(), *v)).collect();
                    prop_assert_eq!(got, visible(&model, group(g), key, now).unwrap_or_default());
                }
            }
        }
    }

    #[test]
    fn timers_fire_in_time_then_key_order(
        ops in prop::collection::vec(
            prop_oneof![
                3 => (0..4usize, 0..3usize, 0i64..50).prop_map(|(g, k, t)| (0u8, g, k, t)),
                1 => (0..4usize, 0..3usize, 0i64..50).prop_map(|(g, k, t)| (1u8, g, k, t)),
                1 => (0i64..20).prop_map(|dt| (2u8, 0, 0, dt)),
                1 => (0u32..129).prop_map(|lo| (3u8, lo as usize, 0, 0)),
            ],
            1..80,
        )
    ) {
        let mut timers = TimerTable::new(TimeDomain::EventTime);
        // (time, key, group): the firing order.
        let mut model: BTreeSet<(i64, Vec<u8>, u32)> = BTreeSet::new();
        let mut now = 0i64;
        for (kind, g, k, t) in ops {
            match kind {
                0 => {
                    let fresh = timers.register(group(g), KEYS[k], t);
                    prop_assert_eq!(fresh, model.insert((t, KEYS[k].to_vec(), group(g).get())));
                }
                1 => {
                    let existed = timers.delete(group(g), KEYS[k], t);
                    prop_assert_eq!(existed, model.remove(&(t, KEYS[k].to_vec(), group(g).get())));
                }
                2 => {
                    now += t;
                    let fired: Vec<_> = timers.due(now).into_iter().map(|x| (x.time, x.key.to_vec(), x.group.get())).collect();
                    let want: Vec<_> = model.iter().filter(|(time, _, _)| *time <= now).cloned().collect();
                    model.retain(|(time, _, _)| *time > now);
                    prop_assert_eq!(fired, want);
                }
                _ => {
                    // Restore the groups from `g` on into a fresh table.
                    let range = GroupRange::new(g as u32..128);
                    let bytes = frozen_bytes(&timers);
                    let mut restored = TimerTable::new(TimeDomain::EventTime);
                    restored.restore(&bytes, &range).unwrap();
                    model.retain(|(_, _, mg)| range.contains(KeyGroup::new(*mg).unwrap()));
                    timers = restored;
                }
            }
            prop_assert_eq!(timers.len(), model.len());
            prop_assert_eq!(timers.next_time(), model.iter().map(|(t, _, _)| *t).min());
            for g in 0..4 {
                for key in KEYS {
                    let got: Vec<i64> = timers.times(group(g), key).collect();
                    let want: Vec<i64> = model.iter().filter(|(_, mk, mg)| mk == key && *mg == group(g).get()).map(|(t, _, _)| *t).collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}

#[test]
fn restore_refuses_another_kind_and_changes_nothing_on_corrupt_bytes() {
    let mut values: ValueTable<i64> = ValueTable::new(None);
    values.put(KeyGroup::of("k"), b"k", 1, 0);
    let mut lists: ListTable<i64> = ListTable::new(None);
    lists.push(KeyGroup::of("k"), b"k", 2, 0);
    let list_bytes = frozen_bytes(&lists);
    assert!(values.restore(&list_bytes, &GroupRange::all()).is_err());
    let mut bytes = frozen_bytes(&values);
    let last = bytes.len() - 1;
    bytes.truncate(last);
    assert!(values.restore(&bytes, &GroupRange::all()).is_err());
    assert_eq!(values.get(KeyGroup::of("k"), b"k", 0), Some(&1));
}

#[test]
fn fuzz_restore_arbitrary_bytes() {
    use eddy_core::{Sym, Value};
    eddy_testkit::fuzz::run(
        "fuzz_restore_arbitrary_bytes",
        || {
            let valid = prop::collection::vec((0u32..128, ".{0,4}", any::<i64>()), 0..6).prop_map(
                |entries| {
                    let mut t: MapTable<Value> = MapTable::new(None);
                    for (g, k, v) in entries {
                        t.put(
                            KeyGroup::new(g).unwrap(),
                            k.as_bytes(),
                            Sym::intern("f").as_str().as_bytes(),
                            Value::Int(v),
                            0,
                        );
                    }
                    frozen_bytes(&t)
                },
            );
            (
                prop_oneof![prop::collection::vec(any::<u8>(), 0..80), valid],
                prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
                any::<prop::sample::Index>(),
            )
        },
        |(mut bytes, flips, cut)| {
            if !bytes.is_empty() {
                for (i, b) in flips {
                    let i = i.index(bytes.len());
                    bytes[i] = b;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let mut t: MapTable<Value> = MapTable::new(None);
            let _ = t.restore(&bytes, &GroupRange::all());
            let mut timers = TimerTable::new(TimeDomain::ProcessingTime);
            let _ = timers.restore(&bytes, &GroupRange::all());
        },
    );
}
