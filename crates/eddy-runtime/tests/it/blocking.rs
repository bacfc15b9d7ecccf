//! A transform that blocks on I/O (`TransformFactory::buffer`) runs on its
//! own threads behind a bounded channel: its slow calls happen off the
//! source's thread, and what it emits arrives whole and in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, TransformFactory};
use eddy_core::{Batch, Collector, Operator, OperatorContext, Output};
use eddy_runtime::registry::Factory;
use eddy_runtime::{Plan, RunOptions};

/// The threads `process` ran on.
type Threads = Arc<Mutex<Vec<String>>>;

/// Passes events through after a pause per batch, as a lookup would.
struct SlowLookup {
    threads: Threads,
}

impl TransformFactory for SlowLookup {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(Slow {
            threads: self.threads.clone(),
        }))
    }

    fn buffer(&self) -> Option<usize> {
        Some(2)
    }
}

struct Slow {
    threads: Threads,
}

impl Operator for Slow {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        std::thread::sleep(Duration::from_millis(2));
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.threads.lock().unwrap().push(name);
        for e in batch.events {
            out.push(Output::MAIN, e);
        }
    }
}

#[test]
fn a_blocking_transform_runs_on_its_own_thread_behind_a_bounded_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, copy) = (
        dir.path().join("in.ndjson"),
        dir.path().join("out.ndjson"),
        dir.path().join("copy.ndjson"),
    );
    let lines: String = (0..5_000).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    std::fs::write(&input, &lines).unwrap();
    let text = format!(
        "[pipeline]\nbatch_size = 100\n\n\
         [sources.src]\ntype = \"file\"\npath = {:?}\n\n\
         [transforms.lookup]\ntype = \"filter\"\ninputs = [\"src\"]\ncondition = \"true\"\n\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"lookup\"]\npath = {:?}\n\n\
         [sinks.copy]\ntype = \"file\"\ninputs = [\"src\"]\npath = {:?}\n",
        input.display().to_string(),
        out.display().to_string(),
        copy.display().to_string()
    );
    let mut plan = Plan::compile("lookup.toml", &text, &[]).unwrap_or_else(|d| panic!("{d}"));
    let threads = Threads::default();
    let at = plan.nodes.iter().position(|n| n.name == "lookup").unwrap();
    plan.nodes[at].factory = Factory::Transform(Arc::new(SlowLookup {
        threads: threads.clone(),
    }));
    let topology = eddy_runtime::exec::Topology::new(&plan, 1);
    assert!(
        topology.heads.contains(&at),
        "the lookup heads its own group"
    );
    let report = eddy_runtime::run(
        &plan,
        RunOptions {
            workers: 1,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let threads = threads.lock().unwrap();
    assert_eq!(threads.len(), 50, "one call per batch of 100");
    assert!(
        threads.iter().all(|t| t == "eddy-lookup-0"),
        "the lookup ran on its own thread, not the source's: {:?}",
        &threads[..3]
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), lines);
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), lines);
}
