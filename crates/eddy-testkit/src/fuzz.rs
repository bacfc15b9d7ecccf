//! Fuzz targets on the stable toolchain: a property-test runner that counts
//! its cases and runs them on a worker-sized stack.
//!
//! Each target runs `PROPTEST_CASES` cases (256 without it) and prints
//! `NAME: N cases`; `scripts/fuzz.sh` runs every `fuzz_*` test for long.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestRunner};

/// Stack of the thread a target runs on: the default of Eddy's worker
/// threads, so a target finds the stack overflows a pipeline would hit.
const STACK_BYTES: usize = 2 << 20;

/// Runs `body` over the strategy `make` builds and prints the number of
/// cases. A case fails by panicking; the target then panics with the
/// minimal failing input.
pub fn run<S, M>(name: &'static str, make: M, body: fn(S::Value))
where
    S: Strategy + 'static,
    S::Value: 'static,
    M: FnOnce() -> S + Send + 'static,
{
    let handle = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let strategy = make();
            let count = AtomicU64::new(0);
            // `Config::default()` reads PROPTEST_CASES; failures are printed
            // with their minimal input rather than saved to a file.
            let config = Config {
                failure_persistence: None,
                ..Config::default()
            };
            let result = TestRunner::new(config).run(&strategy, |input| {
                count.fetch_add(1, Ordering::Relaxed);
                body(input);
                Ok(())
            });
            println!("{name}: {} cases", count.load(Ordering::Relaxed));
            result.map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| panic!("{name}: cannot start its thread: {e}"));
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name}: {e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
