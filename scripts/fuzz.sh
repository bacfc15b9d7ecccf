#!/usr/bin/env bash
# Long fuzz run of the `fuzz_*` property tests on the stable toolchain: the
# JSON decoder, CEL compile and evaluate, the time, duration and event-time
# parsers, the pipeline parser and validator, the state codec and state
# snapshot restore.
#
#   CASES=200000 scripts/fuzz.sh
#
# Each target runs CASES cases (proptest's PROPTEST_CASES) and prints how
# many it ran; the normal test suite runs them with proptest's default 256.
set -uo pipefail
cd "$(dirname "$0")/.."
cases=${CASES:-200000}
log=$(mktemp)
start=$(date +%s)
status=0
PROPTEST_CASES=$cases cargo test --locked --release -p eddy-core -p eddy-state -p eddy-runtime fuzz_ -- --nocapture \
    >"$log" 2>&1 || status=$?
grep -E '^fuzz_[a-z0-9_]+: [0-9]+ cases$' "$log"
if [ "$status" -ne 0 ]; then
    grep -E -A12 'panicked|minimal failing input|^error' "$log" | head -80
fi
echo "fuzz: PROPTEST_CASES=$cases, $(( $(date +%s) - start )) s, exit $status"
rm -f "$log"
exit "$status"
