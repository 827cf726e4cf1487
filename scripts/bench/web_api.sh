#!/usr/bin/env bash
# API latency under steady load, with 10,000 clusters and 100,000 traces in memory.
#
# A fixture server (web/examples/fixture_server.rs, the real router over in-memory views)
# runs in one process; an open-loop load generator (web/examples/web_load.rs) in another
# sends RATE requests/s for DURATION s per scenario, RUNS times. Latency is measured from the
# moment each request was due, so queueing is not hidden. The baseline, in the same run, is
# /api/v1/health (the cheapest route: the cost of HTTP + routing + middleware alone).
# Then the dashboard's transfer sizes (uncompressed and gzip) are measured with curl.
#
# Usage: scripts/bench/web_api.sh        (env: RATE=500 DURATION=10 RUNS=3 PORT=7190)
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-500}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
PORT=${PORT:-7190}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release -q -p faultline-web --example fixture_server --example web_load
"$TARGET/release/examples/fixture_server" --port "$PORT" --clusters 10000 --traces 100000 >/tmp/faultline-web-bench.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 600); do
  curl -fs "$BASE/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "$BASE/api/v1/health" >/dev/null

CLUSTER=$(curl -fs "$BASE/api/v1/clusters?limit=1&sort=count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clusters"][0]["id"])')
TRACE=$(curl -fs "$BASE/api/v1/traces?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["traces"][0]["trace_id"])')
echo "data: $(curl -fs "$BASE/api/v1/clusters?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])') clusters, 100000 traces; rate ${RATE}/s, ${DURATION}s x ${RUNS} runs"

declare -A SCEN
SCEN[baseline_health]="/api/v1/health"
SCEN[clusters_list]="/api/v1/clusters?limit=100 /api/v1/clusters?emerging=true&limit=20 /api/v1/clusters?q=op99&limit=50 /api/v1/clusters?sort=count&limit=100&cursor=500 /api/v1/clusters?window=15m&service=user-svc&limit=100"
SCEN[cluster_detail]="/api/v1/clusters/$CLUSTER"
SCEN[traces]="/api/v1/traces?limit=50 /api/v1/traces/$TRACE /api/v1/traces?service=order-svc&limit=50"
SCEN[counters]="/api/v1/counters"

printf '%-16s %10s %10s %10s %10s %8s %12s\n' scenario p50_ms p99_ms max_ms rps errors p99_vs_base
BASE_P99=""
for name in baseline_health clusters_list cluster_detail traces counters; do
  p50s=(); p99s=(); maxs=(); rps=(); errs=0
  for _ in $(seq 1 "$RUNS"); do
    # shellcheck disable=SC2086
    line=$("$TARGET/release/examples/web_load" "$BASE" "$RATE" "$DURATION" ${SCEN[$name]})
    p50s+=("$(sed -E 's/.*p50_ms=([^ ]+).*/\1/' <<<"$line")")
    p99s+=("$(sed -E 's/.*p99_ms=([^ ]+).*/\1/' <<<"$line")")
    maxs+=("$(sed -E 's/.*max_ms=([^ ]+).*/\1/' <<<"$line")")
    rps+=("$(sed -E 's/.*achieved_rps=([^ ]+).*/\1/' <<<"$line")")
    errs=$((errs + $(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line")))
  done
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  P50=$(med "${p50s[@]}"); P99=$(med "${p99s[@]}"); MAX=$(med "${maxs[@]}"); RPS=$(med "${rps[@]}")
  [ -z "$BASE_P99" ] && BASE_P99=$P99
  RATIO=$(awk -v a="$P99" -v b="$BASE_P99" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')
  printf '%-16s %10s %10s %10s %10s %8s %12s\n' "$name" "$P50" "$P99" "$MAX" "$RPS" "$errs" "$RATIO"
done

echo
echo "dashboard transfer (bytes; overview = HTML + JS + CSS + icon + the 3 API calls it makes)"
size() { curl -fs -o /dev/null -w '%{size_download}' "$@"; }
total_plain=0; total_gzip=0
for path in / /assets/app.js /assets/app.css /assets/favicon.svg \
  "/api/v1/clusters?emerging=true&limit=20" "/api/v1/clusters?sort=rate&limit=15&window=30m" /api/v1/counters; do
  plain=$(size "$BASE$path"); gz=$(size -H 'Accept-Encoding: gzip' "$BASE$path")
  printf '  %-50s %9s plain %9s gzip\n' "$path" "$plain" "$gz"
  total_plain=$((total_plain + plain)); total_gzip=$((total_gzip + gz))
done
printf '  %-50s %9s plain %9s gzip\n' "overview total" "$total_plain" "$total_gzip"
