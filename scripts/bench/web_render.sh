#!/usr/bin/env bash
# Time to first render of each dashboard page in headless Chromium (chromium + chromedriver),
# over 10,000 clusters and 100,000 traces: median over RUNS visits of the time from navigation
# start to the page having drawn its data, next to DOMContentLoaded as the baseline.
#
# Usage: scripts/bench/web_render.sh     (env: RUNS=7)
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p faultline-web --example web_render
"$TARGET/release/examples/web_render" "${RUNS:-7}"
