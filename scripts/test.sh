#!/usr/bin/env bash
# Runs Eddy's whole test suite: formatting, lints, unit, property and
# end-to-end tests. Needs only the Rust toolchain; later test services
# (Kafka-protocol broker, PostgreSQL, Redis, Chromium) are installed and
# started by scripts/services.sh when the tests that need them exist.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked "$@"
