#!/usr/bin/env bash
# Writes 2 M Nexmark bids with Eddy, then runs the parser comparison.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
cat > "$data/gen.toml" <<TOML
[sources.nexmark]
type = "nexmark"
events = 2000000
only = "bid"
seed = 42

[sinks.out]
type = "file"
inputs = ["nexmark"]
path = "$data/bids.ndjson"
TOML
(cd "$root" && cargo run --release -q -- run "$data/gen.toml" -q)
cargo run --release -q -- "$data/bids.ndjson"
