#!/usr/bin/env bash
# Runs the store comparison: each store's run time on the workload, then the
# clean release build time of each store alone. Results go to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-/tmp/store-bench-target}
work=${STORE_BENCH_DIR:-/tmp/store-bench-data}
keys=${KEYS:-5000000}
cargo build --release --manifest-path "$here/Cargo.toml" --target-dir "$target" -q
for store in fjall redb sled; do
    rm -rf "$work/$store"
    "$target/release/store-bench" "$store" "$work/$store" "$keys"
    rm -rf "$work/$store"
done
if [[ ${BUILD_TIMES:-1} == 1 ]]; then
    for store in fjall redb sled; do
        rm -rf "$target-build-$store"
        start=$(date +%s.%N)
        cargo build --release -q --manifest-path "$here/Cargo.toml" --target-dir "$target-build-$store" \
            --no-default-features --features "$store"
        end=$(date +%s.%N)
        echo "$store: clean release build of the store alone $(echo "$end - $start" | bc) s"
        rm -rf "$target-build-$store"
    done
fi
