//! Golden pipelines: each folder under `tests/golden/` holds a
//! `pipeline.toml`, its `input.ndjson` and, under `expected/`, every output
//! file the pipeline must write (compared as sorted lines, with the run's
//! temporary directory shown as `<dir>`). Cases run five times each on one,
//! two and three workers unless their first line says `# single-worker`.
//!
//! `EDDY_BLESS=1 cargo test -p eddy-runtime golden` rewrites the expected
//! files from a one-worker run; read them before committing.

use std::path::Path;

use eddy_runtime::{Plan, RunOptions};

fn run_case(case: &Path, workers: usize) -> Vec<(String, Vec<String>)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(case.join("input.ndjson"), dir.path().join("input.ndjson")).unwrap();
    let tmp = dir.path().display().to_string();
    let text = std::fs::read_to_string(case.join("pipeline.toml"))
        .unwrap()
        .replace("path = \"", &format!("path = \"{tmp}/"));
    let plan = Plan::compile("pipeline.toml", &text, &[])
        .unwrap_or_else(|d| panic!("{}: {d}", case.display()));
    let report = eddy_runtime::run(
        &plan,
        RunOptions {
            workers,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(
        report.errors.is_empty(),
        "{}: {:?}",
        case.display(),
        report.errors
    );
    let mut outputs = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "input.ndjson" {
            continue;
        }
        let mut lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| l.replace(&tmp, "<dir>"))
            .collect();
        lines.sort();
        outputs.push((name, lines));
    }
    outputs.sort();
    outputs
}

#[test]
fn golden_pipelines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3);
    let bless = std::env::var_os("EDDY_BLESS").is_some();
    for case in cases {
        let expected_dir = case.join("expected");
        let single = std::fs::read_to_string(case.join("pipeline.toml"))
            .unwrap()
            .starts_with("# single-worker");
        if bless {
            let _ = std::fs::remove_dir_all(&expected_dir);
            std::fs::create_dir_all(&expected_dir).unwrap();
            for (name, lines) in run_case(&case, 1) {
                let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
                std::fs::write(expected_dir.join(name), text).unwrap();
            }
            continue;
        }
        let mut expected = Vec::new();
        for entry in std::fs::read_dir(&expected_dir)
            .unwrap_or_else(|_| panic!("{} has no expected/", case.display()))
        {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let mut lines: Vec<String> = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            expected.push((name, lines));
        }
        expected.sort();
        // Five runs on each worker count: output must not depend on
        // thread timing or on how events spread over workers.
        for workers in if single { vec![1] } else { vec![1, 2, 3] } {
            for run in 1..=5 {
                assert_eq!(
                    run_case(&case, workers),
                    expected,
                    "{} on {workers} workers, run {run}",
                    case.display()
                );
            }
        }
    }
}
