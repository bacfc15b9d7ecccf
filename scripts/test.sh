#!/usr/bin/env bash
# Runs Eddy's whole test suite: formatting, lints, unit, property and
# end-to-end tests, the latter against real servers (PostgreSQL, Redis, a
# Kafka-protocol broker, HTTP receivers, an SMTP server, a headless
# browser) that scripts/install-services.sh installs and each test starts
# on its own loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# The services are installed below, so a test whose server is missing must
# fail rather than skip.
export CI=true

# The broker takes long to build the first time: build it while the lints run.
echo "== installing test services"
scripts/install-services.sh --no-broker
broker_log=$(mktemp)
scripts/install-services.sh > "$broker_log" 2>&1 &
broker_install=$!

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== waiting for the broker build"
if ! wait "$broker_install"; then
  cat "$broker_log"
  exit 1
fi
rm -f "$broker_log"

echo "== cargo test"
cargo test --workspace --locked "$@"
