//! Durable checkpoints: savepoints, resuming, damaged checkpoints and
//! pipelines that changed in between.

use std::path::Path;
use std::time::Duration;

use eddy_runtime::{Plan, Restore, RunError, RunOptions};

/// A throttled Nexmark source (it never ends by itself) into a blackhole,
/// with checkpoints under `dir`; `extra` is appended to the pipeline.
fn pipeline(dir: &Path, extra: &str) -> Plan {
    let text = format!(
        r#"
[pipeline]
name = "resume"
data_dir = "{d}"

[checkpoint]
interval = "100ms"
retain = 5

[sources.bids]
type = "nexmark"
rate = 20000.0
only = "bid"

[sinks.out]
type = "blackhole"
inputs = ["bids"]
{extra}
"#,
        d = dir.display()
    );
    Plan::compile("resume.toml", &text, &[]).unwrap_or_else(|d| panic!("{d}"))
}

fn on(restore: Restore, allow: bool) -> RunOptions {
    RunOptions {
        workers: 1,
        restore,
        allow_non_restored_state: allow,
        ..RunOptions::default()
    }
}

/// Runs until some events went through, then stops with a savepoint;
/// returns where the run resumed from and the savepoint.
fn run_to_savepoint(plan: &Plan, opts: RunOptions) -> (Option<String>, std::path::PathBuf) {
    let running = eddy_runtime::start(plan, opts).unwrap();
    let from = running.restored_from().map(|p| p.display().to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while running.metrics().source_events() < 2_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let savepoint = running
        .stop_with_savepoint(Duration::from_secs(20))
        .expect("the savepoint completes");
    let report = running.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    (from, savepoint)
}

fn id_of(chk: &Path) -> u64 {
    chk.file_name().unwrap().to_str().unwrap()["chk-".len()..]
        .parse()
        .unwrap()
}

fn chk_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("checkpoints").join("resume")
}

#[test]
fn a_run_resumes_from_its_savepoint_and_its_positions() {
    let dir = tempfile::tempdir().unwrap();
    let plan = pipeline(dir.path(), "");
    let (from, first) = run_to_savepoint(&plan, on(Restore::Latest, false));
    assert_eq!(from, None);
    let (from, second) = run_to_savepoint(&plan, on(Restore::Latest, false));
    assert_eq!(from.as_deref(), Some(first.display().to_string().as_str()));
    let position = |chk: &Path| -> u64 {
        let id = id_of(chk);
        let store = eddy_state::checkpoint::CheckpointStore::open(chk.parent().unwrap()).unwrap();
        let meta = eddy_runtime::CheckpointMeta::read(&store.verify(id).unwrap()).unwrap();
        meta.nodes[0].instances[0].positions[0].offset
    };
    // The second run continued from where the first stopped.
    assert!(position(&second) > position(&first));
    // An explicit savepoint is resumed even when newer ones exist.
    let running = eddy_runtime::start(&plan, on(Restore::From(first.clone()), false)).unwrap();
    assert_eq!(running.restored_from(), Some(&first));
    running.stop();
    running.wait();
}

/// Damages the newest checkpoint in one of three ways; the run must resume
/// from the one before.
#[test]
fn a_damaged_checkpoint_is_skipped_for_the_previous_complete_one() {
    for damage in ["truncate", "flip", "no-manifest"] {
        let dir = tempfile::tempdir().unwrap();
        let plan = pipeline(dir.path(), "");
        let (_, first) = run_to_savepoint(&plan, on(Restore::Latest, false));
        let (_, second) = run_to_savepoint(&plan, on(Restore::Latest, false));
        let victim = second.join("sources");
        match damage {
            "truncate" => {
                let bytes = std::fs::read(&victim).unwrap();
                std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
            }
            "flip" => {
                let mut bytes = std::fs::read(&victim).unwrap();
                bytes[1] ^= 0x40;
                std::fs::write(&victim, &bytes).unwrap();
            }
            _ => std::fs::remove_file(second.join("_manifest")).unwrap(),
        }
        let running = eddy_runtime::start(&plan, on(Restore::Latest, false)).unwrap();
        // Checkpoints newer than `first` but older than `second` may exist
        // (taken every 100 ms); none is newer than the damaged one.
        let from = running.restored_from().cloned().expect("resumed");
        assert!(
            (id_of(&first)..id_of(&second)).contains(&id_of(&from)),
            "{damage}: resumed from {from:?}, not from before {second:?}"
        );
        running.stop();
        running.wait();
    }
}

