//! Spilling tests: tumbling and sliding windows over a memory budget so
//! small that every key leaves memory after each batch produce what the
//! in-memory run produces, step by step, and their checkpoints are the
//! same bytes, also when restored into a fresh spilling operator.
//!
//! The store here is a map in memory (the fjall store has its own tests in
//! eddy-state, and the end-to-end test runs it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use eddy_core::metrics::ComponentMetrics;
use eddy_core::state::{Spill, SpillSpace, SpillStore, SpillView, SpillVisit, StateError};
use eddy_core::Collector;
use proptest::prelude::*;

use super::snapshot_tests::{apply, drain, shapes, straight, Step};
use super::tests::{operator, simulation, In, Op};
use crate::test_util::{driven, Driven};

type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
struct MapStore(Mutex<Entries>);

fn scan_map(map: &Entries, prefix: &[u8], f: &mut SpillVisit<'_>) -> Result<(), StateError> {
    for (k, v) in map.range(prefix.to_vec()..) {
        if !k.starts_with(prefix) {
            break;
        }
        f(k, v)?;
    }
    Ok(())
}

impl MapStore {
    fn map(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SpillStore for MapStore {
    fn put(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StateError> {
        self.map().extend(entries);
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.map().get(key).cloned())
    }

    fn scan(&self, prefix: &[u8], f: &mut SpillVisit<'_>) -> Result<(), StateError> {
        let map = self.map().clone();
        scan_map(&map, prefix, f)
    }

    fn remove_prefix(&self, prefix: &[u8]) -> Result<(), StateError> {
        self.map().retain(|k, _| !k.starts_with(prefix));
        Ok(())
    }

    fn freeze(&self) -> Box<dyn SpillView> {
        Box::new(MapView(self.map().clone()))
    }
}

struct MapView(Entries);

impl SpillView for MapView {
    fn scan(&self, prefix: &[u8], f: &mut SpillVisit<'_>) -> Result<(), StateError> {
        scan_map(&self.0, prefix, f)
    }
}

/// Hands out stores and keeps them, so a test can see what was spilled.
#[derive(Default)]
struct MapSpace(Mutex<Vec<Arc<MapStore>>>);

impl SpillSpace for MapSpace {
    fn open(&self, _instance: &str) -> Result<Arc<dyn SpillStore>, StateError> {
        let store = Arc::new(MapStore::default());
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(store.clone());
        Ok(store)
    }
}

/// A window operator for `body` that keeps (almost) nothing in memory.
fn spilling(body: &str, space: &Arc<MapSpace>) -> Driven {
    let spill = Spill {
        budget: 1,
        space: space.clone(),
    };
    let spilled = ComponentMetrics::default().counter("spilled_entries", &[]);
    driven(operator(body).spill_to(&spill, "w/0", spilled).unwrap())
}

/// Runs the spilling operator beside an in-memory one, checkpointing both
/// after each step in `cuts` (the bytes must agree) and continuing the
/// spilling one from its checkpoint in a fresh operator with a new store.
fn spilled_run(body: &str, events: &[In], ops: &[Op], cuts: &[usize]) -> (Vec<Step>, usize) {
    let space = Arc::new(MapSpace::default());
    let mut op = spilling(body, &space);
    let mut twin = driven(operator(body));
    let (mut out, mut twin_out) = (Collector::new(), Collector::new());
    let mut steps = Vec::new();
    let mut most_spilled = 0;
    for (i, o) in ops.iter().enumerate() {
        steps.push(apply(&mut op, o, events, &mut out));
        apply(&mut twin, o, events, &mut twin_out);
        let spilled = space
            .0
            .lock()
            .map(|s| s.last().map_or(0, |st| st.map().len()));
        most_spilled = most_spilled.max(spilled.unwrap_or(0));
        if cuts.contains(&i) {
            let bytes = op.snapshot();
            assert_eq!(bytes, twin.snapshot(), "{body}: checkpoint after step {i}");
            let mut fresh = spilling(body, &space);
            fresh.restore(&bytes).unwrap();
            op = fresh;
        }
    }
    op.finish(&mut out);
    steps.push(drain(&mut out));
    (steps, most_spilled)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn spilled_windows_give_the_in_memory_results_and_checkpoints(
        (events, ops) in simulation(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        late in prop::bool::ANY,
    ) {
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(ops.len())).collect();
        // The tumbling and sliding shapes: the others keep state in memory.
        for (body, _) in shapes(if late { 45 } else { 0 }).into_iter().take(2) {
            let want = straight(&body, &events, &ops);
            let (got, _) = spilled_run(&body, &events, &ops, &cuts);
            prop_assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(g, w, "step {} of {}", i, body);
            }
        }
    }
}

/// The budget is honoured: entries do go to the store.
#[test]
fn a_tiny_budget_spills_every_key() {
    let events: Vec<In> = (0..200)
        .map(|i| In {
            id: i,
            t: 1_000 + i,
            k: i % 50,
            v: i,
        })
        .collect();
    let ops = vec![
        Op::Batch((0..100).collect()),
        Op::Batch((100..200).collect()),
    ];
    let (body, _) = &shapes(0)[0];
    let (got, spilled) = spilled_run(body, &events, &ops, &[0]);
    assert_eq!(got, straight(body, &events, &ops));
    assert!(spilled >= 50, "{spilled} entries spilled");
}
