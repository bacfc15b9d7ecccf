//! Partitioning per input: a two-input operator whose inputs are keyed by
//! different expressions sees, on one worker, every event of a key from
//! both sides, on the worker that owns the key's key group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use eddy_core::component::{BuildContext, BuildError, Partitioning, TransformFactory};
use eddy_core::state::{key_group, owner_of};
use eddy_core::{
    Batch, Collector, Event, Expression, Fields, Operator, OperatorContext, Output, Sym, Value,
};
use eddy_runtime::registry::Factory;
use eddy_runtime::{Plan, RunOptions};

/// Where each event was processed: (input, key, worker).
type Seen = Arc<Mutex<Vec<(usize, String, usize)>>>;

/// A test-only join: input 0 keyed by `user`, input 1 by `account.id`;
/// counts both sides per key and emits one `{key, left, right}` per key at
/// the end.
struct CountJoinConfig {
    keys: [Expression; 2],
    seen: Seen,
}

impl TransformFactory for CountJoinConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(CountJoin {
            keys: self.keys.clone(),
            worker: cx.worker,
            seen: self.seen.clone(),
            counts: BTreeMap::new(),
        }))
    }

    fn partitioning(&self, input: usize) -> Partitioning {
        match self.keys.get(input) {
            Some(key) => Partitioning::Hash(vec![key.clone()]),
            None => Partitioning::Single,
        }
    }
}

struct CountJoin {
    keys: [Expression; 2],
    worker: usize,
    seen: Seen,
    counts: BTreeMap<String, [i64; 2]>,
}

impl Operator for CountJoin {
    fn process(
        &mut self,
        input: usize,
        batch: Batch,
        _cx: &mut OperatorContext,
        _out: &mut Collector,
    ) {
        let mut seen = self.seen.lock().unwrap();
        for e in &batch.events {
            let key = self.keys[input].eval(e).unwrap();
            let key = key.as_str().unwrap().to_string();
            seen.push((input, key.clone(), self.worker));
            self.counts.entry(key).or_default()[input] += 1;
        }
    }

    fn finish(&mut self, _cx: &mut OperatorContext, out: &mut Collector) {
        for (key, [left, right]) in std::mem::take(&mut self.counts) {
            let mut f = Fields::default();
            f.push(Sym::intern("key"), Value::str(&key));
            f.push(Sym::intern("left"), Value::Int(left));
            f.push(Sym::intern("right"), Value::Int(right));
            out.push(Output::MAIN, Event::new(0, f));
        }
    }
}

#[test]
fn a_two_input_operator_keys_each_input_by_its_own_expression() {
    let dir = tempfile::tempdir().unwrap();
    let (users, accounts, out) = (
        dir.path().join("users.ndjson"),
        dir.path().join("accounts.ndjson"),
        dir.path().join("out.ndjson"),
    );
    let mut expected: BTreeMap<String, [i64; 2]> = BTreeMap::new();
    let (mut left, mut right) = (String::new(), String::new());
    for i in 0..2_000 {
        let key = format!("u{}", (i * 7919) % 97);
        left.push_str(&format!("{{\"user\": \"{key}\", \"ts\": {i}}}\n"));
        expected.entry(key).or_default()[0] += 1;
        // The other side has no `user` field: keyed by `user` it would all
        // hash alike and meet nothing.
        let key = format!("u{}", (i * 31) % 89);
        right.push_str(&format!(
            "{{\"account\": {{\"id\": \"{key}\"}}, \"ts\": {i}}}\n"
        ));
        expected.entry(key).or_default()[1] += 1;
    }
    std::fs::write(&users, left).unwrap();
    std::fs::write(&accounts, right).unwrap();
    let text = format!(
        "[sources.users]\ntype = \"file\"\npath = {:?}\n\n\
         [sources.accounts]\ntype = \"file\"\npath = {:?}\n\n\
         [transforms.j]\ntype = \"filter\"\ninputs = [\"users\", \"accounts\"]\ncondition = \"true\"\n\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"j\"]\npath = {:?}\n",
        users.display().to_string(),
        accounts.display().to_string(),
        out.display().to_string()
    );
    let mut plan = Plan::compile("join.toml", &text, &[]).unwrap_or_else(|d| panic!("{d}"));
    let seen = Seen::default();
    let j = plan.nodes.iter().position(|n| n.name == "j").unwrap();
    plan.nodes[j].factory = Factory::Transform(Arc::new(CountJoinConfig {
        keys: [
            Expression::compile("user").unwrap(),
            Expression::compile("account.id").unwrap(),
        ],
        seen: seen.clone(),
    }));
    let workers = 3;
    let report = eddy_runtime::run(
        &plan,
        RunOptions {
            workers,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4_000, "every event reached the join once");
    let mut used = vec![false; workers];
    for (input, key, worker) in seen.iter() {
        let owner = owner_of(key_group(&Value::str(key)), workers);
        assert_eq!(*worker, owner, "input {input}, key {key}");
        used[owner] = true;
    }
    assert!(used.iter().all(|u| *u), "the keys spread over every worker");

    let mut joined: BTreeMap<String, [i64; 2]> = BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = v["key"].as_str().unwrap().to_string();
        let counts = [v["left"].as_i64().unwrap(), v["right"].as_i64().unwrap()];
        assert!(
            joined.insert(key, counts).is_none(),
            "one result per key: both sides met on one worker"
        );
    }
    assert_eq!(joined, expected);
}
