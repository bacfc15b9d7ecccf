#!/usr/bin/env bash
# Refreshes the dashboard's vendored JavaScript from the versions pinned in
# crates/eddy-server/assets/package-lock.json. The built files are checked
# in (crates/eddy-server/assets/vendor/) so `cargo build` needs no
# JavaScript toolchain; run this after changing package.json, with npm.
set -euo pipefail
cd "$(dirname "$0")/../crates/eddy-server/assets"
npm ci --no-audit --no-fund --ignore-scripts
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css vendor/
cp node_modules/uplot/LICENSE vendor/uPlot.LICENSE
rm -rf node_modules
echo "vendor/ refreshed from package-lock.json"