#[test]
fn an_incompatible_change_is_refused_naming_the_operator_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = pipeline(dir.path(), "");
    let (_, savepoint) = run_to_savepoint(&plan, on(Restore::Latest, false));

    // A compatible change: a new sink.
    let more = pipeline(
        dir.path(),
        "[sinks.more]\ntype = \"blackhole\"\ninputs = [\"bids\"]\n",
    );
    let running = eddy_runtime::start(&more, on(Restore::From(savepoint.clone()), false)).unwrap();
    assert_eq!(running.restored_from(), Some(&savepoint));
    running.stop();
    running.wait();

    // An incompatible one: the source's configuration changed.
    let changed = Plan::compile(
        "resume.toml",
        &format!(
            "[pipeline]\nname = \"resume\"\ndata_dir = \"{}\"\n[checkpoint]\n\
             [sources.bids]\ntype = \"nexmark\"\nrate = 500.0\nonly = \"bid\"\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"bids\"]\n",
            dir.path().display()
        ),
        &[],
    )
    .unwrap();
    let refused = eddy_runtime::start(&changed, on(Restore::From(savepoint.clone()), false));
    let Err(RunError::Restore { reason, .. }) = refused else {
        panic!("an incompatible change must be refused");
    };
    assert!(reason.contains("`bids`"), "{reason}");
    assert!(reason.contains("--allow-non-restored-state"), "{reason}");
    let running = eddy_runtime::start(&changed, on(Restore::From(savepoint), true)).unwrap();
    running.stop();
    running.wait();

    // A different worker count is refused with the count to use.
    let dir = tempfile::tempdir().unwrap();
    let plan = pipeline(dir.path(), "");
    let (_, savepoint) = run_to_savepoint(&plan, on(Restore::Latest, false));
    let two = RunOptions {
        workers: 2,
        ..on(Restore::From(savepoint), false)
    };
    let Err(RunError::Restore { reason, .. }) = eddy_runtime::start(&plan, two) else {
        panic!("a different worker count must be refused");
    };
    assert!(reason.contains("--workers 1"), "{reason}");
}

#[test]
fn a_finished_run_is_resumed_reading_nothing_again_and_its_ids_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[pipeline]\nname = \"resume\"\ndata_dir = \"{}\"\n[checkpoint]\ninterval = \"50ms\"\n\
         [sources.bids]\ntype = \"nexmark\"\nevents = 5000\nonly = \"bid\"\n\
         [sinks.out]\ntype = \"blackhole\"\ninputs = [\"bids\"]\n",
        dir.path().display()
    );
    let plan = Plan::compile("resume.toml", &text, &[]).unwrap();
    let report = eddy_runtime::run(&plan, on(Restore::Latest, false)).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let store = eddy_state::checkpoint::CheckpointStore::open(chk_dir(dir.path())).unwrap();
    let (latest, _) = store.latest_complete().unwrap();
    let latest = latest.expect("a final checkpoint");
    assert!(
        eddy_runtime::CheckpointMeta::read(&latest)
            .unwrap()
            .finished
    );
    // Started again (say after a kill just after the final checkpoint), the
    // finished run is resumed: nothing is read or written twice.
    let running = eddy_runtime::start(&plan, on(Restore::Latest, false)).unwrap();
    assert_eq!(running.restored_from(), Some(&latest.dir));
    let again_report = running.wait();
    assert!(again_report.errors.is_empty(), "{:?}", again_report.errors);
    assert!(report.metrics.source_events() > 0);
    assert_eq!(again_report.metrics.source_events(), 0);
    let (again, _) = store.latest_complete().unwrap();
    assert!(again.unwrap().id > latest.id);
}

/// A run stopped before its input ended (a stop, `--duration`) flushes
/// and leaves a checkpoint to resume from, not a finished one.
#[test]
fn a_stopped_run_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let plan = pipeline(dir.path(), "");
    let running = eddy_runtime::start(&plan, on(Restore::Latest, false)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    running.stop();
    let report = running.wait();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let store = eddy_state::checkpoint::CheckpointStore::open(chk_dir(dir.path())).unwrap();
    let (latest, _) = store.latest_complete().unwrap();
    let latest = latest.expect("a last checkpoint");
    assert!(
        !eddy_runtime::CheckpointMeta::read(&latest)
            .unwrap()
            .finished
    );
    let running = eddy_runtime::start(&plan, on(Restore::Latest, false)).unwrap();
    assert_eq!(running.restored_from(), Some(&latest.dir));
    running.stop();
    running.wait();
}
